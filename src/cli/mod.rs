//! The `overparam` command line.

pub mod args;
pub mod gram;
pub mod kernel;
pub mod train;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::path::Path;

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
    /// Infinite-width kernels: B's H^inf (two_layer), A's K^(H) and the full NTK limit (fc, resnet).
    Kernel(kernel::KernelArgs),
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
    }
}
