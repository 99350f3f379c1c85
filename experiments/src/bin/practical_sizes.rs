//! D's claim (papers.md §4, §6.4, Figure 1): a residual network with enough parameters fits n
//! training points, natural or random, and generalizes only on natural labels.
//!
//! `--model practical` (default) trains the residual MLP (He init, biases) for CPU-scale sweeps;
//! `--model resnet18` trains D's ResNet-18 with BatchNorm (`--width` lists its first-stage
//! widths w). Both use mini-batch SGD (optional momentum and weight decay) with softmax
//! cross-entropy (or `--loss quadratic` on one-hot targets), no augmentation, on subsets of n
//! images of each `--sets` entry found under `--data-root` (a missing set is skipped with a
//! message naming its folder) in two settings, natural labels and the same images with random
//! labels, plus D's "Random": random pixels of `--random-shape` (D: 3×24×24) with random labels.
//! Per run: training loss and accuracy after every epoch (evaluation mode, the whole training
//! subset), test accuracy (natural test images of the set; fresh random images for Random),
//! and the parameter count. Runs checkpoint every epoch into the results folder, so a killed
//! sweep started again resumes inside its current run. The report plots loss and accuracy
//! against epoch on a log x-axis (D's Fig. 1), and the smallest parameter count reaching 100%
//! training accuracy against n.
//!
//! `cargo run --release -p overparam-experiments --bin practical_sizes -- --quick`

use anyhow::{Context, Result};
use burn::tensor::Tensor;
use clap::{Parser, ValueEnum};
use overparam_data::{FASHION_MNIST_DIR, ImageSet, Purpose, Split, accuracy, random_images};
use overparam_device::to_f64_vec;
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::{FigureSet, d_images, d_practical, d_resnet18};
use overparam_experiments::stats::{Spread, band_series, by_x, curves};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_models::{Activation, Network};
use overparam_plot::{Figure, Legend, Scale, Series, Style, log_log_fit};
use overparam_train::{
    Checkpointing, Loss, Observer, Optimizer, Snapshot, TrainConfig, train_with_progress,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum Setting {
    /// Fashion-MNIST images with their labels.
    Natural,
    /// The same images with uniformly random labels.
    RandomLabels,
    /// Uniform random pixels with random labels (D's "Random").
    RandomPixels,
}

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum Model {
    /// The residual MLP (`--blocks`, `--activation`; widths are its m).
    Practical,
    /// D's ResNet-18 with BatchNorm (widths are its first-stage w; D: 64).
    Resnet18,
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum LossKind {
    /// Softmax cross-entropy, mean over the batch.
    CrossEntropy,
    /// ½ Σ (f − y)² on one-hot targets, summed over the batch.
    Quadratic,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Natural => "natural",
            Setting::RandomLabels => "random-labels",
            Setting::RandomPixels => "random-pixels",
        }
    }
}

/// D: memorization and generalization of a residual net against n and its size.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    sweep: SweepArgs,
    /// Label/pixel settings.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "natural,random-labels,random-pixels"
    )]
    settings: Vec<Setting>,
    /// Training-set sizes n [default: 250,500,1000,2000; quick 100,200].
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Widths: m of the residual blocks [default: 4,8,…,256; quick 4,8,16,64], or ResNet-18's
    /// w [default: 16; quick 2,4].
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Network.
    #[arg(long, value_enum, default_value = "practical")]
    model: Model,
    /// Image sets of D's Figure 1 to use where found.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fashion-mnist"
    )]
    sets: Vec<FigureSet>,
    /// Folder holding one folder per set (`<root>/cifar10`, …); Fashion-MNIST falls back to
    /// --fashion-dir.
    #[arg(long, default_value = "data")]
    data_root: PathBuf,
    /// `[channels]x[height]x[width]` of D's "Random" images (random-pixels setting).
    #[arg(long, default_value = "3x24x24")]
    random_shape: String,
    /// Loss.
    #[arg(long, value_enum, default_value = "cross-entropy")]
    loss: LossKind,
    /// Heavy-ball momentum μ (PyTorch's form; D-style practice: 0.9).
    #[arg(long, default_value_t = 0.0)]
    momentum: f64,
    /// Weight decay λ.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// End a run at its first epoch with 100% training accuracy (else run all --epochs).
    #[arg(long)]
    stop_at_fit: bool,
    /// Residual blocks.
    #[arg(long, default_value_t = 2)]
    blocks: usize,
    /// σ.
    #[arg(long, default_value = "relu")]
    activation: Activation,
    /// Epochs [default: 300; quick 100].
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 25)]
    batch: usize,
    /// η.
    #[arg(long, default_value_t = 0.1)]
    step_size: f64,
    /// Test images (natural labels) for the test accuracy.
    #[arg(long, default_value_t = 1000)]
    test_size: usize,
    /// Folder with the Fashion-MNIST IDX files (when `<root>/fashion-mnist` does not exist).
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    fashion_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    setting: Setting,
    /// The image set and its folder (`None` for D's Random).
    source: Option<(FigureSet, PathBuf)>,
    /// The Random images' shape.
    random_shape: Vec<usize>,
    model: Model,
    loss: LossKind,
    momentum: f64,
    weight_decay: f64,
    stop_at_fit: bool,
    n: usize,
    width: usize,
    blocks: usize,
    activation: Activation,
    epochs: usize,
    batch: usize,
    step_size: f64,
    test_size: usize,
    seed: u64,
}

impl Point {
    /// The curve this run belongs to: `<set> <setting>`, or `random` for D's Random.
    fn curve(&self) -> String {
        match &self.source {
            Some((set, _)) => format!("{} {}", set.name(), self.setting.name()),
            None => "random".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// Number of parameters.
    parameters: usize,
    /// Training loss after each epoch (index 0: at init).
    loss: Vec<f64>,
    /// Training accuracy after each epoch (index 0: at init).
    accuracy: Vec<f64>,
    /// First epoch with 100% training accuracy.
    epochs_to_fit: Option<usize>,
    /// Test loss after each epoch (index 0: at init).
    #[serde(default)]
    test_loss: Vec<f64>,
    /// Test accuracy after each epoch (index 0: at init).
    #[serde(default)]
    test_accuracies: Vec<f64>,
    /// Test accuracy of the final network (natural test labels; fresh images for Random).
    test_accuracy: f64,
}

struct Practical {
    args: Args,
}

impl Experiment for Practical {
    type Point = Point;
    type Output = Output;

    fn name(&self) -> &'static str {
        "practical_sizes"
    }

    fn default_dtype(&self) -> &'static str {
        "f32"
    }

    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Point>> {
        let a = &self.args;
        let q = sweep.quick;
        let sizes = a.sizes.clone().unwrap_or(if q {
            vec![100, 200]
        } else {
            vec![250, 500, 1000, 2000]
        });
        let widths = a.widths.clone().unwrap_or(match (a.model, q) {
            (Model::Practical, true) => vec![4, 8, 16, 64],
            (Model::Practical, false) => (2..=8).map(|p| 1usize << p).collect(),
            (Model::Resnet18, true) => vec![2, 4],
            (Model::Resnet18, false) => vec![16],
        });
        let random_shape = parse_shape(&a.random_shape)?;
        // Each set found once, or D's Random alone.
        let mut sources = Vec::new();
        for &set in &a.sets {
            let dir = set.dir(&a.data_root, &a.fashion_dir);
            if dir.is_dir() {
                sources.push((set, dir));
            } else {
                eprintln!(
                    "practical_sizes: skipping {}: no folder {}",
                    set.name(),
                    dir.display()
                );
            }
        }
        let mut cases = Vec::new();
        for &setting in &a.settings {
            if setting == Setting::RandomPixels {
                cases.push((setting, None));
            } else {
                cases.extend(sources.iter().map(|source| (setting, Some(source.clone()))));
            }
        }
        if cases.is_empty() {
            anyhow::bail!(
                "no data: none of the sets {:?} was found and Random is not among the settings",
                a.sets
            );
        }
        let mut grid = Vec::new();
        for seed in sweep.seeds() {
            for (setting, source) in &cases {
                for &n in &sizes {
                    for &width in &widths {
                        grid.push(Point {
                            setting: *setting,
                            source: source.clone(),
                            random_shape: random_shape.clone(),
                            model: a.model,
                            loss: a.loss,
                            momentum: a.momentum,
                            weight_decay: a.weight_decay,
                            stop_at_fit: a.stop_at_fit,
                            n,
                            width,
                            blocks: a.blocks,
                            activation: a.activation,
                            epochs: a.epochs.unwrap_or(if q { 100 } else { 300 }),
                            batch: a.batch,
                            step_size: a.step_size,
                            test_size: a.test_size,
                            seed,
                        });
                    }
                }
            }
        }
        Ok(grid)
    }

    fn id(&self, p: &Point) -> String {
        let model = match p.model {
            Model::Practical => String::new(),
            Model::Resnet18 => "resnet18_".into(),
        };
        format!(
            "{model}{}_n{}_m{}_seed{}",
            p.curve().replace(' ', "_"),
            p.n,
            p.width,
            p.seed
        )
    }

    fn run(&self, p: &Point, ctx: &RunContext) -> Result<RunOutput<Output>> {
        let compute = &ctx.compute;
        const TRAIN: Purpose = Purpose::Subsample;
        let (train, test, shape) = match &p.source {
            Some((set, dir)) => {
                let read = |split| {
                    set.read(dir, split)
                        .with_context(|| format!("reading {} from {}", set.name(), dir.display()))
                };
                let images = read(Split::Train)?;
                let random = p.setting == Setting::RandomLabels;
                let train = d_images(&images, Some(p.n), p.seed, TRAIN, random)?;
                let test_images = read(Split::Test)?;
                let test_n = Some(p.test_size.min(test_images.len()));
                let test = d_images(&test_images, test_n, p.seed, Purpose::TestSubsample, false)?;
                (train, test, images.shape)
            }
            None => {
                // D's Random: one draw of n + test_size images, split into train and test.
                let all = random_images(p.n + p.test_size, &p.random_shape, 10, p.seed)?;
                let (train, test) = split_images(all, p.n);
                (
                    d_images(&train, None, p.seed, TRAIN, false)?,
                    d_images(&test, None, p.seed, Purpose::TestSubsample, false)?,
                    p.random_shape.clone(),
                )
            }
        };
        let k = train.target_dim();
        if test.target_dim() != k {
            anyhow::bail!(
                "the training images hold {k} classes but the test images {}: with so few \
                 images some class was never drawn; use a larger --sizes or --test-size",
                test.target_dim()
            );
        }
        let config = match p.model {
            Model::Practical => d_practical(
                train.input_dim(),
                p.blocks,
                p.width,
                p.activation,
                k,
                p.seed,
            ),
            Model::Resnet18 => d_resnet18(&shape, p.width, k, p.seed),
        };
        let mut net = Network::init(&config, compute)?;
        let per_epoch = p.n.div_ceil(p.batch);
        let cfg = TrainConfig {
            loss: match p.loss {
                LossKind::CrossEntropy => Loss::CrossEntropy,
                LossKind::Quadratic => Loss::Quadratic,
            },
            optimizer: Optimizer::Sgd {
                batch_size: p.batch,
                shuffle_seed: p.seed,
            },
            momentum: p.momentum,
            weight_decay: p.weight_decay,
            observe_every: per_epoch,
            checkpoint: Some(Checkpointing {
                path: ctx.checkpoints.join("train.safetensors"),
                every: per_epoch,
                resume: true,
            }),
            ..TrainConfig::gd(p.step_size, p.epochs * per_epoch)
        };
        let path = ctx.checkpoints.join("epochs.json");
        let mut epochs = Epochs {
            seen: Epochs::saved(&path)?,
            path,
            classes: k,
            stop_at_fit: p.stop_at_fit,
            test: compute.tensor(test.inputs(), [test.len(), test.input_dim()]),
            test_targets: test.targets().to_vec(),
            loss: cfg.loss,
        };
        train_with_progress(
            &mut net,
            &train,
            compute,
            &cfg,
            &mut epochs,
            ctx.bar.clone(),
        )?;
        let rows: Vec<[f64; 4]> = epochs.seen.values().copied().collect();
        let column = |c: usize| -> Vec<f64> { rows.iter().map(|r| r[c]).collect() };
        let mut table = Table::new(&["epoch", "loss", "accuracy", "test_loss", "test_accuracy"]);
        for (e, r) in rows.iter().enumerate() {
            table.push(vec![e as f64, r[0], r[1], r[2], r[3]]);
        }
        let accuracy = column(1);
        Ok(RunOutput {
            output: Output {
                parameters: config.parameter_count(),
                epochs_to_fit: accuracy.iter().position(|&a| a >= 1.0),
                loss: column(0),
                accuracy,
                test_loss: column(2),
                test_accuracy: rows.last().map_or(f64::NAN, |r| r[3]),
                test_accuracies: column(3),
            },
            table: Some(table),
        })
    }

    fn report(
        &self,
        runs: &[Finished<Point, Output>],
        results: &ResultsDir,
        plots: &Path,
    ) -> Result<()> {
        let first = &runs[0].point;
        let model = match first.model {
            Model::Practical => format!("{} blocks, {}", first.blocks, first.activation),
            Model::Resnet18 => "ResNet-18".to_string(),
        };
        let setup = format!(
            "{model}, SGD B={}, η={}, μ={}",
            first.batch, first.step_size, first.momentum
        );
        let mut settings: Vec<String> = runs.iter().map(|r| r.point.curve()).collect();
        settings.sort();
        settings.dedup();
        let n_max = runs.iter().map(|r| r.point.n).max().unwrap_or(0);
        let m_max = runs.iter().map(|r| r.point.width).max().unwrap_or(0);

        // D Fig. 1: loss and accuracy vs epoch (log x), the largest net on the largest n.
        let loss_label = match first.loss {
            LossKind::CrossEntropy => "training loss (cross-entropy)",
            LossKind::Quadratic => "training loss (quadratic, one-hot)",
        };
        for (stem, y_label, field) in [
            (
                "training_loss",
                loss_label,
                (|o: &Output| &o.loss) as fn(&Output) -> &Vec<f64>,
            ),
            ("training_accuracy", "training accuracy", |o: &Output| {
                &o.accuracy
            }),
        ] {
            let mut fig = Figure::new(
                format!("D Fig. 1 at CPU scale: {y_label}, n={n_max}, width {m_max} ({setup})"),
                "epoch",
                y_label,
            )
            .scales(Scale::Log, Scale::Linear)
            .legend(if stem == "training_loss" {
                Legend::LowerLeft
            } else {
                Legend::UpperLeft
            });
            for (i, s) in settings.iter().enumerate() {
                let rs: Vec<Vec<f64>> = runs
                    .iter()
                    .filter(|r| {
                        r.point.curve() == *s && r.point.n == n_max && r.point.width == m_max
                    })
                    .map(|r| field(&r.output).clone())
                    .collect();
                // Epoch 0 (init) cannot sit on a log axis; the curve starts after epoch 1.
                let pts: Vec<(f64, Spread)> = curves(&rs)
                    .into_iter()
                    .enumerate()
                    .skip(1)
                    .map(|(e, v)| (e as f64, v))
                    .collect();
                fig = fig.with(band_series(s.as_str(), &pts).color(i));
            }
            fig.save(plots, stem)?;
        }

        // Smallest parameter count reaching 100% training accuracy against n.
        let mut fig = Figure::new(
            format!("D: parameters needed to fit n points ({setup})"),
            "training points n",
            "smallest #parameters with 100% train accuracy",
        )
        .scales(Scale::Log, Scale::Log)
        .legend(Legend::UpperLeft);
        let mut table = Table::labelled(
            &["setting"],
            &[
                "n",
                "seeds",
                "parameters_needed_mean",
                "seeds_unfit",
                "test_accuracy_largest",
                "train_accuracy_largest",
            ],
        );
        let mut slopes = serde_json::Map::new();
        let mut sizes: Vec<usize> = runs.iter().map(|r| r.point.n).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for (i, s) in settings.iter().enumerate() {
            let mut samples = Vec::new();
            for &n in &sizes {
                let mut seeds: Vec<u64> = runs
                    .iter()
                    .filter(|r| r.point.curve() == *s && r.point.n == n)
                    .map(|r| r.point.seed)
                    .collect();
                seeds.sort_unstable();
                seeds.dedup();
                let needed: Vec<f64> = seeds
                    .iter()
                    .filter_map(|&seed| {
                        runs.iter()
                            .filter(|r| {
                                r.point.curve() == *s
                                    && r.point.n == n
                                    && r.point.seed == seed
                                    && r.output.epochs_to_fit.is_some()
                            })
                            .map(|r| r.output.parameters)
                            .min()
                            .map(|p| p as f64)
                    })
                    .collect();
                samples.extend(needed.iter().map(|&p| (n as f64, p)));
                let largest: Vec<&Finished<Point, Output>> = runs
                    .iter()
                    .filter(|r| r.point.curve() == *s && r.point.n == n && r.point.width == m_max)
                    .collect();
                let mean = |f: &dyn Fn(&Output) -> f64| {
                    Spread::of(&largest.iter().map(|r| f(&r.output)).collect::<Vec<_>>()).mean
                };
                table.push_labelled(
                    vec![s.clone()],
                    vec![
                        n as f64,
                        seeds.len() as f64,
                        Spread::of(&needed).mean,
                        (seeds.len() - needed.len()) as f64,
                        mean(&|o| o.test_accuracy),
                        mean(&|o| *o.accuracy.last().unwrap()),
                    ],
                );
            }
            let (xs, ys): (Vec<f64>, Vec<f64>) = samples.iter().copied().unzip();
            let slope = log_log_fit(&xs, &ys).map(|f| f.slope);
            slopes.insert(s.clone(), slope.into());
            let label = slope.map_or(s.clone(), |v| format!("{s} (slope {v:.2})"));
            fig = fig.with(
                band_series(label, &by_x(samples))
                    .style(Style::LineMarkers)
                    .color(i),
            );
        }
        let reference: Vec<(f64, f64)> =
            sizes.iter().map(|&n| (n as f64, 10.0 * n as f64)).collect();
        fig = fig.with(
            Series::line("#params = n·k (k = 10 outputs)", reference)
                .style(Style::Dashed)
                .color(7),
        );
        fig.save(plots, "parameters_needed_vs_n")?;
        table.write_summary(
            results.root(),
            "summary",
            serde_json::json!({ "setup": setup, "loglog_slopes_vs_n": slopes }),
        )?;
        for (labels, v) in &table.rows {
            eprintln!(
                "{:>13} n={:>5}: parameters needed {} (unfit seeds {}), largest net: train acc {:.3}, test acc {:.3}",
                labels[0],
                v[0],
                if v[2].is_nan() {
                    "none in grid".into()
                } else {
                    format!("{:.0}", v[2])
                },
                v[3],
                v[5],
                v[4]
            );
        }
        Ok(())
    }
}

/// Training loss and accuracy (evaluation mode, the whole training set) and test loss and
/// accuracy at each observed step, kept in a file beside the run's checkpoint so that a
/// resumed run has the epochs before its restart; optionally ends the run at the first epoch
/// with 100% training accuracy.
struct Epochs {
    path: PathBuf,
    classes: usize,
    stop_at_fit: bool,
    /// Step → [train loss, train accuracy, test loss, test accuracy].
    seen: BTreeMap<usize, [f64; 4]>,
    test: Tensor<2>,
    test_targets: Vec<f64>,
    loss: Loss,
}

impl Epochs {
    /// The observations saved at `path` by an earlier attempt of the run (none if absent).
    fn saved(path: &Path) -> Result<BTreeMap<usize, [f64; 4]>> {
        if !path.exists() {
            return Ok(BTreeMap::new());
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

impl Observer for Epochs {
    fn observe(&mut self, s: &Snapshot<'_>) {
        let k = self.classes;
        let train_acc = accuracy(&to_f64_vec(s.outputs.clone()), s.data.targets(), k);
        let test_out = to_f64_vec(s.network.forward(self.test.clone()));
        let test_loss = self.loss.value(&test_out, &self.test_targets, k);
        let test_acc = accuracy(&test_out, &self.test_targets, k);
        self.seen
            .insert(s.step, [s.loss, train_acc, test_loss, test_acc]);
        let text = serde_json::to_string(&self.seen).expect("numbers serialize");
        let tmp = self.path.with_extension("json.tmp");
        let written = std::fs::create_dir_all(self.path.parent().expect("a folder"))
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            eprintln!("warning: could not write {}: {e}", self.path.display());
        }
    }

    fn stop(&self) -> bool {
        self.stop_at_fit && self.seen.values().next_back().is_some_and(|r| r[1] >= 1.0)
    }
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--random-shape '{text}': expected e.g. 3x24x24"))?;
    if dims.len() != 3 || dims.contains(&0) {
        anyhow::bail!("--random-shape '{text}': expected channels x height x width, e.g. 3x24x24");
    }
    Ok(dims)
}

/// The first `n` images and the rest.
fn split_images(all: ImageSet, n: usize) -> (ImageSet, ImageSet) {
    let d: usize = all.shape.iter().product();
    let rest = ImageSet {
        pixels: all.pixels[n * d..].to_vec(),
        labels: all.labels[n..].to_vec(),
        shape: all.shape.clone(),
        source: all.source.clone(),
    };
    let first = ImageSet {
        pixels: all.pixels[..n * d].to_vec(),
        labels: all.labels[..n].to_vec(),
        ..all
    };
    (first, rest)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&Practical { args }, &sweep)
}
