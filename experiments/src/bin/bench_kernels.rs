//! Time of A's infinite-width recursions, the full NTK limit (every layer's Gram limit and
//! their sum), for softplus, n = 2000 points on the sphere, H = 8, fc and resnet (issue target:
//! < 2 s each).

use anyhow::Result;
use clap::Parser;
use overparam_data::{Labels, sphere};
use overparam_experiments::timing::{BenchArgs, median_seconds};
use overparam_kernels::ntk_limit;
use overparam_models::{Activation, Architecture, ModelConfig};

/// Benchmark the kernel recursions.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    bench: BenchArgs,
    /// H (depth).
    #[arg(long, default_value_t = 8)]
    depth: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let d = 100;
    let data = sphere(args.bench.n, d, Labels::Gaussian, 0)?;
    let activation = Activation::Softplus;
    for (name, arch) in [
        (
            "fc",
            Architecture::Fc {
                depth: args.depth,
                width: 1,
                activation,
            },
        ),
        (
            "resnet",
            Architecture::Resnet {
                depth: args.depth,
                width: 1,
                activation,
                c_res: 0.5,
            },
        ),
    ] {
        let config = ModelConfig {
            input_dim: d,
            arch,
            seed: 0,
        };
        let limit = ntk_limit(&config, data.inputs())?;
        let seconds = median_seconds(args.bench.reps, || {
            ntk_limit(&config, data.inputs()).expect("computed above");
        });
        println!(
            "{name:<7} softplus n={} H={}: full NTK limit {seconds:.2} s (median of {}; K^(H)[0,1] = {:.6e})",
            args.bench.n,
            args.depth,
            args.bench.reps,
            limit.k_h()[(0, 1)]
        );
    }
    Ok(())
}
