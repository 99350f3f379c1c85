//! C's deep ReLU classification (papers.md §3, §6.3): the L-layer ReLU net with He (fan-out)
//! init and frozen ±1 output, logistic loss `(1/n) Σ log(1 + e^{−y f(x)})`, GD against SGD over
//! widths, on C's synthetic separated data and on two Fashion-MNIST classes.
//!
//! Per run: the training loss and 0-1 error at the recorded steps, then the per-layer spectral
//! movement ‖W_l(K) − W_l(0)‖₂ (C Thm 5.3) and the fraction of changed ReLU patterns per layer.
//! The step is η = `--step-scale`/m for every width (C's η ∝ 1/m under its parameterization).
//!
//! `cargo run --release -p overparam-experiments --bin sgd_classification -- --quick`

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use faer::Mat;
use overparam_analysis::{pattern_changes, spectral_norm};
use overparam_data::{
    Dataset, FASHION_MNIST_DIR, Prepare, Split, TargetEncoding, read_mnist_layout, separated_binary,
};
use overparam_device::to_f64_vec;
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::c_deep_relu;
use overparam_experiments::stats::{Spread, band_series, by_x, curves};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_models::{LayerKind, Network};
use overparam_plot::{Figure, Legend, Scale, Style, log_log_fit};
use overparam_train::{Loss, Optimizer, Snapshot, TrainConfig, train_with_progress};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum Source {
    /// C Assumptions 3.4–3.5: unit-norm inputs with last coordinate μ, classes φ apart.
    Synthetic,
    /// Two Fashion-MNIST classes (IDX files under --fashion-dir), unit-norm inputs.
    FashionMnist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
enum Method {
    /// Full-batch GD (C Alg. 1).
    Gd,
    /// Mini-batch SGD (C Alg. 2).
    Sgd,
}

/// C: deep ReLU nets, logistic loss, GD vs SGD over widths.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    sweep: SweepArgs,
    /// Data sets.
    #[arg(long, value_delimiter = ',', default_value = "synthetic,fashion-mnist")]
    data: Vec<Source>,
    /// Optimizers.
    #[arg(long, value_delimiter = ',', default_value = "gd,sgd")]
    methods: Vec<Method>,
    /// L, hidden layers.
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// Widths m [default: 64,128,…,2048; quick 64,256,1024].
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// n, training points [default: 500; quick 100].
    #[arg(long)]
    n: Option<usize>,
    /// d of the synthetic data.
    #[arg(long, default_value_t = 20)]
    d: usize,
    /// μ, the synthetic data's last coordinate (C Assumption 3.4).
    #[arg(long, default_value_t = 0.5)]
    mu: f64,
    /// φ, the synthetic data's class separation (C Assumption 3.5).
    #[arg(long, default_value_t = 0.1)]
    phi: f64,
    /// The two Fashion-MNIST classes (+1, −1); default sandal vs sneaker.
    #[arg(long, value_delimiter = ',', default_value = "5,7")]
    classes: Vec<u32>,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    fashion_dir: PathBuf,
    /// Updates per run (GD steps or SGD mini-batches) [default: 1000; quick 200].
    #[arg(long)]
    steps: Option<usize>,
    /// SGD mini-batch size B.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// η = step-scale / m.
    #[arg(long, default_value_t = 1.0)]
    step_scale: f64,
    /// Record loss and error every this many updates.
    #[arg(long, default_value_t = 10)]
    record_every: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    source: Source,
    method: Method,
    depth: usize,
    width: usize,
    n: usize,
    d: usize,
    mu: f64,
    phi: f64,
    classes: Vec<u32>,
    fashion_dir: PathBuf,
    steps: usize,
    batch: usize,
    step_scale: f64,
    record_every: usize,
    seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// η used.
    eta: f64,
    /// φ achieved by the synthetic data (None for images).
    phi: Option<f64>,
    /// Recorded steps.
    steps: Vec<usize>,
    /// Training loss at the recorded steps.
    loss: Vec<f64>,
    /// Training 0-1 error at the recorded steps.
    error: Vec<f64>,
    /// ‖W_l(K) − W_l(0)‖₂ per hidden layer.
    spectral_movement: Vec<f64>,
    /// Changed-pattern fraction per hidden layer at the end.
    pattern_change: Vec<f64>,
}

struct Classification {
    args: Args,
}

fn load(p: &Point) -> Result<(Dataset, Option<f64>)> {
    match p.source {
        Source::Synthetic => {
            let s = separated_binary(p.n, p.d, p.mu, p.phi, p.seed)?;
            Ok((s.data, Some(s.phi)))
        }
        Source::FashionMnist => {
            let images = read_mnist_layout(&p.fashion_dir, Split::Train).with_context(|| {
                format!(
                    "reading Fashion-MNIST from {} (install it with `apt-get install \
                     dataset-fashion-mnist`, or pass --fashion-dir, or --data synthetic)",
                    p.fashion_dir.display()
                )
            })?;
            let data = images.prepare(&Prepare {
                classes: Some(p.classes.clone()),
                n: Some(p.n),
                seed: p.seed,
                encoding: TargetEncoding::Sign,
                ..Prepare::default()
            })?;
            Ok((data, None))
        }
    }
}

type Run = Finished<Point, Output>;

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Synthetic => "synthetic",
        Source::FashionMnist => "fashion-mnist",
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Gd => "GD",
        Method::Sgd => "SGD",
    }
}

impl Experiment for Classification {
    type Point = Point;
    type Output = Output;

    fn name(&self) -> &'static str {
        "sgd_classification"
    }

    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Point>> {
        let a = &self.args;
        let q = sweep.quick;
        anyhow::ensure!(
            a.classes.len() == 2,
            "--classes takes exactly two classes, got {:?}",
            a.classes
        );
        let widths = a.widths.clone().unwrap_or(if q {
            vec![64, 256, 1024]
        } else {
            vec![64, 128, 256, 512, 1024, 2048]
        });
        let mut grid = Vec::new();
        for seed in sweep.seeds() {
            for &source in &a.data {
                for &method in &a.methods {
                    for &width in &widths {
                        grid.push(Point {
                            source,
                            method,
                            depth: a.depth,
                            width,
                            n: a.n.unwrap_or(if q { 100 } else { 500 }),
                            d: a.d,
                            mu: a.mu,
                            phi: a.phi,
                            classes: a.classes.clone(),
                            fashion_dir: a.fashion_dir.clone(),
                            steps: a.steps.unwrap_or(if q { 200 } else { 1000 }),
                            batch: a.batch,
                            step_scale: a.step_scale,
                            record_every: a.record_every.max(1),
                            seed,
                        });
                    }
                }
            }
        }
        Ok(grid)
    }

    fn id(&self, p: &Point) -> String {
        format!(
            "{}_{}_L{}_m{}_seed{}",
            source_name(p.source),
            method_name(p.method).to_lowercase(),
            p.depth,
            p.width,
            p.seed
        )
    }

    fn run(&self, p: &Point, ctx: &RunContext) -> Result<RunOutput<Output>> {
        let compute = &ctx.compute;
        let (data, phi) = load(p)?;
        let config = c_deep_relu(data.input_dim(), p.depth, p.width, p.seed);
        let mut net = Network::init(&config, compute)?;
        let initial = net.clone();
        let eta = p.step_scale / p.width as f64;
        let mut cfg = TrainConfig::gd(eta, p.steps);
        cfg.loss = Loss::Logistic;
        cfg.observe_every = p.record_every;
        if p.method == Method::Sgd {
            cfg.optimizer = Optimizer::Sgd {
                batch_size: p.batch,
                shuffle_seed: p.seed,
            };
        }
        let (mut steps, mut loss, mut error) = (Vec::new(), Vec::new(), Vec::new());
        let mut observe = |s: &Snapshot<'_>| {
            let f = to_f64_vec(s.outputs.clone());
            let wrong = f
                .iter()
                .zip(s.data.targets())
                .filter(|(f, y)| **f * **y <= 0.0)
                .count();
            steps.push(s.step);
            loss.push(s.loss);
            error.push(wrong as f64 / f.len() as f64);
        };
        train_with_progress(
            &mut net,
            &data,
            compute,
            &cfg,
            &mut observe,
            ctx.bar.clone(),
        )?;

        let hidden: Vec<usize> = net
            .specs()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == LayerKind::Dense)
            .map(|(i, _)| i)
            .collect();
        let (now, then) = (net.values(), initial.values());
        let spectral_movement = hidden
            .iter()
            .map(|&i| {
                let shape = net.specs()[i].shape;
                let (a, b) = (to_f64_vec(now[i].clone()), to_f64_vec(then[i].clone()));
                spectral_norm(&Mat::<f64>::from_fn(shape[0], shape[1], |r, c| {
                    a[r * shape[1] + c] - b[r * shape[1] + c]
                }))
            })
            .collect();
        let x = compute.tensor(data.inputs(), [data.len(), data.input_dim()]);
        let changes = pattern_changes(&initial, &net, x);
        let pattern_change = hidden
            .iter()
            .map(|&i| changes[i].unwrap_or(f64::NAN))
            .collect();
        let mut table = Table::new(&["step", "loss", "error"]);
        for i in 0..steps.len() {
            table.push(vec![steps[i] as f64, loss[i], error[i]]);
        }
        Ok(RunOutput {
            output: Output {
                eta,
                phi,
                steps,
                loss,
                error,
                spectral_movement,
                pattern_change,
            },
            table: Some(table),
        })
    }

    fn report(&self, runs: &[Run], results: &ResultsDir, plots: &Path) -> Result<()> {
        let mut groups: Vec<(Source, Method)> = runs
            .iter()
            .map(|r| (r.point.source, r.point.method))
            .collect();
        groups.sort_by_key(|g| (source_name(g.0), method_name(g.1)));
        groups.dedup();
        let first = &runs[0].point;
        let setup = format!(
            "L={}, n={}, η={}/m, B={}",
            first.depth, first.n, first.step_scale, first.batch
        );
        let mut widths: Vec<usize> = runs.iter().map(|r| r.point.width).collect();
        widths.sort_unstable();
        widths.dedup();

        // Loss and 0-1 error against the step, per data set: GD solid, SGD dashed, colour = m.
        for source in [Source::Synthetic, Source::FashionMnist] {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.point.source == source).collect();
            if mine.is_empty() {
                continue;
            }
            for (stem, y_label, field) in [
                (
                    "loss",
                    "training loss (logistic)",
                    (|o: &Output| &o.loss) as fn(&Output) -> &Vec<f64>,
                ),
                ("error", "training 0-1 error", |o: &Output| &o.error),
            ] {
                let mut fig = Figure::new(
                    format!("C: {} on {} ({setup})", y_label, source_name(source)),
                    "update k",
                    y_label,
                )
                .scales(
                    Scale::Linear,
                    if stem == "loss" {
                        Scale::Log
                    } else {
                        Scale::Linear
                    },
                )
                .legend(Legend::UpperRight);
                for (i, &m) in widths.iter().enumerate() {
                    for method in [Method::Gd, Method::Sgd] {
                        let rs: Vec<&&Run> = mine
                            .iter()
                            .filter(|r| r.point.width == m && r.point.method == method)
                            .collect();
                        if rs.is_empty() {
                            continue;
                        }
                        let steps: Vec<f64> =
                            rs[0].output.steps.iter().map(|&k| k as f64).collect();
                        let c: Vec<Vec<f64>> =
                            rs.iter().map(|r| field(&r.output).clone()).collect();
                        let pts: Vec<(f64, Spread)> = steps.into_iter().zip(curves(&c)).collect();
                        let style = if method == Method::Gd {
                            Style::Line
                        } else {
                            Style::Dashed
                        };
                        fig = fig.with(
                            band_series(format!("m={m} {}", method_name(method)), &pts)
                                .style(style)
                                .color(i),
                        );
                    }
                }
                fig.save(plots, &format!("{stem}_{}", source_name(source)))?;
            }
        }

        // Movement and pattern changes against m, per (data, method), max over layers.
        let mut slopes = serde_json::Map::new();
        for (stem, title, y_label, value) in [
            (
                "spectral_movement_vs_width",
                "C: max_l ‖W_l(K) − W_l(0)‖₂ vs m",
                "spectral movement",
                (|o: &Output| o.spectral_movement.iter().copied().fold(0.0, f64::max))
                    as fn(&Output) -> f64,
            ),
            (
                "pattern_change_vs_width",
                "C: changed ReLU patterns (max over layers) vs m",
                "fraction of changed patterns",
                |o: &Output| o.pattern_change.iter().copied().fold(0.0, f64::max),
            ),
        ] {
            let mut fig = Figure::new(format!("{title} ({setup})"), "width m", y_label)
                .scales(Scale::Log, Scale::Log);
            for (i, g) in groups.iter().enumerate() {
                let samples: Vec<(f64, f64)> = runs
                    .iter()
                    .filter(|r| (r.point.source, r.point.method) == *g)
                    .map(|r| (r.point.width as f64, value(&r.output)))
                    .collect();
                let (xs, ys): (Vec<f64>, Vec<f64>) = samples.iter().copied().unzip();
                let fit = log_log_fit(&xs, &ys).map(|f| f.slope);
                let label = format!("{}, {}", source_name(g.0), method_name(g.1));
                slopes.insert(format!("{stem} {label}"), fit.into());
                let text = fit.map_or(label.clone(), |s| format!("{label} (slope {s:.2})"));
                fig = fig.with(
                    band_series(text, &by_x(samples))
                        .style(Style::LineMarkers)
                        .color(i),
                );
            }
            fig.save(plots, stem)?;
        }

        let mut table = Table::labelled(
            &["data", "method"],
            &[
                "width",
                "seeds",
                "final_loss",
                "final_error",
                "spectral_movement",
                "pattern_change",
            ],
        );
        for g in &groups {
            for &m in &widths {
                let rs: Vec<&Run> = runs
                    .iter()
                    .filter(|r| (r.point.source, r.point.method) == *g && r.point.width == m)
                    .collect();
                if rs.is_empty() {
                    continue;
                }
                let mean = |f: &dyn Fn(&Output) -> f64| {
                    Spread::of(&rs.iter().map(|r| f(&r.output)).collect::<Vec<_>>()).mean
                };
                table.push_labelled(
                    vec![source_name(g.0).into(), method_name(g.1).into()],
                    vec![
                        m as f64,
                        rs.len() as f64,
                        mean(&|o| *o.loss.last().unwrap()),
                        mean(&|o| *o.error.last().unwrap()),
                        mean(&|o| o.spectral_movement.iter().copied().fold(0.0, f64::max)),
                        mean(&|o| o.pattern_change.iter().copied().fold(0.0, f64::max)),
                    ],
                );
            }
        }
        table.write_summary(
            results.root(),
            "summary",
            serde_json::json!({ "setup": setup, "loglog_slopes_vs_width": slopes }),
        )?;
        for (labels, v) in &table.rows {
            eprintln!(
                "{} {} m={:>5}: loss {:.4}, 0-1 error {:.3}, ‖ΔW‖₂ {:.4}, patterns changed {:.4}",
                labels[0], labels[1], v[0], v[2], v[3], v[4], v[5]
            );
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&Classification { args }, &sweep)
}
