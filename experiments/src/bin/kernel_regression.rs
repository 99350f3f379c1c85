//! Finite nets against their kernels on test points (no paper has this figure): on two classes
//! of Fashion-MNIST at full resolution, the test accuracy of kernel regression with A's
//! conv ResNet limit and with the fc limit (Def. 7.1 / 5.1, papers.md §1.4), and the test
//! accuracy of A's fc net and conv ResNet trained by full-batch GD as their widths m grow
//! (neurons for fc, channels for the conv net). In the kernel regime
//! a trained net's test outputs approach `f_t(k) = f_t(0) + Θ_t Θ^{-1}(I − (I − ηΘ)^k)(y − u(0))`
//! (Θ the limit of the whole Gram, Θ_t its test-against-training block, u(0), f_t(0) the net's
//! own outputs at init): the report measures the RMS distance between the two as m grows.
//!
//! The conv nets are the expensive part: one GD step on 500 full-resolution images takes
//! ~0.3 s at m = 8 and ~2 s at m = 32 on a 2-core CPU (`--device wgpu` for wider ones).
//!
//! `cargo run --release -p overparam-experiments --bin kernel_regression -- --quick`

use anyhow::{Context, Result};
use clap::Parser;
use faer::Mat;
use overparam_data::{
    Dataset, FASHION_MNIST_DIR, Prepare, Purpose, Split, TargetEncoding, read_mnist_layout, scores,
};
use overparam_device::to_f64_vec;
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::kernel_step_size;
use overparam_experiments::stats::{Spread, band_series, by_x};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_kernels::{KernelSet, predict_test};
use overparam_models::{Activation, Architecture, ModelConfig, Network};
use overparam_plot::{Figure, Legend, Scale, Series, Style, log_log_fit};
use overparam_train::{TrainConfig, train_with_progress};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Kernel regression with A's limits against finite fc and conv nets trained by GD, on test
/// points. Grid: fc widths m ∈ {64, 256, 1024, 2048}, conv widths {8, 16, 32}; with --quick
/// {64, 512} and {4, 8}, n = 200.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    sweep: SweepArgs,
    /// Training images [default: 500; quick 200].
    #[arg(long)]
    n: Option<usize>,
    /// Test images [default: 500; quick 200].
    #[arg(long)]
    n_test: Option<usize>,
    /// The two Fashion-MNIST classes (first +1, second −1).
    #[arg(long, value_delimiter = ',', default_value = "5,7")]
    classes: Vec<u32>,
    /// Depth H of the fc net and its limit.
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// Depth H of the conv ResNet and its limit (3 × 3 patches, c_res = 0.5).
    #[arg(long, default_value_t = 4)]
    conv_depth: usize,
    /// Channels m of the trained conv ResNets [default: 8,16,32; quick 4,8].
    #[arg(long, value_delimiter = ',')]
    conv_widths: Option<Vec<usize>>,
    /// GD steps of the finite nets (and of the kernel predictions at finite k).
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    fashion_dir: PathBuf,
}

/// One run: a kernel (no width) or a finite fc or conv net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    model: String,
    width: Option<usize>,
    seed: u64,
    n: usize,
    n_test: usize,
    classes: Vec<u32>,
    depth: usize,
    steps: usize,
    fashion_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// η = 1/λ_max(Θ) of the fc limit (the kernels' own for a kernel run).
    eta: f64,
    /// Test accuracy and ½-squared loss per test sample after `steps` GD steps.
    test_accuracy: f64,
    test_loss: f64,
    /// Kernel runs: the same as k → ∞ (kernel regression), from zero outputs.
    regression_accuracy: Option<f64>,
    regression_loss: Option<f64>,
    /// Net runs: RMS over test outputs of f_net(k) − f_kernel(k) from the net's own init,
    /// and the kernel's test accuracy from that init.
    distance_to_kernel: Option<f64>,
    kernel_accuracy: Option<f64>,
    /// Net runs: training loss after `steps` steps, ½‖u − y‖².
    train_loss: Option<f64>,
}

struct KernelRegression {
    args: Args,
}

impl Point {
    /// Training and test images: unit norm, ±1 targets, from independent subsample streams.
    fn data(&self) -> Result<(Dataset, Dataset)> {
        let read = |split| {
            read_mnist_layout(&self.fashion_dir, split).with_context(|| {
                format!(
                    "reading Fashion-MNIST from {} (install it with `apt-get install \
                     dataset-fashion-mnist`, or pass --fashion-dir)",
                    self.fashion_dir.display()
                )
            })
        };
        let prepare = |split, n, subsample| -> Result<Dataset> {
            Ok(read(split)?.prepare(&Prepare {
                classes: Some(self.classes.clone()),
                n: Some(n),
                seed: 0,
                subsample,
                keep_channels: true,
                encoding: TargetEncoding::Sign,
                ..Prepare::default()
            })?)
        };
        Ok((
            prepare(Split::Train, self.n, Purpose::Subsample)?,
            prepare(Split::Test, self.n_test, Purpose::TestSubsample)?,
        ))
    }

    /// The kernel a run compares with: the conv limit for conv nets, else the fc limit.
    fn kernel_model(&self) -> &'static str {
        if self.model.starts_with("conv_resnet") {
            "conv_resnet_limit"
        } else {
            "fc_limit"
        }
    }

    /// The network (width m) or, with `width` 1, the kernel's config of this run.
    fn config(&self, width: usize, shape: &[usize]) -> ModelConfig {
        let arch = match self.kernel_model() {
            "conv_resnet_limit" => Architecture::ConvResnet {
                depth: self.depth,
                width,
                activation: Activation::Relu,
                c_res: 0.5,
                channels: shape[0],
                spatial: shape[1..].to_vec(),
                kernel: 3,
            },
            _ => Architecture::Fc {
                depth: self.depth,
                width,
                activation: Activation::Relu,
            },
        };
        ModelConfig {
            input_dim: shape.iter().product(),
            arch,
            seed: self.seed,
        }
    }
}

/// `n × 1` column of a slice.
fn column(v: &[f64]) -> Mat<f64> {
    Mat::from_fn(v.len(), 1, |i, _| v[i])
}

impl Experiment for KernelRegression {
    type Point = Point;
    type Output = Output;

    fn name(&self) -> &'static str {
        "kernel_regression"
    }

    fn default_dtype(&self) -> &'static str {
        "f32"
    }

    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Point>> {
        let a = &self.args;
        let q = sweep.quick;
        let point = |model: &str, width, seed, depth| Point {
            model: model.into(),
            width,
            seed,
            n: a.n.unwrap_or(if q { 200 } else { 500 }),
            n_test: a.n_test.unwrap_or(if q { 200 } else { 500 }),
            classes: a.classes.clone(),
            depth,
            steps: a.steps,
            fashion_dir: a.fashion_dir.clone(),
        };
        let widths: &[usize] = if q {
            &[64, 512]
        } else {
            &[64, 256, 1024, 2048]
        };
        let conv_widths =
            a.conv_widths
                .clone()
                .unwrap_or(if q { vec![4, 8] } else { vec![8, 16, 32] });
        let mut grid = vec![
            point("conv_resnet_limit", None, 0, a.conv_depth),
            point("fc_limit", None, 0, a.depth),
        ];
        for seed in sweep.seeds() {
            for &m in widths {
                grid.push(point("fc", Some(m), seed, a.depth));
            }
            for &m in &conv_widths {
                grid.push(point("conv_resnet", Some(m), seed, a.conv_depth));
            }
        }
        Ok(grid)
    }

    fn id(&self, p: &Point) -> String {
        match p.width {
            Some(m) => format!("{}-m{m}-seed{}", p.model, p.seed),
            None => p.model.clone(),
        }
    }

    fn run(&self, p: &Point, ctx: &RunContext) -> Result<RunOutput<Output>> {
        let (train, test) = p.data()?;
        let (n, d) = (train.len(), train.input_dim());
        let shape = train.shape().to_vec();
        let set = KernelSet::new(
            &p.config(1, &shape),
            &[train.inputs(), test.inputs()].concat(),
        )?;
        let theta = set.block(0..n, 0..n, &|_| {}).total;
        let cross = set.block(n..set.len(), 0..n, &|_| {}).total;
        let eta = kernel_step_size(&theta);
        let y = train.target_matrix();
        let steps = [Some(p.steps), None];
        let Some(width) = p.width else {
            // The kernel's test curve from zero outputs: k = 0, 1, 2, 5, 10, 20, … up to
            // `steps`, then k = `steps` and k → ∞ (kernel regression).
            let mut curve: Vec<usize> = [1, 2, 5]
                .iter()
                .flat_map(|&m| (0..6).map(move |e| m * 10usize.pow(e)))
                .filter(|&k| k < p.steps)
                .collect();
            curve.sort_unstable();
            curve.insert(0, 0);
            let at: Vec<Option<usize>> = curve.iter().map(|&k| Some(k)).chain(steps).collect();
            let zeros = |rows| Mat::<f64>::zeros(rows, 1);
            let f = predict_test(
                &theta,
                &cross,
                eta,
                (&y, &zeros(n)),
                &zeros(test.len()),
                &at,
            );
            let score: Vec<(f64, f64)> = f
                .outputs
                .iter()
                .map(|o| scores(o, test.targets()))
                .collect();
            let mut table = Table::new(&["step", "test_loss", "test_accuracy"]);
            for (k, (loss, accuracy)) in curve.iter().chain([&p.steps]).zip(&score) {
                table.push(vec![*k as f64, *loss, *accuracy]);
            }
            let [
                ..,
                (test_loss, test_accuracy),
                (regression_loss, regression_accuracy),
            ] = score[..]
            else {
                unreachable!("at least k = steps and k → ∞")
            };
            return Ok(RunOutput {
                output: Output {
                    eta,
                    test_accuracy,
                    test_loss,
                    regression_accuracy: Some(regression_accuracy),
                    regression_loss: Some(regression_loss),
                    distance_to_kernel: None,
                    kernel_accuracy: None,
                    train_loss: None,
                },
                table: Some(table),
            });
        };
        let compute = &ctx.compute;
        let config = p.config(width, &shape);
        let mut net = Network::init(&config, compute)?;
        let outputs = |net: &Network, set: &Dataset| {
            column(&to_f64_vec(
                net.forward(compute.tensor(set.inputs(), [set.len(), d])),
            ))
        };
        let (u0, f0) = (outputs(&net, &train), outputs(&net, &test));
        let kernel = predict_test(&theta, &cross, eta, (&y, &u0), &f0, &steps);
        let history = train_with_progress(
            &mut net,
            &train,
            compute,
            &TrainConfig::gd(eta, p.steps),
            &mut (),
            ctx.bar.clone(),
        )?;
        let f = outputs(&net, &test);
        let (test_loss, test_accuracy) = scores(&f, test.targets());
        let (_, kernel_accuracy) = scores(&kernel.outputs[0], test.targets());
        let gap = &f - &kernel.outputs[0];
        let distance = (gap.squared_norm_l2() / test.len() as f64).sqrt();
        let mut table = Table::new(&["step", "loss"]);
        for (k, l) in history.loss.iter().enumerate() {
            table.push(vec![k as f64, *l]);
        }
        Ok(RunOutput {
            output: Output {
                eta,
                test_accuracy,
                test_loss,
                regression_accuracy: None,
                regression_loss: None,
                distance_to_kernel: Some(distance),
                kernel_accuracy: Some(kernel_accuracy),
                train_loss: history.loss.last().copied(),
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
            "Fashion-MNIST {:?}, n={}, n_test={}, 28×28, relu, {} GD steps",
            first.classes, first.n, first.n_test, first.steps
        );
        let kernel = |model: &str| runs.iter().find(|r| r.point.model == model);
        let width = |r: &Finished<Point, Output>| r.point.width.unwrap_or(0) as f64;
        // The trained nets per model; each is compared with the limit of its own architecture.
        let families: Vec<Family> = [
            ("fc", "fc_limit", 0),
            ("conv_resnet", "conv_resnet_limit", 2),
        ]
        .into_iter()
        .map(|(model, limit, colour)| Family {
            model,
            limit,
            colour,
            nets: runs.iter().filter(|r| r.point.model == model).collect(),
        })
        .filter(|f| !f.nets.is_empty())
        .collect();
        let mut fig = Figure::new(
            format!("Test accuracy: finite nets vs their kernels ({setup})"),
            WIDTH_AXIS,
            "test accuracy",
        )
        .scales(Scale::Log, Scale::Linear)
        .legend(Legend::LowerRight);
        let mut distance_fig = Figure::new(
            format!("Test outputs: net − kernel prediction ({setup})"),
            WIDTH_AXIS,
            "RMS of f_net(k) − f_kernel(k) on test points",
        )
        .scales(Scale::Log, Scale::Log)
        .legend(Legend::UpperRight);
        let mut table = Table::labelled(
            &["model"],
            &[
                "width",
                "seeds",
                "test_accuracy_mean",
                "test_accuracy_min",
                "test_accuracy_max",
                "test_loss_mean",
                "regression_accuracy",
                "regression_loss",
                "distance_to_kernel_mean",
                "kernel_accuracy_mean",
                "eta",
                "train_loss_mean",
            ],
        );
        let all_widths: Vec<f64> = runs
            .iter()
            .filter(|r| r.point.width.is_some())
            .map(width)
            .collect();
        let (lo, hi) = all_widths
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), &m| (l.min(m), h.max(m)));
        // The kernels' levels across the width range: solid after k steps, dashed for kernel
        // regression.
        for (colour, model) in [(1, "conv_resnet_limit"), (3, "fc_limit")] {
            if let Some(k) = kernel(model) {
                let o = &k.output;
                let regression = o.regression_accuracy.unwrap_or(f64::NAN);
                let span = |y: f64| vec![(lo, y), (hi, y)];
                fig = fig
                    .with(
                        Series::line(
                            format!("{model}, k = {}", first.steps),
                            span(o.test_accuracy),
                        )
                        .style(Style::Line)
                        .color(colour),
                    )
                    .with(
                        Series::line(format!("{model}, kernel regression"), span(regression))
                            .style(Style::Dashed)
                            .color(colour),
                    );
                table.push_labelled(
                    vec![model.into()],
                    vec![
                        f64::NAN,
                        1.0,
                        o.test_accuracy,
                        o.test_accuracy,
                        o.test_accuracy,
                        o.test_loss,
                        regression,
                        o.regression_loss.unwrap_or(f64::NAN),
                        f64::NAN,
                        f64::NAN,
                        o.eta,
                        f64::NAN,
                    ],
                );
            }
        }
        let mut slopes = serde_json::Map::new();
        for Family {
            model,
            limit,
            colour,
            nets,
        } in &families
        {
            let accuracy = by_x(nets.iter().map(|r| (width(r), r.output.test_accuracy)));
            let same_init = by_x(
                nets.iter()
                    .filter_map(|r| r.output.kernel_accuracy.map(|a| (width(r), a))),
            );
            let distance = by_x(
                nets.iter()
                    .filter_map(|r| r.output.distance_to_kernel.map(|g| (width(r), g))),
            );
            let (xs, ys): (Vec<f64>, Vec<f64>) = distance.iter().map(|(m, s)| (*m, s.mean)).unzip();
            let slope = log_log_fit(&xs, &ys).map_or(f64::NAN, |f| f.slope);
            slopes.insert(format!("{model}_distance_slope"), slope.into());
            fig = fig
                .with(
                    band_series(format!("{model} net, GD"), &accuracy)
                        .style(Style::LineMarkers)
                        .color(*colour),
                )
                .with(
                    band_series(format!("{limit} from the net's init, same k"), &same_init)
                        .style(Style::Dashed)
                        .color(*colour),
                );
            distance_fig = distance_fig.with(
                band_series(format!("{model} net (slope {slope:.2})"), &distance)
                    .style(Style::LineMarkers)
                    .color(*colour),
            );
            for (m, _) in &accuracy {
                let group: Vec<&&Finished<Point, Output>> =
                    nets.iter().filter(|r| width(r) == *m).collect();
                let of = |f: &dyn Fn(&Output) -> f64| {
                    Spread::of(&group.iter().map(|r| f(&r.output)).collect::<Vec<f64>>())
                };
                let acc = of(&|o| o.test_accuracy);
                table.push_labelled(
                    vec![(*model).into()],
                    vec![
                        *m,
                        group.len() as f64,
                        acc.mean,
                        acc.min,
                        acc.max,
                        of(&|o| o.test_loss).mean,
                        f64::NAN,
                        f64::NAN,
                        of(&|o| o.distance_to_kernel.unwrap_or(f64::NAN)).mean,
                        of(&|o| o.kernel_accuracy.unwrap_or(f64::NAN)).mean,
                        group[0].output.eta,
                        of(&|o| o.train_loss.unwrap_or(f64::NAN)).mean,
                    ],
                );
            }
        }
        fig.save(plots, "test_accuracy_vs_width")?;
        distance_fig.save(plots, "distance_to_kernel_vs_width")?;
        let mut meta = serde_json::Map::new();
        meta.insert("setup".into(), setup.into());
        meta.extend(slopes);
        table.write_summary(results.root(), "summary", serde_json::Value::Object(meta))?;
        for (labels, v) in &table.rows {
            eprintln!(
                "{:<18} m={:>5}: test accuracy {:.4} [{:.4}, {:.4}], regression {:.4}, distance to kernel {:.4}, kernel from same init {:.4}, train loss {:.3}",
                labels[0], v[0], v[2], v[3], v[4], v[6], v[8], v[9], v[11]
            );
        }
        Ok(())
    }
}

/// The x axis of both figures.
const WIDTH_AXIS: &str = "width m (fc: neurons per layer; conv: channels)";

/// The trained nets of one model and the limit they are compared with.
struct Family<'a> {
    model: &'static str,
    limit: &'static str,
    colour: usize,
    nets: Vec<&'a Finished<Point, Output>>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&KernelRegression { args }, &sweep)
}
