//! Gauss–Hermite quadrature for expectations under the standard Gaussian.

use faer::{Mat, Side};
use std::sync::OnceLock;

/// Nodes and weights of an `n`-point Gauss–Hermite rule for the probabilists' weight
/// `exp(-z²/2)/sqrt(2π)`, so that `E_{z~N(0,1)}[g(z)] ≈ Σ_i w_i g(z_i)` (weights sum to 1).
///
/// Built by the Golub–Welsch algorithm: the nodes are the eigenvalues of the symmetric
/// tridiagonal Jacobi matrix of the monic Hermite polynomials `He_k` (off-diagonal
/// `sqrt(k)`), the weights the squared first components of its unit eigenvectors. The rule is
/// exact for polynomials of degree `≤ 2n − 1`; the nodes are symmetric about 0, so it also
/// integrates `|z|^k`-type kinks at the origin exactly when `g(z) + g(−z)` is a polynomial
/// (ReLU: `relu(z)² + relu(−z)² = z²`).
#[derive(Debug, Clone)]
pub struct GaussHermite {
    /// Quadrature nodes, increasing.
    pub nodes: Vec<f64>,
    /// Quadrature weights, summing to 1.
    pub weights: Vec<f64>,
}

/// Golub–Welsch: nodes and normalized weights of the Gauss rule whose monic orthogonal
/// polynomials have the symmetric tridiagonal Jacobi matrix with zero diagonal and
/// off-diagonal entries `off(k)`, k = 1..n−1.
fn golub_welsch(n: usize, off: impl Fn(usize) -> f64) -> (Vec<f64>, Vec<f64>) {
    assert!(n >= 1, "a Gauss rule needs at least one node");
    let jacobi = Mat::<f64>::from_fn(n, n, |i, j| {
        if i + 1 == j || j + 1 == i {
            off(i.max(j))
        } else {
            0.0
        }
    });
    let eig = jacobi
        .self_adjoint_eigen(Side::Lower)
        .expect("the Jacobi matrix is symmetric tridiagonal");
    let nodes: Vec<f64> = (0..n).map(|k| eig.S().column_vector()[k]).collect();
    let mut weights: Vec<f64> = (0..n).map(|k| eig.U()[(0, k)].powi(2)).collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    (nodes, weights)
}

impl GaussHermite {
    /// The `n`-point rule (`n ≥ 1`).
    pub fn new(n: usize) -> Self {
        let (nodes, weights) = golub_welsch(n, |k| (k as f64).sqrt());
        Self { nodes, weights }
    }

    /// A shared 120-point rule, accurate to machine precision for the smooth activations here.
    pub fn standard() -> &'static GaussHermite {
        static RULE: OnceLock<GaussHermite> = OnceLock::new();
        RULE.get_or_init(|| GaussHermite::new(120))
    }

    /// `E_{z~N(0,1)}[g(z)]`.
    pub fn expect(&self, g: impl Fn(f64) -> f64) -> f64 {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(&z, &w)| w * g(z))
            .sum()
    }
}

/// Gauss–Legendre rule on `[−1, 1]` (weights summing to 2), exact for polynomials of degree
/// `≤ 2n − 1`; Golub–Welsch with off-diagonal `k / sqrt(4k² − 1)`.
#[derive(Debug, Clone)]
pub struct GaussLegendre {
    /// Nodes in (−1, 1), increasing.
    pub nodes: Vec<f64>,
    /// Weights, summing to 2.
    pub weights: Vec<f64>,
}

impl GaussLegendre {
    /// The `n`-point rule (`n ≥ 1`).
    pub fn new(n: usize) -> Self {
        let (nodes, mut weights) = golub_welsch(n, |k| {
            let k = k as f64;
            k / (4.0 * k * k - 1.0).sqrt()
        });
        weights.iter_mut().for_each(|w| *w *= 2.0);
        Self { nodes, weights }
    }

    /// `∫_lo^hi f(t) dt`.
    pub fn integrate(&self, lo: f64, hi: f64, f: impl Fn(f64) -> f64) -> f64 {
        let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
        half * self
            .nodes
            .iter()
            .zip(&self.weights)
            .map(|(&t, &w)| w * f(mid + half * t))
            .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments_are_exact() {
        // E[z^(2k)] = (2k-1)!!: 1, 1, 3, 15, 105, 945.
        let rule = GaussHermite::new(20);
        let double_factorial = [1.0, 1.0, 3.0, 15.0, 105.0, 945.0];
        for (k, &expected) in double_factorial.iter().enumerate() {
            let got = rule.expect(|z| z.powi(2 * k as i32));
            assert!((got - expected).abs() < 1e-10 * expected, "k={k}: {got}");
        }
        assert!(rule.expect(|z| z.powi(3)).abs() < 1e-12);
    }

    #[test]
    fn legendre_integrates_polynomials_and_sine() {
        let rule = GaussLegendre::new(10);
        assert!((rule.integrate(0.0, 2.0, |t| t.powi(7)) - 32.0).abs() < 1e-12);
        let sine = rule.integrate(0.0, std::f64::consts::PI, f64::sin);
        assert!((sine - 2.0).abs() < 1e-12, "{sine}");
    }

    #[test]
    fn cosine_matches_closed_form() {
        // E[cos(z)] = exp(-1/2).
        let got = GaussHermite::standard().expect(f64::cos);
        assert!((got - (-0.5f64).exp()).abs() < 1e-14, "{got}");
    }
}
