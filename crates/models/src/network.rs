//! The papers' networks as one Burn module whose forward pass is interpreted from its config.

use crate::config::{Architecture, ConfigError, Init, LayerSpec, ModelConfig};
use crate::resnet18::{self, Mode};
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::module::{conv1d, conv2d};
use burn::tensor::ops::ConvOptions;
use overparam_device::Compute;
use overparam_rng::{Purpose, gaussian, random_sign, stream};

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

/// Row-major initial values of every layer, drawn in layer order from the init stream of the
/// config's seed (never the stream of the data, whatever seed the data has), so that an init
/// is identical on every backend and precision.
pub fn initial_values(config: &ModelConfig) -> Vec<Vec<f64>> {
    let mut rng = stream(config.seed, Purpose::Init);
    config
        .layers()
        .iter()
        .map(|spec| {
            let len = spec.shape[0] * spec.shape[1];
            match spec.init {
                Init::Gaussian { std } => (0..len).map(|_| std * gaussian(&mut rng)).collect(),
                Init::RandomSign => (0..len).map(|_| random_sign(&mut rng)).collect(),
                Init::HalfSigns => (0..len)
                    .map(|i| if i < len / 2 { 1.0 } else { -1.0 })
                    .collect(),
                Init::Zeros => vec![0.0; len],
                Init::Ones => vec![1.0; len],
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
    forward_traced(config, params, x, None).output
}

/// A training-mode forward pass: the outputs, and for each BatchNorm running statistic its
/// updated value (indexed like the layers, `None` elsewhere). For networks without
/// BatchNorm this is [`forward`] with no statistics.
pub fn forward_train(
    config: &ModelConfig,
    params: &[Tensor<2>],
    x: Tensor<2>,
) -> (Tensor<2>, Vec<Option<Tensor<2>>>) {
    if config.has_batch_statistics() {
        let out = resnet18_pass(config, params, x, Mode::Train).expect("a resnet18 config");
        (out.logits, out.statistics)
    } else {
        (forward(config, params, x), vec![None; params.len()])
    }
}

/// ResNet-18's forward pass in `mode` (`None` for the other architectures).
fn resnet18_pass(
    config: &ModelConfig,
    params: &[Tensor<2>],
    x: Tensor<2>,
    mode: Mode,
) -> Option<resnet18::Output> {
    let Architecture::Resnet18 {
        width,
        channels,
        spatial,
        ..
    } = &config.arch
    else {
        return None;
    };
    let spatial = [spatial[0], spatial[1]];
    Some(resnet18::forward(
        params, x, *channels, spatial, *width, mode,
    ))
}

/// A forward pass with what the structured Gram needs: the input of every weight layer.
pub struct Trace {
    /// `f(θ, x_i)`, `[n, outputs]`.
    pub output: Tensor<2>,
    /// For each layer, its input: `x^(h−1)` `[n, cols]` for a dense layer, the unpatched
    /// `[n, c_in·p]` activation for a conv layer, `x^(H)` for the read-out; biases record
    /// nothing (an empty list entry is never read for them).
    pub inputs: Vec<Option<Tensor<2>>>,
}

/// Records layer inputs and adds the optional probe tensors to each hidden layer's
/// pre-activation `z^(h) = W^(h) x^(h−1)` (flattened channels-major for conv layers). With
/// zero probes, the gradient of `Σ_i f_i` with respect to probe `h` is, row by row, the
/// backprop signal `∂f_i/∂z_i^(h)`, because samples do not interact.
struct Tracer<'a> {
    probes: Option<&'a [Tensor<2>]>,
    inputs: Vec<Option<Tensor<2>>>,
}

impl Tracer<'_> {
    fn record(&mut self, layer: usize, input: &Tensor<2>) {
        if self.inputs.len() <= layer {
            self.inputs.resize(layer + 1, None);
        }
        self.inputs[layer] = Some(input.clone());
    }

    fn probe(&self, layer: usize, z: Tensor<2>) -> Tensor<2> {
        match self.probes {
            Some(p) => z + p[layer].clone(),
            None => z,
        }
    }

    /// `z = h Wᵀ` (+ probe).
    fn dense(&mut self, layer: usize, h: Tensor<2>, w: &Tensor<2>) -> Tensor<2> {
        self.record(layer, &h);
        let z = h.matmul(w.clone().transpose());
        self.probe(layer, z)
    }

    /// `z = W φ(h)` (+ probe).
    fn conv(
        &mut self,
        layer: usize,
        conv: &ConvLayout,
        h: Tensor<2>,
        w: &Tensor<2>,
        c_in: usize,
    ) -> Tensor<2> {
        self.record(layer, &h);
        let n = h.dims()[0];
        let z = conv.apply(h, w, c_in, n);
        self.probe(layer, z)
    }

    /// The read-out `f = h Wᵀ` (no probe: its backprop signal is 1).
    fn readout(&mut self, layer: usize, h: Tensor<2>, w: &Tensor<2>) -> Tensor<2> {
        self.record(layer, &h);
        h.matmul(w.clone().transpose())
    }
}

/// [`forward`] that also returns every layer's input and adds `probes[h]` (zeros, autodiff
/// leaves) to each hidden layer's pre-activation, for the structured Gram of the analysis
/// crate. Probes are indexed like the layers; entries for the read-out and biases are unused.
pub fn forward_traced(
    config: &ModelConfig,
    params: &[Tensor<2>],
    x: Tensor<2>,
    probes: Option<&[Tensor<2>]>,
) -> Trace {
    let mut t = Tracer {
        probes,
        inputs: Vec::new(),
    };
    let output = match &config.arch {
        // A eq. 2.
        Architecture::Fc {
            depth,
            width,
            activation,
        } => {
            let scale = (activation.c_sigma() / *width as f64).sqrt();
            let mut h = x;
            for (l, w) in params[..*depth].iter().enumerate() {
                h = activation.apply(t.dense(l, h, w)).mul_scalar(scale);
            }
            t.readout(*depth, h, &params[*depth])
        }
        // A §6.
        Architecture::Resnet {
            depth,
            width,
            activation,
            c_res,
        } => {
            let m = *width as f64;
            let mut h = activation
                .apply(t.dense(0, x, &params[0]))
                .mul_scalar((activation.c_sigma() / m).sqrt());
            let branch = c_res / (*depth as f64 * m.sqrt());
            for (l, w) in params.iter().enumerate().take(*depth).skip(1) {
                let update = activation
                    .apply(t.dense(l, h.clone(), w))
                    .mul_scalar(branch);
                h = h + update;
            }
            t.readout(*depth, h, &params[*depth])
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
            let m = *width as f64;
            let conv = ConvLayout::new(spatial, *kernel);
            let mut h = activation
                .apply(t.conv(0, &conv, x, &params[0], *channels))
                .mul_scalar((activation.c_sigma() / m).sqrt());
            let branch = c_res / (*depth as f64 * m.sqrt());
            for (l, w) in params.iter().enumerate().take(*depth).skip(1) {
                let z = t.conv(l, &conv, h.clone(), w, *width);
                h = h + activation.apply(z).mul_scalar(branch);
            }
            t.readout(*depth, h, &params[*depth])
        }
        // B eq. 1.
        Architecture::TwoLayer { width } => {
            // The 1/sqrt(m) goes into the read-out's input, so that it is ∂f/∂a.
            let hidden = burn::tensor::activation::relu(t.dense(0, x, &params[0]))
                .mul_scalar(1.0 / (*width as f64).sqrt());
            t.readout(1, hidden, &params[1])
        }
        // C §3 (weights stored transposed: rows are neurons).
        Architecture::DeepRelu { depth, .. } => {
            let mut h = x;
            for (l, w) in params[..*depth].iter().enumerate() {
                h = burn::tensor::activation::relu(t.dense(l, h, w));
            }
            t.readout(*depth, h, &params[*depth])
        }
        // D Fig. 1, evaluation mode (running statistics): a function of each sample.
        Architecture::Resnet18 { .. } => {
            resnet18_pass(config, params, x, Mode::Eval)
                .expect("a resnet18 config")
                .logits
        }
        Architecture::Practical {
            blocks, activation, ..
        } => {
            let mut affine = |l: usize, h: Tensor<2>| -> Tensor<2> {
                t.dense(l, h, &params[l]) + params[l + 1].clone()
            };
            let mut h = activation.apply(affine(0, x));
            for b in 0..*blocks {
                let inner = activation.apply(affine(2 + 4 * b, h.clone()));
                h = activation.apply(h + affine(4 + 4 * b, inner));
            }
            affine(2 + 4 * blocks, h)
        }
    };
    t.inputs.resize(params.len(), None);
    Trace {
        output,
        inputs: t.inputs,
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
