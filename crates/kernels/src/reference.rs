//! The test oracle of the pair recursion: A's recursions on whole `(n·p) × (n·p)` covariance
//! matrices indexed by (sample, position), row `i·p + l`, the patch operator φ summing over
//! aligned patch offsets (a dense net is the case p = 1 with the identity for φ). Nothing here
//! assumes that the covariances are diagonal in position, so agreement with
//! [`crate::ntk::KernelSet`] checks that argument as well as the code.

use crate::expectation::{GaussianPair, Moment};
use crate::ntk::{Recursion, ntk_limit};
use crate::pairwise::{Tabulated, mirror_lower, per_distinct, threads};
use faer::Mat;
use overparam_models::{Activation, Architecture, ModelConfig};
use std::borrow::Cow;

/// The positions of a net and the offsets of its patches.
#[derive(Debug, Clone)]
struct Patches {
    /// p, positions per sample.
    p: usize,
    /// q, offsets per patch.
    q: usize,
    /// `shift[l·q + o]`: the position at offset o of the patch centred at l, `None` in the
    /// zero padding.
    shift: Vec<Option<usize>>,
}

impl Patches {
    /// One position, φ the identity (fc, resnet).
    fn dense() -> Self {
        Self {
            p: 1,
            q: 1,
            shift: vec![Some(0)],
        }
    }

    /// Stride-1 patches of side `kernel` (odd) with zero padding `(kernel − 1)/2` over
    /// positions `spatial` (`[p]` or `[height, width]`, flattened row-major as in the model).
    fn conv(spatial: &[usize], kernel: usize) -> Self {
        let pad = (kernel / 2) as isize;
        let side: Vec<isize> = (-pad..=pad).collect();
        // Offsets per axis, combined row-major; positions likewise.
        let offsets: Vec<Vec<isize>> = spatial.iter().fold(vec![vec![]], |acc, _| {
            acc.iter()
                .flat_map(|o| {
                    side.iter().map(move |&s| {
                        let mut o = o.clone();
                        o.push(s);
                        o
                    })
                })
                .collect()
        });
        let p: usize = spatial.iter().product();
        let coordinates = |mut l: usize| -> Vec<isize> {
            let mut c = vec![0; spatial.len()];
            for (axis, &size) in spatial.iter().enumerate().rev() {
                c[axis] = (l % size) as isize;
                l /= size;
            }
            c
        };
        let shift = (0..p)
            .flat_map(|l| {
                let at = coordinates(l);
                offsets.iter().map(move |o| {
                    at.iter()
                        .zip(o)
                        .zip(spatial)
                        .try_fold(0usize, |index, ((&c, &d), &size)| {
                            let moved = c + d;
                            (0..size as isize)
                                .contains(&moved)
                                .then(|| index * size + moved as usize)
                        })
                })
            })
            .collect();
        Self {
            p,
            q: offsets.len(),
            shift,
        }
    }

    /// p.
    fn positions(&self) -> usize {
        self.p
    }

    /// `Σ_c x_{i,c,l} x_{j,c,l'}` for samples stored channels-major (`x_i[c·p + l]`), the
    /// position Gram of the inputs over `channels = d / p` channels.
    fn position_gram(&self, x: &[f64], d: usize) -> Mat<f64> {
        let (p, channels) = (self.p, d / self.p);
        let rows = Mat::<f64>::from_fn(x.len() / d * p, channels, |row, c| {
            x[(row / p) * d + c * p + row % p]
        });
        &rows * rows.transpose()
    }

    /// The covariance of patches, `(Φ M)_{(i,l),(j,l')} = Σ_o M_{(i,l+o),(j,l'+o)}` over the
    /// offsets o at which both positions lie inside the image: `φ(x_i)_{:,l}ᵀ φ(x_j)_{:,l'}`
    /// when `M` is the position Gram of x (A Def. 7.1, `tr(H_{D_l D_r})`). With symmetric
    /// offsets it is also the adjoint that backpropagation through φ applies.
    fn patch<'a>(&self, m: &'a Mat<f64>) -> Cow<'a, Mat<f64>> {
        if self.is_dense() {
            return Cow::Borrowed(m);
        }
        let (p, q) = (self.p, self.q);
        Cow::Owned(Mat::from_fn(m.nrows(), m.ncols(), |row, col| {
            let (i, l, j, r) = (row / p * p, row % p, col / p * p, col % p);
            (0..q)
                .filter_map(|o| match (self.shift[l * q + o], self.shift[r * q + o]) {
                    (Some(a), Some(b)) => Some(m[(i + a, j + b)]),
                    _ => None,
                })
                .sum()
        }))
    }

    /// Whether there is one position and φ is the identity (fc, resnet).
    fn is_dense(&self) -> bool {
        self.q == 1 && self.p == 1
    }

    /// `Σ_{l,l'} M_{(i,l),(j,l')}`, the `n × n` matrix of block sums.
    fn block_sum(&self, m: Mat<f64>) -> Mat<f64> {
        self.reduce(m, |p| (0..p * p).map(move |t| (t / p, t % p)))
    }

    /// `Σ_l M_{(i,l),(j,l)}`, the `n × n` matrix of block traces.
    fn block_trace(&self, m: Mat<f64>) -> Mat<f64> {
        self.reduce(m, |p| (0..p).map(|l| (l, l)))
    }

    fn reduce<I: Iterator<Item = (usize, usize)>>(
        &self,
        m: Mat<f64>,
        entries: impl Fn(usize) -> I,
    ) -> Mat<f64> {
        let p = self.p;
        if p == 1 {
            return m;
        }
        let n = m.nrows() / p;
        Mat::from_fn(n, n, |i, j| {
            entries(p).map(|(l, r)| m[(i * p + l, j * p + r)]).sum()
        })
    }

    /// `δ_{ll'}` at every pair of samples: the covariance `(1/m) Σ_c a_{c,l} a_{c,l'}` of the
    /// read-out's backprop signal at init.
    fn aligned(&self, n: usize) -> Mat<f64> {
        let p = self.p;
        Mat::from_fn(n * p, n * p, |row, col| {
            f64::from(u8::from(row % p == col % p))
        })
    }
}

/// `scale · E[g(u) g(v)]` (g = σ or σ', [`Moment`]) with `(u, v) ~ N(0, [[K_ii, K_ij],
/// [K_ij, K_jj]])` over all pairs (symmetric).
///
/// Three ways:
/// - closed forms (ReLU, erf) at every pair;
/// - equal diagonals q (unit-norm inputs keep them equal at every layer of fc and resnet):
///   the map depends on `K_ij` alone and is tabulated once on [−q, q] (Chebyshev) and
///   interpolated;
/// - otherwise Mehler's series `Σ_k ρ^k c_k(K_ii) c_k(K_jj)` of g's own coefficients, to a
///   fixed degree, where its terms have died out, and the direct 2-D quadrature elsewhere:
///   none of the pair recursion's ways (σ' coefficients per block, cut by a bound; Price's
///   series).
fn pairwise(k: &Mat<f64>, pair: GaussianPair, which: Moment, scale: f64) -> Mat<f64> {
    let n = k.nrows();
    let f = |a: f64, b: f64, c: f64| scale * pair.moment(which, a, b, c);
    let diag: Vec<f64> = (0..n).map(|i| k[(i, i)]).collect();
    let q = diag[0];
    let equal = diag.iter().all(|d| (d - q).abs() <= 1e-12 * q.abs());
    let path = if pair.has_closed_form() {
        Path::Direct
    } else if equal && n >= 48 && q > 0.0 {
        Path::Table(Tabulated::new(q, |c| f(q, q, c)), f(q, q, q))
    } else {
        let (distinct, slot) = per_distinct(&diag, |a| a);
        let coefficients = pair.hermite_batch(which, &distinct, |_| DEGREE);
        Path::Series(coefficients, slot)
    };
    // The lower triangle, then mirrored.
    let mut out = by_columns(n, n, |j, out| {
        let column = &k.col_as_slice(j)[j..];
        let out = &mut out[j..];
        match &path {
            Path::Direct => {
                for ((o, &c), &d) in out.iter_mut().zip(column).zip(&diag[j..]) {
                    *o = f(d, diag[j], c);
                }
            }
            Path::Table(table, diagonal) => {
                for (o, &c) in out.iter_mut().zip(column) {
                    *o = table.eval(c);
                }
                out[0] = *diagonal;
            }
            Path::Series(coefficients, slot) => {
                for (t, (o, &c)) in out.iter_mut().zip(column).enumerate() {
                    let i = j + t;
                    let (a, b) = (diag[i], diag[j]);
                    let norm = (a * b).sqrt();
                    let rho = if norm > 0.0 {
                        (c / norm).clamp(-1.0, 1.0)
                    } else {
                        0.0
                    };
                    let series = mehler(&coefficients[slot[i]], &coefficients[slot[j]], rho);
                    *o = series.map_or_else(|| f(a, b, c), |v| scale * v);
                }
            }
        }
    });
    mirror_lower(&mut out);
    out
}

/// How [`pairwise`] evaluates.
enum Path {
    Direct,
    /// The table and the diagonal value.
    Table(Tabulated, f64),
    /// Hermite coefficients of g per distinct diagonal value, and each row's slot in them.
    Series(Vec<Vec<f64>>, Vec<usize>),
}

/// The degree of the oracle's Mehler series.
const DEGREE: usize = 120;

/// `Σ_k ρ^k c_k d_k` (Mehler's formula) from the Hermite coefficients of g at the two
/// variances, plainly summed; `None` unless its last four terms are below 1e-17, so that the
/// oracle's series is exact to rounding wherever it is used (the direct quadrature elsewhere).
fn mehler(c: &[f64], d: &[f64], rho: f64) -> Option<f64> {
    let last = (DEGREE - 3..=DEGREE)
        .map(|k| (c[k] * d[k] * rho.powi(k as i32)).abs())
        .fold(0.0, f64::max);
    (last <= 1e-17).then(|| (0..=DEGREE).map(|k| c[k] * d[k] * rho.powi(k as i32)).sum())
}

/// Rewrites column j of every matrix of `outs` (all with the same number of columns) by
/// `fill(j, columns)`, the columns dealt round-robin to one thread per core (so that
/// triangular work stays balanced).
pub(crate) fn fill_columns(outs: &mut [Mat<f64>], fill: impl Fn(usize, &mut [&mut [f64]]) + Sync) {
    let cols = outs.first().map_or(0, |m| m.ncols());
    let mut columns: Vec<Vec<&mut [f64]>> = (0..cols).map(|_| Vec::new()).collect();
    for m in outs.iter_mut() {
        for (j, column) in m.col_iter_mut().enumerate() {
            columns[j].push(
                column
                    .try_as_col_major_mut()
                    .expect("the columns of an owned matrix are contiguous")
                    .as_slice_mut(),
            );
        }
    }
    let threads = threads(cols);
    /// Column j of every matrix.
    type Columns<'a> = (usize, Vec<&'a mut [f64]>);
    let mut buckets: Vec<Vec<Columns>> = (0..threads).map(|_| Vec::new()).collect();
    for (j, column) in columns.into_iter().enumerate() {
        buckets[j % threads].push((j, column));
    }
    let fill = &fill;
    std::thread::scope(|scope| {
        for bucket in buckets {
            scope.spawn(move || {
                for (j, mut column) in bucket {
                    fill(j, &mut column);
                }
            });
        }
    });
}

/// A `rows × cols` matrix whose column j is written by `fill(j, column)`, the columns dealt
/// round-robin to one thread per core (so that triangular work stays balanced).
fn by_columns(rows: usize, cols: usize, fill: impl Fn(usize, &mut [f64]) + Sync) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(rows, cols);
    fill_columns(std::slice::from_mut(&mut out), |j, c| fill(j, &mut *c[0]));
    out
}

/// `t_ij ← f(i, j, t_ij, [a_ij, b_ij, …])` in place, so that a recursion step allocates nothing.
fn zip_assign<const K: usize>(
    target: &mut Mat<f64>,
    mats: [&Mat<f64>; K],
    f: impl Fn(usize, usize, f64, [f64; K]) -> f64 + Sync,
) {
    fill_columns(std::slice::from_mut(target), |j, out| {
        let out = &mut *out[0];
        let columns = mats.map(|m| m.col_as_slice(j));
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(i, j, *o, columns.map(|c| c[i]));
        }
    });
}

/// `f(i, j, [a_ij, b_ij, …])` over equally shaped matrices, elementwise.
fn zip_map<const K: usize>(
    mats: [&Mat<f64>; K],
    f: impl Fn(usize, usize, [f64; K]) -> f64 + Sync,
) -> Mat<f64> {
    by_columns(mats[0].nrows(), mats[0].ncols(), |j, out| {
        let columns = mats.map(|m| m.col_as_slice(j));
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(i, j, columns.map(|c| c[i]));
        }
    })
}

/// What the forward recursion leaves for the backward one, per hidden layer h: the
/// pre-activation covariance `C^(h) = Φ(Σ^(h−1))` and `Ė^(h) = E[σ'(u)σ'(v)]` under it; and
/// `Σ^(H)`, the covariance of the last hidden layer.
struct Forward {
    pre: Vec<Mat<f64>>,
    edot: Vec<Mat<f64>>,
    last: Mat<f64>,
}

/// A model's recursion on whole covariance matrices.
struct Oracle {
    recursion: Recursion,
    patches: Patches,
}

impl Oracle {
    /// Forward covariances (Def. 5.1, 6.1, 7.1 in the form of Def. E.1, papers.md §1.4):
    /// `C^(h) = Φ(Σ^(h−1))`, `μ^(h)_i = E_{u~N(0, C^(h)_ii)} σ(u)`, and
    /// `Σ^(h) = s E[σ(u)σ(v)]`, `b^(h) = sqrt(s) μ` for a layer without skip;
    /// `Σ^(h) = Σ^(h−1) + sqrt(s)(b_i μ_j + μ_i b_j) + s E[σ(u)σ(v)]`, `b^(h) = b^(h−1) + sqrt(s) μ`
    /// with a skip; `(u, v) ~ N(0, [[C_ii, C_ij], [C_ij, C_jj]])`, indices (sample, position).
    fn forward(&self, sigma0: Mat<f64>) -> Forward {
        let pair = self.recursion.pair;
        let np = sigma0.nrows();
        let (mut pre, mut edot) = (Vec::new(), Vec::new());
        let mut sigma = sigma0;
        let mut bias = vec![0.0; np];
        for layer in &self.recursion.layers {
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
        let s = self.recursion.layers[h].scale;
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
        let depth = self.recursion.layers.len();
        let mut limits = vec![Mat::<f64>::zeros(0, 0); depth + 1];
        limits[depth] = self.patches.block_trace(last);
        let mut gamma = self.patches.aligned(n);
        for h in (0..depth).rev() {
            let (c, mut e) = (
                pre.pop().expect("one C per layer"),
                edot.pop().expect("one Ė per layer"),
            );
            limits[h] = self.layer_limit(h, c, &e, &gamma);
            let layer = self.recursion.layers[h];
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
}

/// Every layer's limit (hidden layers, then the read-out) by the matrix recursions.
fn oracle_limits(config: &ModelConfig, x: &[f64]) -> Vec<Mat<f64>> {
    let patches = match &config.arch {
        Architecture::ConvResnet {
            spatial, kernel, ..
        } => Patches::conv(spatial, *kernel),
        _ => Patches::dense(),
    };
    let oracle = Oracle {
        recursion: Recursion::new(config).unwrap(),
        patches,
    };
    let sigma0 = oracle.patches.position_gram(x, config.input_dim);
    oracle.backward(oracle.forward(sigma0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_covariance_is_the_inner_product_of_patches() {
        // 2 samples, 2 channels, 3 × 2 images, 3 × 3 patches: compare Φ(position Gram) with
        // the inner products of explicitly cut, zero-padded patches.
        let (h, w, channels, n) = (3usize, 2usize, 2usize, 2usize);
        let p = h * w;
        let d = channels * p;
        let x: Vec<f64> = (0..n * d).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let patches = Patches::conv(&[h, w], 3);
        let gram = patches.position_gram(&x, d);
        let k = patches.patch(&gram);
        let patch = |i: usize, l: usize| -> Vec<f64> {
            let (y, xx) = ((l / w) as isize, (l % w) as isize);
            let mut v = Vec::new();
            for c in 0..channels {
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        let (yy, xq) = (y + dy, xx + dx);
                        let inside = (0..h as isize).contains(&yy) && (0..w as isize).contains(&xq);
                        v.push(if inside {
                            x[i * d + c * p + (yy as usize) * w + xq as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
            v
        };
        for i in 0..n {
            for l in 0..p {
                for j in 0..n {
                    for r in 0..p {
                        let direct: f64 = patch(i, l)
                            .iter()
                            .zip(patch(j, r))
                            .map(|(a, b)| a * b)
                            .sum();
                        assert!((k[(i * p + l, j * p + r)] - direct).abs() < 1e-12);
                    }
                }
            }
        }
        let ones = Mat::<f64>::from_fn(n * p, n * p, |_, _| 1.0);
        assert_eq!(patches.block_sum(ones.clone())[(0, 1)], (p * p) as f64);
        assert_eq!(patches.block_trace(ones)[(1, 0)], p as f64);
    }

    /// Samples with unequal norms (so every variance differs by sample and position).
    fn inputs(n: usize, d: usize, seed: usize) -> Vec<f64> {
        (0..n * d)
            .map(|i| (((i + seed) * 7919 + 13) % 101) as f64 / 50.0 - 1.0)
            .collect()
    }

    fn conv(depth: usize, activation: Activation, spatial: &[usize], kernel: usize) -> ModelConfig {
        let channels = 2;
        ModelConfig {
            input_dim: channels * spatial.iter().product::<usize>(),
            arch: Architecture::ConvResnet {
                depth,
                width: 1,
                activation,
                c_res: 0.7,
                channels,
                spatial: spatial.to_vec(),
                kernel,
            },
            seed: 0,
        }
    }

    fn assert_agree(config: &ModelConfig, x: &[f64], what: &str) {
        let oracle = oracle_limits(config, x);
        let limit = ntk_limit(config, x).unwrap();
        assert_eq!(oracle.len(), limit.layers.len());
        for (h, (a, b)) in oracle.iter().zip(&limit.layers).enumerate() {
            let scale = (0..a.nrows())
                .flat_map(|i| (0..a.ncols()).map(move |j| (i, j)))
                .fold(0.0f64, |m, (i, j)| m.max(a[(i, j)].abs()));
            let diff = (0..a.nrows())
                .flat_map(|i| (0..a.ncols()).map(move |j| (i, j)))
                .fold(0.0f64, |m, (i, j)| m.max((a[(i, j)] - b[(i, j)]).abs()));
            assert!(
                diff <= 1e-12 * scale && scale > 0.0,
                "{what}, layer {h}: max difference {diff:e} of max {scale:e}"
            );
        }
    }

    #[test]
    fn pair_recursion_matches_the_matrix_recursion() {
        let every = [
            Activation::Relu,
            Activation::Erf,
            Activation::Softplus,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Gelu,
        ];
        for activation in every {
            // 1-D and 2-D images, windows of 3 and 5, depths 1 to 3.
            for (depth, spatial, kernel) in [
                (1, vec![5usize], 3usize),
                (3, vec![6], 5),
                (2, vec![3, 4], 3),
                (3, vec![4, 3], 3),
            ] {
                let config = conv(depth, activation, &spatial, kernel);
                let x = inputs(4, config.input_dim, depth);
                assert_agree(
                    &config,
                    &x,
                    &format!("{activation} {spatial:?} k={kernel} H={depth}"),
                );
            }
            // Dense nets: unit-norm rows (equal variances: the table path from 48 samples on)
            // and unequal norms.
            for n in [5, 50] {
                let d = 4;
                let raw = inputs(n, d, 1);
                let unit: Vec<f64> = raw
                    .chunks(d)
                    .flat_map(|r| {
                        let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                        r.iter().map(move |v| v / norm)
                    })
                    .collect();
                for arch in [
                    Architecture::Fc {
                        depth: 3,
                        width: 1,
                        activation,
                    },
                    Architecture::Resnet {
                        depth: 3,
                        width: 1,
                        activation,
                        c_res: 0.5,
                    },
                ] {
                    let config = ModelConfig {
                        input_dim: d,
                        arch,
                        seed: 0,
                    };
                    for x in [&raw, &unit] {
                        assert_agree(
                            &config,
                            x,
                            &format!("{} {activation} n={n}", config.kind_name()),
                        );
                    }
                }
            }
        }
    }
}
