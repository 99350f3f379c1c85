//! D's claim at CPU scale (papers.md §4, §6.4): a residual network with about n parameters
//! fits n training points, natural or random, and generalizes only on natural labels.
//!
//! The `practical` residual MLP (He init, biases, softmax cross-entropy over 10 classes) is
//! trained with mini-batch SGD on Fashion-MNIST subsets of n images in three settings:
//! natural labels, the same images with random labels, and random pixels with random labels
//! (D's "Random"). Per run: training loss and accuracy after every epoch, test accuracy on the
//! Fashion-MNIST test images (natural labels), and the parameter count. The report plots loss
//! and accuracy against epoch on a log x-axis (as D's Fig. 1), and the smallest parameter count
//! reaching 100% training accuracy against n.
//!
//! `cargo run --release -p overparam-experiments --bin practical_sizes -- --quick`

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use overparam_data::{
    FASHION_MNIST_DIR, Purpose, Split, accuracy, random_images, read_mnist_layout,
};
use overparam_device::to_f64_vec;
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::{d_images, d_practical};
use overparam_experiments::stats::{Spread, band_series, by_x, curves};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_models::{Activation, Network};
use overparam_plot::{Figure, Legend, Scale, Series, Style, log_log_fit};
use overparam_train::{Loss, Optimizer, Snapshot, TrainConfig, train_with_progress};
use serde::{Deserialize, Serialize};
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
    /// Widths m of the residual blocks [default: 4,8,…,256; quick 4,8,16,64].
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
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
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    fashion_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    setting: Setting,
    n: usize,
    width: usize,
    blocks: usize,
    activation: Activation,
    epochs: usize,
    batch: usize,
    step_size: f64,
    test_size: usize,
    fashion_dir: PathBuf,
    seed: u64,
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
    /// Accuracy on the natural-label test images.
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
        let widths = a.widths.clone().unwrap_or(if q {
            vec![4, 8, 16, 64]
        } else {
            (2..=8).map(|p| 1usize << p).collect()
        });
        let mut grid = Vec::new();
        for seed in sweep.seeds() {
            for &setting in &a.settings {
                for &n in &sizes {
                    for &width in &widths {
                        grid.push(Point {
                            setting,
                            n,
                            width,
                            blocks: a.blocks,
                            activation: a.activation,
                            epochs: a.epochs.unwrap_or(if q { 100 } else { 300 }),
                            batch: a.batch,
                            step_size: a.step_size,
                            test_size: a.test_size,
                            fashion_dir: a.fashion_dir.clone(),
                            seed,
                        });
                    }
                }
            }
        }
        Ok(grid)
    }

    fn id(&self, p: &Point) -> String {
        format!("{}_n{}_m{}_seed{}", p.setting.name(), p.n, p.width, p.seed)
    }

    fn run(&self, p: &Point, ctx: &RunContext) -> Result<RunOutput<Output>> {
        let compute = &ctx.compute;
        let read = |split| {
            read_mnist_layout(&p.fashion_dir, split).with_context(|| {
                format!(
                    "reading Fashion-MNIST from {} (install it with `apt-get install \
                     dataset-fashion-mnist`, or pass --fashion-dir)",
                    p.fashion_dir.display()
                )
            })
        };
        const TRAIN: Purpose = Purpose::Subsample;
        let train_images = read(Split::Train)?;
        let train = match p.setting {
            Setting::Natural => d_images(&train_images, Some(p.n), p.seed, TRAIN, false)?,
            Setting::RandomLabels => d_images(&train_images, Some(p.n), p.seed, TRAIN, true)?,
            Setting::RandomPixels => {
                let pixels = random_images(p.n, &train_images.shape, 10, p.seed)?;
                d_images(&pixels, None, p.seed, TRAIN, false)?
            }
        };
        let test = d_images(
            &read(Split::Test)?,
            Some(p.test_size),
            p.seed,
            Purpose::TestSubsample,
            false,
        )?;
        let k = train.target_dim();
        let config = d_practical(
            train.input_dim(),
            p.blocks,
            p.width,
            p.activation,
            k,
            p.seed,
        );
        let mut net = Network::init(&config, compute)?;
        let per_epoch = p.n.div_ceil(p.batch);
        let mut cfg = TrainConfig::gd(p.step_size, p.epochs * per_epoch);
        cfg.loss = Loss::CrossEntropy;
        cfg.optimizer = Optimizer::Sgd {
            batch_size: p.batch,
            shuffle_seed: p.seed,
        };
        cfg.observe_every = per_epoch;
        let (mut loss, mut acc) = (Vec::new(), Vec::new());
        let mut observe = |s: &Snapshot<'_>| {
            loss.push(s.loss);
            acc.push(accuracy(
                &to_f64_vec(s.outputs.clone()),
                s.data.targets(),
                k,
            ));
        };
        train_with_progress(
            &mut net,
            &train,
            compute,
            &cfg,
            &mut observe,
            ctx.bar.clone(),
        )?;
        let test_out =
            to_f64_vec(net.forward(compute.tensor(test.inputs(), [test.len(), test.input_dim()])));
        let test_accuracy = accuracy(&test_out, test.targets(), k);
        let mut table = Table::new(&["epoch", "loss", "accuracy"]);
        for (e, (l, a)) in loss.iter().zip(&acc).enumerate() {
            table.push(vec![e as f64, *l, *a]);
        }
        Ok(RunOutput {
            output: Output {
                parameters: config.parameter_count(),
                epochs_to_fit: acc.iter().position(|&a| a >= 1.0),
                loss,
                accuracy: acc,
                test_accuracy,
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
        let setup = format!(
            "{} blocks, {}, SGD B={}, η={}",
            first.blocks, first.activation, first.batch, first.step_size
        );
        let mut settings: Vec<Setting> = runs.iter().map(|r| r.point.setting).collect();
        settings.sort_by_key(|s| s.name());
        settings.dedup();
        let n_max = runs.iter().map(|r| r.point.n).max().unwrap_or(0);
        let m_max = runs.iter().map(|r| r.point.width).max().unwrap_or(0);

        // D Fig. 1: loss and accuracy vs epoch (log x), the largest net on the largest n.
        for (stem, y_label, field) in [
            (
                "training_loss",
                "training loss (cross-entropy)",
                (|o: &Output| &o.loss) as fn(&Output) -> &Vec<f64>,
            ),
            ("training_accuracy", "training accuracy", |o: &Output| {
                &o.accuracy
            }),
        ] {
            let mut fig = Figure::new(
                format!("D Fig. 1 at CPU scale: {y_label}, n={n_max}, m={m_max} ({setup})"),
                "epoch",
                y_label,
            )
            .scales(Scale::Log, Scale::Linear)
            .legend(if stem == "training_loss" {
                Legend::LowerLeft
            } else {
                Legend::UpperLeft
            });
            for (i, &s) in settings.iter().enumerate() {
                let rs: Vec<Vec<f64>> = runs
                    .iter()
                    .filter(|r| {
                        r.point.setting == s && r.point.n == n_max && r.point.width == m_max
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
                fig = fig.with(band_series(s.name(), &pts).color(i));
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
        for (i, &s) in settings.iter().enumerate() {
            let mut samples = Vec::new();
            for &n in &sizes {
                let mut seeds: Vec<u64> = runs
                    .iter()
                    .filter(|r| r.point.setting == s && r.point.n == n)
                    .map(|r| r.point.seed)
                    .collect();
                seeds.sort_unstable();
                seeds.dedup();
                let needed: Vec<f64> = seeds
                    .iter()
                    .filter_map(|&seed| {
                        runs.iter()
                            .filter(|r| {
                                r.point.setting == s
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
                    .filter(|r| r.point.setting == s && r.point.n == n && r.point.width == m_max)
                    .collect();
                let mean = |f: &dyn Fn(&Output) -> f64| {
                    Spread::of(&largest.iter().map(|r| f(&r.output)).collect::<Vec<_>>()).mean
                };
                table.push_labelled(
                    vec![s.name().into()],
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
            slopes.insert(s.name().into(), slope.into());
            let label = slope.map_or(s.name().to_string(), |v| {
                format!("{} (slope {v:.2})", s.name())
            });
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

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&Practical { args }, &sweep)
}
