//! Argument groups shared by the subcommands: model, data, device.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use overparam_data::{Dataset, Labels, sphere};
use overparam_device::Compute;
use overparam_models::{Activation, Architecture, ModelConfig, Network, load_safetensors};
use std::path::PathBuf;

/// The architectures, by the name used in configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ModelKind {
    /// A eq. 2: fully-connected, sqrt(c_σ/m) scaling, all layers N(0,1) and trained.
    Fc,
    /// A §6: ResNet with branches scaled by c_res/(H sqrt(m)).
    Resnet,
    /// A §7: convolutional ResNet (patch operator, zero padding, full read-out).
    ConvResnet,
    /// B: two-layer ReLU, frozen ±1 output, 1/sqrt(m) scaling.
    TwoLayer,
    /// C: deep ReLU, fan-out He init N(0, 2/m), frozen ±1 output.
    DeepRelu,
    /// D: practical residual MLP with He init and biases.
    Practical,
}

/// Which network to build.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Architecture.
    #[arg(long, value_enum, default_value = "fc")]
    pub model: ModelKind,
    /// H (A) or L (C): number of hidden layers; for `practical` the number of residual blocks.
    #[arg(long, default_value_t = 2)]
    pub depth: usize,
    /// m: width of every hidden layer (channels for conv_resnet).
    #[arg(long, default_value_t = 256)]
    pub width: usize,
    /// σ: activation (fc, resnet, conv_resnet, practical; B and C are ReLU by definition).
    #[arg(long)]
    pub activation: Option<Activation>,
    /// c_res: residual branch constant, 0 < c_res < 1 (resnet, conv_resnet).
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub c_res: f64,
    /// d0: input channels (conv_resnet).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Positions p of conv_resnet: `16` (1-D) or `8x8` (2-D image).
    #[arg(long, default_value = "16")]
    pub spatial: String,
    /// Patch side of conv_resnet: 3 gives q = 3 (1-D) or 3x3 (2-D).
    #[arg(long, default_value_t = 3)]
    pub kernel: usize,
    /// Number of outputs (practical).
    #[arg(long, default_value_t = 1)]
    pub outputs: usize,
    /// Seed of the initialization θ(0).
    #[arg(long, default_value_t = 0)]
    pub model_seed: u64,
    /// Read the model config from this JSON file instead of the options above.
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// Start from the parameters in this safetensors file (its embedded config wins).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
}

/// Where the training data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// n: number of training samples (points uniform on the unit sphere S^{d-1}, B §5).
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// d: input dimension (for conv_resnet, defaults to channels x positions).
    #[arg(long)]
    pub d: Option<usize>,
    /// Labels: y ~ N(0,1) (`gaussian`, B) or uniform ±1 (`sign`, C).
    #[arg(long, value_enum, default_value = "gaussian")]
    pub labels: LabelKind,
    /// Seed of the data.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
}

/// Label distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelKind {
    /// y ~ N(0, 1).
    Gaussian,
    /// y uniform on {-1, +1}.
    Sign,
}

/// Which backend and precision.
#[derive(Debug, Clone, Args)]
pub struct ComputeArgs {
    /// Backend: cpu (the default CPU backend, flex), flex, ndarray, or wgpu (needs --features wgpu).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float precision: f32 or f64 (f64 is not available on wgpu).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

impl ComputeArgs {
    /// The validated backend/precision pair.
    pub fn compute(&self) -> anyhow::Result<Compute> {
        Ok(Compute::parse(&self.device, &self.dtype)?)
    }
}

fn parse_spatial(text: &str) -> anyhow::Result<Vec<usize>> {
    text.split('x')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .with_context(|| format!("--spatial '{text}': expected `p` or `HxW`"))
        })
        .collect()
}

impl ModelArgs {
    /// The model config these options describe, for inputs of dimension `d` (`None`: derive
    /// it, which only conv_resnet can).
    pub fn config(&self, d: Option<usize>) -> anyhow::Result<ModelConfig> {
        if let Some(path) = &self.model_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading model config {}", path.display()))?;
            let config: ModelConfig = serde_json::from_str(&text)
                .with_context(|| format!("parsing model config {}", path.display()))?;
            config.validate()?;
            return Ok(config);
        }
        let relu_only = matches!(self.model, ModelKind::TwoLayer | ModelKind::DeepRelu);
        if relu_only && self.activation.is_some_and(|a| a != Activation::Relu) {
            bail!(
                "--activation {}: the {:?} model is ReLU by definition (papers B and C)",
                self.activation.expect("checked"),
                self.model
            );
        }
        let activation = self.activation.unwrap_or(Activation::Softplus);
        let (depth, width, c_res) = (self.depth, self.width, self.c_res);
        let spatial = parse_spatial(&self.spatial)?;
        let positions: usize = spatial.iter().product();
        let arch = match self.model {
            ModelKind::Fc => Architecture::Fc {
                depth,
                width,
                activation,
            },
            ModelKind::Resnet => Architecture::Resnet {
                depth,
                width,
                activation,
                c_res,
            },
            ModelKind::ConvResnet => Architecture::ConvResnet {
                depth,
                width,
                activation,
                c_res,
                channels: self.channels,
                spatial,
                kernel: self.kernel,
            },
            ModelKind::TwoLayer => Architecture::TwoLayer { width },
            ModelKind::DeepRelu => Architecture::DeepRelu { depth, width },
            ModelKind::Practical => Architecture::Practical {
                blocks: depth,
                width,
                activation,
                outputs: self.outputs,
            },
        };
        let input_dim = match (d, self.model) {
            (Some(d), _) => d,
            (None, ModelKind::ConvResnet) => self.channels * positions,
            (None, _) => 10,
        };
        let config = ModelConfig {
            input_dim,
            arch,
            seed: self.model_seed,
        };
        config.validate()?;
        Ok(config)
    }

    /// The network: loaded from `--init-from`, or freshly initialized.
    pub fn network(&self, config: &ModelConfig, compute: &Compute) -> anyhow::Result<Network> {
        match &self.init_from {
            Some(path) => Ok(load_safetensors(path, compute, Some(config))?),
            None => Ok(Network::init(config, compute)?),
        }
    }
}

impl DataArgs {
    /// The dataset for a model with input dimension `d`.
    pub fn dataset(&self, d: usize) -> anyhow::Result<Dataset> {
        let labels = match self.labels {
            LabelKind::Gaussian => Labels::Gaussian,
            LabelKind::Sign => Labels::Sign,
        };
        Ok(sphere(self.n, d, labels, self.data_seed)?)
    }
}
