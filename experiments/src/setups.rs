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

/// The grid options shared by A's experiments (`deep_gram`, `depth_width`).
#[derive(Debug, Clone, clap::Args)]
pub struct DeepArgs {
    /// Architectures.
    #[arg(long, value_delimiter = ',', default_value = "fc,resnet")]
    pub archs: Vec<DeepArch>,
    /// Depths H (default: the experiment's full or quick grid, see its --help text above).
    #[arg(long, value_delimiter = ',')]
    pub depths: Option<Vec<usize>>,
    /// Widths m (default: the experiment's full or quick grid).
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// d, the input dimension.
    #[arg(long, default_value_t = 10)]
    pub d: usize,
    /// σ (A asks for a smooth, analytic, non-polynomial activation).
    #[arg(long, default_value = "softplus")]
    pub activation: Activation,
    /// c_res of the resnet (A §6).
    #[arg(long, default_value_t = 0.5)]
    pub c_res: f64,
}

/// One (seed, architecture, H, m) cell of an A grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepCell {
    /// Seed of data and init.
    pub seed: u64,
    /// fc or resnet.
    pub arch: DeepArch,
    /// H.
    pub depth: usize,
    /// m.
    pub width: usize,
}

impl DeepArgs {
    /// Every (seed, architecture, H, m), with the given defaults for H and m.
    pub fn cells(&self, seeds: &[u64], depths: &[usize], widths: &[usize]) -> Vec<DeepCell> {
        let depths = self.depths.as_deref().unwrap_or(depths);
        let widths = self.widths.as_deref().unwrap_or(widths);
        let mut cells = Vec::new();
        for &seed in seeds {
            for &arch in &self.archs {
                for &depth in depths {
                    for &width in widths {
                        cells.push(DeepCell {
                            seed,
                            arch,
                            depth,
                            width,
                        });
                    }
                }
            }
        }
        cells
    }
}
