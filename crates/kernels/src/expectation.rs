//! `E_{(u,v)~N(0,Λ)}[g(u) h(v)]` for a 2 × 2 covariance `Λ = [[a, c], [c, b]]`.

use overparam_models::{Activation, GaussHermite};
use std::f64::consts::PI;
use std::sync::OnceLock;

/// The bivariate Gaussian expectations of an activation that the recursions need.
#[derive(Debug, Clone, Copy)]
pub struct GaussianPair {
    activation: Activation,
}

fn rule() -> &'static GaussHermite {
    static RULE: OnceLock<GaussHermite> = OnceLock::new();
    RULE.get_or_init(|| GaussHermite::new(64))
}

/// `E[g(u) h(v)]` by a tensor Gauss–Hermite rule: `u = sqrt(a) z1`,
/// `v = sqrt(b) (ρ z1 + sqrt(1 − ρ²) z2)`, `ρ = c / sqrt(ab)`.
pub fn quadrature(a: f64, b: f64, c: f64, g: impl Fn(f64) -> f64, h: impl Fn(f64) -> f64) -> f64 {
    let r = rule();
    let (sa, sb) = (a.max(0.0).sqrt(), b.max(0.0).sqrt());
    let rho = if sa * sb > 0.0 {
        (c / (sa * sb)).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let perp = (1.0 - rho * rho).max(0.0).sqrt();
    let mut total = 0.0;
    for (&z1, &w1) in r.nodes.iter().zip(&r.weights) {
        let gu = g(sa * z1);
        let inner: f64 = r
            .nodes
            .iter()
            .zip(&r.weights)
            .map(|(&z2, &w2)| w2 * h(sb * (rho * z1 + perp * z2)))
            .sum();
        total += w1 * gu * inner;
    }
    total
}

impl GaussianPair {
    /// Expectations of `activation`.
    pub fn new(activation: Activation) -> Self {
        Self { activation }
    }

    /// `E[σ(u) σ(v)]`; for ReLU the arc-cosine closed form
    /// `sqrt(ab)/(2π) (sin θ + (π − θ) cos θ)` (Cho & Saul), otherwise quadrature.
    pub fn sigma_sigma(&self, a: f64, b: f64, c: f64) -> f64 {
        match self.activation {
            Activation::Relu => {
                let s = (a * b).sqrt();
                if s == 0.0 {
                    return 0.0;
                }
                let theta = (c / s).clamp(-1.0, 1.0).acos();
                s / (2.0 * PI) * (theta.sin() + (PI - theta) * theta.cos())
            }
            act => quadrature(a, b, c, |u| act.eval(u), |v| act.eval(v)),
        }
    }

    /// `E[σ'(u) σ'(v)]`; for ReLU `(π − θ)/(2π)`, otherwise quadrature.
    pub fn dsigma_dsigma(&self, a: f64, b: f64, c: f64) -> f64 {
        match self.activation {
            Activation::Relu => {
                let s = (a * b).sqrt();
                let theta = if s == 0.0 {
                    PI / 2.0
                } else {
                    (c / s).clamp(-1.0, 1.0).acos()
                };
                (PI - theta) / (2.0 * PI)
            }
            act => quadrature(a, b, c, |u| act.derivative(u), |v| act.derivative(v)),
        }
    }

    /// `E_{u~N(0,a)}[σ(u)]`; for ReLU `sqrt(a/(2π))`.
    pub fn mean(&self, a: f64) -> f64 {
        match self.activation {
            Activation::Relu => (a / (2.0 * PI)).sqrt(),
            act => GaussHermite::standard().expect(|z| act.eval(a.max(0.0).sqrt() * z)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_quadrature_matches_the_closed_forms() {
        // The kink makes the tensor rule converge slowly (64 nodes: ~1e-3), which is why ReLU
        // always takes the closed form; on the diagonal the symmetric nodes make it exact.
        let pair = GaussianPair::new(Activation::Relu);
        let relu = |z: f64| z.max(0.0);
        for (a, b, c) in [(1.0, 1.0, 0.3), (0.7, 1.3, -0.4), (2.0, 0.5, 0.9)] {
            let q = quadrature(a, b, c, relu, relu);
            let exact = pair.sigma_sigma(a, b, c);
            assert!((q - exact).abs() < 2e-3, "{q} vs {exact}");
        }
        // On the diagonal (ρ = 1) the rule is exact: E[relu(u)²] = a/2.
        assert!((quadrature(1.7, 1.7, 1.7, relu, relu) - 0.85).abs() < 1e-12);
    }

    #[test]
    fn smooth_expectations_match_closed_forms() {
        // E[tanh'(u)...] has no closed form, but E[uv] = c and E[e^{u+v}] = e^{(a+b+2c)/2}.
        let q = quadrature(0.8, 1.1, 0.3, |u| u, |v| v);
        assert!((q - 0.3).abs() < 1e-13);
        let q = quadrature(0.8, 1.1, 0.3, f64::exp, f64::exp);
        assert!((q - ((0.8f64 + 1.1 + 0.6) / 2.0).exp()).abs() < 1e-12);
    }
}
