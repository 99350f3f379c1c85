//! `overparam gram`: per-layer Gram matrices of a network on a dataset, their spectra, `.npy`.

use super::args::{ComputeArgs, DataArgs, ModelArgs, Setup, setup};
use super::write_json;
use anyhow::Context;
use clap::{Args, ValueEnum};
use overparam_analysis::{GramStrategy, Spectrum, grams, write_npy};
use serde::Serialize;
use std::path::PathBuf;

/// Options of `overparam gram`.
#[derive(Debug, Clone, Args)]
pub struct GramArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub compute: ComputeArgs,
    /// Strategy: structured products (fast) or per-sample autodiff (reference).
    #[arg(long, value_enum, default_value = "structured")]
    pub strategy: StrategyKind,
    /// Directory for gram_<layer>.npy, gram_total.npy and spectrum.json.
    #[arg(long, default_value = "results/gram")]
    pub out: PathBuf,
}

/// Gram strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyKind {
    /// Structured derivatives `(AAᵀ)∘(BBᵀ)`.
    Structured,
    /// Per-sample autodiff Jacobians.
    Autodiff,
}

impl From<StrategyKind> for GramStrategy {
    fn from(kind: StrategyKind) -> Self {
        match kind {
            StrategyKind::Structured => GramStrategy::Structured,
            StrategyKind::Autodiff => GramStrategy::Autodiff,
        }
    }
}

#[derive(Serialize)]
struct LayerSpectrum {
    layer: String,
    lambda_min: f64,
    lambda_max: f64,
    condition_number: f64,
    eigenvalues: Vec<f64>,
}

/// Runs `overparam gram`.
pub fn run(args: &GramArgs) -> anyhow::Result<()> {
    let Setup {
        compute,
        checked,
        network,
    } = setup(&args.model, &args.data, &args.compute)?;
    let data = &checked.data;
    let g = grams(&network, data.inputs(), &compute, args.strategy.into())?;
    for warning in &g.warnings {
        eprintln!("warning: {warning}");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let mut spectra = Vec::new();
    let named = g.names.iter().map(String::as_str).chain(["total"]);
    for (name, matrix) in named.zip(g.layers.iter().chain([&g.total])) {
        let path = args.out.join(format!("gram_{name}.npy"));
        write_npy(&path, matrix).with_context(|| format!("writing {}", path.display()))?;
        let s = Spectrum::of(matrix);
        spectra.push(LayerSpectrum {
            layer: name.to_string(),
            lambda_min: s.lambda_min(),
            lambda_max: s.lambda_max(),
            condition_number: s.condition_number(),
            eigenvalues: s.eigenvalues,
        });
    }
    let summary = serde_json::json!({
        "model": network.config(),
        "n": data.len(),
        "strategy": format!("{:?}", g.strategy).to_lowercase(),
        "device": compute.to_string(),
        "spectra": spectra,
    });
    write_json(&args.out.join("spectrum.json"), &summary)?;
    for s in &spectra {
        println!(
            "{:<8} λmin {:>12.6e}  λmax {:>12.6e}  cond {:>10.3e}",
            s.layer, s.lambda_min, s.lambda_max, s.condition_number
        );
    }
    println!("Gram matrices and spectra in {}", args.out.display());
    Ok(())
}
