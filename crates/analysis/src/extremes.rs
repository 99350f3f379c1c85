//! λ_min and λ_max of a symmetric positive semi-definite matrix without a full
//! eigendecomposition.
//!
//! λ_max: Lanczos on G with full reorthogonalization. λ_min: Lanczos on G⁻¹ (shift-invert at
//! zero): one Cholesky factorization `G = LLᵀ` (n³/3 flops, against ~9n³ for a full
//! eigendecomposition), then two triangular solves per step. The smallest eigenvalue of a Gram
//! matrix is usually tiny and crowded by others at the bottom, which makes plain Lanczos on G
//! crawl; on G⁻¹ it is the largest, well separated in relative terms, and converges in tens of
//! steps. A Ritz value θ with residual r = β_k |s_k| is within r of an eigenvalue (and within
//! r²/gap), so stopping at r ≤ tol·θ gives λ to about `tol` relative accuracy. When G is not
//! numerically positive definite (λ_min below about n·ε·λ_max, where double precision cannot
//! resolve it anyway) the Cholesky factorization fails; then the full solver answers up to
//! [`FULL_FALLBACK_LIMIT`] rows, and above it Lanczos on `λ_max·I − G` gives λ_min to an
//! absolute accuracy of about `tol·λ_max`, the most such a matrix allows.

use crate::spectrum::{eigenvalues, operator_norm};
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt;
use faer::{Col, Conj, Mat, Side};
use overparam_rng::{Purpose, gaussian, stream};
use serde::Serialize;
use std::borrow::Cow;

/// How the extremes were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtremesMethod {
    /// Lanczos on G and on G⁻¹ (Cholesky).
    Lanczos,
    /// The full symmetric eigendecomposition (small n, or G not numerically definite).
    Full,
    /// Lanczos on G for λ_max and on `λ_max·I − G` for λ_min (large G that is not numerically
    /// definite: λ_min is at the rounding floor, known to about `tol·λ_max`).
    Shifted,
}

/// The two extreme eigenvalues of a symmetric PSD matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Extremes {
    /// λ_min.
    pub lambda_min: f64,
    /// λ_max.
    pub lambda_max: f64,
    /// Lanczos steps for λ_min and λ_max (0 for the full solver).
    pub steps: [usize; 2],
    /// How they were obtained.
    pub method: ExtremesMethod,
}

impl Extremes {
    /// `λ_max / λ_min` (infinite when λ_min ≤ 0).
    pub fn condition_number(&self) -> f64 {
        if self.lambda_min <= 0.0 {
            f64::INFINITY
        } else {
            self.lambda_max / self.lambda_min
        }
    }

    /// The extremes of a full spectrum (eigenvalues increasing).
    pub fn from_eigenvalues(values: &[f64]) -> Self {
        Self {
            lambda_min: values[0],
            lambda_max: values[values.len() - 1],
            steps: [0, 0],
            method: ExtremesMethod::Full,
        }
    }
}

/// Relative accuracy of the Lanczos extremes.
pub const TOLERANCE: f64 = 1e-11;

/// Below this size the full solver is as fast and is used.
const SMALL: usize = 64;

/// The most Lanczos steps of one run.
const MAX_STEPS: usize = 600;

/// Steps on G⁻¹ before λ_min is refined with a shift.
const PROBE_STEPS: usize = 20;

/// Up to this size a matrix whose Cholesky factorization fails goes to the full solver.
pub const FULL_FALLBACK_LIMIT: usize = 2000;

/// λ_min and λ_max of the symmetric PSD matrix `g` (its lower triangle is read), to about
/// [`TOLERANCE`] relative accuracy.
///
/// # Panics
/// If `g` is not square.
pub fn extremes(g: &Mat<f64>) -> Extremes {
    assert_eq!(g.nrows(), g.ncols(), "a Gram matrix is square");
    let n = g.nrows();
    if n <= SMALL {
        return Extremes::from_eigenvalues(&eigenvalues(g));
    }
    let sym = symmetric(g);
    let start = start_vector(n);
    let top = lanczos_top(product(&sym, 0.0, 1.0), &start, MAX_STEPS);
    let lambda_max = top.theta;
    let mut factor = Factor::new(n);
    if !factor.factor(&sym, 0.0) {
        if n <= FULL_FALLBACK_LIMIT {
            return Extremes::from_eigenvalues(&eigenvalues(g));
        }
        let shifted = lanczos_top(product(&sym, lambda_max, -1.0), &start, MAX_STEPS);
        return Extremes {
            lambda_min: lambda_max - shifted.theta,
            lambda_max,
            steps: [shifted.steps, top.steps],
            method: ExtremesMethod::Shifted,
        };
    }
    let first = lanczos_top(factor.inverse(), &start, PROBE_STEPS);
    let done = |lambda_min: f64, min_steps: usize| Extremes {
        lambda_min,
        lambda_max,
        steps: [min_steps, top.steps],
        method: ExtremesMethod::Lanczos,
    };
    if first.converged {
        return done(1.0 / first.theta, first.steps);
    }
    // A crowded bottom: shift to σ just below λ_min, where (G − σI)⁻¹ separates λ_min from
    // its neighbours. 1/θ ≥ λ_min, and once θ is the top it is within r of μ_max = 1/λ_min;
    // σ keeps twice that margin below. If the guess is wrong G − σI is indefinite, its
    // Cholesky factorization fails, and Lanczos on G⁻¹ takes over again.
    let (upper, lower) = (1.0 / first.theta, 1.0 / (first.theta + first.residual));
    let sigma = lower - (upper - lower);
    if sigma > 0.0 {
        if factor.factor(&sym, sigma) {
            let shifted = lanczos_top(factor.inverse(), &start, MAX_STEPS);
            return done(sigma + 1.0 / shifted.theta, first.steps + shifted.steps);
        }
        assert!(factor.factor(&sym, 0.0), "G was factored before the shift");
    }
    let plain = lanczos_top(factor.inverse(), &start, MAX_STEPS);
    done(1.0 / plain.theta, first.steps + plain.steps)
}

/// The Cholesky factor of `G − σI`, kept in one n × n buffer that each shift refactors in
/// place (so the solver needs one matrix of memory besides G).
struct Factor {
    lower: Mat<f64>,
}

impl Factor {
    fn new(n: usize) -> Self {
        Self {
            lower: Mat::zeros(n, n),
        }
    }

    /// Factors `G − σI` from G's lower triangle; false when it is not numerically definite.
    fn factor(&mut self, g: &Mat<f64>, sigma: f64) -> bool {
        let n = g.nrows();
        self.lower.copy_from_triangular_lower(g);
        (0..n).for_each(|i| self.lower[(i, i)] -= sigma);
        let par = faer::get_global_parallelism();
        let mut memory = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(
            n,
            par,
            Default::default(),
        ));
        llt::factor::cholesky_in_place(
            self.lower.as_mut(),
            Default::default(),
            par,
            MemStack::new(&mut memory),
            Default::default(),
        )
        .is_ok()
    }

    /// `v ↦ (G − σI)⁻¹ v` by two triangular solves (only the lower triangle is read).
    fn inverse(&self) -> impl FnMut(&[f64], &mut [f64]) + '_ {
        let par = faer::get_global_parallelism();
        move |v, out| {
            let mut x = Col::from_fn(v.len(), |i| v[i]);
            let mut memory = MemBuffer::new(StackReq::EMPTY);
            llt::solve::solve_in_place_with_conj(
                self.lower.as_ref(),
                Conj::No,
                x.as_mat_mut(),
                par,
                MemStack::new(&mut memory),
            );
            out.iter_mut().enumerate().for_each(|(i, o)| *o = x[i]);
        }
    }
}

/// `v ↦ shift·v + sign·G v`.
fn product(sym: &Mat<f64>, shift: f64, sign: f64) -> impl FnMut(&[f64], &mut [f64]) + '_ {
    move |v, out| {
        let y = sym * Col::from_fn(v.len(), |i| v[i]);
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = shift * v[i] + sign * y[i]);
    }
}

/// `‖g‖₂` of a symmetric, possibly indefinite matrix (e.g. a Gram drift `G(k) − G(0)`): the
/// larger of the top eigenvalues of `g` and `−g`, each by Lanczos (full solver up to 64 rows).
pub fn symmetric_norm(g: &Mat<f64>) -> f64 {
    let n = g.nrows();
    if n <= SMALL {
        return operator_norm(g);
    }
    let sym = symmetric(g);
    let start = start_vector(n);
    let top = |sign: f64| lanczos_top(product(&sym, 0.0, sign), &start, MAX_STEPS).theta;
    top(1.0).abs().max(top(-1.0).abs())
}

/// The deterministic start vector of every Lanczos run (the solver stream of seed 0).
fn start_vector(n: usize) -> Vec<f64> {
    let mut rng = stream(0, Purpose::Solver);
    (0..n).map(|_| gaussian(&mut rng)).collect()
}

/// The full matrix from its lower triangle (the products read both), borrowed when `g` is
/// already symmetric, as the Gram and kernel matrices here are.
fn symmetric(g: &Mat<f64>) -> Cow<'_, Mat<f64>> {
    let n = g.nrows();
    if (0..n).all(|i| (0..i).all(|j| g[(i, j)] == g[(j, i)])) {
        return Cow::Borrowed(g);
    }
    Cow::Owned(Mat::from_fn(n, n, |i, j| {
        if i >= j { g[(i, j)] } else { g[(j, i)] }
    }))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The top Ritz value of a Lanczos run.
#[derive(Debug, Clone, Copy)]
struct Ritz {
    /// θ, a lower bound of the top eigenvalue.
    theta: f64,
    /// r = β_k |s_k|: some eigenvalue lies within r of θ.
    residual: f64,
    steps: usize,
    converged: bool,
}

/// The largest eigenvalue of the symmetric operator `apply` by Lanczos with full
/// reorthogonalization from `start`, in at most `max_steps` steps.
fn lanczos_top(mut apply: impl FnMut(&[f64], &mut [f64]), start: &[f64], max_steps: usize) -> Ritz {
    let n = start.len();
    let max_steps = max_steps.min(n).max(1);
    let norm = dot(start, start).sqrt();
    let mut basis: Vec<Vec<f64>> = vec![start.iter().map(|v| v / norm).collect()];
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let mut w = vec![0.0; n];
    for k in 0..max_steps {
        apply(&basis[k], &mut w);
        alpha.push(dot(&basis[k], &w));
        // Full reorthogonalization, twice ("twice is enough", Parlett).
        for _ in 0..2 {
            for q in &basis {
                let c = dot(q, &w);
                w.iter_mut().zip(q).for_each(|(wi, qi)| *wi -= c * qi);
            }
        }
        let b = dot(&w, &w).sqrt();
        let steps = k + 1;
        if steps == max_steps || steps % 5 == 0 || b == 0.0 {
            let (theta, second, last) = top_ritz(&alpha, &beta);
            // The Ritz value is within r of an eigenvalue, and within r²/gap once the gap to
            // the rest of the spectrum (estimated by the next Ritz value) exceeds r.
            let residual = b * last.abs();
            let gap = theta - second;
            let bound = if gap > residual {
                residual.min(residual * residual / gap)
            } else {
                residual
            };
            let converged = bound <= TOLERANCE * theta.abs() || b <= f64::EPSILON * theta.abs();
            if converged || steps == max_steps {
                return Ritz {
                    theta,
                    residual,
                    steps,
                    converged,
                };
            }
        }
        beta.push(b);
        basis.push(w.iter().map(|v| v / b).collect());
    }
    unreachable!("the loop returns at max_steps")
}

/// The two largest eigenvalues of the tridiagonal matrix (diagonal `alpha`, off-diagonal
/// `beta`; the second is −∞ for a 1 × 1 matrix) and the last component of the top unit
/// eigenvector.
fn top_ritz(alpha: &[f64], beta: &[f64]) -> (f64, f64, f64) {
    let k = alpha.len();
    let t = Mat::<f64>::from_fn(k, k, |i, j| {
        if i == j {
            alpha[i]
        } else if i == j + 1 {
            beta[j]
        } else if j == i + 1 {
            beta[i]
        } else {
            0.0
        }
    });
    let eig = t
        .self_adjoint_eigen(Side::Lower)
        .expect("the tridiagonal eigen-solver converges");
    let values = eig.S().column_vector();
    let second = if k > 1 {
        values[k - 2]
    } else {
        f64::NEG_INFINITY
    };
    (values[k - 1], second, eig.U()[(k - 1, k - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectrum::Spectrum;

    /// Q diag(values) Qᵀ for a random orthogonal Q (QR of a Gaussian matrix).
    fn with_spectrum(values: &[f64], seed: u64) -> Mat<f64> {
        let n = values.len();
        let mut rng = stream(seed, Purpose::Data);
        let a = Mat::<f64>::from_fn(n, n, |_, _| gaussian(&mut rng));
        let q = a.qr().compute_Q();
        let d = Mat::<f64>::from_fn(n, n, |i, j| if i == j { values[i] } else { 0.0 });
        &q * &d * q.transpose()
    }

    fn relative(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn lanczos_matches_known_and_full_spectra() {
        // A crowded bottom (the hard case for plain Lanczos) and a condition number of 1e6.
        let n = 300;
        let values: Vec<f64> = (0..n)
            .map(|i| {
                1e-6 * (1.0 + 0.01 * i as f64) + if i > 250 { i as f64 / n as f64 } else { 0.0 }
            })
            .collect();
        let g = with_spectrum(&values, 1);
        let e = extremes(&g);
        assert_eq!(e.method, ExtremesMethod::Lanczos);
        let full = Spectrum::of(&g);
        assert!(relative(e.lambda_max, full.lambda_max()) < 1e-10, "{e:?}");
        assert!(relative(e.lambda_max, values[n - 1]) < 1e-10, "{e:?}");
        // The full solver's own λ_min carries an absolute error of order ε‖G‖ = 1e-16 here.
        assert!(
            relative(e.lambda_min, values[0]) < 1e-8,
            "{e:?} vs {}",
            values[0]
        );
        assert!(relative(e.lambda_min, full.lambda_min()) < 1e-8, "{e:?}");
        assert!(e.steps[0] < 200 && e.steps[1] < 200, "{:?}", e.steps);
    }

    #[test]
    fn well_conditioned_extremes_agree_with_the_full_solver_to_1e10() {
        let n = 200;
        let values: Vec<f64> = (0..n).map(|i| 0.5 + (i as f64).sqrt()).collect();
        let g = with_spectrum(&values, 2);
        let e = extremes(&g);
        let full = Spectrum::of(&g);
        assert!(relative(e.lambda_min, full.lambda_min()) < 1e-10, "{e:?}");
        assert!(relative(e.lambda_max, full.lambda_max()) < 1e-10, "{e:?}");
    }

    #[test]
    fn singular_and_small_matrices_fall_back_to_the_full_solver() {
        let n = 100;
        let mut values = vec![1.0; n];
        values[0] = 0.0;
        // Cholesky may fail (full solver) or succeed on rounding-level pivots; either way λ_min
        // is zero to double precision.
        let e = extremes(&with_spectrum(&values, 3));
        assert!(e.lambda_min.abs() < 1e-12, "{e:?}");
        assert!(relative(e.lambda_max, 1.0) < 1e-12, "{e:?}");
        let small = extremes(&with_spectrum(&[1.0, 2.0, 3.0], 4));
        assert_eq!(small.method, ExtremesMethod::Full);
        assert!(relative(small.lambda_min, 1.0) < 1e-12 && relative(small.lambda_max, 3.0) < 1e-12);
    }

    #[test]
    fn a_large_singular_matrix_gets_its_rounding_floor_from_the_shifted_operator() {
        let n = FULL_FALLBACK_LIMIT + 100;
        // Rank n/2: Cholesky fails; λ_min = 0 must come back within ~tol·λ_max.
        let b = Mat::<f64>::from_fn(n, n / 2, |i, j| ((i * 7 + j * 13) % 17) as f64 - 8.0);
        let g = &b * b.transpose();
        let e = extremes(&g);
        assert_eq!(e.method, ExtremesMethod::Shifted, "{e:?}");
        assert!(e.lambda_min.abs() < 1e-9 * e.lambda_max, "{e:?}");
    }

    #[test]
    fn symmetric_norm_of_an_indefinite_matrix() {
        let n = 150;
        let values: Vec<f64> = (0..n).map(|i| i as f64 / 10.0 - 12.0).collect();
        let g = with_spectrum(&values, 5);
        // Eigenvalues −12 … 2.9: the norm is 12, from the negative end.
        assert!(relative(symmetric_norm(&g), 12.0) < 1e-10);
        assert!(relative(symmetric_norm(&(-&g)), 12.0) < 1e-10);
    }
}
