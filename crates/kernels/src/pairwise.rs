//! Maps over every pair of a covariance matrix, `f(Λ_ij)` with `Λ_ij = [[K_ii, K_ij], [K_ij, K_jj]]`,
//! the step every layer of the recursions repeats, with the tabulated fast path for equal
//! diagonals; and the elementwise maps between layers. All of them fill columns (contiguous in
//! faer) on one thread per core.

use faer::Mat;
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

/// How a pairwise map may be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evaluation {
    /// f is cheap (a closed form): evaluate it at every pair.
    Direct,
    /// f is an expensive quadrature of a smooth function of the covariance: tabulate it when
    /// every diagonal entry is the same.
    Tabulate,
}

/// `f(K_ii, K_jj, K_ij)` over all pairs (symmetric).
///
/// Fast path: when every diagonal entry is the same q (unit-norm inputs keep it so at every
/// layer of fc and resnet), `f` depends on `K_ij` alone, so it is tabulated once per layer on
/// [−q, q] and interpolated, instead of a 2-D quadrature per pair (matches direct evaluation
/// to 1e-8). Closed forms are evaluated directly: they are cheap, and the arc-cosine kernels
/// have a square-root singularity at `c = ±q` that no polynomial table resolves.
pub(crate) fn pairwise(
    k: &Mat<f64>,
    how: Evaluation,
    f: impl Fn(f64, f64, f64) -> f64 + Sync,
) -> Mat<f64> {
    let n = k.nrows();
    let diag: Vec<f64> = (0..n).map(|i| k[(i, i)]).collect();
    let q = diag[0];
    let equal = diag.iter().all(|d| (d - q).abs() <= 1e-12 * q.abs());
    let table = (how == Evaluation::Tabulate && equal && n >= TABLE_MIN_N && q > 0.0)
        .then(|| Tabulated::new(q, |c| f(q, q, c)));
    let diagonal = table.as_ref().map(|_| f(q, q, q));
    // The lower triangle, then mirrored.
    let mut out = by_columns(n, n, |j, out| {
        let column = &k.col_as_slice(j)[j..];
        let out = &mut out[j..];
        match (&table, diagonal) {
            (Some(t), Some(diag)) => {
                for (o, &c) in out.iter_mut().zip(column) {
                    *o = t.eval(c);
                }
                out[0] = diag;
            }
            _ => {
                for ((o, &c), &d) in out.iter_mut().zip(column).zip(&diag[j..]) {
                    *o = f(d, diag[j], c);
                }
            }
        }
    });
    mirror_lower(&mut out);
    out
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
    let threads = threads(cols);
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
    out
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
    use crate::expectation::GaussianPair;
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
    fn tabulated_path_matches_direct_quadrature() {
        // 60 unit vectors: equal diagonals, so the table is used off the diagonal.
        let (n, d) = (60, 7);
        let x: Vec<f64> = (0..n * d)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let k = crate::hinf::cosine_gram(&x, d);
        for act in [
            Activation::Softplus,
            Activation::Tanh,
            Activation::Gelu,
            Activation::Sigmoid,
        ] {
            let pair = GaussianPair::new(act);
            let how = pair.evaluation();
            assert_eq!(how, Evaluation::Tabulate);
            let fast = pairwise(&k, how, |a, b, c| pair.sigma_sigma(a, b, c));
            let fast_dot = pairwise(&k, how, |a, b, c| pair.dsigma_dsigma(a, b, c));
            for i in 0..n {
                for j in 0..i {
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
