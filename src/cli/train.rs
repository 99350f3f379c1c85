//! `overparam train`: train one network and write its result.

use super::args::{ComputeArgs, DataArgs, DataSource, ModelArgs, Setup, SpectrumKind, setup};
use super::gram::StrategyKind;
use super::{ensure_grams_fit, write_json};
use anyhow::Context;
use clap::{Args, ValueEnum};
use overparam_analysis::DynamicsRecorder;
use overparam_models::{ModelConfig, save_safetensors};
use overparam_train::{Checkpointing, History, Loss, Optimizer, TrainConfig, train};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `overparam train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub compute: ComputeArgs,
    /// Loss: quadratic ½Σ(f−y)² (A, B), logistic or exponential (C, labels ±1), cross_entropy.
    #[arg(long, default_value = "quadratic")]
    pub loss: Loss,
    /// Gradient method: full-batch GD, or mini-batch SGD.
    #[arg(long, value_enum, default_value = "gd")]
    pub optimizer: OptimizerKind,
    /// B: SGD batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Seed of the SGD batch order (its own stream: independent of data and init at equal seeds).
    #[arg(long, default_value_t = 0)]
    pub shuffle_seed: u64,
    /// η: constant step size.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub step_size: f64,
    /// k: number of updates.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Comma-separated names of the trained layers (e.g. W1,a); default: the layers the paper trains.
    #[arg(long, value_delimiter = ',')]
    pub trainable: Option<Vec<String>>,
    /// Directory for result.json, init.safetensors and final.safetensors.
    #[arg(long, default_value = "results/train")]
    pub out: PathBuf,
    /// Record the training dynamics (λmin of G(k) and of each G^(h)(k), Gram drift, distances
    /// from init, activation-pattern changes) every this many steps into dynamics.csv/json;
    /// 0 records nothing.
    #[arg(long, default_value_t = 0)]
    pub record_every: usize,
    /// λ0 for the bound (1 − ηλ0/2)^k L(0) in the recorded dynamics.
    #[arg(long)]
    pub lambda0: Option<f64>,
    /// Gram strategy of the recorder.
    #[arg(long, value_enum, default_value = "structured")]
    pub gram_strategy: StrategyKind,
    /// How the recorder computes λ_min and the drift norm: auto (full eigenvalues up to
    /// n = 2000, Lanczos extremes above), extremes, full, or none (recorded as empty).
    #[arg(long, value_enum, default_value = "auto")]
    pub spectrum: SpectrumKind,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// μ: heavy-ball momentum, `v ← μv + g`, `θ ← θ − ηv` (PyTorch's SGD; 0: none).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub momentum: f64,
    /// λ: weight decay, `g ← ∇L + λθ` (0: none).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Write <out>/checkpoint.safetensors (parameters, momentum, batch order, history)
    /// atomically every this many updates; 0 writes none.
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Continue from <out>/checkpoint.safetensors when it exists (same model, data and
    /// options; --steps may be larger), to the same bits as an uninterrupted run.
    #[arg(long)]
    pub resume: bool,
}

/// Gradient methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// Full-batch gradient descent.
    Gd,
    /// Mini-batch stochastic gradient descent.
    Sgd,
}

/// The JSON result of a run.
#[derive(Debug, Serialize)]
struct TrainResult<'a> {
    status: &'a str,
    error: Option<String>,
    model: &'a ModelConfig,
    parameter_count: usize,
    train: &'a TrainConfig,
    data: DataRecord,
    device: String,
    dtype: String,
    wall_time_s: f64,
    history: &'a History,
}

#[derive(Debug, Serialize)]
struct DataRecord {
    source: String,
    n: usize,
    d: usize,
    shape: Vec<usize>,
    seed: u64,
    /// Smallest angle between the lines through two inputs (radians).
    min_angle: f64,
    max_norm_deviation: f64,
    /// For C's separated set, the achieved φ.
    separation_phi: Option<f64>,
}

/// Runs `overparam train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    if args.data.data == DataSource::Npy && args.data.targets.is_none() {
        anyhow::bail!("training on --data npy needs --targets y.npy ((n,) or (n, k))");
    }
    let Setup {
        compute,
        checked,
        mut network,
    } = setup(&args.model, &args.data, &args.compute)?;
    let data = &checked.data;
    let train_config = TrainConfig {
        loss: args.loss,
        optimizer: match args.optimizer {
            OptimizerKind::Gd => Optimizer::Gd,
            OptimizerKind::Sgd => Optimizer::Sgd {
                batch_size: args.batch_size,
                shuffle_seed: args.shuffle_seed,
            },
        },
        step_size: args.step_size,
        steps: args.steps,
        trainable: args.trainable.clone(),
        observe_every: if args.record_every > 0 {
            args.record_every
        } else {
            args.steps.max(1)
        },
        progress: !args.quiet,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        checkpoint: (args.checkpoint_every > 0 || args.resume).then(|| Checkpointing {
            path: args.out.join("checkpoint.safetensors"),
            every: if args.checkpoint_every > 0 {
                args.checkpoint_every
            } else {
                args.steps.max(1)
            },
            resume: args.resume,
        }),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    save_safetensors(
        &network,
        compute.precision(),
        &args.out.join("init.safetensors"),
    )?;

    if args.record_every > 0 {
        ensure_grams_fit(
            &network,
            data.len(),
            "record fewer samples (--n), or train without --record-every",
        )?;
    }
    let start = Instant::now();
    let mut recorder = (args.record_every > 0)
        .then(|| {
            let theory = args.lambda0.map(|l| (l, args.step_size));
            DynamicsRecorder::new(&network, &compute, args.gram_strategy.into(), theory)
                .map(|r| r.with_spectrum(args.spectrum.into()))
        })
        .transpose()?;
    let outcome = match recorder.as_mut() {
        Some(r) => train(&mut network, data, &compute, &train_config, r),
        None => train(&mut network, data, &compute, &train_config, &mut ()),
    };
    if let Some(r) = &recorder {
        r.write_csv(&args.out.join("dynamics.csv"))?;
        r.write_json(&args.out.join("dynamics.json"))?;
    }
    let wall_time_s = start.elapsed().as_secs_f64();
    let (history, failure) = match outcome {
        Ok(history) => (history, None),
        Err(error) => match error.history() {
            Some(history) => (history.clone(), Some(error)),
            None => return Err(error.into()),
        },
    };
    let result = TrainResult {
        status: if failure.is_some() { "diverged" } else { "ok" },
        error: failure.as_ref().map(ToString::to_string),
        model: network.config(),
        parameter_count: network.config().parameter_count(),
        train: &train_config,
        data: DataRecord {
            source: format!("{:?}", args.data.data).to_lowercase(),
            n: data.len(),
            d: data.input_dim(),
            shape: data.shape().to_vec(),
            seed: args.data.data_seed,
            min_angle: checked.report.min_angle,
            max_norm_deviation: checked.report.max_norm_deviation,
            separation_phi: checked.phi,
        },
        device: compute.backend().to_string(),
        dtype: compute.precision().to_string(),
        wall_time_s,
        history: &history,
    };
    write_json(&args.out.join("result.json"), &result)?;
    if let Some(error) = failure {
        return Err(error.into());
    }
    save_safetensors(
        &network,
        compute.precision(),
        &args.out.join("final.safetensors"),
    )?;
    let first = history.loss.first().copied().unwrap_or(f64::NAN);
    let last = history.loss.last().copied().unwrap_or(f64::NAN);
    println!(
        "{} ({} parameters) on {compute}: loss {first:.6e} -> {last:.6e} in {} steps, {wall_time_s:.2} s; results in {}",
        network.config().kind_name(),
        network.config().parameter_count(),
        args.steps,
        args.out.display()
    );
    Ok(())
}
