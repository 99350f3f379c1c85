//! Maps over every pair of a covariance matrix, `f(Λ_ij)` with `Λ_ij = [[K_ii, K_ij], [K_ij, K_jj]]`,
//! the step every layer of the recursions repeats, with the tabulated fast path for equal
//! diagonals; and the elementwise maps between layers. All of them fill columns (contiguous in
//! faer) on one thread per core.

use crate::expectation::{GaussianPair, Moment, mehler};
use faer::Mat;
use std::collections::HashMap;
use std::f64::consts::PI;

/// Uniform grid points of the dense table read by cubic interpolation (interpolation error
/// ~h⁴ f⁗ / 24 with h = 2q/2048, far below 1e-10).
const TABLE: usize = 2049;
/// Below this many samples the direct evaluation is cheaper than building a table.
const TABLE_MIN_N: usize = 48;
/// The Chebyshev degree starts here and doubles until the interpolant has converged.
const CHEBYSHEV_START: usize = 16;
/// Largest Chebyshev degree tried.
const CHEBYSHEV_MAX: usize = 512;
/// Converged when the last four Chebyshev coefficients are below this fraction of the
/// largest value of f.
const CHEBYSHEV_TAIL: f64 = 1e-12;

/// A smooth function of the covariance `c ∈ [−q, q]` at a fixed diagonal q.
///
/// f is evaluated at Chebyshev–Lobatto points `q cos(πk/N)` (N doubling from 16, reusing the
/// points already evaluated, until the last coefficients are below 1e-12 of max |f|, so a
/// smooth f costs a few dozen expensive evaluations), the interpolant is written out on a
/// dense uniform grid by Clenshaw's recurrence, and read with 4-point Lagrange interpolation.
struct Tabulated {
    q: f64,
    step: f64,
    values: Vec<f64>,
}

/// Coefficients `c_j` of the degree-N interpolant `Σ''_j c_j T_j(t)` through `values[k]` at
/// `t_k = cos(πk/N)` (the discrete cosine transform of type I; Σ'' halves the first and last
/// terms).
fn chebyshev_coefficients(values: &[f64]) -> Vec<f64> {
    let n = values.len() - 1;
    (0..=n)
        .map(|j| {
            let sum: f64 = values
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    let half = if k == 0 || k == n { 0.5 } else { 1.0 };
                    half * v * (PI * (j * k) as f64 / n as f64).cos()
                })
                .sum();
            let half = if j == 0 || j == n { 0.5 } else { 1.0 };
            half * 2.0 * sum / n as f64
        })
        .collect()
}

/// `Σ_j c_j T_j(t)` by Clenshaw's recurrence.
fn clenshaw(coefficients: &[f64], t: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &c in coefficients.iter().skip(1).rev() {
        let b0 = 2.0 * t * b1 - b2 + c;
        b2 = b1;
        b1 = b0;
    }
    t * b1 - b2 + coefficients[0]
}

impl Tabulated {
    fn new(q: f64, f: impl Fn(f64) -> f64 + Sync) -> Self {
        let node = |k: usize, n: usize| f(q * (PI * k as f64 / n as f64).cos());
        let mut n = CHEBYSHEV_START;
        let mut values = parallel_map(n + 1, &|k| node(k, n));
        let coefficients = loop {
            let coefficients = chebyshev_coefficients(&values);
            let scale = values.iter().fold(0.0f64, |s, v| s.max(v.abs()));
            let tail = coefficients[n - 3..]
                .iter()
                .fold(0.0f64, |s, c| s.max(c.abs()));
            if tail <= CHEBYSHEV_TAIL * scale || n >= CHEBYSHEV_MAX {
                break coefficients;
            }
            // Degree 2N: the even points are the old ones, only the odd ones are new.
            let odd = parallel_map(n, &|k| node(2 * k + 1, 2 * n));
            values = (0..=2 * n)
                .map(|k| {
                    if k % 2 == 0 {
                        values[k / 2]
                    } else {
                        odd[k / 2]
                    }
                })
                .collect();
            n *= 2;
        };
        let step = 2.0 * q / (TABLE - 1) as f64;
        let values = parallel_map(TABLE, &|i| {
            let c = (-q + i as f64 * step).clamp(-q, q);
            clenshaw(&coefficients, c / q)
        });
        Self { q, step, values }
    }

    fn eval(&self, c: f64) -> f64 {
        let t = ((c.clamp(-self.q, self.q) + self.q) / self.step).clamp(0.0, (TABLE - 1) as f64);
        let i = (t.floor() as usize).clamp(1, TABLE - 3);
        let s = t - i as f64;
        let v = &self.values[i - 1..i + 3];
        // Lagrange weights of nodes −1, 0, 1, 2 at s.
        let w = [
            -s * (s - 1.0) * (s - 2.0) / 6.0,
            (s + 1.0) * (s - 1.0) * (s - 2.0) / 2.0,
            -(s + 1.0) * s * (s - 2.0) / 2.0,
            (s + 1.0) * s * (s - 1.0) / 6.0,
        ];
        w.iter().zip(v).map(|(w, v)| w * v).sum()
    }
}

/// `scale · E[g(u) g(v)]` (g = σ or σ', [`Moment`]) with `(u, v) ~ N(0, [[K_ii, K_ij],
/// [K_ij, K_jj]])` over all pairs (symmetric).
///
/// Three ways, each exact to 1e-8 against the direct 2-D quadrature (tests below):
/// - closed forms (ReLU) are evaluated at every pair: they are cheap, and the arc-cosine
///   kernels have a square-root singularity at `c = ±q` that no polynomial resolves;
/// - equal diagonals q (unit-norm inputs keep them equal at every layer of fc and resnet): the
///   map depends on `K_ij` alone and is tabulated once on [−q, q] (Chebyshev) and interpolated;
/// - otherwise (the conv recursions, whose variances depend on sample and position): Mehler's
///   series `Σ_k ρ^k c_k(K_ii) c_k(K_jj)` from Hermite coefficients computed once per distinct
///   diagonal value, falling back to the direct quadrature for the pairs where its truncated
///   tail could matter.
pub(crate) fn pairwise(k: &Mat<f64>, pair: GaussianPair, which: Moment, scale: f64) -> Mat<f64> {
    let n = k.nrows();
    let f = |a: f64, b: f64, c: f64| scale * pair.moment(which, a, b, c);
    let diag: Vec<f64> = (0..n).map(|i| k[(i, i)]).collect();
    let q = diag[0];
    let equal = diag.iter().all(|d| (d - q).abs() <= 1e-12 * q.abs());
    let path = if pair.has_closed_form() {
        Path::Direct
    } else if equal && n >= TABLE_MIN_N && q > 0.0 {
        Path::Table(Tabulated::new(q, |c| f(q, q, c)), f(q, q, q))
    } else {
        let (coefficients, slot) = per_distinct(&diag, |a| pair.hermite(which, a));
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

/// `f` at each distinct value of `values` (one for unit-norm inputs to fc and resnet, at
/// most one per sample and position for conv nets), and each entry's slot among them.
pub(crate) fn per_distinct<T>(values: &[f64], mut f: impl FnMut(f64) -> T) -> (Vec<T>, Vec<usize>) {
    let mut index = HashMap::new();
    let mut distinct = Vec::new();
    let slot = values
        .iter()
        .map(|&a| {
            *index.entry(a.to_bits()).or_insert_with(|| {
                distinct.push(f(a));
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, slot)
}

/// How [`pairwise`] evaluates.
enum Path {
    Direct,
    /// The table and the diagonal value.
    Table(Tabulated, f64),
    /// Hermite coefficients per distinct diagonal value, and each row's slot in them.
    Series(Vec<Vec<f64>>, Vec<usize>),
}

/// The number of threads for `len` independent jobs: one per core.
fn threads(len: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, len.max(1))
}

/// A `rows × cols` matrix whose column j is written by `fill(j, column)`, the columns dealt
/// round-robin to one thread per core (so that triangular work stays balanced).
pub(crate) fn by_columns(
    rows: usize,
    cols: usize,
    fill: impl Fn(usize, &mut [f64]) + Sync,
) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(rows, cols);
    fill_columns(&mut out, fill);
    out
}

/// Rewrites column j of `out` by `fill(j, column)` for every j, on all cores.
fn fill_columns(out: &mut Mat<f64>, fill: impl Fn(usize, &mut [f64]) + Sync) {
    let threads = threads(out.ncols());
    let mut buckets: Vec<Vec<(usize, &mut [f64])>> = (0..threads).map(|_| Vec::new()).collect();
    for (j, column) in out.col_iter_mut().enumerate() {
        let column = column
            .try_as_col_major_mut()
            .expect("the columns of an owned matrix are contiguous")
            .as_slice_mut();
        buckets[j % threads].push((j, column));
    }
    let fill = &fill;
    std::thread::scope(|scope| {
        for bucket in buckets {
            scope.spawn(move || {
                for (j, column) in bucket {
                    fill(j, column);
                }
            });
        }
    });
}

/// `t_ij ← f(i, j, t_ij, [a_ij, b_ij, …])` in place, so that a recursion step allocates nothing.
pub(crate) fn zip_assign<const K: usize>(
    target: &mut Mat<f64>,
    mats: [&Mat<f64>; K],
    f: impl Fn(usize, usize, f64, [f64; K]) -> f64 + Sync,
) {
    fill_columns(target, |j, out| {
        let columns = mats.map(|m| m.col_as_slice(j));
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(i, j, *o, columns.map(|c| c[i]));
        }
    });
}

/// `f(i, j, [a_ij, b_ij, …])` over equally shaped matrices, elementwise.
pub(crate) fn zip_map<const K: usize>(
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

/// `[f(0), …, f(len − 1)]`, the indices dealt round-robin to one thread per core (so that
/// columns of decreasing length stay balanced).
fn parallel_map<T: Send>(len: usize, f: &(impl Fn(usize) -> T + Sync)) -> Vec<T> {
    let threads = threads(len);
    let mut parts: Vec<std::vec::IntoIter<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..len).step_by(threads).map(f).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a kernel thread panicked").into_iter())
            .collect()
    });
    (0..len)
        .map(|i| parts[i % threads].next().expect("every index was computed"))
        .collect()
}

/// Copies the lower triangle onto the upper one, in tiles so both sides stay in cache.
fn mirror_lower(m: &mut Mat<f64>) {
    const TILE: usize = 64;
    let n = m.nrows();
    for jb in (0..n).step_by(TILE) {
        for ib in (jb..n).step_by(TILE) {
            for j in jb..(jb + TILE).min(n) {
                for i in ib.max(j + 1)..(ib + TILE).min(n) {
                    m[(j, i)] = m[(i, j)];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overparam_models::Activation;

    #[test]
    fn chebyshev_interpolant_reproduces_a_smooth_function() {
        let f = |c: f64| (1.3 * c).exp() * (c + 0.2).sin();
        let t = Tabulated::new(1.7, f);
        for i in 0..=1000 {
            let c = -1.7 + 3.4 * i as f64 / 1000.0;
            assert!(
                (t.eval(c) - f(c)).abs() < 1e-10,
                "at {c}: {} vs {}",
                t.eval(c),
                f(c)
            );
        }
    }

    #[test]
    fn tabulated_and_series_paths_match_direct_quadrature() {
        // 60 unit vectors: equal diagonals, so the table is used off the diagonal.
        let (n, d) = (60, 7);
        let x: Vec<f64> = (0..n * d)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let k = crate::hinf::cosine_gram(&x, d);
        // Unequal diagonals (rows scaled by 0.5 … 3): the Mehler series path.
        let scales: Vec<f64> = (0..n).map(|i| 0.5 + (i % 11) as f64 / 4.0).collect();
        let unequal = Mat::from_fn(n, n, |i, j| scales[i] * scales[j] * k[(i, j)]);
        for (k, act) in [&k, &unequal].into_iter().flat_map(|k| {
            [
                Activation::Softplus,
                Activation::Tanh,
                Activation::Gelu,
                Activation::Sigmoid,
            ]
            .map(|act| (k, act))
        }) {
            let pair = GaussianPair::new(act);
            let fast = pairwise(k, pair, Moment::Values, 1.0);
            let fast_dot = pairwise(k, pair, Moment::Derivatives, 1.0);
            // Every fourth pair against the (slower) direct quadrature.
            for i in 0..n {
                for j in (i % 4..i).step_by(4) {
                    let (a, b, c) = (k[(i, i)], k[(j, j)], k[(i, j)]);
                    assert!(
                        (fast[(i, j)] - pair.sigma_sigma(a, b, c)).abs() < 1e-8,
                        "{act} σσ"
                    );
                    assert!(
                        (fast_dot[(i, j)] - pair.dsigma_dsigma(a, b, c)).abs() < 1e-8,
                        "{act} σ'σ'"
                    );
                }
            }
        }
    }
}
