//! A's deep Gram matrices (papers.md §6.2): fc against resnet over depths H and widths m.
//!
//! Per run (one architecture, H, m, seed): ‖G^(H)(0) − K^(H)‖₂ and ‖G(0) − Θ‖₂ against the
//! infinite-width limits of the kernels crate, λ0 = λ_min(K^(H)), then full-batch GD on all
//! layers (A trains every layer) with λ_min(G^(H)(k)), ‖W^(h)(k) − W^(h)(0)‖_F/√m and the loss
//! against A's bound (1 − ηλ0/2)^k L(0). The step is η = 1/λ_max(Θ) for every width of one
//! (architecture, H), or `--step-size`.
//!
//! `cargo run --release -p overparam-experiments --bin deep_gram -- --quick`

use anyhow::Result;
use clap::Parser;
use faer::Mat;
use overparam_analysis::{
    DynamicsRecorder, GramStrategy, grams, operator_norm, spectrum::lambda_min,
};
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::{DeepArch, DeepArgs, DeepRun, kernel_step_size};
use overparam_experiments::stats::{Spread, band_series, by_x, curves};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_kernels::ntk_limit;
use overparam_models::Network;
use overparam_plot::{Figure, Legend, Scale, Series, Style, log_log_fit};
use overparam_train::{TrainConfig, train_with_progress};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A: fc vs resnet Gram matrices against their infinite-width limits. Grid: H ∈ {2,4,8,16},
/// m ∈ {64,…,2048}; with --quick H ∈ {2,4}, m ∈ {64,256,1024}.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    sweep: SweepArgs,
    #[command(flatten)]
    deep: DeepArgs,
    /// n [default: 50; quick 20].
    #[arg(long)]
    n: Option<usize>,
    /// GD steps [default: 100; quick 40].
    #[arg(long)]
    steps: Option<usize>,
    /// η for every run [default: 1/λ_max(Θ) per architecture and depth].
    #[arg(long)]
    step_size: Option<f64>,
    /// Record the Gram statistics every this many steps.
    #[arg(long, default_value_t = 5)]
    record_every: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    #[serde(flatten)]
    run: DeepRun,
    steps: usize,
    step_size: Option<f64>,
    record_every: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// λ0 = λ_min(K^(H)).
    lambda0: f64,
    /// λ_min(Θ), Θ the limit of the whole G(0).
    lambda_min_theta: f64,
    /// ‖G^(H)(0) − K^(H)‖₂.
    gh_error: f64,
    /// ‖G^(H)(0) − K^(H)‖₂ / ‖K^(H)‖₂.
    gh_rel_error: f64,
    /// ‖G(0) − Θ‖₂ / ‖Θ‖₂.
    g_rel_error: f64,
    /// The η used.
    eta: f64,
    /// Recorded steps.
    steps: Vec<usize>,
    /// L(θ(k)) = ½‖y − u(k)‖².
    loss: Vec<f64>,
    /// (1 − ηλ0/2)^k L(0) (A Thm 5.1 / 6.1).
    bound: Vec<f64>,
    /// λ_min(G^(H)(k)).
    lambda_min_gh: Vec<f64>,
    /// ‖G(k) − G(0)‖₂ / ‖G(0)‖₂.
    gram_drift: Vec<f64>,
    /// ‖W^(h)(k) − W^(h)(0)‖_F / √m per hidden layer at the last step.
    distance_per_sqrt_m: Vec<f64>,
    /// ‖a(k) − a(0)‖₂ at the last step.
    output_layer_distance: f64,
}

struct DeepGram {
    args: Args,
}

fn rel(a: &Mat<f64>, b: &Mat<f64>) -> (f64, f64) {
    let diff: Mat<f64> = a - b;
    let e = operator_norm(&diff);
    (e, e / operator_norm(b))
}

type Run = Finished<Point, Output>;

fn label(p: &Point) -> String {
    format!("{} H={}", p.run.arch.name(), p.run.depth)
}

impl Experiment for DeepGram {
    type Point = Point;
    type Output = Output;

    fn name(&self) -> &'static str {
        "deep_gram"
    }

    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Point>> {
        let a = &self.args;
        let q = sweep.quick;
        let n = a.n.unwrap_or(if q { 20 } else { 50 });
        let runs = if q {
            a.deep.runs(&sweep.seeds(), &[2, 4], &[64, 256, 1024], n)
        } else {
            a.deep.runs(
                &sweep.seeds(),
                &[2, 4, 8, 16],
                &[64, 128, 256, 512, 1024, 2048],
                n,
            )
        };
        let grid = runs
            .into_iter()
            .map(|run| Point {
                run,
                steps: a.steps.unwrap_or(if q { 40 } else { 100 }),
                step_size: a.step_size,
                record_every: a.record_every.max(1),
            })
            .collect();
        Ok(grid)
    }

    fn id(&self, p: &Point) -> String {
        p.run.id()
    }

    fn run(&self, p: &Point, ctx: &RunContext) -> Result<RunOutput<Output>> {
        let compute = &ctx.compute;
        let (data, config) = p.run.setup()?;
        let limit = ntk_limit(&config, data.inputs())?;
        let mut net = Network::init(&config, compute)?;
        let g0 = grams(&net, data.inputs(), compute, GramStrategy::Structured)?;
        let (gh_error, gh_rel_error) = rel(g0.last_hidden(), limit.k_h());
        let (_, g_rel_error) = rel(&g0.total, &limit.total);
        let lambda0 = lambda_min(limit.k_h());
        let eta = p
            .step_size
            .unwrap_or_else(|| kernel_step_size(&limit.total));

        let mut recorder = DynamicsRecorder::new(
            &net,
            compute,
            GramStrategy::Structured,
            Some((lambda0, eta)),
        )?;
        let mut cfg = TrainConfig::gd(eta, p.steps);
        cfg.observe_every = p.record_every;
        train_with_progress(
            &mut net,
            &data,
            compute,
            &cfg,
            &mut recorder,
            ctx.bar.clone(),
        )?;

        let records = &recorder.records;
        let last = records.last().expect("the last step is always recorded");
        let hidden = p.run.depth;
        let out = Output {
            lambda0,
            lambda_min_theta: lambda_min(&limit.total),
            gh_error,
            gh_rel_error,
            g_rel_error,
            eta,
            steps: records.iter().map(|r| r.step).collect(),
            loss: records.iter().map(|r| r.loss).collect(),
            bound: records
                .iter()
                .map(|r| r.bound.unwrap_or(f64::NAN))
                .collect(),
            lambda_min_gh: records
                .iter()
                .map(|r| r.lambda_min_layers[hidden - 1])
                .collect(),
            gram_drift: records.iter().map(|r| r.gram_drift).collect(),
            distance_per_sqrt_m: last.distance_per_sqrt_m[..hidden].to_vec(),
            output_layer_distance: last.distance[hidden],
        };
        let mut table = Table::new(&["step", "loss", "bound", "lambda_min_gh", "gram_drift"]);
        for (i, r) in records.iter().enumerate() {
            table.push(vec![
                r.step as f64,
                r.loss,
                out.bound[i],
                out.lambda_min_gh[i],
                r.gram_drift,
            ]);
        }
        Ok(RunOutput {
            output: out,
            table: Some(table),
        })
    }

    fn report(&self, runs: &[Run], results: &ResultsDir, plots: &Path) -> Result<()> {
        let first = &runs[0].point;
        let setup = format!(
            "{}, n={}, {}",
            first.run.activation,
            first.run.n,
            first
                .run
                .data
                .describe(runs.iter().map(|r| r.point.run.arch))
        );
        let mut groups: Vec<(DeepArch, usize)> = runs
            .iter()
            .map(|r| (r.point.run.arch, r.point.run.depth))
            .collect();
        groups.sort_by_key(|g| (g.0.name(), g.1));
        groups.dedup();
        let in_group = |g: (DeepArch, usize)| {
            runs.iter()
                .filter(move |r| (r.point.run.arch, r.point.run.depth) == g)
        };
        let max_width = runs.iter().map(|r| r.point.run.width).max().unwrap_or(0);

        // Scaling with m: Gram error and weight movement, one series per (arch, H), with slopes.
        let mut slopes = serde_json::Map::new();
        let scaling =
            |title: &str,
             y_label: &str,
             value: fn(&Run) -> f64,
             key: &str,
             slopes: &mut serde_json::Map<String, serde_json::Value>| {
                let mut fig = Figure::new(format!("{title} ({setup})"), "width m", y_label)
                    .scales(Scale::Log, Scale::Log)
                    .legend(Legend::LowerLeft);
                for (i, &g) in groups.iter().enumerate() {
                    let samples: Vec<(f64, f64)> = in_group(g)
                        .map(|r| (r.point.run.width as f64, value(r)))
                        .collect();
                    let (xs, ys): (Vec<f64>, Vec<f64>) = samples.iter().copied().unzip();
                    let slope = log_log_fit(&xs, &ys).map(|f| f.slope);
                    let name = format!("{} H={}", g.0.name(), g.1);
                    slopes.insert(format!("{key} {name}"), slope.into());
                    let text = slope.map_or(name.clone(), |s| format!("{name} (slope {s:.2})"));
                    fig = fig.with(
                        band_series(text, &by_x(samples))
                            .style(Style::LineMarkers)
                            .color(i),
                    );
                }
                fig
            };
        scaling(
            "A: ‖G^(H)(0) − K^(H)‖₂ / ‖K^(H)‖₂ vs m",
            "relative operator-norm error",
            |r| r.output.gh_rel_error,
            "gh_rel_error",
            &mut slopes,
        )
        .save(plots, "gram_error_vs_width")?;
        scaling(
            "A: max_h ‖W^(h)(K) − W^(h)(0)‖_F / √m after GD",
            "per-neuron movement",
            |r| {
                r.output
                    .distance_per_sqrt_m
                    .iter()
                    .copied()
                    .fold(0.0, f64::max)
            },
            "movement",
            &mut slopes,
        )
        .save(plots, "movement_vs_width")?;

        // λ_min(K^(H)) against H.
        let mut lam = Figure::new(
            format!("A: λ0 = λ_min(K^(H)) vs depth ({setup})"),
            "depth H",
            "λ_min(K^(H))",
        )
        .scales(Scale::Log, Scale::Log);
        for (i, arch) in DeepArch::ALL.into_iter().enumerate() {
            let pts = by_x(
                runs.iter()
                    .filter(|r| r.point.run.arch == arch)
                    .map(|r| (r.point.run.depth as f64, r.output.lambda0)),
            );
            if !pts.is_empty() {
                lam = lam.with(
                    band_series(arch.name(), &pts)
                        .style(Style::LineMarkers)
                        .color(i),
                );
            }
        }
        lam.save(plots, "lambda0_vs_depth")?;

        // During GD at the largest width: λ_min(G^(H)(k))/λ0 against 1/2, and the loss against the bound.
        let mut cond = Figure::new(
            format!("A: λ_min(G^(H)(k)) / λ0 during GD, m={max_width} ({setup})"),
            "GD step k",
            "λ_min(G^(H)(k)) / λ0",
        )
        .scales(Scale::Linear, Scale::Log)
        .hline("1/2 (A Lemma 5.4 / 6.4)", 0.5);
        let mut loss = Figure::new(
            format!("A: loss vs (1 − ηλ0/2)^k L(0), m={max_width} ({setup})"),
            "GD step k",
            "L(θ(k))",
        )
        .scales(Scale::Linear, Scale::Log)
        .legend(Legend::LowerLeft);
        for (i, &g) in groups.iter().enumerate() {
            let widest: Vec<&Run> = in_group(g)
                .filter(|r| r.point.run.width == max_width)
                .collect();
            if widest.is_empty() {
                continue;
            }
            let steps: Vec<f64> = widest[0].output.steps.iter().map(|&k| k as f64).collect();
            let ratio: Vec<Vec<f64>> = widest
                .iter()
                .map(|r| {
                    r.output
                        .lambda_min_gh
                        .iter()
                        .map(|l| l / r.output.lambda0)
                        .collect()
                })
                .collect();
            let pts: Vec<(f64, Spread)> = steps.iter().copied().zip(curves(&ratio)).collect();
            cond = cond.with(band_series(label(&widest[0].point), &pts).color(i));
            let l: Vec<Vec<f64>> = widest.iter().map(|r| r.output.loss.clone()).collect();
            let pts: Vec<(f64, Spread)> = steps.iter().copied().zip(curves(&l)).collect();
            loss = loss.with(band_series(label(&widest[0].point), &pts).color(i));
            let b: Vec<Vec<f64>> = widest.iter().map(|r| r.output.bound.clone()).collect();
            let mean = steps
                .iter()
                .copied()
                .zip(curves(&b).iter().map(|s| s.mean))
                .collect();
            loss = loss.with(
                Series::line(if i == 0 { "bound (dashed)" } else { "" }, mean)
                    .style(Style::Dashed)
                    .color(i),
            );
        }
        cond.save(plots, "lambda_min_during_gd")?;
        loss.save(plots, "loss_vs_bound")?;

        let mut table = Table::labelled(
            &["arch"],
            &[
                "depth",
                "width",
                "seeds",
                "lambda0",
                "gh_rel_error",
                "g_rel_error",
                "eta",
                "loss_ratio_last",
                "min_lambda_ratio",
                "movement",
            ],
        );
        for &g in &groups {
            let mut widths: Vec<usize> = in_group(g).map(|r| r.point.run.width).collect();
            widths.sort_unstable();
            widths.dedup();
            for m in widths {
                let rs: Vec<&Run> = in_group(g).filter(|r| r.point.run.width == m).collect();
                let mean = |f: &dyn Fn(&Output) -> f64| {
                    Spread::of(&rs.iter().map(|r| f(&r.output)).collect::<Vec<_>>()).mean
                };
                table.push_labelled(
                    vec![g.0.name().to_string()],
                    vec![
                        g.1 as f64,
                        m as f64,
                        rs.len() as f64,
                        mean(&|o| o.lambda0),
                        mean(&|o| o.gh_rel_error),
                        mean(&|o| o.g_rel_error),
                        mean(&|o| o.eta),
                        mean(&|o| o.loss.last().unwrap() / o.loss[0]),
                        mean(&|o| {
                            o.lambda_min_gh
                                .iter()
                                .copied()
                                .fold(f64::INFINITY, f64::min)
                                / o.lambda0
                        }),
                        mean(&|o| o.distance_per_sqrt_m.iter().copied().fold(0.0, f64::max)),
                    ],
                );
            }
        }
        table.write_summary(
            results.root(),
            "summary",
            serde_json::json!({
                "setup": setup, "loglog_slopes_vs_width": slopes,
            }),
        )?;
        for (k, v) in &slopes {
            eprintln!("log-log slope vs m, {k}: {v}");
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&DeepGram { args }, &sweep)
}
