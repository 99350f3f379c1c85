//! Gram benchmark (issue "Analysis crate"): Structured vs Autodiff on A's fc net (softplus,
//! n = 1000, d = 100, m = 1024, H = 3, f64), their ratio, Structured's GFLOP/s and peak
//! memory, and the time of λ_min for a 2000 × 2000 Gram.

use anyhow::Result;
use clap::Parser;
use faer::Mat;
use overparam_analysis::{GramPrecision, GramStrategy, grams, grams_in, spectrum::lambda_min};
use overparam_device::Compute;
use overparam_experiments::{setups::gram_benchmark, timing::median_seconds};
use overparam_models::Network;
use std::time::Instant;

/// Benchmark the Gram strategies.
#[derive(Debug, Parser)]
struct Args {
    /// n (samples).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// m (width).
    #[arg(long, default_value_t = 1024)]
    width: usize,
    /// Timed repetitions of the structured Gram (median).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Skip the (slow) autodiff reference.
    #[arg(long)]
    skip_autodiff: bool,
    /// Precision of the network and of the structured products: f64, or f32 (an f32 network
    /// and f32 products summed in f64 blocks).
    #[arg(long, default_value = "f64")]
    gram_dtype: GramPrecision,
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (n, d, m, depth) = (args.n, 100, args.width, 3);
    let compute = match args.gram_dtype {
        GramPrecision::F64 => Compute::cpu_f64()?,
        GramPrecision::F32 => Compute::parse("cpu", "f32")?,
    };
    let (data, config) = gram_benchmark(n, m)?;
    let net = Network::init(&config, &compute)?;
    println!(
        "A fc softplus n={n} d={d} m={m} H={depth} {:?}, {} parameters",
        args.gram_dtype,
        config.parameter_count()
    );
    let before = peak_rss_mib();
    let precision = args.gram_dtype;
    let structured = median_seconds(args.reps, || {
        grams_in(
            &net,
            data.inputs(),
            &compute,
            GramStrategy::Structured,
            precision,
        )
        .expect("gram");
    });
    // Per layer: A Aᵀ and B Bᵀ (2 n² k flops each) plus the Hadamard product.
    let cols: Vec<usize> = std::iter::once(d)
        .chain(std::iter::repeat_n(m, depth))
        .collect();
    let flops: f64 = (0..depth)
        .map(|h| 2.0 * (n * n) as f64 * (cols[h] + m) as f64)
        .sum::<f64>()
        + 2.0 * (n * n * m) as f64;
    println!(
        "structured ({:?} products): {:.3} s, {:.1} GFLOP/s",
        args.gram_dtype,
        structured,
        flops / structured / 1e9
    );
    if let (Some(b), Some(a)) = (before, peak_rss_mib()) {
        let floor = (n * n * (depth + 2) + n * m * 2) as f64 * 8.0 / (1 << 20) as f64;
        println!(
            "peak RSS: {a:.0} MiB (before the Gram {b:.0} MiB; n² per layer + n·m floor {floor:.0} MiB)"
        );
    }
    if !args.skip_autodiff {
        let start = Instant::now();
        grams(&net, data.inputs(), &compute, GramStrategy::Autodiff)?;
        let autodiff = start.elapsed().as_secs_f64();
        println!(
            "autodiff:   {autodiff:.3} s; ratio autodiff/structured = {:.1}",
            autodiff / structured
        );
    }
    let g = Mat::<f64>::from_fn(2000, 2000, |i, j| 1.0 / (1.0 + (i as f64 - j as f64).abs()));
    let t = median_seconds(args.reps, || {
        lambda_min(&g);
    });
    println!("lambda_min of a 2000x2000 Gram: {:.3} s", t);
    Ok(())
}
