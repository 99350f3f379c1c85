//! A's infinite-width recursions and the per-layer limits of the whole Gram `G(0)`.

use crate::expectation::{GaussianPair, Moment};
use crate::pairwise::{pairwise, per_distinct, zip_assign, zip_map};
use crate::patches::Patches;
use faer::Mat;
use overparam_models::{Architecture, ModelConfig};

/// Errors of the kernel computations.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KernelError {
    /// No limit is implemented for this architecture yet.
    #[error(
        "the infinite-width limit of the {0} model is not implemented (fc, resnet and conv_resnet are)"
    )]
    Unsupported(&'static str),
    /// The inputs do not match the model.
    #[error("{got} input values do not make samples of dimension d = {d}")]
    Inputs {
        /// Buffer length.
        got: usize,
        /// The model's d.
        d: usize,
    },
}

/// The limits of every per-layer Gram `G^(h)(0)` as m → ∞, and of their sum.
#[derive(Debug, Clone)]
pub struct NtkLimit {
    /// Layer names, as in the finite network (`W1`, …, `WH`, `a`).
    pub names: Vec<String>,
    /// Limit of `G^(h)(0)` per layer; the entry of `WH` is A's `K^(H)`.
    pub layers: Vec<Mat<f64>>,
    /// Limit of `G(0) = Σ_h G^(h)(0)`.
    pub total: Mat<f64>,
}

impl NtkLimit {
    /// A's `K^(H)` (Def. 5.1 / 6.1, with the covariance built from `K^(H−1)`, papers.md §1.4).
    pub fn k_h(&self) -> &Mat<f64> {
        &self.layers[self.layers.len() - 2]
    }
}

/// The bytes the limits of `config` on `n` samples hold at their peak (0 for a model without
/// a limit): the recursion keeps `C^(h)` and `Ė^(h)` of every layer plus two working matrices,
/// each `(n·p) × (n·p)` in f64 (p positions, 1 for fc and resnet; the `n × n` results then
/// reuse their memory), and a conv net's H + 2 results of `n × n` come on top; B's `H^∞`
/// needs two `n × n` matrices. (fc, H = 3, n = 10 000: 6.4 GB; measured peak RSS of
/// `overparam kernel`: 6.3 GB.)
pub fn limit_bytes(config: &ModelConfig, n: usize) -> u128 {
    let square = |side: usize| 8 * (side as u128).pow(2);
    let (depth, positions) = match &config.arch {
        Architecture::Fc { depth, .. } | Architecture::Resnet { depth, .. } => (*depth as u128, 1),
        Architecture::ConvResnet { depth, spatial, .. } => {
            (*depth as u128, spatial.iter().product())
        }
        Architecture::TwoLayer { .. } => return 2 * square(n),
        _ => return 0,
    };
    let results = if positions > 1 {
        (depth + 2) * square(n)
    } else {
        0
    };
    (2 * depth + 2) * square(n * positions) + results
}

/// One hidden layer of A's general framework (App. E, Def. E.1):
/// `x^(h) = [x^(h−1) if skip] + sqrt(scale/m) σ(W^(h) φ(x^(h−1)))`, so `scale = c_σ` for fc
/// layers and A's first residual layer, `(c_res/H)²` for residual branches.
#[derive(Debug, Clone, Copy)]
struct Layer {
    skip: bool,
    scale: f64,
}

/// A model's recursion: its layers, positions and activation.
struct Recursion {
    layers: Vec<Layer>,
    patches: Patches,
    pair: GaussianPair,
}

/// What the forward recursion leaves for the backward one, per hidden layer h: the
/// pre-activation covariance `C^(h) = Φ(Σ^(h−1))` and `Ė^(h) = E[σ'(u)σ'(v)]` under it; and
/// `Σ^(H)`, the covariance of the last hidden layer.
struct Forward {
    pre: Vec<Mat<f64>>,
    edot: Vec<Mat<f64>>,
    last: Mat<f64>,
}

impl Recursion {
    fn new(config: &ModelConfig) -> Result<Self, KernelError> {
        let (depth, activation, residual, patches) = match &config.arch {
            Architecture::Fc {
                depth, activation, ..
            } => (*depth, *activation, None, Patches::dense()),
            Architecture::Resnet {
                depth,
                activation,
                c_res,
                ..
            } => (*depth, *activation, Some(*c_res), Patches::dense()),
            Architecture::ConvResnet {
                depth,
                activation,
                c_res,
                spatial,
                kernel,
                ..
            } => (
                *depth,
                *activation,
                Some(*c_res),
                Patches::conv(spatial, *kernel),
            ),
            _ => return Err(KernelError::Unsupported(config.kind_name())),
        };
        let c = activation.c_sigma();
        let layers = (1..=depth)
            .map(|h| match residual {
                Some(c_res) if h >= 2 => Layer {
                    skip: true,
                    scale: (c_res / depth as f64).powi(2),
                },
                _ => Layer {
                    skip: false,
                    scale: c,
                },
            })
            .collect();
        Ok(Self {
            layers,
            patches,
            pair: GaussianPair::new(activation),
        })
    }

    /// Forward covariances (Def. 5.1, 6.1, 7.1 in the form of Def. E.1, papers.md §1.4):
    /// `C^(h) = Φ(Σ^(h−1))`, `μ^(h)_i = E_{u~N(0, C^(h)_ii)} σ(u)`, and
    /// `Σ^(h) = s E[σ(u)σ(v)]`, `b^(h) = sqrt(s) μ` for a layer without skip;
    /// `Σ^(h) = Σ^(h−1) + sqrt(s)(b_i μ_j + μ_i b_j) + s E[σ(u)σ(v)]`, `b^(h) = b^(h−1) + sqrt(s) μ`
    /// with a skip; `(u, v) ~ N(0, [[C_ii, C_ij], [C_ij, C_jj]])`, indices (sample, position).
    fn forward(&self, sigma0: Mat<f64>) -> Forward {
        let pair = self.pair;
        let np = sigma0.nrows();
        let (mut pre, mut edot) = (Vec::new(), Vec::new());
        let mut sigma = sigma0;
        let mut bias = vec![0.0; np];
        for layer in &self.layers {
            // Without a skip Σ^(h−1) is not needed after C^(h); a dense C^(h) then takes its
            // memory instead of a copy (one n × n matrix less at the peak).
            let c = if self.patches.is_dense() && !layer.skip {
                std::mem::replace(&mut sigma, Mat::new())
            } else {
                self.patches.patch(&sigma).into_owned()
            };
            let (s, root) = (layer.scale, layer.scale.sqrt());
            let branch = pairwise(&c, pair, Moment::Values, s);
            let diag: Vec<f64> = (0..np).map(|i| c[(i, i)]).collect();
            let (means, slot) = per_distinct(&diag, |a| pair.mean(a));
            let mu: Vec<f64> = slot.iter().map(|&s| means[s]).collect();
            if layer.skip {
                sigma = zip_map([&sigma, &branch], |i, j, [prev, branch]| {
                    prev + root * (bias[i] * mu[j] + mu[i] * bias[j]) + branch
                });
                bias.iter_mut().zip(&mu).for_each(|(b, m)| *b += root * m);
            } else {
                sigma = branch;
                bias = mu.iter().map(|m| root * m).collect();
            }
            edot.push(pairwise(&c, pair, Moment::Derivatives, 1.0));
            pre.push(c);
        }
        Forward {
            pre,
            edot,
            last: sigma,
        }
    }

    /// The limit of `G^(h)(0)`: `s Σ_{l,l'} C^(h) ∘ Ė^(h) ∘ Γ^(h)` summed over position pairs,
    /// where `Γ^(h)` is the covariance of the backprop signal `∂f/∂x^(h)` (scaled by 1/m).
    /// `C^(h)` is consumed: the product is formed in its memory.
    fn layer_limit(
        &self,
        h: usize,
        mut c: Mat<f64>,
        edot: &Mat<f64>,
        gamma: &Mat<f64>,
    ) -> Mat<f64> {
        let s = self.layers[h].scale;
        zip_assign(&mut c, [edot, gamma], |_, _, c, [e, g]| s * c * e * g);
        self.patches.block_sum(c)
    }

    /// Backward recursion: `Γ^(H) = δ_{ll'}` (the read-out a ~ N(0, 1) at every channel and
    /// position), `Γ^(h−1) = [Γ^(h) if layer h skips] + s Φ(Ė^(h) ∘ Γ^(h))`; the limits of
    /// every layer's Gram, the read-out's being `Σ_l Σ^(H)_{(i,l),(j,l)}`. Each layer's `C^(h)`
    /// and `Ė^(h)` are consumed in place (into its limit and the next `Γ`), so memory falls
    /// as the recursion proceeds.
    fn backward(&self, forward: Forward) -> Vec<Mat<f64>> {
        let Forward {
            mut pre,
            mut edot,
            last,
        } = forward;
        let np = last.nrows();
        let n = np / self.patches.positions();
        let depth = self.layers.len();
        let mut limits = vec![Mat::<f64>::zeros(0, 0); depth + 1];
        limits[depth] = self.patches.block_trace(last);
        let mut gamma = self.patches.aligned(n);
        for h in (0..depth).rev() {
            let (c, mut e) = (
                pre.pop().expect("one C per layer"),
                edot.pop().expect("one Ė per layer"),
            );
            limits[h] = self.layer_limit(h, c, &e, &gamma);
            let layer = self.layers[h];
            let s = layer.scale;
            if h > 0 {
                let skip = f64::from(u8::from(layer.skip));
                if self.patches.is_dense() {
                    zip_assign(&mut e, [&gamma], |_, _, e, [g]| skip * g + s * e * g);
                    gamma = e;
                } else {
                    zip_assign(&mut e, [&gamma], |_, _, e, [g]| e * g);
                    let branch = self.patches.patch(&e);
                    gamma = zip_map([&gamma, &branch], |_, _, [g, b]| skip * g + s * b);
                }
            }
        }
        limits
    }

    /// The input covariance `Σ^(0)`: the position Gram of the samples `x` (`n × d`).
    fn inputs(&self, config: &ModelConfig, x: &[f64]) -> Result<Mat<f64>, KernelError> {
        let d = config.input_dim;
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(KernelError::Inputs { got: x.len(), d });
        }
        Ok(self.patches.position_gram(x, d))
    }
}

/// A's `K^(H)` alone (the limit of `G^(H)(0)`; Def. 5.1, 6.1, 7.1 with the covariance built
/// from `K^(H−1)`, papers.md §1.4): the forward recursion and one backward step.
pub fn k_h(config: &ModelConfig, x: &[f64]) -> Result<Mat<f64>, KernelError> {
    let recursion = Recursion::new(config)?;
    let forward = recursion.forward(recursion.inputs(config, x)?);
    let n = forward.last.nrows() / recursion.patches.positions();
    let last = recursion.layers.len() - 1;
    let Forward { mut pre, edot, .. } = forward;
    let c = pre.pop().expect("one C per layer");
    Ok(recursion.layer_limit(last, c, &edot[last], &recursion.patches.aligned(n)))
}

/// The infinite-width limits of every layer's Gram for the fc, resnet and conv_resnet models
/// on the samples `x` (`n × d`, row-major; conv samples channels-major, as the models take them).
pub fn ntk_limit(config: &ModelConfig, x: &[f64]) -> Result<NtkLimit, KernelError> {
    let recursion = Recursion::new(config)?;
    let forward = recursion.forward(recursion.inputs(config, x)?);
    let layers = recursion.backward(forward);
    let n = layers[0].nrows();
    let mut total = Mat::<f64>::zeros(n, n);
    for g in &layers {
        total += g;
    }
    Ok(NtkLimit {
        names: config.layers().into_iter().map(|s| s.name).collect(),
        layers,
        total,
    })
}
