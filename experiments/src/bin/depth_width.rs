//! A's headline (papers.md §6.2 item 7): the width GD needs as depth grows, fc against resnet.
//!
//! For every (architecture, H, seed) and every width m of a grid, full-batch GD on all layers
//! with the step η = 1/λ_max(Θ) (Θ the infinite-width limit of G(0); the same η for every
//! width) runs for a step budget; a run succeeds when `L(θ(k)) ≤ ε · ½‖y‖²`. The budget is
//! `--budget-factor` times the steps the infinite-width kernel itself needs, `k_∞`, from
//! `u(k) = y − (I − ηΘ)^k y` (the limit's mean output u(0) = 0), capped by `--max-steps`:
//! it depends on (architecture, H, data) only. The report plots the smallest succeeding
//! width against H. A's statement is an upper bound (its footnote 7: fc need not truly
//! require exponential width), so this measures what GD does, not the bound. A second
//! criterion measures the regime the proof works in: the smallest width whose loss curve stays
//! within δ·L(0) of the kernel prediction `u(k) = y − (I − ηΘ)^k (y − u(0))` over the budget.
//!
//! `cargo run --release -p overparam-experiments --bin depth_width -- --quick`

use anyhow::Result;
use clap::Parser;
use overparam_device::to_f64_vec;
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::{DeepArch, DeepArgs, DeepRun, kernel_step_size};
use overparam_experiments::stats::{Spread, band_series, by_x};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_kernels::{ntk_limit, predict};
use overparam_models::Network;
use overparam_plot::{Figure, Legend, Scale, Style};
use overparam_train::{TrainConfig, TrainError, train_with_progress};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A: smallest width at which GD reaches a target loss, against depth. Grid: H ∈ {2,4,8,16,32},
/// m ∈ {8,16,…,1024}; with --quick H ∈ {2,4}, m ∈ {16,64,256}.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    sweep: SweepArgs,
    #[command(flatten)]
    deep: DeepArgs,
    /// n.
    #[arg(long, default_value_t = 20)]
    n: usize,
    /// ε: success is L(θ(k)) ≤ ε · ½‖y‖².
    #[arg(long, default_value_t = 0.1)]
    target: f64,
    /// δ: a run tracks the kernel when max_k |L(k) − L_Θ(k)| ≤ δ · L(0).
    #[arg(long, default_value_t = 0.1)]
    kernel_tolerance: f64,
    /// The step budget is this many times k_∞, the steps the infinite-width kernel needs.
    #[arg(long, default_value_t = 2.0)]
    budget_factor: f64,
    /// Upper limit of the step budget [default: 3000; quick 600].
    #[arg(long)]
    max_steps: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    #[serde(flatten)]
    run: DeepRun,
    target: f64,
    kernel_tolerance: f64,
    budget_factor: f64,
    max_steps: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// η = 1/λ_max(Θ).
    eta: f64,
    /// Steps the infinite-width kernel needs to reach the target (None: more than 10⁶).
    kernel_steps: Option<usize>,
    /// The step budget.
    budget: usize,
    /// First step with L ≤ ε·½‖y‖², if any.
    steps_to_target: Option<usize>,
    /// Whether the loss became NaN/∞.
    diverged: bool,
    /// L at the last finite step / (½‖y‖²).
    final_ratio: f64,
    /// max_k |L(k) − L_Θ(k)| / L(0) over the steps run, L_Θ the kernel prediction.
    kernel_deviation: f64,
}

struct DepthWidth {
    args: Args,
}

/// First k with ½‖(I − ηΘ)^k y‖² ≤ goal, searched by doubling then bisection.
fn kernel_steps(theta: &faer::Mat<f64>, eta: f64, y: &[f64], goal: f64) -> Option<usize> {
    let zeros = vec![0.0; y.len()];
    let loss_at = |k: usize| {
        *predict(theta, eta, y, &zeros, k)
            .loss
            .last()
            .expect("k+1 losses")
    };
    let (mut lo, mut hi) = (0usize, 1usize);
    while loss_at(hi) > goal {
        lo = hi;
        hi *= 2;
        if hi > 1_000_000 {
            return None;
        }
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if loss_at(mid) > goal {
            lo = mid
        } else {
            hi = mid
        }
    }
    Some(hi)
}

impl Experiment for DepthWidth {
    type Point = Point;
    type Output = Output;

    fn name(&self) -> &'static str {
        "depth_width"
    }

    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Point>> {
        let a = &self.args;
        let q = sweep.quick;
        let full: Vec<usize> = (3..=10).map(|p| 1usize << p).collect();
        let runs = if q {
            a.deep.runs(&sweep.seeds(), &[2, 4], &[16, 64, 256], a.n)
        } else {
            a.deep.runs(&sweep.seeds(), &[2, 4, 8, 16, 32], &full, a.n)
        };
        let grid = runs
            .into_iter()
            .map(|run| Point {
                run,
                target: a.target,
                kernel_tolerance: a.kernel_tolerance,
                budget_factor: a.budget_factor,
                max_steps: a.max_steps.unwrap_or(if q { 600 } else { 3000 }),
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
        let eta = kernel_step_size(&limit.total);
        let y = data.targets();
        let goal = p.target * 0.5 * y.iter().map(|v| v * v).sum::<f64>();
        let k_inf = kernel_steps(&limit.total, eta, y, goal);
        let budget = k_inf
            .map_or(p.max_steps, |k| {
                (p.budget_factor * k as f64).ceil() as usize
            })
            .min(p.max_steps);
        let mut net = Network::init(&config, compute)?;
        let u0 =
            to_f64_vec(net.forward(compute.tensor(data.inputs(), [p.run.n, data.input_dim()])));
        let kernel_loss = predict(&limit.total, eta, y, &u0, budget).loss;
        let cfg = TrainConfig::gd(eta, budget);
        let (losses, diverged) =
            match train_with_progress(&mut net, &data, compute, &cfg, &mut (), ctx.bar.clone()) {
                Ok(h) => (h.loss, false),
                Err(TrainError::Diverged { history, .. }) => (history.loss, true),
                Err(e) => return Err(e.into()),
            };
        let steps_to_target = losses.iter().position(|&l| l <= goal);
        let last_finite = losses
            .iter()
            .rev()
            .find(|l| l.is_finite())
            .copied()
            .unwrap_or(f64::NAN);
        let kernel_deviation = losses
            .iter()
            .zip(&kernel_loss)
            .map(|(l, k)| (l - k).abs())
            .fold(0.0, f64::max)
            / losses[0];
        let mut table = Table::new(&["step", "loss", "kernel_loss"]);
        for (k, l) in losses.iter().enumerate() {
            table.push(vec![k as f64, *l, kernel_loss[k]]);
        }
        Ok(RunOutput {
            output: Output {
                eta,
                kernel_steps: k_inf,
                budget,
                steps_to_target,
                diverged,
                final_ratio: last_finite / (goal / p.target),
                kernel_deviation: if diverged {
                    f64::INFINITY
                } else {
                    kernel_deviation
                },
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
            "{}, n={}, {}, ε={}",
            first.run.activation,
            first.run.n,
            first
                .run
                .data
                .describe(runs.iter().map(|r| r.point.run.arch)),
            first.target
        );
        // (arch, H, seed) → smallest width that reached the target.
        let mut keys: Vec<(DeepArch, usize, u64)> = runs
            .iter()
            .map(|r| (r.point.run.arch, r.point.run.depth, r.point.run.seed))
            .collect();
        keys.sort_by_key(|k| (k.0.name(), k.1, k.2));
        keys.dedup();
        let reached = |r: &Finished<Point, Output>| r.output.steps_to_target.is_some();
        let tracks =
            |r: &Finished<Point, Output>| r.output.kernel_deviation <= r.point.kernel_tolerance;
        // The smallest grid width from which on every larger width satisfies the criterion
        // (a lucky narrow run followed by failures does not count).
        let smallest = |k: (DeepArch, usize, u64),
                        ok: &dyn Fn(&Finished<Point, Output>) -> bool|
         -> Option<usize> {
            let mut group: Vec<&Finished<Point, Output>> = runs
                .iter()
                .filter(|r| (r.point.run.arch, r.point.run.depth, r.point.run.seed) == k)
                .collect();
            group.sort_by_key(|r| std::cmp::Reverse(r.point.run.width));
            let mut answer = None;
            for r in group {
                if !ok(r) {
                    break;
                }
                answer = Some(r.point.run.width);
            }
            answer
        };
        let needed = |k| smallest(k, &reached);
        let kernel_regime = |k| smallest(k, &tracks);
        let mut fig = Figure::new(
            format!("A: width GD needs vs depth ({setup})"),
            "depth H",
            "smallest width m reaching ε",
        )
        .scales(Scale::Log, Scale::Log)
        .legend(Legend::UpperLeft);
        let mut table = Table::labelled(
            &["arch"],
            &[
                "depth",
                "seeds",
                "width_needed_mean",
                "width_needed_min",
                "width_needed_max",
                "seeds_unreached",
                "kernel_regime_width_mean",
                "seeds_never_tracking",
                "eta",
                "kernel_steps",
                "budget",
            ],
        );
        for (i, arch) in DeepArch::ALL.into_iter().enumerate() {
            let mine: Vec<_> = keys.iter().copied().filter(|k| k.0 == arch).collect();
            if mine.is_empty() {
                continue;
            }
            let points = by_x(
                mine.iter()
                    .filter_map(|&k| needed(k).map(|m| (k.1 as f64, m as f64))),
            );
            fig = fig.with(
                band_series(format!("{}: reaches ε", arch.name()), &points)
                    .style(Style::LineMarkers)
                    .color(i),
            );
            let regime = by_x(
                mine.iter()
                    .filter_map(|&k| kernel_regime(k).map(|m| (k.1 as f64, m as f64))),
            );
            fig = fig.with(
                band_series(
                    format!("{}: tracks the kernel within δ", arch.name()),
                    &regime,
                )
                .style(Style::Dashed)
                .color(i),
            );
            let mut depths: Vec<usize> = mine.iter().map(|k| k.1).collect();
            depths.dedup();
            for h in depths {
                let seeds: Vec<_> = mine.iter().copied().filter(|k| k.1 == h).collect();
                let widths: Vec<f64> = seeds
                    .iter()
                    .filter_map(|&k| needed(k).map(|m| m as f64))
                    .collect();
                let s = Spread::of(&widths);
                let regime: Vec<f64> = seeds
                    .iter()
                    .filter_map(|&k| kernel_regime(k).map(|m| m as f64))
                    .collect();
                let any = runs
                    .iter()
                    .find(|r| r.point.run.arch == arch && r.point.run.depth == h)
                    .expect("a run of this group");
                table.push_labelled(
                    vec![arch.name().into()],
                    vec![
                        h as f64,
                        seeds.len() as f64,
                        s.mean,
                        s.min,
                        s.max,
                        (seeds.len() - widths.len()) as f64,
                        Spread::of(&regime).mean,
                        (seeds.len() - regime.len()) as f64,
                        any.output.eta,
                        any.output.kernel_steps.map_or(f64::NAN, |k| k as f64),
                        any.output.budget as f64,
                    ],
                );
            }
        }
        fig.save(plots, "width_needed_vs_depth")?;
        table.write_summary(
            results.root(),
            "summary",
            serde_json::json!({ "setup": setup }),
        )?;
        for (labels, v) in &table.rows {
            eprintln!(
                "{} H={:>2}: width reaching ε {} (unreached in {} of {} seeds), tracking the kernel {} (η={:.4}, k_∞={}, budget {})",
                labels[0],
                v[0],
                width_text(v[2]),
                v[5],
                v[1],
                width_text(v[6]),
                v[8],
                v[9],
                v[10]
            );
        }
        Ok(())
    }
}

fn width_text(m: f64) -> String {
    if m.is_nan() {
        "none in grid".into()
    } else {
        format!("{m:.0}")
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&DepthWidth { args }, &sweep)
}
