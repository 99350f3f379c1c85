//! Argument groups shared by the subcommands: model, data, device.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use overparam_analysis::SpectrumMode;
use overparam_data::{
    Cifar100Labels, Dataset, Degeneracy, FASHION_MNIST_DIR, ImageSet, InputReport, Labels, Prepare,
    Purpose, Split, TargetEncoding, check_inputs, npy_dataset, random_images, read_cifar10_dir,
    read_cifar100_dir, read_mnist_layout, read_svhn_dir, separated_binary, sphere,
};
use overparam_device::{Compute, Precision};
use overparam_models::{
    Activation, Architecture, LayerKind, ModelConfig, Network, load_safetensors,
};
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
    /// D Fig. 1: CIFAR-style ResNet-18 with BatchNorm, stage widths w, 2w, 4w, 8w (--width w).
    Resnet18,
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
    /// m: width of every hidden layer (channels for conv_resnet; the first stage's width w for resnet18).
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
    /// Number of outputs (practical, resnet18: the classes).
    #[arg(long, default_value_t = 1)]
    pub outputs: usize,
    /// Seed of the initialization θ(0); it keys the init's own random stream, independent of
    /// the data's and the batch order's even when the seeds are equal.
    #[arg(long, default_value_t = 0)]
    pub model_seed: u64,
    /// Read the model config from this JSON file instead of the options above.
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// Start from the parameters in this safetensors file (its embedded config wins).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
}

/// Data sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum DataSource {
    /// n points uniform on the unit sphere S^{d-1} (B §5).
    Sphere,
    /// C's binary set: ‖x‖ = 1, last coordinate μ, classes at least φ apart.
    Separated,
    /// Fashion-MNIST from --data-dir (default: the Debian package's directory).
    FashionMnist,
    /// Any MNIST-layout IDX directory (MNIST, KMNIST) given by --data-dir.
    Idx,
    /// The CIFAR-10 binary batches in --data-dir.
    Cifar10,
    /// CIFAR-100's binary train.bin / test.bin in --data-dir (the 100 fine classes; --coarse
    /// for the 20 superclasses).
    Cifar100,
    /// SVHN's cropped digits, train_32x32.mat / test_32x32.mat in --data-dir (label 10 read
    /// as digit 0).
    Svhn,
    /// D's random set: random pixels (--image-shape) with random labels.
    RandomImages,
    /// Your own arrays: --inputs X.npy ((n, d), (n, c, l) or (n, c, h, w); float or integer)
    /// and --targets y.npy ((n,) or (n, k); needed by train).
    Npy,
}

/// Where the training data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data source.
    #[arg(long, value_enum, default_value = "sphere")]
    pub data: DataSource,
    /// n: number of training samples (a seeded subsample for real data; default all of them).
    #[arg(long)]
    pub n: Option<usize>,
    /// d: input dimension of synthetic data (for conv_resnet, defaults to channels x positions).
    #[arg(long)]
    pub d: Option<usize>,
    /// Labels of `sphere`: y ~ N(0,1) (`gaussian`, B), uniform ±1 (`sign`), or a random
    /// two-layer ReLU teacher of width --teacher-width (`teacher`).
    #[arg(long, value_enum, default_value = "gaussian")]
    pub labels: LabelKind,
    /// Width m of the random teacher.
    #[arg(long, default_value_t = 100)]
    pub teacher_width: usize,
    /// μ of `separated`: the fixed last coordinate, 0 < μ < 1 (C Assumption 3.4).
    #[arg(long, default_value_t = 0.5)]
    pub mu: f64,
    /// φ of `separated`: the least distance between the classes (C Assumption 3.5).
    #[arg(long, default_value_t = 0.05)]
    pub phi: f64,
    /// Directory of real data files (fashion-mnist, idx, cifar10).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Read the test files instead of the training files.
    #[arg(long)]
    pub test_split: bool,
    /// CIFAR-100: the 20 superclasses instead of the 100 classes.
    #[arg(long)]
    pub coarse: bool,
    /// Keep these classes (comma-separated, in this order; two classes give ±1 labels).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<u32>>,
    /// Subtract the mean image.
    #[arg(long)]
    pub center: bool,
    /// Inputs of --data npy: a .npy array of shape (n, d), (n, c, l) or (n, c, h, w).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Targets of --data npy: a .npy array of shape (n,) or (n, k).
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// Keep raw norms instead of normalizing each input to ‖x‖ = 1 (A and B assume unit norm).
    #[arg(long)]
    pub no_unit_norm: bool,
    /// Replace labels by uniformly random ones (D).
    #[arg(long)]
    pub random_labels: bool,
    /// Average-pool images by non-overlapping FxF blocks first (28x28 Fashion-MNIST with 7
    /// gives 4x4: a small image set for conv_resnet kernels, whose size grows as (n·p)²).
    #[arg(long, default_value_t = 1)]
    pub pool: usize,
    /// Image shape of `random-images`: CxHxW.
    #[arg(long, default_value = "3x24x24")]
    pub image_shape: String,
    /// Warn instead of refusing when two inputs are parallel or duplicated (then λ0 = 0).
    #[arg(long)]
    pub allow_degenerate: bool,
    /// Seed of the data: inputs, labels, teacher, subsample and split each draw from their own
    /// stream of this seed, independent of the init's and the batch order's.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
}

/// Label distributions of the sphere data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelKind {
    /// y ~ N(0, 1).
    Gaussian,
    /// y uniform on {-1, +1}.
    Sign,
    /// y from a random two-layer ReLU network.
    Teacher,
}

/// `--spectrum`: which eigenvalues of the Gram or kernel matrices to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpectrumKind {
    /// Every eigenvalue up to n = 2000, λ_min and λ_max only above.
    Auto,
    /// λ_min and λ_max by Lanczos (λ_min on the inverse via one Cholesky factorization).
    Extremes,
    /// Every eigenvalue (full symmetric eigendecomposition).
    Full,
    /// No spectra.
    None,
}

impl From<SpectrumKind> for SpectrumMode {
    fn from(kind: SpectrumKind) -> Self {
        match kind {
            SpectrumKind::Auto => SpectrumMode::Auto,
            SpectrumKind::Extremes => SpectrumMode::Extremes,
            SpectrumKind::Full => SpectrumMode::Full,
            SpectrumKind::None => SpectrumMode::None,
        }
    }
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
        let compute = Compute::parse(&self.device, &self.dtype)?;
        if let Some(note) = compute.host_note() {
            eprintln!("{note}");
        }
        Ok(compute)
    }
}

impl ModelArgs {
    /// The input dimension of synthetic vector data: `--d`, else channels × positions for
    /// conv_resnet, else 10.
    pub fn synthetic_dim(&self, d: Option<usize>) -> anyhow::Result<usize> {
        Ok(match (d, self.model) {
            (Some(d), _) => d,
            (None, ModelKind::ConvResnet | ModelKind::Resnet18) => {
                self.channels
                    * parse_dims(&self.spatial, "--spatial")?
                        .iter()
                        .product::<usize>()
            }
            (None, _) => 10,
        })
    }

    /// The model config these options describe for `data`. A conv_resnet on image data
    /// (shape `[channels, height, width]`) takes its channels and positions from the images.
    pub fn config(&self, data: &Dataset) -> anyhow::Result<ModelConfig> {
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
        let (channels, spatial) = match data.shape() {
            [c, h, w] => (*c, vec![*h, *w]),
            _ => (self.channels, parse_dims(&self.spatial, "--spatial")?),
        };
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
                channels,
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
            ModelKind::Resnet18 => Architecture::Resnet18 {
                width,
                channels,
                spatial,
                outputs: self.outputs,
            },
        };
        let config = ModelConfig {
            input_dim: data.input_dim(),
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

fn parse_dims(text: &str, option: &str) -> anyhow::Result<Vec<usize>> {
    text.split('x')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .with_context(|| format!("{option} '{text}': expected sizes joined by 'x'"))
        })
        .collect()
}

/// What every subcommand starts from: the device, the checked data and the network.
pub struct Setup {
    /// Backend and precision.
    pub compute: Compute,
    /// The data and its input report.
    pub checked: CheckedData,
    /// The network (initialized, or loaded with `--init-from`).
    pub network: Network,
}

/// Builds the device, the data (checked), the model config for that data, and the network.
pub fn setup(model: &ModelArgs, data: &DataArgs, compute: &ComputeArgs) -> anyhow::Result<Setup> {
    let compute = compute.compute()?;
    let checked = data.dataset(model.synthetic_dim(data.d)?)?;
    let config = model.config(&checked.data)?;
    let n = checked.data.len();
    super::ensure_fits(
        network_bytes(&config, n, compute.precision()),
        &format!(
            "a network of {} parameters on {n} samples",
            config.parameter_count()
        ),
        "use a smaller width or depth, fewer samples (--n), or a machine with more memory",
    )?;
    let network = model.network(&config, &compute)?;
    Ok(Setup {
        compute,
        checked,
        network,
    })
}

/// A generous estimate of what one full-batch forward and backward pass holds: every
/// parameter four times (values, gradient, the initial copy, the optimizer's step) and every
/// layer's outputs on all n samples three times (pre-activation, activation, gradient), conv
/// layers with their patch matrices.
pub fn network_bytes(config: &ModelConfig, n: usize, precision: Precision) -> u128 {
    let size = match precision {
        Precision::F32 => 4,
        Precision::F64 => 8,
    };
    let positions: u128 = match &config.arch {
        Architecture::ConvResnet { spatial, .. } | Architecture::Resnet18 { spatial, .. } => {
            spatial.iter().product::<usize>() as u128
        }
        _ => 1,
    };
    let n = n as u128;
    let values: u128 = config
        .layers()
        .iter()
        .map(|l| {
            let [rows, cols] = l.shape.map(|s| s as u128);
            let outputs = match l.kind {
                LayerKind::Dense => n * rows,
                LayerKind::Conv => n * positions * (rows + cols),
                LayerKind::Readout | LayerKind::Bias | LayerKind::Norm | LayerKind::Statistic => {
                    n * cols.min(rows.max(1))
                }
            };
            4 * rows * cols + 3 * outputs
        })
        .sum();
    values * size
}

/// A dataset and what its input checks found.
pub struct CheckedData {
    /// The data.
    pub data: Dataset,
    /// The input report (smallest angle, norms, warnings).
    pub report: InputReport,
    /// For C's separated set, the achieved φ.
    pub phi: Option<f64>,
}

impl DataArgs {
    /// The dataset; `d` is the input dimension of synthetic vector data (ignored for images).
    /// Runs the input checks (refusing parallel or duplicated inputs unless
    /// `--allow-degenerate`) and prints their warnings to stderr.
    pub fn dataset(&self, d: usize) -> anyhow::Result<CheckedData> {
        let (data, phi) = self.load(d)?;
        self.check(data, phi)
    }

    /// The dataset without the input checks (and, for C's separated set, the achieved φ):
    /// for commands that first check that their work fits in memory.
    pub fn load(&self, d: usize) -> anyhow::Result<(Dataset, Option<f64>)> {
        let n_or = |default: usize| self.n.unwrap_or(default);
        let mut phi = None;
        let prepare = |set: ImageSet| -> anyhow::Result<Dataset> {
            let two = self.classes.as_ref().is_some_and(|c| c.len() == 2);
            let set = if self.pool > 1 {
                set.pool(self.pool)?
            } else {
                set
            };
            Ok(set.prepare(&Prepare {
                classes: self.classes.clone(),
                n: self.n,
                seed: self.data_seed,
                subsample: if self.test_split {
                    Purpose::TestSubsample
                } else {
                    Purpose::Subsample
                },
                keep_channels: true,
                center: self.center,
                unit_norm: !self.no_unit_norm,
                random_labels: self.random_labels,
                encoding: if two {
                    TargetEncoding::Sign
                } else {
                    TargetEncoding::OneHot
                },
            })?)
        };
        let split = if self.test_split {
            Split::Test
        } else {
            Split::Train
        };
        let dir = |default: Option<&str>| -> anyhow::Result<PathBuf> {
            match (&self.data_dir, default) {
                (Some(dir), _) => Ok(dir.clone()),
                (None, Some(default)) => Ok(PathBuf::from(default)),
                (None, None) => bail!("--data {:?} needs --data-dir", self.data),
            }
        };
        let data = match self.data {
            DataSource::Sphere => {
                let labels = match self.labels {
                    LabelKind::Gaussian => Labels::Gaussian,
                    LabelKind::Sign => Labels::Sign,
                    LabelKind::Teacher => Labels::Teacher {
                        width: self.teacher_width,
                        seed: self.data_seed,
                    },
                };
                sphere(n_or(100), d, labels, self.data_seed)?
            }
            DataSource::Separated => {
                let out = separated_binary(n_or(100), d, self.mu, self.phi, self.data_seed)?;
                phi = Some(out.phi);
                out.data
            }
            DataSource::FashionMnist => {
                prepare(read_mnist_layout(&dir(Some(FASHION_MNIST_DIR))?, split)?)?
            }
            DataSource::Idx => prepare(read_mnist_layout(&dir(None)?, split)?)?,
            DataSource::Cifar10 => prepare(read_cifar10_dir(&dir(None)?, split)?)?,
            DataSource::Cifar100 => {
                let labels = if self.coarse {
                    Cifar100Labels::Coarse
                } else {
                    Cifar100Labels::Fine
                };
                prepare(read_cifar100_dir(&dir(None)?, split, labels)?)?
            }
            DataSource::Svhn => prepare(read_svhn_dir(&dir(None)?, split)?)?,
            DataSource::Npy => {
                let inputs = self
                    .inputs
                    .as_deref()
                    .context("--data npy needs --inputs X.npy")?;
                let all = npy_dataset(inputs, self.targets.as_deref(), !self.no_unit_norm)?;
                match self.n {
                    Some(n) => all.subsample(n, self.data_seed)?,
                    None => all,
                }
            }
            DataSource::RandomImages => {
                let shape = parse_dims(&self.image_shape, "--image-shape")?;
                let classes = self.classes.as_ref().map_or(10, |c| c.len() as u32);
                prepare(random_images(n_or(1000), &shape, classes, self.data_seed)?)?
            }
        };
        Ok((data, phi))
    }

    /// Runs the input checks on `data` ([`DataArgs::dataset`]).
    pub fn check(&self, data: Dataset, phi: Option<f64>) -> anyhow::Result<CheckedData> {
        let policy = if self.allow_degenerate {
            Degeneracy::Warn
        } else {
            Degeneracy::Refuse
        };
        let report = check_inputs(&data, policy, !self.no_unit_norm)?;
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(CheckedData { data, report, phi })
    }
}
