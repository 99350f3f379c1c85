//! A's infinite-width recursions and the per-layer limits of the whole Gram `G(0)`.

use crate::expectation::GaussianPair;
use crate::moments::Moments;
use crate::pairwise::{fill_column_blocks, mirror_lower, parallel_map, per_distinct, threads};
use crate::patches::Patches;
use faer::Mat;
use overparam_models::{Architecture, ModelConfig};
use std::ops::Range;

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

/// The name of the sum of the layers' limits among [`NtkLimit::into_named`]'s matrices.
const TOTAL: &str = "total";

impl NtkLimit {
    /// A's `K^(H)` (Def. 5.1 / 6.1, with the covariance built from `K^(H−1)`, papers.md §1.4).
    pub fn k_h(&self) -> &Mat<f64> {
        &self.layers[self.layers.len() - 2]
    }

    /// Every matrix with its name: the layers (`W1`, …, `WH`, `a`), then their sum, `total`.
    pub fn into_named(self) -> Vec<(String, Mat<f64>)> {
        self.names
            .into_iter()
            .zip(self.layers)
            .chain([(TOTAL.to_string(), self.total)])
            .collect()
    }
}

/// The bytes the limits of `config` on `n` samples hold at their peak, [`block_bytes`] of the
/// whole symmetric matrix.
pub fn limit_bytes(config: &ModelConfig, n: usize) -> u128 {
    block_bytes(config, n, n, n)
}

/// The bytes a `rows × cols` block of the limits of `config` between samples of a
/// [`KernelSet`] of `samples` holds at its peak (0 for a model without a limit): the H + 2
/// results (every layer, the read-out and the sum), and per sample its inputs and, per layer
/// and position, `C^(h)_ii`, `μ^(h)_i`, `b^(h−1)_i`; for an activation without closed forms
/// also the Hermite coefficients of every sample, position and layer (at their longest, so
/// this overestimates: ~1.8 KB per entry were used at the deep conv layers of Fashion-MNIST,
/// against 2.9 KB counted); and each core's tile of pair vectors. B's `H^∞` needs two blocks
/// (cosines and result).
pub fn block_bytes(config: &ModelConfig, samples: usize, rows: usize, cols: usize) -> u128 {
    let block = 8 * rows as u128 * cols as u128;
    let (depth, positions, activation) = match &config.arch {
        Architecture::Fc {
            depth, activation, ..
        }
        | Architecture::Resnet {
            depth, activation, ..
        } => (*depth as u128, 1, *activation),
        Architecture::ConvResnet {
            depth,
            spatial,
            activation,
            ..
        } => (
            *depth as u128,
            spatial.iter().product::<usize>(),
            *activation,
        ),
        Architecture::TwoLayer { .. } => return 2 * block,
        _ => return 0,
    };
    let entries = samples as u128 * positions as u128;
    let series = if GaussianPair::new(activation).has_closed_form() {
        0
    } else {
        entries * depth * Moments::SERIES_BYTES as u128
    };
    let tile = (TILE * TILE).min(rows * cols) as u128;
    let scratch = threads(usize::MAX) as u128 * tile * 8 * (2 * depth + 2) * positions as u128;
    (depth + 2) * block
        + 8 * samples as u128 * config.input_dim as u128
        + 8 * 3 * depth * entries
        + series
        + scratch
}

/// One hidden layer of A's general framework (App. E, Def. E.1):
/// `x^(h) = [x^(h−1) if skip] + sqrt(scale/m) σ(W^(h) φ(x^(h−1)))`, so `scale = c_σ` for fc
/// layers and A's first residual layer, `(c_res/H)²` for residual branches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layer {
    pub(crate) skip: bool,
    pub(crate) scale: f64,
}

/// `Σ^(h)` at one entry (Def. E.1): from `Σ^(h−1)` (`previous`), the cross term
/// `b_i μ_j + μ_i b_j` and `E[σ(u)σ(v)]` (`value`), `previous + root·cross + scale·value` for a
/// layer with a skip (root = sqrt(scale)), `scale·value` without. One expression for the
/// per-sample and the pair pass, so that a sample with itself rounds alike in both; `skip` is
/// a literal in the pair pass's hot loops, where it folds away.
#[inline(always)]
fn next_sigma(skip: bool, (scale, root): (f64, f64), previous: f64, cross: f64, value: f64) -> f64 {
    if skip {
        previous + root * cross + scale * value
    } else {
        scale * value
    }
}

/// A model's recursion: its layers, positions and activation.
pub(crate) struct Recursion {
    pub(crate) layers: Vec<Layer>,
    patches: Patches,
    pub(crate) pair: GaussianPair,
}

impl Recursion {
    pub(crate) fn new(config: &ModelConfig) -> Result<Self, KernelError> {
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

    fn depth(&self) -> usize {
        self.layers.len()
    }

    /// The per-sample pass: every sample with itself, one layer at a time over all samples
    /// (Def. 5.1, 6.1, 7.1 in the form of Def. E.1, papers.md §1.4, on the diagonal):
    /// `C^(h)_ii = Φ(Σ^(h−1))_ii`, `μ^(h)_i = E_{u~N(0, C^(h)_ii)} σ(u)`, and
    /// `Σ^(h)_ii = s E[σ(u)²]`, `b^(h) = sqrt(s) μ` for a layer without skip;
    /// `Σ^(h)_ii = Σ^(h−1)_ii + 2 sqrt(s) b_i μ_i + s E[σ(u)²]`, `b^(h) = b^(h−1) + sqrt(s) μ`
    /// with a skip; per position, indices (sample, position).
    fn samples(&self, x: Vec<f64>, d: usize) -> Samples {
        let (pair, p) = (self.pair, self.patches.positions());
        let n = x.len() / d;
        let mut sigma = vec![0.0; n * p];
        for (i, s) in sigma.chunks_mut(p).enumerate() {
            let xi = &x[i * d..(i + 1) * d];
            self.patches.input_products(xi, xi, s);
        }
        let mut bias = vec![0.0; n * p];
        let mut layers = Vec::with_capacity(self.depth());
        for layer in &self.layers {
            let mut pre = vec![0.0; n * p];
            let mut scratch = vec![0.0; p];
            for (s, c) in sigma.chunks(p).zip(pre.chunks_mut(p)) {
                self.patches.window_sum(s, c, &mut scratch);
            }
            let (distinct, slot) = per_distinct(&pre, |a| a);
            let means = parallel_map(distinct.len(), &|k| pair.mean(distinct[k]));
            let mu: Vec<f64> = slot.iter().map(|&s| means[s]).collect();
            let moments = Moments::new(pair, &pre, &mu, p);
            let root = layer.scale.sqrt();
            let next = parallel_map(n, &|i| {
                let at = i * p..(i + 1) * p;
                let own = &pre[at.clone()];
                let (mut value, mut derivative) = (vec![0.0; p], vec![0.0; p]);
                moments.eval_positions(
                    pair,
                    (i, i, 0),
                    (own, own),
                    own,
                    true,
                    &mut value,
                    &mut derivative,
                );
                at.zip(value)
                    .map(|(k, value)| {
                        let cross = bias[k] * mu[k] + mu[k] * bias[k];
                        next_sigma(layer.skip, (layer.scale, root), sigma[k], cross, value)
                    })
                    .collect::<Vec<f64>>()
            });
            sigma = next.concat();
            let before = if layer.skip {
                let after = bias.iter().zip(&mu).map(|(b, m)| b + root * m).collect();
                std::mem::replace(&mut bias, after)
            } else {
                std::mem::replace(&mut bias, mu.iter().map(|m| root * m).collect())
            };
            layers.push(SampleLayer {
                pre,
                mu,
                bias: before,
                moments,
            });
        }
        Samples { x, d, p, layers }
    }

    /// A tile of pairs of samples (i, j): the forward recursion on position vectors, one
    /// layer at a time for all pairs (and, within a layer, eight positions at a time for all
    /// pairs, so that the expectations of a tile read each block of its samples' Hermite
    /// coefficients from cache), then the backward one pair by pair. Forward, per position l:
    /// `C^(h)_l = Σ_o Σ^(h−1)_{l+o}`,
    /// `Σ^(h)_l = [Σ^(h−1)_l + sqrt(s)(b_i μ_j + μ_i b_j) if layer h skips] + s E[σ(u)σ(v)]`
    /// with `(u, v) ~ N(0, [[C_ii, C_l], [C_l, C_jj]])`, and `Ė^(h)_l = E[σ'(u)σ'(v)]`.
    /// Backward: `Γ^(H) = 1` (the read-out a ~ N(0, 1) at every channel and position),
    /// `Γ^(h−1) = [Γ^(h) if layer h skips] + s Φ(Ė^(h) ∘ Γ^(h))`. Writes, per pair, the limits
    /// of every layer's Gram entry, `s Σ_l C^(h)_l Ė^(h)_l Γ^(h)_l` (the entry of `WH` is A's
    /// `K^(H)`), and the read-out's, `Σ_l Σ^(H)_l`, into `out` (H + 1 values per pair). Each
    /// pair's arithmetic is its own, whatever the tile.
    fn tile(
        &self,
        samples: &Samples,
        pairs: &[(usize, usize)],
        scratch: &mut Scratch,
        out: &mut [f64],
    ) {
        let (pair, p, d, depth) = (self.pair, samples.p, samples.d, self.depth());
        scratch.fit(pairs.len(), p, depth);
        let Scratch {
            sigma,
            pre,
            edot,
            values,
            gamma,
            t,
            u,
        } = scratch;
        // Pair k's position vectors: Σ and E[σσ] at k·p, C^(h) and Ė^(h) at (k·H + h)·p.
        let at_layer = |k: usize, h: usize| (k * depth + h) * p;
        for (k, &(i, j)) in pairs.iter().enumerate() {
            self.patches.input_products(
                &samples.x[i * d..(i + 1) * d],
                &samples.x[j * d..(j + 1) * d],
                &mut sigma[k * p..(k + 1) * p],
            );
        }
        for (h, layer) in self.layers.iter().enumerate() {
            let at = &samples.layers[h];
            for k in 0..pairs.len() {
                let c = &mut pre[at_layer(k, h)..][..p];
                self.patches.window_sum(&sigma[k * p..(k + 1) * p], c, t);
            }
            let chunk = at.moments.chunk(p);
            for first in (0..p).step_by(chunk) {
                let len = chunk.min(p - first);
                for (k, &(i, j)) in pairs.iter().enumerate() {
                    let (a, b) = (i * p + first, j * p + first);
                    let within = at_layer(k, h) + first..at_layer(k, h) + first + len;
                    at.moments.eval_positions(
                        pair,
                        (i, j, first),
                        (&at.pre[a..a + len], &at.pre[b..b + len]),
                        &pre[within.clone()],
                        i == j,
                        &mut values[k * p + first..][..len],
                        &mut edot[within],
                    );
                }
            }
            let scales = (layer.scale, layer.scale.sqrt());
            for (k, &(i, j)) in pairs.iter().enumerate() {
                let (sigma, u) = (&mut sigma[k * p..(k + 1) * p], &values[k * p..(k + 1) * p]);
                if layer.skip {
                    let (a, b) = (i * p..(i + 1) * p, j * p..(j + 1) * p);
                    let (ba, ma, bb, mb) = (
                        &at.bias[a.clone()],
                        &at.mu[a],
                        &at.bias[b.clone()],
                        &at.mu[b],
                    );
                    for l in 0..p {
                        let cross = ba[l] * mb[l] + ma[l] * bb[l];
                        sigma[l] = next_sigma(true, scales, sigma[l], cross, u[l]);
                    }
                } else {
                    for (sigma, &v) in sigma.iter_mut().zip(u.iter()) {
                        *sigma = next_sigma(false, scales, *sigma, 0.0, v);
                    }
                }
            }
        }
        for (k, out) in out.chunks_mut(depth + 1).enumerate() {
            out[depth] = sigma[k * p..(k + 1) * p].iter().sum();
            gamma.fill(1.0);
            for h in (0..depth).rev() {
                let layer = self.layers[h];
                let (c, e) = (&pre[at_layer(k, h)..][..p], &edot[at_layer(k, h)..][..p]);
                out[h] = layer.scale * (0..p).map(|l| c[l] * e[l] * gamma[l]).sum::<f64>();
                if h > 0 {
                    t.iter_mut()
                        .zip(e.iter().zip(gamma.iter()))
                        .for_each(|(t, (e, g))| *t = e * g);
                    let (summed, scratch) = u.split_at_mut(p);
                    self.patches.window_sum(t, summed, scratch);
                    let skip = f64::from(u8::from(layer.skip));
                    gamma
                        .iter_mut()
                        .zip(summed.iter())
                        .for_each(|(g, b)| *g = skip * *g + layer.scale * b);
                }
            }
        }
    }
}

/// A layer's per-sample quantities: `C^(h)_ii`, `μ^(h)_i` and `b^(h−1)_i` at every (sample,
/// position), row `i·p + l`, and how the layer evaluates its expectations.
struct SampleLayer {
    pre: Vec<f64>,
    mu: Vec<f64>,
    bias: Vec<f64>,
    moments: Moments,
}

/// Samples prepared for the pair recursions.
struct Samples {
    x: Vec<f64>,
    d: usize,
    p: usize,
    layers: Vec<SampleLayer>,
}

impl Samples {
    /// The side of the tiles of pairs: [`TILE`] where a layer reads Mehler's coefficients;
    /// otherwise as many as keep the tile's pair vectors within [`TILE_CACHE`] bytes (at most
    /// [`TILE`]).
    fn tile_side(&self) -> usize {
        let series = self
            .layers
            .iter()
            .any(|l| matches!(l.moments, Moments::Series(_)));
        let pair_bytes = 8 * (2 * self.layers.len() + 2) * self.p;
        let fit = ((TILE_CACHE / pair_bytes) as f64).sqrt() as usize;
        if series { TILE } else { fit.clamp(1, TILE) }
    }
}

/// One thread's working vectors for [`Recursion::tile`].
#[derive(Default)]
struct Scratch {
    /// Per pair, `Σ^(h)` and `E[σ(u)σ(v)]` of the current layer.
    sigma: Vec<f64>,
    values: Vec<f64>,
    /// Per pair and layer, `C^(h)` and `Ė^(h)`.
    pre: Vec<f64>,
    edot: Vec<f64>,
    /// One pair's backward vectors (`u` twice as long: a window sum and its scratch).
    gamma: Vec<f64>,
    t: Vec<f64>,
    u: Vec<f64>,
}

impl Scratch {
    /// Sized for `pairs` pairs of `p` positions through `depth` layers.
    fn fit(&mut self, pairs: usize, p: usize, depth: usize) {
        for (v, len) in [
            (&mut self.sigma, pairs * p),
            (&mut self.values, pairs * p),
            (&mut self.pre, pairs * depth * p),
            (&mut self.edot, pairs * depth * p),
            (&mut self.gamma, p),
            (&mut self.t, p),
            (&mut self.u, 2 * p),
        ] {
            v.resize(len, 0.0);
        }
    }
}

/// A set of samples prepared for A's recursions (the per-sample pass done): any block of its
/// kernel matrices, `K(X_rows, X_cols)`, follows pair by pair, on all cores.
pub struct KernelSet {
    recursion: Recursion,
    samples: Samples,
    names: Vec<String>,
}

impl KernelSet {
    /// Prepares the samples `x` (`n × d`, row-major; conv samples channels-major, as the
    /// models take them) for the fc, resnet or conv_resnet model `config`.
    pub fn new(config: &ModelConfig, x: &[f64]) -> Result<Self, KernelError> {
        let recursion = Recursion::new(config)?;
        let d = config.input_dim;
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(KernelError::Inputs { got: x.len(), d });
        }
        let samples = recursion.samples(x.to_vec(), d);
        Ok(Self {
            recursion,
            samples,
            names: config.layers().into_iter().map(|s| s.name).collect(),
        })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.samples.x.len() / self.samples.d
    }

    /// The names of the matrices of its blocks, as [`NtkLimit::into_named`] gives them.
    pub fn matrix_names(&self) -> Vec<String> {
        self.names.iter().cloned().chain([TOTAL.into()]).collect()
    }

    /// Whether there are no samples (never: [`KernelSet::new`] refuses an empty set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The limits of every layer's Gram between the samples `rows` and `cols`, and of their
    /// sum; `progress` hears the number of pairs done after every column. When the two
    /// ranges are equal only one triangle is computed, and mirrored. Entry (i, j) is the
    /// recursion of the pair (row sample, column sample), so a block equals, bit for bit, the
    /// same block of a larger computation with the same orientation.
    ///
    /// # Panics
    /// If a range reaches past the set's samples.
    pub fn block(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> NtkLimit {
        assert!(
            rows.end <= self.len() && cols.end <= self.len(),
            "block {rows:?} × {cols:?} of a set of {} samples",
            self.len()
        );
        let symmetric = rows == cols;
        let depth = self.recursion.depth();
        let blocks = tiles(rows.len(), cols.len(), symmetric, self.samples.tile_side());
        let mut layers = vec![Mat::<f64>::zeros(rows.len(), cols.len()); depth + 1];
        let ranges: Vec<Range<usize>> = blocks.iter().map(|b| b.columns.clone()).collect();
        let state = || (Scratch::default(), Vec::new(), Vec::new());
        fill_column_blocks(
            &mut layers,
            &ranges,
            state,
            |(scratch, pairs, out), b, columns| {
                let block = &blocks[b];
                for tile in &block.tiles {
                    pairs.clear();
                    pairs.extend(tile.iter().map(|&(i, j)| (rows.start + i, cols.start + j)));
                    out.resize(pairs.len() * (depth + 1), 0.0);
                    self.recursion.tile(&self.samples, pairs, scratch, out);
                    for (&(i, j), values) in tile.iter().zip(out.chunks(depth + 1)) {
                        for (column, &v) in columns[j - block.columns.start].iter_mut().zip(values)
                        {
                            column[i] = v;
                        }
                    }
                    progress(tile.len() as u64);
                }
            },
        );
        if symmetric {
            layers.iter_mut().for_each(mirror_lower);
        }
        let mut total = Mat::<f64>::zeros(rows.len(), cols.len());
        for g in &layers {
            total += g;
        }
        NtkLimit {
            names: self.names.clone(),
            layers,
            total,
        }
    }
}

/// The side of a tile of [`KernelSet::block`], in samples, for Mehler's series: 32 × 32 pairs
/// share their samples' coefficients in cache (n = 400, softplus conv: 21.2 s with 8, 19.2 s
/// with 16, 18.6 s with 32).
const TILE: usize = 32;
/// Closed forms and tables read no coefficients: their tiles are kept small enough for each
/// pair's vectors to stay in cache (relu conv, n = 1000: 27.3 s with tiles of 32, 26.2–26.5 s
/// with 4; fc, n = 10 000: 44–47 s with 1, where the per-tile work dominates).
const TILE_CACHE: usize = 1 << 20;

/// A range of columns of a block and its tiles of pairs.
struct ColumnBlock {
    columns: Range<usize>,
    tiles: Vec<Vec<(usize, usize)>>,
}

/// Tiles of pairs (i, j) covering `rows × cols` (only i ≥ j when `symmetric`), grouped by
/// their `side` columns: squares of `side` samples on a side, each listed column by column,
/// with `side` halved until there are at least eight column blocks per core, so that small
/// blocks still keep every core busy. The blocks come largest first, so that cores taking
/// the next as they finish end together.
fn tiles(rows: usize, cols: usize, symmetric: bool, side: usize) -> Vec<ColumnBlock> {
    let cover = |side: usize| -> Vec<ColumnBlock> {
        let mut blocks: Vec<ColumnBlock> = (0..cols)
            .step_by(side)
            .map(|jb| {
                let columns = jb..(jb + side).min(cols);
                let first = if symmetric { jb } else { 0 };
                let tiles = (first..rows)
                    .step_by(side)
                    .map(|ib| {
                        columns
                            .clone()
                            .flat_map(|j| {
                                let from = if symmetric { ib.max(j) } else { ib };
                                (from..(ib + side).min(rows)).map(move |i| (i, j))
                            })
                            .collect::<Vec<(usize, usize)>>()
                    })
                    .filter(|tile| !tile.is_empty())
                    .collect();
                ColumnBlock { columns, tiles }
            })
            .collect();
        let pairs = |b: &ColumnBlock| b.tiles.iter().map(Vec::len).sum::<usize>();
        blocks.sort_by_key(|b| std::cmp::Reverse(pairs(b)));
        blocks
    };
    let mut side = side;
    let mut blocks = cover(side);
    while side > 1 && blocks.len() < 8 * threads(usize::MAX) {
        side /= 2;
        blocks = cover(side);
    }
    blocks
}

/// The number of pairs [`KernelSet::block`] computes for these ranges.
pub fn pair_count(rows: &Range<usize>, cols: &Range<usize>) -> u64 {
    let (r, c) = (rows.len() as u64, cols.len() as u64);
    if rows == cols { r * (r + 1) / 2 } else { r * c }
}

/// The infinite-width limits of every layer's Gram for the fc, resnet and conv_resnet models
/// on the samples `x` (`n × d`, row-major; conv samples channels-major, as the models take them).
pub fn ntk_limit(config: &ModelConfig, x: &[f64]) -> Result<NtkLimit, KernelError> {
    let set = KernelSet::new(config, x)?;
    let n = set.len();
    Ok(set.block(0..n, 0..n, &|_| {}))
}

/// The limits between two sets, `K(X_a, X_b)` (`n_a × n_b`, e.g. test against training
/// samples), of every layer's Gram and of their sum.
pub fn ntk_cross(config: &ModelConfig, a: &[f64], b: &[f64]) -> Result<NtkLimit, KernelError> {
    let d = config.input_dim;
    for x in [a, b] {
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(KernelError::Inputs { got: x.len(), d });
        }
    }
    let set = KernelSet::new(config, &[a, b].concat())?;
    let (na, n) = (a.len() / d, set.len());
    Ok(set.block(0..na, na..n, &|_| {}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use overparam_models::Activation;

    fn max_abs_diff(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
        (0..a.nrows())
            .flat_map(|i| (0..a.ncols()).map(move |j| (i, j)))
            .fold(0.0f64, |m, (i, j)| m.max((a[(i, j)] - b[(i, j)]).abs()))
    }

    #[test]
    fn cross_blocks_are_blocks_of_the_whole_kernel() {
        let conv = ModelConfig {
            input_dim: 2 * 12,
            arch: Architecture::ConvResnet {
                depth: 3,
                width: 1,
                activation: Activation::Relu,
                c_res: 0.5,
                channels: 2,
                spatial: vec![3, 4],
                kernel: 3,
            },
            seed: 0,
        };
        let fc = ModelConfig {
            input_dim: 24,
            arch: Architecture::Fc {
                depth: 2,
                width: 1,
                activation: Activation::Softplus,
            },
            seed: 0,
        };
        for config in [conv, fc] {
            let d = config.input_dim;
            let x: Vec<f64> = (0..9 * d)
                .map(|i| ((i * 7919 + 5) % 97) as f64 / 48.0 - 1.0)
                .collect();
            let (a, b) = x.split_at(4 * d);
            let whole = ntk_limit(&config, &x).unwrap();
            // The whole kernel computes its lower triangle, rows after columns: the block of
            // b against a.
            let cross = ntk_cross(&config, b, a).unwrap();
            assert_eq!((cross.total.nrows(), cross.total.ncols()), (5, 4));
            for (w, c) in whole.layers.iter().zip(&cross.layers) {
                for i in 0..5 {
                    for j in 0..4 {
                        // The same pair recursion on the same prepared samples: bit for bit.
                        assert_eq!(w[(4 + i, j)], c[(i, j)]);
                    }
                }
            }
            // A set against itself is the symmetric kernel of the set.
            let own = ntk_limit(&config, a).unwrap();
            let against = ntk_cross(&config, a, a).unwrap();
            let scale = own.total[(0, 0)].abs();
            assert!(max_abs_diff(&own.total, &against.total) <= 1e-13 * scale);
        }
        assert!(matches!(
            ntk_cross(
                &ModelConfig {
                    input_dim: 5,
                    ..fc_like()
                },
                &[1.0; 10],
                &[1.0; 7]
            ),
            Err(KernelError::Inputs { got: 7, d: 5 })
        ));
    }

    #[test]
    fn tiles_cover_every_pair_once() {
        for (rows, cols, symmetric) in [
            (1, 1, true),
            (7, 7, true),
            (100, 100, true),
            (45, 70, false),
        ] {
            let mut seen = vec![0u8; rows * cols];
            for tile in tiles(rows, cols, symmetric, TILE)
                .into_iter()
                .flat_map(|b| b.tiles)
            {
                assert!(tile.len() <= TILE * TILE);
                for (i, j) in tile {
                    seen[i * cols + j] += 1;
                }
            }
            for i in 0..rows {
                for j in 0..cols {
                    let want = u8::from(!symmetric || i >= j);
                    assert_eq!(seen[i * cols + j], want, "{rows} × {cols}: pair ({i}, {j})");
                }
            }
        }
    }

    fn fc_like() -> ModelConfig {
        ModelConfig {
            input_dim: 5,
            arch: Architecture::Fc {
                depth: 1,
                width: 1,
                activation: Activation::Relu,
            },
            seed: 0,
        }
    }
}
