//! Median time of one full-batch GD step on each compiled CPU backend, and their ratio.
//!
//! Setups (issue "Foundation"): B's two-layer ReLU net (n = d = 1000, m = 8000, f32) and A's
//! fc net (softplus, n = 1000, d = 100, m = 1024, H = 3, f64), plus A's conv ResNet on 8×8
//! images (n = 256, m = 64, H = 3, f32) because the two CPU backends differ most on conv.

use anyhow::Result;
use clap::Parser;
use overparam_data::{Labels, sphere};
use overparam_device::{BackendKind, Compute, Precision};
use overparam_experiments::timing::marginal_step_seconds;
use overparam_models::{Activation, Architecture, ModelConfig, Network};
use overparam_train::TrainConfig;

/// Benchmark one GD step on flex and ndarray.
#[derive(Debug, Parser)]
struct Args {
    /// Timed repetitions per measurement (median reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Divide n, d and m by this factor (for a quick smoke run).
    #[arg(long, default_value_t = 1)]
    shrink: usize,
    /// Only the setups whose name contains this text (e.g. `fc`, `two_layer`).
    #[arg(long)]
    only: Option<String>,
    /// Only this backend (flex or ndarray).
    #[arg(long)]
    backend: Option<BackendKind>,
}

struct Setup {
    name: &'static str,
    n: usize,
    d: usize,
    arch: Architecture,
    precision: Precision,
}

fn setups(shrink: usize) -> Vec<Setup> {
    vec![
        Setup {
            name: "B two_layer n=d=1000 m=8000 f32",
            n: 1000 / shrink,
            d: 1000 / shrink,
            arch: Architecture::TwoLayer {
                width: 8000 / shrink,
            },
            precision: Precision::F32,
        },
        Setup {
            name: "A fc softplus n=1000 d=100 m=1024 H=3 f64",
            n: 1000 / shrink,
            d: 100 / shrink,
            arch: Architecture::Fc {
                depth: 3,
                width: 1024 / shrink,
                activation: Activation::Softplus,
            },
            precision: Precision::F64,
        },
        Setup {
            name: "A conv_resnet softplus n=256 8x8 m=64 H=3 f32",
            n: 256 / shrink,
            d: 64,
            arch: Architecture::ConvResnet {
                depth: 3,
                width: 64 / shrink,
                activation: Activation::Softplus,
                c_res: 0.5,
                channels: 1,
                spatial: vec![8, 8],
                kernel: 3,
            },
            precision: Precision::F32,
        },
    ]
}

fn step_seconds(setup: &Setup, backend: BackendKind, reps: usize) -> Result<f64> {
    let compute = Compute::new(backend, setup.precision)?;
    let data = sphere(setup.n, setup.d, Labels::Gaussian, 0)?;
    let config = ModelConfig {
        input_dim: setup.d,
        arch: setup.arch.clone(),
        seed: 0,
    };
    let network = Network::init(&config, &compute)?;
    Ok(marginal_step_seconds(
        reps,
        &network,
        &data,
        &compute,
        |steps| TrainConfig::gd(1e-3, steps),
    )?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let backends = [BackendKind::Flex, BackendKind::Ndarray];
    println!(
        "median time of one full-batch GD step (forward + backward + update), {} reps",
        args.reps
    );
    let wanted = |name: &str| args.only.as_ref().is_none_or(|o| name.contains(o.as_str()));
    for setup in setups(args.shrink.max(1))
        .into_iter()
        .filter(|s| wanted(s.name))
    {
        let mut times = Vec::new();
        for backend in backends
            .into_iter()
            .filter(|b| args.backend.is_none_or(|only| only == *b))
        {
            if !backend.is_compiled() {
                println!("{:<48} {backend:<8} not compiled in", setup.name);
                continue;
            }
            let t = step_seconds(&setup, backend, args.reps)?;
            println!("{:<48} {backend:<8} {:>10.2} ms", setup.name, t * 1e3);
            times.push(t);
        }
        if let [flex, ndarray] = times[..] {
            println!(
                "{:<48} ratio ndarray/flex = {:.2}",
                setup.name,
                ndarray / flex
            );
        }
    }
    Ok(())
}
