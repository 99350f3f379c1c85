//! `overparam kernel`: the infinite-width Gram matrices of a model on a dataset.

use super::args::{DataArgs, ModelArgs, SpectrumKind};
use super::{Timing, ensure_fits, save_matrices, write_json};
use clap::Args;
use faer::Mat;
use overparam_kernels::{h_infinity, limit_bytes, ntk_limit};
use overparam_models::Architecture;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `overparam kernel`.
#[derive(Debug, Clone, Args)]
pub struct KernelArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Directory for kernel_<layer>.npy, kernel_total.npy and spectrum.json.
    #[arg(long, default_value = "results/kernel")]
    pub out: PathBuf,
    /// Eigenvalues to compute: auto (all up to n = 2000, λ_min and λ_max above), extremes, full
    /// or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub spectrum: SpectrumKind,
}

/// Runs `overparam kernel`: B's H^∞ for two_layer; for fc, resnet and conv_resnet, A's K^(H) (the entry of
/// the last hidden layer) and the limits of every layer's Gram and of their sum.
pub fn run(args: &KernelArgs) -> anyhow::Result<()> {
    let checked = args.data.dataset(args.model.synthetic_dim(args.data.d)?)?;
    let data = &checked.data;
    let config = args.model.config(data)?;
    let n = data.len();
    ensure_fits(
        limit_bytes(&config, n),
        &format!(
            "computing the kernel limits of {n} samples of shape {:?}",
            data.shape()
        ),
        "use fewer samples (--n), smaller images (--pool), or a machine with more memory",
    )?;
    let start = Instant::now();
    let named: Vec<(String, Mat<f64>)> = match config.arch {
        Architecture::TwoLayer { .. } => {
            vec![("Hinf".into(), h_infinity(data.inputs(), data.input_dim()))]
        }
        _ => {
            let limit = ntk_limit(&config, data.inputs())?;
            limit
                .names
                .into_iter()
                .zip(limit.layers)
                .chain([("total".to_string(), limit.total)])
                .collect()
        }
    };
    let mut timing = Timing {
        matrices_s: start.elapsed().as_secs_f64(),
        ..Timing::default()
    };
    let spectra = save_matrices(
        &args.out,
        "kernel",
        named.iter().map(|(n, m)| (n.as_str(), m)),
        args.spectrum.into(),
        &mut timing,
    )?;
    timing.print();
    let summary = serde_json::json!({
        "model": config,
        "n": data.len(),
        "spectra": spectra,
        "timing": timing,
    });
    write_json(&args.out.join("spectrum.json"), &summary)?;
    println!("kernels and spectra in {}", args.out.display());
    Ok(())
}
