//! One serde config type describes every network of the papers; a network is data.

use crate::activation::Activation;
use serde::{Deserialize, Serialize};

/// Errors in a model configuration, each naming the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A size that must be positive is zero.
    #[error("{what} must be at least {min}, got {value}")]
    TooSmall {
        /// Which size.
        what: &'static str,
        /// The smallest allowed value.
        min: usize,
        /// The given value.
        value: usize,
    },
    /// `c_res` must be a positive finite number (A §6 asks for `0 < c_res < 1`).
    #[error("c_res must be a positive finite number (A §6: 0 < c_res < 1), got {0}")]
    BadCRes(f64),
    /// The input dimension does not match the conv net's channels × positions.
    #[error(
        "the image model's input has {channels} channels x {positions} positions = {expected} values, but the data has d = {input_dim}"
    )]
    ConvShape {
        /// Input channels d0.
        channels: usize,
        /// Number of positions p.
        positions: usize,
        /// `channels * positions`.
        expected: usize,
        /// The input dimension given.
        input_dim: usize,
    },
    /// An image model's spatial shape has the wrong number of dimensions.
    #[error("the {model} model needs a spatial shape of {allowed} dimensions, got {spatial:?}")]
    SpatialRank {
        /// The model kind.
        model: &'static str,
        /// Which ranks it accepts.
        allowed: &'static str,
        /// The shape given.
        spatial: Vec<usize>,
    },
    /// The patch side must be odd so that zero padding keeps the positions.
    #[error("conv_resnet kernel (patch side) must be odd, got {0}")]
    EvenKernel(usize),
    /// C's output vector has half +1 and half −1 entries.
    #[error("deep_relu width must be even (C: v has half +1 and half -1 entries), got {0}")]
    OddWidth(usize),
    /// The model's input dimension differs from the data's.
    #[error("the model expects inputs of dimension d = {expected}, but the data has d = {got}")]
    InputDim {
        /// The model's d.
        expected: usize,
        /// The data's d.
        got: usize,
    },
    /// A BatchNorm running statistic named as a layer to train.
    #[error(
        "'{0}' is a BatchNorm running statistic, updated by the training forward pass, not a parameter to train"
    )]
    NotAParameter(String),
    /// A layer name that the model does not have.
    #[error("unknown layer '{name}'; this model has layers {available:?}")]
    UnknownLayer {
        /// The name given.
        name: String,
        /// The model's layer names.
        available: Vec<String>,
    },
}

/// The architecture and its hyper-parameters, with the paper's symbols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// A eq. 2: `x^(h) = sqrt(c_σ/m) σ(W^(h) x^(h−1))`, `f = aᵀ x^(H)`; all N(0,1), all trained.
    Fc {
        /// H, the number of hidden layers.
        depth: usize,
        /// m, the width of every hidden layer.
        width: usize,
        /// σ.
        activation: Activation,
    },
    /// A §6: layer 1 as `Fc`, then `x^(h) = x^(h−1) + c_res/(H sqrt(m)) σ(W^(h) x^(h−1))`.
    Resnet {
        /// H.
        depth: usize,
        /// m.
        width: usize,
        /// σ.
        activation: Activation,
        /// c_res, "a small constant" in (0, 1).
        c_res: f64,
    },
    /// A §7: the residual net over `p` positions with the patch operator φ (stride 1, zero
    /// padding), `m` channels throughout and read-out `⟨a, x^(H)⟩`, `a ∈ R^{m×p}`.
    ConvResnet {
        /// H.
        depth: usize,
        /// m, channels of every layer.
        width: usize,
        /// σ.
        activation: Activation,
        /// c_res.
        c_res: f64,
        /// d0, input channels.
        channels: usize,
        /// Positions: `[p]` (1-D) or `[height, width]` (2-D images, p = height·width).
        spatial: Vec<usize>,
        /// Patch side: 3 gives q = 3 in 1-D and q = 3×3 = 9 in 2-D.
        kernel: usize,
    },
    /// B eq. 1: `f = (1/sqrt(m)) Σ_r a_r relu(w_rᵀ x)`, `w_r ~ N(0, I)`, `a_r` uniform ±1, frozen.
    TwoLayer {
        /// m.
        width: usize,
    },
    /// C §3: `f = vᵀ relu(W_Lᵀ … relu(W_1ᵀ x))`, columns of `W_l` ~ N(0, (2/m_l) I), `v` fixed
    /// with half +1 and half −1. Weights are stored as `W_lᵀ` (rows are neurons).
    DeepRelu {
        /// L, the number of hidden layers.
        depth: usize,
        /// m, the width of every hidden layer (even).
        width: usize,
    },
    /// D's ResNet-18 (Figure 1): the CIFAR-style ResNet-18 with BatchNorm, stages of widths
    /// `w, 2w, 4w, 8w` and `outputs` classes; see [`crate::resnet18`].
    Resnet18 {
        /// w, the width of the first stage (64 in D).
        width: usize,
        /// Input channels.
        channels: usize,
        /// `[height, width]` of the input images.
        spatial: Vec<usize>,
        /// Number of outputs (classes).
        outputs: usize,
    },
    /// For D: an ordinary residual MLP with He init and biases, `blocks` residual blocks
    /// `h ← σ(h + W_2 σ(W_1 h + b_1) + b_2)` of width m, and `outputs` linear outputs.
    Practical {
        /// Number of residual blocks.
        blocks: usize,
        /// m.
        width: usize,
        /// σ.
        activation: Activation,
        /// Number of outputs (classes).
        outputs: usize,
    },
}

/// A complete model description: input dimension, architecture and init seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// d, the input dimension (for conv nets, channels × positions).
    pub input_dim: usize,
    /// The architecture.
    pub arch: Architecture,
    /// Seed of the initialization.
    pub seed: u64,
}

/// What a layer's weight matrix does in the forward pass (for analysis and init).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// A dense hidden layer `W ∈ R^{rows×cols}` acting as `W x`.
    Dense,
    /// A conv layer, `W ∈ R^{m × q·c_in}` acting on patches.
    Conv,
    /// The output layer (`a`, `v` or `W_out`).
    Readout,
    /// A bias row vector.
    Bias,
    /// BatchNorm's per-channel scale γ or shift β, `[1, c]`.
    Norm,
    /// A BatchNorm running mean or variance, `[1, c]`: state, never trained.
    Statistic,
}

/// How a layer is initialized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Each entry ~ N(0, std²).
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// Each entry uniform on {−1, +1} (B's `a`).
    RandomSign,
    /// The first half +1, the second half −1 (C's `v`).
    HalfSigns,
    /// All zeros (biases).
    Zeros,
    /// All ones (BatchNorm's γ and running variance).
    Ones,
}

/// One parameter tensor of a network: a named 2-D matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Name, e.g. `W1`, `a` (the tensor's name in safetensors files).
    pub name: String,
    /// Shape `[rows, cols]`.
    pub shape: [usize; 2],
    /// Role in the forward pass.
    pub kind: LayerKind,
    /// Initialization.
    pub init: Init,
    /// Whether the paper trains it.
    pub trained_by_default: bool,
}

fn at_least(what: &'static str, value: usize, min: usize) -> Result<(), ConfigError> {
    if value < min {
        Err(ConfigError::TooSmall { what, min, value })
    } else {
        Ok(())
    }
}

fn check_c_res(c_res: f64) -> Result<(), ConfigError> {
    if c_res.is_finite() && c_res > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::BadCRes(c_res))
    }
}

fn layer(name: impl Into<String>, shape: [usize; 2], kind: LayerKind, init: Init) -> LayerSpec {
    LayerSpec {
        name: name.into(),
        shape,
        kind,
        init,
        trained_by_default: true,
    }
}

const STANDARD: Init = Init::Gaussian { std: 1.0 };

impl ModelConfig {
    /// Checks every size and constant, naming the offending value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("input dimension d", self.input_dim, 1)?;
        match &self.arch {
            Architecture::Fc { depth, width, .. } => {
                at_least("depth H", *depth, 1)?;
                at_least("width m", *width, 1)
            }
            Architecture::Resnet {
                depth,
                width,
                c_res,
                ..
            } => {
                at_least("depth H", *depth, 1)?;
                at_least("width m", *width, 1)?;
                check_c_res(*c_res)
            }
            Architecture::ConvResnet {
                depth,
                width,
                c_res,
                channels,
                spatial,
                kernel,
                ..
            } => {
                at_least("depth H", *depth, 1)?;
                at_least("width m (channels)", *width, 1)?;
                check_c_res(*c_res)?;
                at_least("input channels d0", *channels, 1)?;
                at_least("kernel", *kernel, 1)?;
                if kernel % 2 == 0 {
                    return Err(ConfigError::EvenKernel(*kernel));
                }
                let rank_ok = (1..=2).contains(&spatial.len());
                self.check_images(*channels, spatial, rank_ok, "1 or 2")
            }
            Architecture::TwoLayer { width } => at_least("width m", *width, 1),
            Architecture::DeepRelu { depth, width } => {
                at_least("depth L", *depth, 1)?;
                at_least("width m", *width, 2)?;
                if width % 2 == 1 {
                    return Err(ConfigError::OddWidth(*width));
                }
                Ok(())
            }
            Architecture::Practical { width, outputs, .. } => {
                at_least("width m", *width, 1)?;
                at_least("outputs", *outputs, 1)
            }
            Architecture::Resnet18 {
                width,
                channels,
                spatial,
                outputs,
            } => {
                at_least("width w", *width, 1)?;
                at_least("input channels", *channels, 1)?;
                at_least("outputs", *outputs, 1)?;
                self.check_images(*channels, spatial, spatial.len() == 2, "2")
            }
        }
    }

    /// Checks an image model's spatial shape: its rank (`rank_ok`, described by `allowed` in
    /// the error), its sizes, and that channels × positions is the input dimension.
    fn check_images(
        &self,
        channels: usize,
        spatial: &[usize],
        rank_ok: bool,
        allowed: &'static str,
    ) -> Result<(), ConfigError> {
        if !rank_ok {
            return Err(ConfigError::SpatialRank {
                model: self.kind_name(),
                allowed,
                spatial: spatial.to_vec(),
            });
        }
        for &s in spatial {
            at_least("spatial size", s, 1)?;
        }
        let positions: usize = spatial.iter().product();
        if channels * positions != self.input_dim {
            return Err(ConfigError::ConvShape {
                channels,
                positions,
                expected: channels * positions,
                input_dim: self.input_dim,
            });
        }
        Ok(())
    }

    /// The parameter tensors of the network, in forward order, with shapes, inits and which
    /// layers the paper trains.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let d = self.input_dim;
        match &self.arch {
            Architecture::Fc { depth, width, .. } | Architecture::Resnet { depth, width, .. } => {
                let mut layers: Vec<LayerSpec> = (1..=*depth)
                    .map(|h| {
                        let cols = if h == 1 { d } else { *width };
                        layer(format!("W{h}"), [*width, cols], LayerKind::Dense, STANDARD)
                    })
                    .collect();
                layers.push(layer("a", [1, *width], LayerKind::Readout, STANDARD));
                layers
            }
            Architecture::ConvResnet {
                depth,
                width,
                channels,
                spatial,
                kernel,
                ..
            } => {
                let q = kernel.pow(spatial.len() as u32);
                let positions: usize = spatial.iter().product();
                let mut layers: Vec<LayerSpec> = (1..=*depth)
                    .map(|h| {
                        let c_in = if h == 1 { *channels } else { *width };
                        layer(
                            format!("W{h}"),
                            [*width, q * c_in],
                            LayerKind::Conv,
                            STANDARD,
                        )
                    })
                    .collect();
                layers.push(layer(
                    "a",
                    [1, width * positions],
                    LayerKind::Readout,
                    STANDARD,
                ));
                layers
            }
            Architecture::TwoLayer { width } => vec![
                layer("W", [*width, d], LayerKind::Dense, STANDARD),
                LayerSpec {
                    trained_by_default: false,
                    ..layer("a", [1, *width], LayerKind::Readout, Init::RandomSign)
                },
            ],
            Architecture::DeepRelu { depth, width } => {
                let he_fan_out = Init::Gaussian {
                    std: (2.0 / *width as f64).sqrt(),
                };
                let mut layers: Vec<LayerSpec> = (1..=*depth)
                    .map(|l| {
                        let cols = if l == 1 { d } else { *width };
                        layer(
                            format!("W{l}"),
                            [*width, cols],
                            LayerKind::Dense,
                            he_fan_out,
                        )
                    })
                    .collect();
                layers.push(LayerSpec {
                    trained_by_default: false,
                    ..layer("v", [1, *width], LayerKind::Readout, Init::HalfSigns)
                });
                layers
            }
            Architecture::Practical {
                blocks,
                width,
                outputs,
                ..
            } => {
                let he = |fan_in: usize| Init::Gaussian {
                    std: (2.0 / fan_in as f64).sqrt(),
                };
                let mut layers = vec![
                    layer("W_in", [*width, d], LayerKind::Dense, he(d)),
                    layer("b_in", [1, *width], LayerKind::Bias, Init::Zeros),
                ];
                for b in 1..=*blocks {
                    for k in 1..=2 {
                        layers.push(layer(
                            format!("block{b}.W{k}"),
                            [*width, *width],
                            LayerKind::Dense,
                            he(*width),
                        ));
                        layers.push(layer(
                            format!("block{b}.b{k}"),
                            [1, *width],
                            LayerKind::Bias,
                            Init::Zeros,
                        ));
                    }
                }
                let lecun = Init::Gaussian {
                    std: (1.0 / *width as f64).sqrt(),
                };
                layers.push(layer(
                    "W_out",
                    [*outputs, *width],
                    LayerKind::Readout,
                    lecun,
                ));
                layers.push(layer("b_out", [1, *outputs], LayerKind::Bias, Init::Zeros));
                layers
            }
            Architecture::Resnet18 {
                width,
                channels,
                outputs,
                ..
            } => crate::resnet18::layers(*channels, *width, *outputs),
        }
    }

    /// Number of network outputs per sample (1 for every paper model).
    pub fn outputs(&self) -> usize {
        match &self.arch {
            Architecture::Practical { outputs, .. } | Architecture::Resnet18 { outputs, .. } => {
                *outputs
            }
            _ => 1,
        }
    }

    /// Total number of parameters (trained or not; BatchNorm's running statistics are state,
    /// not parameters).
    pub fn parameter_count(&self) -> usize {
        self.layers()
            .iter()
            .filter(|l| l.kind != LayerKind::Statistic)
            .map(|l| l.shape[0] * l.shape[1])
            .sum()
    }

    /// Whether the forward pass differs between training and evaluation (BatchNorm).
    pub fn has_batch_statistics(&self) -> bool {
        matches!(self.arch, Architecture::Resnet18 { .. })
    }

    /// A short name of the architecture (`fc`, `resnet`, …).
    pub fn kind_name(&self) -> &'static str {
        match self.arch {
            Architecture::Fc { .. } => "fc",
            Architecture::Resnet { .. } => "resnet",
            Architecture::ConvResnet { .. } => "conv_resnet",
            Architecture::TwoLayer { .. } => "two_layer",
            Architecture::DeepRelu { .. } => "deep_relu",
            Architecture::Practical { .. } => "practical",
            Architecture::Resnet18 { .. } => "resnet18",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(depth: usize, width: usize) -> ModelConfig {
        ModelConfig {
            input_dim: 5,
            arch: Architecture::Fc {
                depth,
                width,
                activation: Activation::Softplus,
            },
            seed: 0,
        }
    }

    #[test]
    fn rejects_zero_sizes_naming_the_value() {
        let err = fc(0, 8).validate().unwrap_err();
        assert_eq!(err.to_string(), "depth H must be at least 1, got 0");
        assert!(
            fc(2, 0)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("width m")
        );
    }

    #[test]
    fn json_round_trip() {
        let cfg = fc(3, 16);
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains("\"kind\":\"fc\""), "{text}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&text).unwrap(), cfg);
    }

    #[test]
    fn parameter_count_of_fc() {
        // W1: 16x5, W2..W3: 16x16, a: 16.
        assert_eq!(fc(3, 16).parameter_count(), 16 * 5 + 2 * 256 + 16);
    }
}
