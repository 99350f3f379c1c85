//! A's infinite-width recursions and the per-layer limits of the whole Gram `G(0)`.

use crate::expectation::GaussianPair;
use faer::Mat;
use overparam_models::{Activation, Architecture, ModelConfig};

/// Errors of the kernel computations.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KernelError {
    /// No limit is implemented for this architecture yet.
    #[error("the infinite-width limit of the {0} model is not implemented (fc and resnet are)")]
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

/// Grid points of the tabulated fast path (4-point interpolation error ~h⁴, below 1e-9 here).
const TABLE: usize = 257;
/// Below this many samples the direct evaluation is cheaper than building a table.
const TABLE_MIN_N: usize = 48;

/// A function of the covariance `c ∈ [−q, q]` at a fixed diagonal q, tabulated on a uniform
/// grid and read with 4-point Lagrange interpolation.
struct Tabulated {
    q: f64,
    step: f64,
    values: Vec<f64>,
}

impl Tabulated {
    fn new(q: f64, f: impl Fn(f64) -> f64 + Sync) -> Self {
        let step = 2.0 * q / (TABLE - 1) as f64;
        let node = |i: usize| f((-q + i as f64 * step).clamp(-q, q));
        let values = parallel_map(TABLE, &node);
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

/// `Λ_ij = [[K_ii, K_ij], [K_ij, K_jj]]`, the map `f(Λ_ij)` over all pairs (symmetric).
///
/// Fast path: when every diagonal entry is the same q (unit-norm inputs keep it so at every
/// layer), `f` depends on `K_ij` alone, so it is tabulated once per layer on [−q, q] and
/// interpolated, instead of a 2-D quadrature per pair (matches direct evaluation to 1e-8).
fn pairwise(k: &Mat<f64>, f: impl Fn(f64, f64, f64) -> f64 + Sync) -> Mat<f64> {
    let n = k.nrows();
    let q = k[(0, 0)];
    let equal = (0..n).all(|i| (k[(i, i)] - q).abs() <= 1e-12 * q.abs());
    let table = (equal && n >= TABLE_MIN_N && q > 0.0).then(|| Tabulated::new(q, |c| f(q, q, c)));
    let diagonal = table.as_ref().map(|_| f(q, q, q));
    let value = |i: usize, j: usize| match (&table, diagonal) {
        (Some(_), Some(diag)) if i == j => diag,
        (Some(t), _) => t.eval(k[(i, j)]),
        _ => f(k[(i, i)], k[(j, j)], k[(i, j)]),
    };
    // The lower triangle column by column (contiguous in faer's column-major storage), the
    // columns shared out between threads, then mirrored.
    let mut out = Mat::<f64>::zeros(n, n);
    let columns = parallel_map(n, &|j: usize| {
        (j..n).map(|i| value(i, j)).collect::<Vec<f64>>()
    });
    for (j, col) in columns.iter().enumerate() {
        for (i, &v) in (j..n).zip(col) {
            out[(i, j)] = v;
        }
    }
    mirror_lower(&mut out);
    out
}

/// `[f(0), …, f(len − 1)]`, the indices dealt round-robin to one thread per core (so that
/// columns of decreasing length stay balanced).
fn parallel_map<T: Send>(len: usize, f: &(impl Fn(usize) -> T + Sync)) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, len.max(1));
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

fn hadamard(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] * b[(i, j)])
}

/// FC (A Def. 5.1): `Σ^(0) = XXᵀ`, `Σ^(h) = c_σ E[σ(u)σ(v)]`, `Σ̇^(h) = c_σ E[σ'(u)σ'(v)]`
/// with `(u, v) ~ N(0, Λ(Σ^(h−1)))`. Backprop signals multiply: `β^(H) = Σ̇^(H)`,
/// `β^(h) = β^(h+1) ∘ Σ̇^(h)`; the layer limits are `G^(h) = Σ^(h−1) ∘ β^(h)` and, for the
/// output layer, `G^(H+1) = Σ^(H)`. `G^(H)` is A's `K^(H)`.
fn fc(x0: Mat<f64>, depth: usize, act: Activation) -> Vec<Mat<f64>> {
    let pair = GaussianPair::new(act);
    let c = act.c_sigma();
    let mut sigma = vec![x0];
    let mut dot = Vec::new();
    for h in 1..=depth {
        let prev = &sigma[h - 1];
        dot.push(pairwise(prev, |a, b, cov| {
            c * pair.dsigma_dsigma(a, b, cov)
        }));
        sigma.push(pairwise(prev, |a, b, cov| c * pair.sigma_sigma(a, b, cov)));
    }
    let mut beta = dot[depth - 1].clone();
    let mut layers = vec![Mat::<f64>::zeros(0, 0); depth + 1];
    for h in (1..=depth).rev() {
        if h < depth {
            beta = hadamard(&beta, &dot[h - 1]);
        }
        layers[h - 1] = hadamard(&sigma[h - 1], &beta);
    }
    layers[depth] = sigma[depth].clone();
    layers
}

/// ResNet (A Def. 6.1 in the form of App. E Def. E.1, which pairs `b_i` with `E σ(v)` of
/// sample j): `K^(1) = c_σ E[σσ]`, `b^(1)_i = sqrt(c_σ) E σ(u_i)`, and for h ≥ 2
/// `K^(h) = K^(h−1) + (c_res/H)(b_i μ_j + μ_i b_j) + (c_res/H)² E[σ(u)σ(v)]`,
/// `b^(h) = b^(h−1) + (c_res/H) μ`, `μ_i = E_{u~N(0, K^(h−1)_ii)} σ(u)`.
/// Backward: `γ^(H) = 1`, `γ^(h−1) = γ^(h) ∘ (1 + (c_res/H)² Ė^(h))` with
/// `Ė^(h) = E[σ'(u)σ'(v)]` under `Λ(K^(h−1))`; layer limits `G^(h) = K^(h−1) ∘ (c_res/H)²
/// Ė^(h) ∘ γ^(h)` (h ≥ 2), `G^(1) = K^(0) ∘ c_σ Ė^(1) ∘ γ^(1)`, `G^(H+1) = K^(H)`.
fn resnet(x0: Mat<f64>, depth: usize, act: Activation, c_res: f64) -> Vec<Mat<f64>> {
    let pair = GaussianPair::new(act);
    let c = act.c_sigma();
    let r = c_res / depth as f64;
    let n = x0.nrows();
    let mut k = vec![x0];
    let mut edot = vec![pairwise(&k[0], |a, b, cov| pair.dsigma_dsigma(a, b, cov))];
    k.push(pairwise(&k[0], |a, b, cov| c * pair.sigma_sigma(a, b, cov)));
    let mut bias: Vec<f64> = (0..n).map(|i| c.sqrt() * pair.mean(k[0][(i, i)])).collect();
    for h in 2..=depth {
        let prev = &k[h - 1];
        let mu: Vec<f64> = (0..n).map(|i| pair.mean(prev[(i, i)])).collect();
        edot.push(pairwise(prev, |a, b, cov| pair.dsigma_dsigma(a, b, cov)));
        let ss = pairwise(prev, |a, b, cov| pair.sigma_sigma(a, b, cov));
        let next = Mat::from_fn(n, n, |i, j| {
            prev[(i, j)] + r * (bias[i] * mu[j] + mu[i] * bias[j]) + r * r * ss[(i, j)]
        });
        k.push(next);
        bias.iter_mut().zip(&mu).for_each(|(b, m)| *b += r * m);
    }
    let mut gamma = Mat::<f64>::from_fn(n, n, |_, _| 1.0);
    let mut layers = vec![Mat::<f64>::zeros(0, 0); depth + 1];
    for h in (1..=depth).rev() {
        let scale = if h == 1 { c } else { r * r };
        layers[h - 1] = Mat::from_fn(n, n, |i, j| {
            k[h - 1][(i, j)] * scale * edot[h - 1][(i, j)] * gamma[(i, j)]
        });
        if h >= 2 {
            gamma = Mat::from_fn(n, n, |i, j| {
                gamma[(i, j)] * (1.0 + r * r * edot[h - 1][(i, j)])
            });
        }
    }
    layers[depth] = k[depth].clone();
    layers
}

/// The infinite-width limits of every layer's Gram for the fc and resnet models on the
/// samples `x` (`n × d`, row-major).
pub fn ntk_limit(config: &ModelConfig, x: &[f64]) -> Result<NtkLimit, KernelError> {
    let d = config.input_dim;
    if x.is_empty() || !x.len().is_multiple_of(d) {
        return Err(KernelError::Inputs { got: x.len(), d });
    }
    let n = x.len() / d;
    let x0 = crate::hinf::input_gram(x, d);
    let layers = match &config.arch {
        Architecture::Fc {
            depth, activation, ..
        } => fc(x0, *depth, *activation),
        Architecture::Resnet {
            depth,
            activation,
            c_res,
            ..
        } => resnet(x0, *depth, *activation, *c_res),
        _ => return Err(KernelError::Unsupported(config.kind_name())),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::GaussianPair;

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
            let fast = pairwise(&k, |a, b, c| pair.sigma_sigma(a, b, c));
            let fast_dot = pairwise(&k, |a, b, c| pair.dsigma_dsigma(a, b, c));
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
