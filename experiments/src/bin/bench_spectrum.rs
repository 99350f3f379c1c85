//! Time of λ_min and λ_max of an n × n Gram matrix: the full symmetric eigensolver against the
//! Lanczos extremes (λ_min on the inverse through one Cholesky factorization), on the
//! infinite-width NTK of A's fc net (softplus, H = 3) on n points of the sphere in R^100 and on
//! B's H^∞ (issue target: λ_min of a 2000 × 2000 Gram under 0.5 s, 1e-10 relative).

use anyhow::Result;
use clap::Parser;
use faer::Side;
use overparam_analysis::extremes;
use overparam_data::{Labels, sphere};
use overparam_experiments::timing::{BenchArgs, median_seconds};
use overparam_kernels::{h_infinity, ntk_limit};
use overparam_models::{Activation, Architecture, ModelConfig};

/// Benchmark the extreme eigenvalues.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> Result<()> {
    let args = Args::parse().bench;
    let d = 100;
    let data = sphere(args.n, d, Labels::Gaussian, 0)?;
    let config = ModelConfig {
        input_dim: d,
        arch: Architecture::Fc {
            depth: 3,
            width: 1,
            activation: Activation::Softplus,
        },
        seed: 0,
    };
    let matrices = [
        ("fc NTK limit", ntk_limit(&config, data.inputs())?.total),
        ("B's H^inf", h_infinity(data.inputs(), d)),
    ];
    for (name, g) in &matrices {
        let full = g
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let e = extremes(g);
        let full_seconds = median_seconds(args.reps, || {
            g.self_adjoint_eigenvalues(Side::Lower)
                .expect("converged above");
        });
        let lanczos_seconds = median_seconds(args.reps, || {
            extremes(g);
        });
        let cholesky_seconds = median_seconds(args.reps, || {
            g.llt(Side::Lower).expect("definite");
        });
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        println!(
            "{name:<13} n={}: full eigenvalues {full_seconds:.3} s, extremes {lanczos_seconds:.3} s \
             (of which one Cholesky factorization {cholesky_seconds:.3} s; {:?}, {:?} steps); λ_min {:.6e} (rel. diff {:.1e}), λ_max {:.6e} (rel. diff {:.1e})",
            args.n,
            e.method,
            e.steps,
            e.lambda_min,
            rel(e.lambda_min, full[0]),
            e.lambda_max,
            rel(e.lambda_max, full[args.n - 1]),
        );
    }
    Ok(())
}
