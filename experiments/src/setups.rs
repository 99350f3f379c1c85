//! The papers' standard setups, shared by experiments and benchmarks.

use overparam_data::{DataError, Dataset, Labels, sphere};
use overparam_models::{Activation, Architecture, ModelConfig};

/// B §5 (Fig. 1): n points uniform on the unit sphere in R^d with labels y ~ N(0, 1), and the
/// two-layer ReLU net of width m (first layer trained, ±1 output frozen).
pub fn b_figure1(
    n: usize,
    d: usize,
    m: usize,
    seed: u64,
) -> Result<(Dataset, ModelConfig), DataError> {
    let data = sphere(n, d, Labels::Gaussian, seed)?;
    let config = ModelConfig {
        input_dim: d,
        arch: Architecture::TwoLayer { width: m },
        seed,
    };
    Ok((data, config))
}

/// The Gram benchmark of the analysis issue: A's fc net (softplus, H = 3, d = 100) of width m
/// on n points of the sphere.
pub fn gram_benchmark(n: usize, m: usize) -> Result<(Dataset, ModelConfig), DataError> {
    let d = 100;
    let data = sphere(n, d, Labels::Gaussian, 0)?;
    let config = ModelConfig {
        input_dim: d,
        arch: Architecture::Fc {
            depth: 3,
            width: m,
            activation: Activation::Softplus,
        },
        seed: 0,
    };
    Ok((data, config))
}

/// A's two deep architectures compared throughout its §5–§6.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeepArch {
    /// A §5, eq. 2.
    Fc,
    /// A §6, with `c_res`.
    Resnet,
}

impl DeepArch {
    /// The short name used in ids and legends.
    pub fn name(self) -> &'static str {
        match self {
            DeepArch::Fc => "fc",
            DeepArch::Resnet => "resnet",
        }
    }
}

/// A's fc or resnet net with H = `depth` hidden layers of width m on inputs of dimension d.
pub fn a_deep(
    arch: DeepArch,
    depth: usize,
    width: usize,
    activation: Activation,
    c_res: f64,
    d: usize,
    seed: u64,
) -> ModelConfig {
    let arch = match arch {
        DeepArch::Fc => Architecture::Fc {
            depth,
            width,
            activation,
        },
        DeepArch::Resnet => Architecture::Resnet {
            depth,
            width,
            activation,
            c_res,
        },
    };
    ModelConfig {
        input_dim: d,
        arch,
        seed,
    }
}

/// The step size every width of one (architecture, depth) shares: `η = 1/λ_max(Θ)`, Θ the
/// infinite-width limit of the whole Gram `G(0)`. The linearized GD `u ← u − ηΘ(u − y)` is
/// then stable with rate `1 − ηλ_min(Θ)`. It depends on the data and the limit only, never on
/// the width (no per-width tuning).
pub fn kernel_step_size(theta: &faer::Mat<f64>) -> f64 {
    1.0 / overparam_analysis::Spectrum::of(theta).lambda_max()
}
