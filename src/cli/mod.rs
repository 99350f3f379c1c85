//! The `overparam` command line.

pub mod args;
pub mod gram;
pub mod kernel;
pub mod train;

use anyhow::Context;
use clap::{Parser, Subcommand};
use overparam_analysis::{Extremes, SpectrumMode};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Train the networks of the over-parameterization papers and measure them.
#[derive(Debug, Parser)]
#[command(name = "overparam", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network (GD or SGD) and write its losses and parameters.
    Train(train::TrainArgs),
    /// Per-layer Gram (NTK) matrices of a network on a dataset, their spectra, as .npy/JSON.
    Gram(gram::GramArgs),
    /// Infinite-width kernels: B's H^inf (two_layer), A's K^(H) and the full NTK limit (fc, resnet, conv_resnet).
    Kernel(kernel::KernelArgs),
    /// Join the results folders of a sharded experiment sweep (`--shard i/n`) into one (then
    /// run the experiment again without --shard on the joined folder to write its report), or
    /// the tiles of `overparam kernel --shard i/n` into whole kernel_<layer>.npy files.
    Merge(MergeArgs),
}

/// `overparam merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The joined results folder (created if missing).
    #[arg(long)]
    pub into: std::path::PathBuf,
    /// The shards' results folders.
    #[arg(required = true)]
    pub shards: Vec<std::path::PathBuf>,
}

/// The spectrum of one saved matrix, as written to `spectrum.json`.
#[derive(Debug, Serialize)]
pub struct MatrixSpectrum {
    /// Layer name (or `total`, `Hinf`).
    pub layer: String,
    /// λ_min, λ_max, how they were computed, and the Lanczos steps.
    #[serde(flatten)]
    pub extremes: Extremes,
    /// λ_max / λ_min.
    pub condition_number: f64,
    /// All eigenvalues, increasing (with `--spectrum full`, or auto up to n = 2000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eigenvalues: Option<Vec<f64>>,
}

/// Seconds spent on each part of a command, printed and written to `spectrum.json`.
#[derive(Debug, Default, Serialize)]
pub struct Timing {
    /// Building the matrices.
    pub matrices_s: f64,
    /// Their spectra.
    pub spectra_s: f64,
    /// Writing the `.npy` files.
    pub writing_s: f64,
}

/// Writes each named matrix to `<out>/<prefix>_<name>.npy`, prints its extreme eigenvalues
/// (computed as `mode` says) and returns the spectra, adding the time spent to `timing`.
pub fn save_matrices<'a>(
    out: &Path,
    prefix: &str,
    named: impl IntoIterator<Item = (&'a str, &'a faer::Mat<f64>)>,
    mode: SpectrumMode,
    timing: &mut Timing,
) -> anyhow::Result<Vec<MatrixSpectrum>> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating output directory {}", out.display()))?;
    let mut spectra = Vec::new();
    for (name, matrix) in named {
        let path = out.join(format!("{prefix}_{name}.npy"));
        let start = Instant::now();
        overparam_analysis::write_npy(&path, matrix)
            .with_context(|| format!("writing {}", path.display()))?;
        timing.writing_s += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let Some((extremes, eigenvalues)) = mode.spectrum(matrix) else {
            continue;
        };
        timing.spectra_s += start.elapsed().as_secs_f64();
        let condition_number = extremes.condition_number();
        println!(
            "{name:<8} λmin {:>12.6e}  λmax {:>12.6e}  cond {condition_number:>10.3e}",
            extremes.lambda_min, extremes.lambda_max,
        );
        spectra.push(MatrixSpectrum {
            layer: name.to_string(),
            extremes,
            condition_number,
            eigenvalues,
        });
    }
    Ok(spectra)
}

impl Timing {
    /// Prints the split.
    pub fn print(&self) {
        println!(
            "time: matrices {:.2} s, spectra {:.2} s, writing {:.2} s",
            self.matrices_s, self.spectra_s, self.writing_s
        );
    }
}

/// The memory this machine has available (`MemAvailable` of /proc/meminfo), in bytes.
fn available_memory() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `bytes` in TB, GB or MB, for messages.
fn human(bytes: u128) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1e3 {
        format!("{:.1} TB", gb / 1e3)
    } else if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// Refuses, with a message naming the bytes and what to change, a computation that needs
/// more memory than the machine has available (instead of an allocation failure deep inside).
pub fn ensure_fits(bytes: u128, what: &str, advice: &str) -> anyhow::Result<()> {
    match available_memory() {
        Some(available) if bytes > available => anyhow::bail!(
            "{what} needs about {} of memory, but {} are available; {advice}",
            human(bytes),
            human(available)
        ),
        _ => Ok(()),
    }
}

/// Refuses per-layer Gram matrices of `n` samples (one per layer, their sum, and room for
/// spectra and drift, each n × n in f64) that cannot fit.
pub fn ensure_grams_fit(
    network: &overparam_models::Network,
    n: usize,
    advice: &str,
) -> anyhow::Result<()> {
    let bytes = (network.specs().len() as u128 + 4) * 8 * (n as u128).pow(2);
    ensure_fits(
        bytes,
        &format!("computing the Gram matrices of {n} samples"),
        advice,
    )
}

/// Writes `value` as pretty JSON to `path` atomically (temp file, then rename).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Gram(args) => gram::run(&args),
        Command::Kernel(args) => kernel::run(&args),
        Command::Merge(args) if args.shards[0].join(kernel::SHARD_MANIFEST).exists() => {
            let tiles = kernel::merge(&args.into, &args.shards)?;
            println!(
                "merged {tiles} kernel tiles from {} shard folders into {}",
                args.shards.len(),
                args.into.display()
            );
            Ok(())
        }
        Command::Merge(args) => {
            let copied = overparam_experiments::store::merge(&args.into, &args.shards)?;
            println!(
                "merged {copied} runs from {} shard folders into {}",
                args.shards.len(),
                args.into.display()
            );
            Ok(())
        }
    }
}
