//! The papers' standard setups, shared by experiments and benchmarks.

use anyhow::Context;
use overparam_data::{
    Cifar100Labels, DataError, Dataset, FASHION_MNIST_DIR, ImageSet, Labels, Prepare, Purpose,
    Split, TargetEncoding, read_cifar10_dir, read_cifar100_dir, read_mnist_layout, read_svhn_dir,
    sphere,
};
use overparam_models::{Activation, Architecture, ModelConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// B §5 (Fig. 1): n points uniform on the unit sphere in R^d with labels y ~ N(0, 1), and the
/// two-layer ReLU net of width m (first layer trained, ±1 output frozen). One `seed` serves
/// both: data, labels and init each draw from their own stream of it (`overparam_rng`).
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

/// C's deep ReLU net (C eq. 2–3: He init of the hidden layers, fixed ±1 read-out) of depth L and
/// width m, as `sgd_classification` trains it.
pub fn c_deep_relu(input_dim: usize, depth: usize, width: usize, seed: u64) -> ModelConfig {
    ModelConfig {
        input_dim,
        arch: Architecture::DeepRelu { depth, width },
        seed,
    }
}

/// D's practical residual MLP (`blocks` residual blocks of width `width`, He init, biases) with
/// `outputs` classes, as `practical_sizes` trains it.
pub fn d_practical(
    input_dim: usize,
    blocks: usize,
    width: usize,
    activation: Activation,
    outputs: usize,
    seed: u64,
) -> ModelConfig {
    ModelConfig {
        input_dim,
        arch: Architecture::Practical {
            blocks,
            width,
            activation,
            outputs,
        },
        seed,
    }
}

/// The image sets of D's Figure 1 that are read from disk (D's "Random" is drawn instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum FigureSet {
    /// Fashion-MNIST (IDX in `<root>/fashion-mnist`, else a given folder such as the Debian
    /// package's).
    FashionMnist,
    /// MNIST (IDX files in `<root>/mnist`).
    Mnist,
    /// Kuzushiji-MNIST (IDX files in `<root>/kmnist`).
    Kmnist,
    /// CIFAR-10 binary batches in `<root>/cifar10`.
    Cifar10,
    /// CIFAR-100 binary `train.bin`/`test.bin` in `<root>/cifar100` (100 fine classes).
    Cifar100,
    /// SVHN cropped digits `train_32x32.mat`/`test_32x32.mat` in `<root>/svhn`.
    Svhn,
}

impl FigureSet {
    /// The set's name (also its folder under the data root).
    pub fn name(self) -> &'static str {
        match self {
            FigureSet::FashionMnist => "fashion-mnist",
            FigureSet::Mnist => "mnist",
            FigureSet::Kmnist => "kmnist",
            FigureSet::Cifar10 => "cifar10",
            FigureSet::Cifar100 => "cifar100",
            FigureSet::Svhn => "svhn",
        }
    }

    /// The folder the set is read from: `<root>/<name>`, or for Fashion-MNIST `fashion_dir`
    /// (e.g. [`FASHION_MNIST_DIR`], the Debian package's folder) when that does not exist.
    pub fn dir(self, root: &Path, fashion_dir: &Path) -> PathBuf {
        let dir = root.join(self.name());
        if self == FigureSet::FashionMnist && !dir.exists() {
            fashion_dir.to_path_buf()
        } else {
            dir
        }
    }

    /// Reads one split from `dir`.
    pub fn read(self, dir: &Path, split: Split) -> Result<ImageSet, DataError> {
        match self {
            FigureSet::FashionMnist | FigureSet::Mnist | FigureSet::Kmnist => {
                read_mnist_layout(dir, split)
            }
            FigureSet::Cifar10 => read_cifar10_dir(dir, split),
            FigureSet::Cifar100 => read_cifar100_dir(dir, split, Cifar100Labels::Fine),
            FigureSet::Svhn => read_svhn_dir(dir, split),
        }
    }
}

/// D's ResNet-18 for `[channels, height, width]` images and `outputs` classes.
pub fn d_resnet18(shape: &[usize], width: usize, outputs: usize, seed: u64) -> ModelConfig {
    ModelConfig {
        input_dim: shape.iter().product(),
        arch: Architecture::Resnet18 {
            width,
            channels: shape[0],
            spatial: shape[1..].to_vec(),
            outputs,
        },
        seed,
    }
}

/// D's images prepared as practical networks take them: `n` rows drawn from the `subsample`
/// stream of `seed` ([`Purpose::Subsample`] for training rows, [`Purpose::TestSubsample`] for
/// test rows), optionally random labels, pixels in [0, 1] with the mean image subtracted (not
/// the unit norm of A–C: with He init it keeps the first pre-activations O(1) instead of
/// O(1/sqrt(d))), one-hot targets.
pub fn d_images(
    images: &ImageSet,
    n: Option<usize>,
    seed: u64,
    subsample: Purpose,
    random_labels: bool,
) -> Result<Dataset, DataError> {
    images.prepare(&Prepare {
        n,
        seed,
        subsample,
        random_labels,
        center: true,
        unit_norm: false,
        encoding: TargetEncoding::OneHot,
        ..Prepare::default()
    })
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

/// A's deep architectures: the two compared throughout its §5–§6, and the conv ResNet of §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeepArch {
    /// A §5, eq. 2.
    Fc,
    /// A §6, with `c_res`.
    Resnet,
    /// A §7 on single-channel square images: 3 × 3 patches (q = 9), zero padding, `c_res`.
    #[value(name = "conv_resnet")]
    ConvResnet,
}

impl DeepArch {
    /// Every architecture, in the order of legends and colours.
    pub const ALL: [DeepArch; 3] = [DeepArch::Fc, DeepArch::Resnet, DeepArch::ConvResnet];

    /// The short name used in ids and legends.
    pub fn name(self) -> &'static str {
        match self {
            DeepArch::Fc => "fc",
            DeepArch::Resnet => "resnet",
            DeepArch::ConvResnet => "conv_resnet",
        }
    }
}

/// A's fc, resnet or conv ResNet with H = `depth` hidden layers of width m (channels) on inputs
/// of shape `shape` (`[d]` for fc and resnet, `[channels, height, width]` for conv_resnet).
pub fn a_deep(
    arch: DeepArch,
    depth: usize,
    width: usize,
    activation: Activation,
    c_res: f64,
    shape: &[usize],
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
        DeepArch::ConvResnet => Architecture::ConvResnet {
            depth,
            width,
            activation,
            c_res,
            channels: shape[0],
            spatial: shape[1..].to_vec(),
            kernel: 3,
        },
    };
    ModelConfig {
        input_dim: shape.iter().product(),
        arch,
        seed,
    }
}

/// The images of A's conv ResNet runs (A §7 assumes `‖x_i‖_F = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// Gaussian pixels scaled to unit Frobenius norm, targets y ~ N(0, 1).
    Synthetic,
    /// Fashion-MNIST sandals (5) vs sneakers (7), average-pooled to the image side, unit
    /// Frobenius norm, targets ±1.
    FashionMnist,
}

/// The data of A's runs: fc and resnet take n points uniform on the unit sphere in R^d with
/// y ~ N(0, 1) (A §3: `‖x_i‖ = 1`, `|y_i| = O(1)`); conv_resnet takes n single-channel square
/// images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct DeepData {
    /// d, the input dimension of fc and resnet.
    #[arg(long, default_value_t = 10)]
    pub d: usize,
    /// Images of conv_resnet.
    #[arg(long, value_enum, default_value = "synthetic")]
    pub images: ImageSource,
    /// Side of conv_resnet's images (p = side² positions; Fashion-MNIST: a divisor of 28).
    #[arg(long, default_value_t = 4)]
    pub image_side: usize,
    /// Folder with the Fashion-MNIST IDX files (for --images fashion-mnist).
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    pub fashion_dir: PathBuf,
}

impl DeepData {
    /// For titles: `d=10`, and the images when conv_resnet is among `archs`.
    pub fn describe(&self, archs: impl IntoIterator<Item = DeepArch>) -> String {
        let side = self.image_side;
        let images = match self.images {
            ImageSource::Synthetic => "Gaussian",
            ImageSource::FashionMnist => "Fashion-MNIST",
        };
        let (dense, conv) = archs.into_iter().fold((false, false), |(d, c), a| {
            (
                d || a != DeepArch::ConvResnet,
                c || a == DeepArch::ConvResnet,
            )
        });
        match (dense, conv) {
            (true, true) => format!("d={}; conv: {side}×{side} {images} images", self.d),
            (false, true) => format!("{side}×{side} {images} images"),
            _ => format!("d={}", self.d),
        }
    }

    /// The n samples of one run of `arch`, drawn with `seed`.
    pub fn samples(&self, arch: DeepArch, n: usize, seed: u64) -> anyhow::Result<Dataset> {
        let side = self.image_side;
        match (arch, self.images) {
            (DeepArch::Fc | DeepArch::Resnet, _) => Ok(sphere(n, self.d, Labels::Gaussian, seed)?),
            (DeepArch::ConvResnet, ImageSource::Synthetic) => {
                Ok(sphere(n, side * side, Labels::Gaussian, seed)?
                    .with_shape(vec![1, side, side])?)
            }
            (DeepArch::ConvResnet, ImageSource::FashionMnist) => {
                let images =
                    read_mnist_layout(&self.fashion_dir, Split::Train).with_context(|| {
                        format!(
                            "reading Fashion-MNIST from {} (install it with `apt-get install \
                         dataset-fashion-mnist`, pass --fashion-dir, or use --images synthetic)",
                            self.fashion_dir.display()
                        )
                    })?;
                let factor = images.shape[1] / side.max(1);
                let pooled = images.pool(factor)?;
                anyhow::ensure!(
                    pooled.shape[1..] == [side, side],
                    "--image-side {side} does not divide the {:?} Fashion-MNIST images",
                    images.shape
                );
                Ok(pooled.prepare(&Prepare {
                    classes: Some(vec![5, 7]),
                    n: Some(n),
                    seed,
                    keep_channels: true,
                    encoding: TargetEncoding::Sign,
                    ..Prepare::default()
                })?)
            }
        }
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
    /// Architectures (conv_resnet: A §7 on the images of --images; q·m² weights per layer,
    /// so give it smaller widths).
    #[arg(long, value_delimiter = ',', default_value = "fc,resnet")]
    pub archs: Vec<DeepArch>,
    /// Depths H (default: the experiment's full or quick grid, see its --help text above).
    #[arg(long, value_delimiter = ',')]
    pub depths: Option<Vec<usize>>,
    /// Widths m (default: the experiment's full or quick grid).
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DeepData,
    /// σ (A asks for a smooth, analytic, non-polynomial activation).
    #[arg(long, default_value = "softplus")]
    pub activation: Activation,
    /// c_res of the resnet (A §6).
    #[arg(long, default_value_t = 0.5)]
    pub c_res: f64,
}

/// One run of an A grid: (seed, architecture, H, m) and the shared setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeepRun {
    /// fc, resnet or conv_resnet.
    pub arch: DeepArch,
    /// H.
    pub depth: usize,
    /// m.
    pub width: usize,
    /// n.
    pub n: usize,
    /// Where the samples come from.
    pub data: DeepData,
    /// σ.
    pub activation: Activation,
    /// c_res.
    pub c_res: f64,
    /// Seed of data and init (each from its own stream of it).
    pub seed: u64,
}

impl DeepRun {
    /// The samples and the model of this run.
    pub fn setup(&self) -> anyhow::Result<(Dataset, ModelConfig)> {
        let data = self.data.samples(self.arch, self.n, self.seed)?;
        let config = a_deep(
            self.arch,
            self.depth,
            self.width,
            self.activation,
            self.c_res,
            data.shape(),
            self.seed,
        );
        Ok((data, config))
    }

    /// `fc_H2_m64_seed0`, the run's id in a sweep.
    pub fn id(&self) -> String {
        format!(
            "{}_H{}_m{}_seed{}",
            self.arch.name(),
            self.depth,
            self.width,
            self.seed
        )
    }
}

impl DeepArgs {
    /// Every (seed, architecture, H, m) on n samples, with the given defaults for H and m.
    pub fn runs(
        &self,
        seeds: &[u64],
        depths: &[usize],
        widths: &[usize],
        n: usize,
    ) -> Vec<DeepRun> {
        let depths = self.depths.as_deref().unwrap_or(depths);
        let widths = self.widths.as_deref().unwrap_or(widths);
        let mut runs = Vec::new();
        for &seed in seeds {
            for &arch in &self.archs {
                for &depth in depths {
                    for &width in widths {
                        runs.push(DeepRun {
                            arch,
                            depth,
                            width,
                            n,
                            data: self.data.clone(),
                            activation: self.activation,
                            c_res: self.c_res,
                            seed,
                        });
                    }
                }
            }
        }
        runs
    }
}
