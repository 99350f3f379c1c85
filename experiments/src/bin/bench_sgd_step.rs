//! Median time of one mini-batch SGD step of D's ResNet-18 on the CPU (issue "D at its own
//! scale"): batch 128, forward + backward + momentum update, cross-entropy, f32.
//!
//! The two setups of the issue: width 16 on 1 × 28 × 28 (MNIST-like) and width 64 on
//! 3 × 32 × 32 (CIFAR-like), 10 classes. `benchmarks/torch_reference.py --only sgd` times the
//! same steps in PyTorch.

use anyhow::Result;
use clap::Parser;
use overparam_data::{Purpose, random_images};
use overparam_device::Compute;
use overparam_experiments::setups::d_images;
use overparam_experiments::timing::marginal_step_seconds;
use overparam_models::{Architecture, ModelConfig, Network};
use overparam_train::{Loss, Optimizer, TrainConfig};

/// Benchmark one SGD step of ResNet-18.
#[derive(Debug, Parser)]
struct Args {
    /// Timed repetitions per measurement (median reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Backend (cpu = flex, ndarray).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Only the setups whose width is in this list.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    widths: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
}

fn step_seconds(args: &Args, width: usize, shape: [usize; 3]) -> Result<f64> {
    let compute = Compute::parse(&args.device, "f32")?;
    let n = args.batch;
    let images = random_images(n, &shape, 10, 0)?;
    let data = d_images(&images, None, 0, Purpose::Subsample, false)?;
    let config = ModelConfig {
        input_dim: shape.iter().product(),
        arch: Architecture::Resnet18 {
            width,
            channels: shape[0],
            spatial: shape[1..].to_vec(),
            outputs: 10,
        },
        seed: 0,
    };
    let network = Network::init(&config, &compute)?;
    Ok(marginal_step_seconds(
        args.reps,
        &network,
        &data,
        &compute,
        |steps| TrainConfig {
            loss: Loss::CrossEntropy,
            optimizer: Optimizer::Sgd {
                batch_size: n,
                shuffle_seed: 0,
            },
            momentum: 0.9,
            observe_every: steps,
            ..TrainConfig::gd(0.01, steps)
        },
    )?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!(
        "median time of one SGD step of ResNet-18 (batch {}, forward + backward + momentum, f32, {}), {} reps",
        args.batch, args.device, args.reps
    );
    for (width, shape) in [(16, [1, 28, 28]), (64, [3, 32, 32])] {
        if !args.widths.contains(&width) {
            continue;
        }
        let t = step_seconds(&args, width, shape)?;
        println!(
            "resnet18 width {width:<3} {}x{}x{} batch {}: {:>9.3} s",
            shape[0], shape[1], shape[2], args.batch, t
        );
    }
    Ok(())
}
