//! The papers' networks as one Burn module whose forward pass is interpreted from its config.

use crate::config::{Architecture, ConfigError, Init, LayerSpec, ModelConfig};
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::module::{conv1d, conv2d};
use burn::tensor::ops::ConvOptions;
use overparam_device::Compute;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A network of any paper: named 2-D parameter matrices plus the config that says how the
/// forward pass combines them.
#[derive(Module, Debug)]
pub struct Network {
    /// The parameters, in the order of [`ModelConfig::layers`].
    pub params: Vec<Param<Tensor<2>>>,
    #[module(skip)]
    config: ModelConfig,
    #[module(skip)]
    specs: Vec<LayerSpec>,
}

/// Row-major initial values of every layer, drawn with ChaCha8 from the config's seed in layer
/// order, so that an init is identical on every backend and precision.
pub fn initial_values(config: &ModelConfig) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    config
        .layers()
        .iter()
        .map(|spec| {
            let len = spec.shape[0] * spec.shape[1];
            match spec.init {
                Init::Gaussian { std } => (0..len)
                    .map(|_| {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        std * z
                    })
                    .collect(),
                Init::RandomSign => (0..len)
                    .map(|_| {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        if z >= 0.0 { 1.0 } else { -1.0 }
                    })
                    .collect(),
                Init::HalfSigns => (0..len)
                    .map(|i| if i < len / 2 { 1.0 } else { -1.0 })
                    .collect(),
                Init::Zeros => vec![0.0; len],
            }
        })
        .collect()
}

impl Network {
    /// Builds the network with its Gaussian init (validating the config first).
    pub fn init(config: &ModelConfig, compute: &Compute) -> Result<Self, ConfigError> {
        config.validate()?;
        Self::from_values(config, compute, &initial_values(config))
    }

    /// Builds the network from row-major values per layer (e.g. loaded from a file).
    ///
    /// # Panics
    /// If the number of layers or a layer's length does not match the config (callers that
    /// read user files check shapes first; see [`crate::io`]).
    pub fn from_values(
        config: &ModelConfig,
        compute: &Compute,
        values: &[Vec<f64>],
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let specs = config.layers();
        assert_eq!(specs.len(), values.len(), "one value vector per layer");
        let params = specs
            .iter()
            .zip(values)
            .map(|(spec, v)| Param::from_tensor(compute.tensor(v, spec.shape)))
            .collect();
        Ok(Self {
            params,
            config: config.clone(),
            specs,
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The layers (names, shapes, roles), in the order of [`Network::params`].
    pub fn specs(&self) -> &[LayerSpec] {
        &self.specs
    }

    /// The index of the layer called `name`.
    pub fn layer_index(&self, name: &str) -> Result<usize, ConfigError> {
        self.specs()
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ConfigError::UnknownLayer {
                name: name.to_string(),
                available: self.specs().iter().map(|s| s.name.clone()).collect(),
            })
    }

    /// Current parameter tensors.
    pub fn values(&self) -> Vec<Tensor<2>> {
        self.params.iter().map(Param::val).collect()
    }

    /// Replaces the parameter tensors (same order and shapes).
    pub fn set_values(&mut self, values: Vec<Tensor<2>>) {
        assert_eq!(values.len(), self.params.len(), "one tensor per layer");
        for (param, value) in self.params.iter_mut().zip(values) {
            assert_eq!(param.val().dims(), value.dims(), "shape of a layer changed");
            *param = Param::from_tensor(value);
        }
    }

    /// Outputs `f(θ, x_i)` for a batch `x` of shape `[n, d]`, shape `[n, outputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        forward(self.config(), &self.values(), x)
    }
}

/// The forward pass of `config` with parameter tensors `params` (in [`ModelConfig::layers`]
/// order) on inputs `x: [n, d]`, giving `[n, outputs]`. The parameters may be autodiff leaves,
/// which is how the trainer and the Jacobian code differentiate it.
pub fn forward(config: &ModelConfig, params: &[Tensor<2>], x: Tensor<2>) -> Tensor<2> {
    let dense = |h: Tensor<2>, w: &Tensor<2>| h.matmul(w.clone().transpose());
    match &config.arch {
        // A eq. 2.
        Architecture::Fc {
            depth,
            width,
            activation,
        } => {
            let scale = (activation.c_sigma() / *width as f64).sqrt();
            let hidden = params[..*depth]
                .iter()
                .fold(x, |h, w| activation.apply(dense(h, w)).mul_scalar(scale));
            dense(hidden, &params[*depth])
        }
        // A §6.
        Architecture::Resnet {
            depth,
            width,
            activation,
            c_res,
        } => {
            let m = *width as f64;
            let first = activation
                .apply(dense(x, &params[0]))
                .mul_scalar((activation.c_sigma() / m).sqrt());
            let branch = c_res / (*depth as f64 * m.sqrt());
            let hidden = params[1..*depth].iter().fold(first, |h, w| {
                let update = activation.apply(dense(h.clone(), w)).mul_scalar(branch);
                h + update
            });
            dense(hidden, &params[*depth])
        }
        // A §7.
        Architecture::ConvResnet {
            depth,
            width,
            activation,
            c_res,
            channels,
            spatial,
            kernel,
        } => {
            let n = x.dims()[0];
            let m = *width as f64;
            let conv = ConvLayout::new(spatial, *kernel);
            let first = activation
                .apply(conv.apply(x, &params[0], *channels, n))
                .mul_scalar((activation.c_sigma() / m).sqrt());
            let branch = c_res / (*depth as f64 * m.sqrt());
            let hidden = params[1..*depth].iter().fold(first, |h, w| {
                let update = activation
                    .apply(conv.apply(h.clone(), w, *width, n))
                    .mul_scalar(branch);
                h + update
            });
            dense(hidden, &params[*depth])
        }
        // B eq. 1.
        Architecture::TwoLayer { width } => {
            let hidden = burn::tensor::activation::relu(dense(x, &params[0]));
            dense(hidden, &params[1]).mul_scalar(1.0 / (*width as f64).sqrt())
        }
        // C §3 (weights stored transposed: rows are neurons).
        Architecture::DeepRelu { depth, .. } => {
            let hidden = params[..*depth]
                .iter()
                .fold(x, |h, w| burn::tensor::activation::relu(dense(h, w)));
            dense(hidden, &params[*depth])
        }
        Architecture::Practical {
            blocks, activation, ..
        } => {
            let affine = |h: Tensor<2>, w: &Tensor<2>, b: &Tensor<2>| dense(h, w) + b.clone();
            let first = activation.apply(affine(x, &params[0], &params[1]));
            let hidden = (0..*blocks).fold(first, |h, b| {
                let p = &params[2 + 4 * b..6 + 4 * b];
                let inner = activation.apply(affine(h.clone(), &p[0], &p[1]));
                activation.apply(h + affine(inner, &p[2], &p[3]))
            });
            affine(hidden, &params[2 + 4 * blocks], &params[3 + 4 * blocks])
        }
    }
}

/// How a conv layer's `[m, q·c_in]` matrix maps onto Burn's convolution: the patch operator
/// φ of A §7 with stride 1 and zero padding `(kernel − 1)/2`, channels-major flattening
/// (value `(c, position)` at column `c·p + position`), and patch entries ordered per channel
/// then per offset, as in A's example `(x_{c,l−1}, x_{c,l}, x_{c,l+1})`.
#[derive(Debug, Clone)]
pub struct ConvLayout {
    spatial: Vec<usize>,
    kernel: usize,
}

impl ConvLayout {
    /// Layout of a conv net over `spatial` positions with patch side `kernel`.
    pub fn new(spatial: &[usize], kernel: usize) -> Self {
        Self {
            spatial: spatial.to_vec(),
            kernel,
        }
    }

    /// `W φ(x)` for flattened `x: [n, c_in·p]`, flattened to `[n, m·p]`.
    pub fn apply(&self, x: Tensor<2>, w: &Tensor<2>, c_in: usize, n: usize) -> Tensor<2> {
        let m = w.dims()[0];
        let k = self.kernel;
        let pad = (k - 1) / 2;
        let positions: usize = self.spatial.iter().product();
        match self.spatial[..] {
            [p] => {
                let out = conv1d(
                    x.reshape([n, c_in, p]),
                    w.clone().reshape([m, c_in, k]),
                    None,
                    ConvOptions::new([1], [pad], [1], 1),
                );
                out.reshape([n, m * positions])
            }
            [height, width] => {
                let out = conv2d(
                    x.reshape([n, c_in, height, width]),
                    w.clone().reshape([m, c_in, k, k]),
                    None,
                    ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
                );
                out.reshape([n, m * positions])
            }
            _ => unreachable!("validated: spatial rank is 1 or 2"),
        }
    }
}
