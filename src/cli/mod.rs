//! The `overparam` command line.

pub mod args;
pub mod train;

use clap::{Parser, Subcommand};

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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train::run(&args),
    }
}
