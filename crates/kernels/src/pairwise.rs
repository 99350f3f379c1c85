//! The machinery of maps over pairs: the Chebyshev table of a smooth function of the
//! covariance, per-distinct-value caches, and filling the columns of matrices (contiguous in
//! faer) on one thread per core.

use faer::Mat;
use std::collections::HashMap;
use std::f64::consts::PI;
use std::ops::Range;
use std::sync::Mutex;

/// Uniform grid points of the dense table read by cubic interpolation (interpolation error
/// ~h⁴ f⁗ / 24 with h = 2q/2048, far below 1e-10).
const TABLE: usize = 2049;
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
pub(crate) struct Tabulated {
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
    pub(crate) fn new(q: f64, f: impl Fn(f64) -> f64 + Sync) -> Self {
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

    pub(crate) fn eval(&self, c: f64) -> f64 {
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

/// The number of threads for `len` independent jobs: one per core.
pub(crate) fn threads(len: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, len.max(1))
}

/// Rewrites the columns of every matrix of `outs` (all of one shape) in the column ranges
/// `blocks`, disjoint: `fill(state, b, columns)` for block b, with `columns[k][m]` column
/// `blocks[b].start + k` of matrix m. One thread per core, each keeping its own `state()` and
/// taking the next block (in the given order) as it finishes one.
pub(crate) fn fill_column_blocks<S>(
    outs: &mut [Mat<f64>],
    blocks: &[Range<usize>],
    state: impl Fn() -> S + Sync,
    fill: impl Fn(&mut S, usize, &mut [Vec<&mut [f64]>]) + Sync,
) {
    let cols = outs.first().map_or(0, |m| m.ncols());
    let mut columns: Vec<Option<Vec<&mut [f64]>>> = (0..cols).map(|_| Some(Vec::new())).collect();
    for m in outs.iter_mut() {
        for (j, column) in m.col_iter_mut().enumerate() {
            if let Some(c) = columns[j].as_mut() {
                c.push(
                    column
                        .try_as_col_major_mut()
                        .expect("the columns of an owned matrix are contiguous")
                        .as_slice_mut(),
                );
            }
        }
    }
    let work: Vec<(usize, Vec<Vec<&mut [f64]>>)> = blocks
        .iter()
        .enumerate()
        .map(|(b, range)| {
            let own = range
                .clone()
                .map(|j| columns[j].take().expect("column blocks are disjoint"))
                .collect();
            (b, own)
        })
        .collect();
    let queue = Mutex::new(work.into_iter());
    let (queue, state, fill) = (&queue, &state, &fill);
    std::thread::scope(|scope| {
        for _ in 0..threads(blocks.len()) {
            scope.spawn(move || {
                let mut own = state();
                loop {
                    let next = queue.lock().expect("a kernel thread panicked").next();
                    let Some((b, mut columns)) = next else { break };
                    fill(&mut own, b, &mut columns);
                }
            });
        }
    });
}

/// Runs `f` on every part, the parts dealt round-robin to one thread per core.
pub(crate) fn for_each_part<T: Send>(parts: Vec<T>, f: &(impl Fn(T) + Sync)) {
    let threads = threads(parts.len());
    let mut buckets: Vec<Vec<T>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, part) in parts.into_iter().enumerate() {
        buckets[k % threads].push(part);
    }
    std::thread::scope(|scope| {
        for bucket in buckets {
            scope.spawn(move || bucket.into_iter().for_each(f));
        }
    });
}

/// `[f(0), …, f(len − 1)]`, the indices dealt round-robin to one thread per core (so that
/// columns of decreasing length stay balanced).
pub(crate) fn parallel_map<T: Send>(len: usize, f: &(impl Fn(usize) -> T + Sync)) -> Vec<T> {
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

/// Copies the lower triangle onto the upper one, in tiles so both sides stay in cache (also
/// the analysis crate's Gram products, which compute one triangle).
pub fn mirror_lower(m: &mut Mat<f64>) {
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
}
