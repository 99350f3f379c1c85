//! CPU against GPU (issue "GPU backend"): B's Fig. 1 sweep (n = d = 1000, 100 full-batch GD
//! steps for each m) and the structured Gram benchmark (A's fc, softplus, n = 1000, d = 100,
//! m = 1024, H = 3), each on every requested device in f32, with the time ratios. The Gram's
//! λ_min is also compared with the CPU f64 value, which measures what f32 forward/backward
//! passes followed by the host's f64 contraction lose.
//!
//! `cargo run -p overparam-experiments --features wgpu --bin bench_backends`

use anyhow::{Result, bail};
use clap::Parser;
use overparam_analysis::{GramStrategy, grams, spectrum::lambda_min};
use overparam_device::{BackendKind, Compute, Precision};
use overparam_experiments::setups::{b_figure1, gram_benchmark};
use overparam_experiments::timing::median_seconds;
use overparam_models::Network;
use overparam_train::{TrainConfig, train};
use std::time::Instant;

/// Time the B Fig. 1 sweep and the Gram benchmark on each device.
#[derive(Debug, Parser)]
struct Args {
    /// Devices to compare; the first is the baseline of the ratios.
    #[arg(long, value_delimiter = ',', default_value = "cpu,wgpu")]
    devices: Vec<BackendKind>,
    /// B's n.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// B's d.
    #[arg(long, default_value_t = 1000)]
    d: usize,
    /// B's widths m.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000,8000")]
    widths: Vec<usize>,
    /// GD steps per width.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// n of the Gram benchmark.
    #[arg(long, default_value_t = 1000)]
    gram_n: usize,
    /// m of the Gram benchmark.
    #[arg(long, default_value_t = 1024)]
    gram_width: usize,
    /// Timed repetitions of the Gram (median).
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

fn sweep(compute: &Compute, args: &Args) -> Result<Vec<f64>> {
    args.widths
        .iter()
        .map(|&m| {
            let (data, config) = b_figure1(args.n, args.d, m, 0)?;
            let mut net = Network::init(&config, compute)?;
            let start = Instant::now();
            let history = train(
                &mut net,
                &data,
                compute,
                &TrainConfig::gd(0.1, args.steps),
                &mut (),
            )?;
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "  {compute} m={m}: {seconds:.2} s for {} steps, final loss {:.4e}",
                args.steps,
                history.loss.last().copied().unwrap_or(f64::NAN)
            );
            Ok(seconds)
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.devices.is_empty() {
        bail!("--devices names no device");
    }
    let computes: Vec<Compute> = args
        .devices
        .iter()
        .map(|&b| Compute::new(b, Precision::F32))
        .collect::<Result<_, _>>()?;

    println!(
        "B Fig. 1 sweep: n={} d={} {} GD steps, f32",
        args.n, args.d, args.steps
    );
    let times: Vec<Vec<f64>> = computes
        .iter()
        .map(|c| sweep(c, &args))
        .collect::<Result<_>>()?;
    print!("{:>6}", "m");
    for c in &computes {
        print!(" {:>12}", format!("{} s", c.backend()));
    }
    println!(" {:>10}", "ratio");
    for (i, m) in args.widths.iter().enumerate() {
        print!("{m:>6}");
        for t in &times {
            print!(" {:>12.2}", t[i]);
        }
        println!(" {:>10.2}", times[0][i] / times.last().unwrap()[i]);
    }
    let totals: Vec<f64> = times.iter().map(|t| t.iter().sum()).collect();
    println!(
        "whole sweep: {} ; ratio {} / {} = {:.2}",
        totals
            .iter()
            .map(|t| format!("{t:.1} s"))
            .collect::<Vec<_>>()
            .join(" vs "),
        args.devices[0],
        args.devices.last().unwrap(),
        totals[0] / totals.last().unwrap()
    );

    let (data, config) = gram_benchmark(args.gram_n, args.gram_width)?;
    println!(
        "\nStructured Gram: A fc softplus n={} d=100 m={} H=3",
        args.gram_n, args.gram_width
    );
    let reference = {
        let compute = Compute::cpu_f64()?;
        let net = Network::init(&config, &compute)?;
        lambda_min(&grams(&net, data.inputs(), &compute, GramStrategy::Structured)?.total)
    };
    let mut gram_times = Vec::new();
    for compute in &computes {
        let net = Network::init(&config, compute)?;
        let mut lambda = f64::NAN;
        let t = median_seconds(args.reps, || {
            let g = grams(&net, data.inputs(), compute, GramStrategy::Structured).expect("gram");
            lambda = lambda_min(&g.total);
        });
        println!(
            "  {compute}: {t:.3} s (forward/backward on the device, f64 contraction on the host); \
             lambda_min {lambda:.8e}, relative error vs cpu/f64 {:.2e}",
            (lambda - reference).abs() / reference
        );
        gram_times.push(t);
    }
    println!(
        "Gram ratio {} / {} = {:.2}",
        args.devices[0],
        args.devices.last().unwrap(),
        gram_times[0] / gram_times.last().unwrap()
    );
    Ok(())
}
