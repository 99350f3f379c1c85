//! Per-layer Gram matrices `G^(h)_ij = ⟨∂f(x_i)/∂W^(h), ∂f(x_j)/∂W^(h)⟩` (A §4, App. A–D).

use burn::tensor::Tensor;
use faer::{Mat, MatRef};
use overparam_device::{Compute, to_f64_vec, to_host_vec};
use overparam_kernels::mirror_lower;
use overparam_models::{Architecture, LayerKind, Network, forward, forward_traced};
use serde::{Deserialize, Serialize};

/// How the Gram matrices are computed. Both give the same numbers (tested to 1e-9 in f64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GramStrategy {
    /// Jacobian contraction: per-sample gradients of `f(x_i)` through Burn autodiff (one
    /// backward pass per sample), contracted in row blocks `G_IJ = J_I J_Jᵀ`. Works for every
    /// model; costs `O(n² P)` flops, `O(n²/b)` backward passes and `O(b P)` memory for blocks
    /// of b samples (≈1 GiB each). It wins only when the parameter count P is tiny, and
    /// serves as the reference.
    Autodiff,
    /// Structured derivatives: one forward with zero probes on every pre-activation and one
    /// backward give the backprop signals `B^(h)` (`n × m`); with the layer inputs `A^(h−1)`,
    /// a dense layer's Gram is `(A Aᵀ) ∘ (B Bᵀ)` in `O(n²(m + cols))` flops and `O(n² + n m)`
    /// memory; a conv layer's per-sample gradient is `B_i Φ_i` (`Φ_i` the patches of sample
    /// i), contracted in row blocks. It never builds the n × P Jacobian.
    Structured,
}

/// The precision of the structured Gram's n × n products `A Aᵀ` and `B Bᵀ` (dense layers and
/// the read-out). Their Hadamard products, the sum over layers and every spectrum stay in f64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GramPrecision {
    /// f64 products: the default, for spectra of nearly singular Grams.
    #[default]
    F64,
    /// f32 products (twice the GEMM throughput, half the memory traffic). Each product entry
    /// carries a rounding error of about `sqrt(k)·2⁻²⁴` of its row norms for k columns; on
    /// A's fc benchmark (m = 1024) `max|ΔG| / max|G|` against f64 is tested below 1e-6.
    F32,
}

impl std::str::FromStr for GramPrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f64" => Ok(GramPrecision::F64),
            "f32" => Ok(GramPrecision::F32),
            other => Err(format!("unknown Gram precision '{other}': use f64 or f32")),
        }
    }
}

/// Errors of the analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The Gram of a k-output network is `nk × nk`; only scalar outputs are supported.
    #[error("Gram matrices need a scalar-output network; this one has {0} outputs")]
    Outputs(usize),
    /// The inputs do not match the model.
    #[error("{got} input values do not make samples of dimension d = {d}")]
    Inputs {
        /// Length of the input buffer.
        got: usize,
        /// The model's d.
        d: usize,
    },
}

/// The Gram matrix of every layer and their sum, in f64.
#[derive(Debug, Clone)]
pub struct LayerGrams {
    /// Layer names (`W1`, …, `a`).
    pub names: Vec<String>,
    /// `G^(h)`, one per layer, including the output layer.
    pub layers: Vec<Mat<f64>>,
    /// `G = Σ_h G^(h)`.
    pub total: Mat<f64>,
    /// The strategy that actually ran (Structured falls back to Autodiff where unsupported).
    pub strategy: GramStrategy,
    /// Why a fallback happened, if one did.
    pub warnings: Vec<String>,
}

impl LayerGrams {
    /// The Gram of the layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Mat<f64>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.layers[i])
    }

    /// A's `G^(H)` (eqs. 13–15): the Gram of the last hidden layer.
    pub fn last_hidden(&self) -> &Mat<f64> {
        &self.layers[self.layers.len() - 2]
    }

    /// B's `H(k)` (eq. 6): the Gram of the first layer.
    pub fn first_layer(&self) -> &Mat<f64> {
        &self.layers[0]
    }

    /// The sum of the Grams of the named layers (e.g. the trained ones).
    pub fn sum_of(&self, names: &[String]) -> Mat<f64> {
        let n = self.total.nrows();
        let mut sum = Mat::<f64>::zeros(n, n);
        for (name, g) in self.names.iter().zip(&self.layers) {
            if names.contains(name) {
                sum += g;
            }
        }
        sum
    }
}

/// Rows per block so that a block of per-sample gradients stays near 1 GiB.
fn block_rows(n: usize, params_per_sample: usize) -> usize {
    const BUDGET: usize = 1 << 30;
    (BUDGET / (8 * params_per_sample.max(1))).clamp(1, n)
}

fn host_matrix(values: &[f64], rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| values[i * cols + j])
}

/// Per-layer Grams of `net` on the samples `x` (`n × d`, row-major).
///
/// `Structured` falls back to `Autodiff`, with a warning in [`LayerGrams::warnings`], for a
/// model it has no structured form for (the `practical` net with biases).
pub fn grams(
    net: &Network,
    x: &[f64],
    compute: &Compute,
    strategy: GramStrategy,
) -> Result<LayerGrams, AnalysisError> {
    grams_in(net, x, compute, strategy, GramPrecision::F64)
}

/// [`grams`] with the structured products in `precision` (the autodiff strategy ignores it).
pub fn grams_in(
    net: &Network,
    x: &[f64],
    compute: &Compute,
    strategy: GramStrategy,
    precision: GramPrecision,
) -> Result<LayerGrams, AnalysisError> {
    let config = net.config();
    if config.outputs() != 1 {
        return Err(AnalysisError::Outputs(config.outputs()));
    }
    let d = config.input_dim;
    if x.is_empty() || !x.len().is_multiple_of(d) {
        return Err(AnalysisError::Inputs { got: x.len(), d });
    }
    let supported = !matches!(
        config.arch,
        Architecture::Practical { .. } | Architecture::Resnet18 { .. }
    );
    let (layers, strategy, warnings) = match strategy {
        GramStrategy::Structured if supported => {
            (structured(net, x, compute, precision), strategy, vec![])
        }
        GramStrategy::Structured => (
            autodiff(net, x, compute),
            GramStrategy::Autodiff,
            vec![format!(
                "the structured Gram does not support the {} model (bias or BatchNorm layers); computed by autodiff instead",
                config.kind_name()
            )],
        ),
        GramStrategy::Autodiff => (autodiff(net, x, compute), strategy, vec![]),
    };
    let n = x.len() / d;
    let mut total = Mat::<f64>::zeros(n, n);
    for g in &layers {
        total += g;
    }
    Ok(LayerGrams {
        names: net.specs().iter().map(|s| s.name.clone()).collect(),
        layers,
        total,
        strategy,
        warnings,
    })
}

/// Jacobian contraction through per-sample backward passes.
fn autodiff(net: &Network, x: &[f64], compute: &Compute) -> Vec<Mat<f64>> {
    let config = net.config();
    let d = config.input_dim;
    let n = x.len() / d;
    let values = net.values();
    // BatchNorm's running statistics are state, not parameters: their Gram is zero.
    let statistic: Vec<bool> = net
        .specs()
        .iter()
        .map(|s| s.kind == LayerKind::Statistic)
        .collect();
    let sizes: Vec<usize> = net
        .specs()
        .iter()
        .zip(&statistic)
        .map(|(s, &skip)| if skip { 0 } else { s.shape[0] * s.shape[1] })
        .collect();
    let b = block_rows(n, sizes.iter().sum());
    // Per-sample gradients of rows [start, end), one `P_h × rows` matrix per layer (a column
    // per sample, so that each gradient is copied contiguously).
    let jacobian_block = |start: usize, end: usize| -> Vec<Mat<f64>> {
        let mut blocks: Vec<Mat<f64>> = sizes.iter().map(|&p| Mat::zeros(p, end - start)).collect();
        for i in start..end {
            let leaves: Vec<Tensor<2>> = values
                .iter()
                .zip(&statistic)
                .map(|(v, &skip)| {
                    let leaf = v.clone().autodiff();
                    if skip { leaf } else { leaf.require_grad() }
                })
                .collect();
            let xi = compute.tensor(&x[i * d..(i + 1) * d], [1, d]);
            let grads = forward(config, &leaves, xi).sum().backward();
            for (layer, leaf) in leaves.iter().enumerate() {
                if statistic[layer] {
                    continue;
                }
                let g = to_f64_vec(leaf.grad(&grads).expect("every parameter is a leaf"));
                let column = blocks[layer].col_mut(i - start);
                for (dst, src) in column.iter_mut().zip(g) {
                    *dst = src;
                }
            }
        }
        blocks
    };
    let mut out: Vec<Mat<f64>> = sizes.iter().map(|_| Mat::zeros(n, n)).collect();
    for row_start in (0..n).step_by(b) {
        let row_end = (row_start + b).min(n);
        let rows = jacobian_block(row_start, row_end);
        for col_start in (row_start..n).step_by(b) {
            let col_end = (col_start + b).min(n);
            let cols_owned;
            let cols = if col_start == row_start {
                &rows
            } else {
                cols_owned = jacobian_block(col_start, col_end);
                &cols_owned
            };
            for (layer, g) in out.iter_mut().enumerate() {
                let block = rows[layer].transpose() * &cols[layer];
                for i in 0..row_end - row_start {
                    for j in 0..col_end - col_start {
                        g[(row_start + i, col_start + j)] = block[(i, j)];
                        g[(col_start + j, row_start + i)] = block[(i, j)];
                    }
                }
            }
        }
    }
    out
}

/// The lower triangle of `A Aᵀ` (the upper one left at zero): half the products of a full
/// matrix product, on all cores.
fn lower_gram<T: faer::traits::ComplexField>(a: MatRef<'_, T>) -> Mat<T> {
    use faer::linalg::matmul::triangular::{BlockStructure, matmul};
    let n = a.nrows();
    let mut g = Mat::<T>::zeros(n, n);
    matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        faer::Accum::Replace,
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        faer::traits::math_utils::one::<T>(),
        faer::get_global_parallelism(),
    );
    g
}

/// The lower triangle of `A Aᵀ` for the row-major `rows × cols` values of tensor `t`, with the
/// product in `precision`, returned in f64 (the upper triangle left at zero). The tensor's
/// values are read in place as a row-major matrix, never transposed on the host.
fn lower_gram_of(t: Tensor<2>, precision: GramPrecision) -> Mat<f64> {
    let [rows, cols] = t.dims();
    match precision {
        GramPrecision::F64 => {
            let v = to_f64_vec(t);
            lower_gram(MatRef::from_row_major_slice(&v, rows, cols))
        }
        GramPrecision::F32 => {
            let v = to_host_vec::<f32, 2>(t);
            let a = MatRef::from_row_major_slice(&v, rows, cols);
            // f32 products over blocks of F32_BLOCK columns, summed in f64: rounding grows
            // with the block length, not with all `cols` terms of a long sum.
            let mut sum = Mat::<f64>::zeros(rows, rows);
            for start in (0..cols).step_by(F32_BLOCK) {
                let g = lower_gram(a.subcols(start, F32_BLOCK.min(cols - start)));
                for j in 0..rows {
                    let (dst, src) = (&mut sum.col_as_slice_mut(j)[j..], &g.col_as_slice(j)[j..]);
                    dst.iter_mut()
                        .zip(src)
                        .for_each(|(d, &v)| *d += f64::from(v));
                }
            }
            sum
        }
    }
}

/// Columns per f32 product block of [`GramPrecision::F32`].
const F32_BLOCK: usize = 128;

/// `A Aᵀ`.
fn outer_gram(a: Tensor<2>, precision: GramPrecision) -> Mat<f64> {
    let mut g = lower_gram_of(a, precision);
    mirror_lower(&mut g);
    g
}

/// `(A Aᵀ) ∘ (B Bᵀ)`.
fn hadamard_gram(a: Tensor<2>, b: Tensor<2>, precision: GramPrecision) -> Mat<f64> {
    let (mut g, bb) = (lower_gram_of(a, precision), lower_gram_of(b, precision));
    for j in 0..g.ncols() {
        let (dst, src) = (&mut g.col_as_slice_mut(j)[j..], &bb.col_as_slice(j)[j..]);
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d *= v);
    }
    mirror_lower(&mut g);
    g
}

/// The patches `Φ_i` (`p × q·c_in`) of one sample's flattened `c_in × p` activation: row l
/// holds, per channel then per offset, the zero-padded neighbourhood of position l, in the
/// column order of a conv layer's weight matrix.
fn patches(h: &[f64], c_in: usize, spatial: &[usize], k: usize) -> Mat<f64> {
    let (rows, cols) = match spatial {
        [p] => (1, *p),
        [r, c] => (*r, *c),
        _ => unreachable!("validated: spatial rank is 1 or 2"),
    };
    let kr = if spatial.len() == 2 { k } else { 1 };
    let q = kr * k;
    let (pad_r, pad_c) = ((kr as isize - 1) / 2, (k as isize - 1) / 2);
    Mat::from_fn(rows * cols, q * c_in, |pos, col| {
        let (c, t) = (col / q, col % q);
        let (u, v) = (t / k, t % k);
        let i = (pos / cols) as isize + u as isize - pad_r;
        let j = (pos % cols) as isize + v as isize - pad_c;
        if i < 0 || j < 0 || i >= rows as isize || j >= cols as isize {
            0.0
        } else {
            h[c * rows * cols + i as usize * cols + j as usize]
        }
    })
}

/// Structured derivatives: probes give the backprop signals in one backward pass.
fn structured(
    net: &Network,
    x: &[f64],
    compute: &Compute,
    precision: GramPrecision,
) -> Vec<Mat<f64>> {
    let config = net.config();
    let d = config.input_dim;
    let n = x.len() / d;
    let specs = net.specs();
    let positions: usize = match &config.arch {
        Architecture::ConvResnet { spatial, .. } => spatial.iter().product(),
        _ => 1,
    };
    let probes: Vec<Tensor<2>> = specs
        .iter()
        .map(|s| {
            let width = match s.kind {
                LayerKind::Dense | LayerKind::Conv => s.shape[0] * positions,
                LayerKind::Readout | LayerKind::Bias | LayerKind::Norm | LayerKind::Statistic => 1,
            };
            let rows = if width == 1 { 1 } else { n };
            compute
                .tensor(&vec![0.0; rows * width], [rows, width])
                .autodiff()
                .require_grad()
        })
        .collect();
    let trace = forward_traced(
        config,
        &net.values(),
        compute.tensor(x, [n, d]),
        Some(&probes),
    );
    let grads = trace.output.sum().backward();
    specs
        .iter()
        .enumerate()
        .map(|(layer, spec)| {
            let input = trace.inputs[layer]
                .clone()
                .expect("weight layers record inputs");
            let input = input.without_autodiff();
            let signal = || probes[layer].grad(&grads).expect("probe gradient");
            match spec.kind {
                LayerKind::Readout => outer_gram(input, precision),
                LayerKind::Dense => hadamard_gram(input, signal(), precision),
                LayerKind::Conv => {
                    let cols = input.dims()[1];
                    let a = host_matrix(&to_f64_vec(input), n, cols);
                    conv_gram(&a, &to_f64_vec(signal()), spec.shape, config)
                }
                LayerKind::Bias | LayerKind::Norm | LayerKind::Statistic => {
                    unreachable!("models with biases or BatchNorm use autodiff")
                }
            }
        })
        .collect()
}

/// A conv layer's Gram from per-sample gradients `J_i = B_i Φ_i` (`m × q·c_in`), contracted
/// in row blocks; `B_i` is `m × p`, `Φ_i` the `p × q·c_in` patches.
fn conv_gram(
    a: &Mat<f64>,
    b: &[f64],
    shape: [usize; 2],
    config: &overparam_models::ModelConfig,
) -> Mat<f64> {
    let Architecture::ConvResnet {
        spatial, kernel, ..
    } = &config.arch
    else {
        unreachable!("conv layers belong to conv_resnet")
    };
    let (n, m, qc) = (a.nrows(), shape[0], shape[1]);
    let p: usize = spatial.iter().product();
    let c_in = a.ncols() / p;
    let per_sample = |i: usize| -> Vec<f64> {
        let h: Vec<f64> = (0..a.ncols()).map(|c| a[(i, c)]).collect();
        let phi = patches(&h, c_in, spatial, *kernel);
        let bi = Mat::<f64>::from_fn(m, p, |o, l| b[i * m * p + o * p + l]);
        let j = &bi * &phi;
        (0..m * qc).map(|e| j[(e / qc, e % qc)]).collect()
    };
    let block = block_rows(n, m * qc);
    let mut g = Mat::<f64>::zeros(n, n);
    let to_mat = |rows: Vec<Vec<f64>>| Mat::<f64>::from_fn(rows.len(), m * qc, |i, e| rows[i][e]);
    for rs in (0..n).step_by(block) {
        let re = (rs + block).min(n);
        let rows = to_mat((rs..re).map(per_sample).collect());
        for cs in (rs..n).step_by(block) {
            let ce = (cs + block).min(n);
            let cols = if cs == rs {
                rows.clone()
            } else {
                to_mat((cs..ce).map(per_sample).collect())
            };
            let prod = &rows * cols.transpose();
            for i in 0..re - rs {
                for j in 0..ce - cs {
                    g[(rs + i, cs + j)] = prod[(i, j)];
                    g[(cs + j, rs + i)] = prod[(i, j)];
                }
            }
        }
    }
    g
}
