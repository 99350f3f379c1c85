//! B's Figure 1 and Lemmas 3.1–3.3 (papers.md §2.5, §6.1): the two-layer ReLU net on n points
//! of the unit sphere in R^d with y ~ N(0, 1), widths m, full-batch GD on ½‖y − u‖² with the
//! first layer trained and a = ±1 frozen.
//!
//! Per run: ln((1/n)‖y − u(k)‖²) (Fig. 1a) with the kernel predictions from H^∞ and from H(0),
//! the pattern-change fraction (Fig. 1b), max_r ‖w_r(k) − w_r(0)‖ (Fig. 1c), λ_min(H(k)) against
//! λ0 = λ_min(H^∞), and ‖H(0) − H^∞‖₂. The report adds ‖H(0) − H^∞‖₂ against m with its
//! fitted log-log slope (Lemma 3.1 predicts −1/2).
//!
//! `cargo run --release -p overparam-experiments --bin two_layer -- --quick`

use anyhow::Result;
use clap::Parser;
use faer::Mat;
use overparam_analysis::{
    DynamicsRecorder, GramStrategy, grams,
    spectrum::{lambda_min, operator_norm},
};
use overparam_device::to_f64_vec;
use overparam_experiments::runner::{
    Experiment, Finished, RunContext, RunOutput, SweepArgs, run_sweep,
};
use overparam_experiments::setups::b_figure1;
use overparam_experiments::stats::{Spread, band_series, by_x, curves};
use overparam_experiments::store::{ResultsDir, Table};
use overparam_kernels::{h_infinity, predict};
use overparam_models::Network;
use overparam_plot::{Figure, Legend, Scale, Series, Style, log_log_fit};
use overparam_train::{TrainConfig, train_with_progress};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// B Fig. 1: two-layer ReLU net, GD, widths m.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    sweep: SweepArgs,
    /// n, number of points [default: 1000, quick 300].
    #[arg(long)]
    n: Option<usize>,
    /// d, input dimension [default: 1000, quick 300].
    #[arg(long)]
    d: Option<usize>,
    /// Widths m [default: 500,1000,2000,4000,8000; quick 250,500,1000,2000,4000].
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// GD steps (B: 100 epochs of full-batch GD).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// η, the fixed step size (B does not state its value; this default is ours).
    #[arg(long, default_value_t = 0.1)]
    step_size: f64,
    /// Record the Gram and weight statistics every this many steps.
    #[arg(long)]
    record_every: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    n: usize,
    d: usize,
    width: usize,
    steps: usize,
    step_size: f64,
    record_every: usize,
    seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Output {
    /// λ0 = λ_min(H^∞).
    lambda0: f64,
    /// ‖H(0) − H^∞‖₂.
    h0_error: f64,
    /// ‖H(0) − H^∞‖₂ / ‖H^∞‖₂.
    h0_rel_error: f64,
    /// Recorded steps.
    steps: Vec<usize>,
    /// ln((1/n)‖y − u(k)‖²) at the recorded steps.
    ln_mse: Vec<f64>,
    /// The same from the kernel prediction with H^∞.
    ln_mse_hinf: Vec<f64>,
    /// The same from the kernel prediction with H(0).
    ln_mse_h0: Vec<f64>,
    /// ln((1 − ηλ0/2)^k (1/n)‖y − u(0)‖²), B Thm 4.1.
    ln_bound: Vec<f64>,
    /// Fraction of changed patterns 1{w_rᵀx_i ≥ 0} (Fig. 1b).
    pattern_change: Vec<f64>,
    /// max_r ‖w_r(k) − w_r(0)‖ (Fig. 1c).
    max_distance: Vec<f64>,
    /// λ_min(H(k)).
    lambda_min_h: Vec<f64>,
    /// ‖H(k) − H(0)‖₂ / ‖H(0)‖₂ for the trained layer's Gram.
    gram_drift: Vec<f64>,
}

struct TwoLayer {
    args: Args,
}

fn ln_mse(y: &[f64], u: &[f64]) -> f64 {
    let n = y.len() as f64;
    (y.iter().zip(u).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n).ln()
}

impl Experiment for TwoLayer {
    type Point = Point;
    type Output = Output;

    fn name(&self) -> &'static str {
        "two_layer"
    }

    fn default_dtype(&self) -> &'static str {
        "f32"
    }

    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Point>> {
        let a = &self.args;
        let quick = sweep.quick;
        let size = if quick { 300 } else { 1000 };
        let widths = a.widths.clone().unwrap_or(if quick {
            vec![250, 500, 1000, 2000, 4000]
        } else {
            vec![500, 1000, 2000, 4000, 8000]
        });
        let record_every = a.record_every.unwrap_or(if quick { 5 } else { 2 }).max(1);
        Ok(sweep
            .seeds()
            .into_iter()
            .flat_map(|seed| {
                widths.iter().map(move |&width| Point {
                    n: a.n.unwrap_or(size),
                    d: a.d.unwrap_or(size),
                    width,
                    steps: a.steps,
                    step_size: a.step_size,
                    record_every,
                    seed,
                })
            })
            .collect())
    }

    fn id(&self, p: &Point) -> String {
        format!("n{}_d{}_m{}_seed{}", p.n, p.d, p.width, p.seed)
    }

    fn run(&self, p: &Point, ctx: &RunContext) -> Result<RunOutput<Output>> {
        let compute = &ctx.compute;
        let (data, config) = b_figure1(p.n, p.d, p.width, p.seed)?;
        let mut net = Network::init(&config, compute)?;
        let x = compute.tensor(data.inputs(), [p.n, p.d]);
        let u0 = to_f64_vec(net.forward(x));
        let y = data.targets();

        let h_inf = h_infinity(data.inputs(), p.d);
        let lambda0 = lambda_min(&h_inf);
        let h0 = grams(&net, data.inputs(), compute, GramStrategy::Structured)?
            .first_layer()
            .clone();
        let diff: Mat<f64> = &h0 - &h_inf;
        let h0_error = operator_norm(&diff);
        let h0_rel_error = h0_error / operator_norm(&h_inf);
        let kernel_curve = |theta: &Mat<f64>| -> Vec<f64> {
            let pred = predict(theta, p.step_size, y, &u0, p.steps);
            pred.outputs.iter().map(|u| ln_mse(y, u)).collect()
        };
        let (hinf_curve, h0_curve) = (kernel_curve(&h_inf), kernel_curve(&h0));

        let mut recorder = DynamicsRecorder::new(
            &net,
            compute,
            GramStrategy::Structured,
            Some((lambda0, p.step_size)),
        )?;
        let mut cfg = TrainConfig::gd(p.step_size, p.steps);
        cfg.observe_every = p.record_every;
        train_with_progress(
            &mut net,
            &data,
            compute,
            &cfg,
            &mut recorder,
            ctx.bar.clone(),
        )?;

        let w = net.layer_index("W")?;
        let records = &recorder.records;
        let ln_mse0 = ln_mse(y, &u0);
        let steps: Vec<usize> = records.iter().map(|r| r.step).collect();
        let out = Output {
            lambda0,
            h0_error,
            h0_rel_error,
            ln_mse: records.iter().map(|r| r.ln_mse).collect(),
            ln_mse_hinf: steps.iter().map(|&k| hinf_curve[k]).collect(),
            ln_mse_h0: steps.iter().map(|&k| h0_curve[k]).collect(),
            ln_bound: steps
                .iter()
                .map(|&k| ln_mse0 + k as f64 * (1.0 - p.step_size * lambda0 / 2.0).ln())
                .collect(),
            pattern_change: records
                .iter()
                .map(|r| r.pattern_change[w].unwrap_or(f64::NAN))
                .collect(),
            max_distance: records.iter().map(|r| r.max_neuron_distance[w]).collect(),
            lambda_min_h: records.iter().map(|r| r.lambda_min_layers[w]).collect(),
            gram_drift: records.iter().map(|r| r.gram_drift).collect(),
            steps,
        };
        let mut table = Table::new(&[
            "step",
            "ln_mse",
            "ln_mse_kernel_hinf",
            "ln_mse_kernel_h0",
            "ln_bound",
            "pattern_change",
            "max_distance",
            "lambda_min_h",
            "gram_drift",
        ]);
        for i in 0..out.steps.len() {
            table.push(vec![
                out.steps[i] as f64,
                out.ln_mse[i],
                out.ln_mse_hinf[i],
                out.ln_mse_h0[i],
                out.ln_bound[i],
                out.pattern_change[i],
                out.max_distance[i],
                out.lambda_min_h[i],
                out.gram_drift[i],
            ]);
        }
        Ok(RunOutput {
            output: out,
            table: Some(table),
        })
    }

    fn report(
        &self,
        runs: &[Finished<Point, Output>],
        results: &ResultsDir,
        plots: &Path,
    ) -> Result<()> {
        let mut widths: Vec<usize> = runs.iter().map(|r| r.point.width).collect();
        widths.sort_unstable();
        widths.dedup();
        let first = &runs[0];
        let setup = format!(
            "n={}, d={}, η={}, {} seed(s)",
            first.point.n,
            first.point.d,
            first.point.step_size,
            runs.len() / widths.len()
        );
        // Mean and band over seeds of one per-step quantity, per width.
        let per_width = |field: fn(&Output) -> &Vec<f64>| -> Vec<(usize, Vec<f64>, Vec<_>)> {
            widths
                .iter()
                .map(|&m| {
                    let mine: Vec<&Finished<Point, Output>> =
                        runs.iter().filter(|r| r.point.width == m).collect();
                    let steps: Vec<f64> = mine[0].output.steps.iter().map(|&k| k as f64).collect();
                    let c: Vec<Vec<f64>> = mine.iter().map(|r| field(&r.output).clone()).collect();
                    (m, steps, curves(&c))
                })
                .collect()
        };
        let curve_figure = |title: &str, y_label: &str, field: fn(&Output) -> &Vec<f64>| {
            let mut fig = Figure::new(format!("{title} ({setup})"), "GD step k", y_label);
            for (i, (m, steps, spread)) in per_width(field).into_iter().enumerate() {
                let pts: Vec<(f64, _)> = steps.into_iter().zip(spread).collect();
                fig = fig.with(band_series(format!("m = {m}"), &pts).color(i));
            }
            fig
        };

        // (a) with the kernel prediction from H^∞ (dashed, same colour) and B's bound.
        let mut a = curve_figure(
            "B Fig. 1a: training error",
            "ln((1/n)‖y − u(k)‖²)",
            |o| &o.ln_mse,
        )
        .legend(Legend::LowerLeft);
        for (i, (_, steps, spread)) in per_width(|o| &o.ln_mse_hinf).into_iter().enumerate() {
            let pts = steps
                .iter()
                .zip(&spread)
                .map(|(k, s)| (*k, s.mean))
                .collect();
            let label = if i == 0 {
                "kernel prediction, H^∞"
            } else {
                ""
            };
            a = a.with(Series::line(label, pts).style(Style::Dashed).color(i));
        }
        let (_, steps, bound) = per_width(|o| &o.ln_bound).remove(0);
        a = a.with(
            Series::line(
                "bound (1 − ηλ0/2)^k, B Thm 4.1",
                steps
                    .iter()
                    .zip(&bound)
                    .map(|(k, s)| (*k, s.mean))
                    .collect(),
            )
            .style(Style::Dashed)
            .color(7),
        );
        a.save(plots, "fig1a_training_error")?;
        curve_figure(
            "B Fig. 1b: activation pattern changes",
            "fraction of changed patterns",
            |o| &o.pattern_change,
        )
        .legend(Legend::UpperLeft)
        .save(plots, "fig1b_pattern_changes")?;
        curve_figure(
            "B Fig. 1c: distance from init",
            "max_r ‖w_r(k) − w_r(0)‖₂",
            |o| &o.max_distance,
        )
        .legend(Legend::UpperLeft)
        .save(plots, "fig1c_max_distance")?;
        let lambda0 = first.output.lambda0;
        curve_figure("λ_min(H(k)) during GD", "λ_min(H(k))", |o| {
            &o.lambda_min_h
        })
        .hline(format!("λ0 = {lambda0:.4}"), lambda0)
        .hline("λ0 / 2", lambda0 / 2.0)
        .legend(Legend::LowerRight)
        .save(plots, "lambda_min_h")?;

        // ‖H(0) − H^∞‖₂ against m, log-log, with the fitted slope.
        let samples: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.point.width as f64, r.output.h0_error))
            .collect();
        let grouped = by_x(samples.iter().copied());
        let (xs, ys): (Vec<f64>, Vec<f64>) = samples.iter().copied().unzip();
        let fit = log_log_fit(&xs, &ys);
        let mut conc = Figure::new(
            format!("Lemma 3.1: ‖H(0) − H^∞‖₂ vs m ({setup})"),
            "width m",
            "‖H(0) − H^∞‖₂",
        )
        .scales(Scale::Log, Scale::Log)
        .with(
            band_series("measured (mean, min–max over seeds)", &grouped).style(Style::LineMarkers),
        );
        if let Some(f) = fit {
            let line = grouped
                .iter()
                .map(|(m, _)| (*m, (f.intercept + f.slope * m.ln()).exp()))
                .collect();
            conc = conc.with(
                Series::line(format!("fit: slope {:.3}", f.slope), line).style(Style::Dashed),
            );
        }
        conc.save(plots, "h0_concentration")?;

        // Summary: the last recorded step per width, mean/min/max over seeds.
        let mut table = Table::new(&[
            "m",
            "seeds",
            "ln_mse_last",
            "ln_mse_last_min",
            "ln_mse_last_max",
            "ln_mse_kernel_hinf_last",
            "pattern_change_last",
            "max_distance_last",
            "lambda_min_h_last",
            "lambda0",
            "h0_error",
        ]);
        let mut rows = Vec::new();
        for &m in &widths {
            let mine: Vec<&Output> = runs
                .iter()
                .filter(|r| r.point.width == m)
                .map(|r| &r.output)
                .collect();
            let last = |f: fn(&Output) -> &Vec<f64>| {
                Spread::of(
                    &mine
                        .iter()
                        .map(|o| *f(o).last().unwrap_or(&f64::NAN))
                        .collect::<Vec<_>>(),
                )
            };
            let mse = last(|o| &o.ln_mse);
            let row = vec![
                m as f64,
                mine.len() as f64,
                mse.mean,
                mse.min,
                mse.max,
                last(|o| &o.ln_mse_hinf).mean,
                last(|o| &o.pattern_change).mean,
                last(|o| &o.max_distance).mean,
                last(|o| &o.lambda_min_h).mean,
                Spread::of(&mine.iter().map(|o| o.lambda0).collect::<Vec<_>>()).mean,
                Spread::of(&mine.iter().map(|o| o.h0_error).collect::<Vec<_>>()).mean,
            ];
            rows.push(row.clone());
            table.push(row);
        }
        table.write_summary(
            results.root(),
            "summary",
            serde_json::json!({ "setup": setup, "h0_error_loglog_slope": fit.map(|f| f.slope) }),
        )?;
        for row in &rows {
            eprintln!(
                "m={:>5}: ln MSE(last) {:>7.3} (H^∞ prediction {:>7.3}), pattern change {:.4}, max distance {:.3}, λ_min(H) {:.4} (λ0 {:.4}), ‖H(0)−H^∞‖ {:.4}",
                row[0], row[2], row[5], row[6], row[7], row[8], row[9], row[10]
            );
        }
        if let Some(f) = fit {
            eprintln!("‖H(0) − H^∞‖₂ ∝ m^{:.3} (Lemma 3.1: −0.5)", f.slope);
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sweep = args.sweep.clone();
    run_sweep(&TwoLayer { args }, &sweep)
}
