//! `E_{(u,v)~N(0,Λ)}[g(u) h(v)]` for a 2 × 2 covariance `Λ = [[a, c], [c, b]]`.

use crate::pairwise::Evaluation;
use overparam_models::{Activation, GaussHermite, GaussLegendre};
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

/// `∫_0^∞ r^{1+k} e^{−r²/2} dr = 2^{k/2} Γ(1 + k/2)` for an integer `k ≥ 0`.
fn radial_moment(k: u32) -> f64 {
    let half = k / 2;
    let gamma = if k.is_multiple_of(2) {
        // Γ(1 + j) = j!
        (1..=half).map(f64::from).product::<f64>()
    } else {
        // Γ(j + 3/2) = (j + 1/2)(j − 1/2)⋯(1/2) √π
        (0..=half).map(|i| f64::from(i) + 0.5).product::<f64>() * PI.sqrt()
    };
    2f64.powf(f64::from(k) / 2.0) * gamma
}

/// `E[g(u) h(v)]` for positively homogeneous `g`, `h` of degrees `kg`, `kh` (`g(r x) = r^kg
/// g(x)` for r ≥ 0: ReLU has degree 1, its derivative, the step, degree 0), in polar
/// coordinates of `z ~ N(0, I₂)` with `(u, v) = L z`, `L` the Cholesky factor of `Λ`: the
/// radial integral is exact, [`radial_moment`], and the angular one is Gauss–Legendre on each
/// arc between the rays where `u = 0` or `v = 0`, where the integrand is smooth. The kinks
/// that make a tensor Gauss–Hermite rule converge slowly therefore cost nothing here; it
/// reproduces the arc-cosine closed forms to about 1e-15.
pub fn homogeneous_quadrature(
    (a, b, c): (f64, f64, f64),
    (g, kg): (impl Fn(f64) -> f64, u32),
    (h, kh): (impl Fn(f64) -> f64, u32),
) -> f64 {
    static RULE: OnceLock<GaussLegendre> = OnceLock::new();
    let rule = RULE.get_or_init(|| GaussLegendre::new(24));
    let l11 = a.max(0.0).sqrt();
    let (l21, l22) = if l11 > 0.0 {
        (c / l11, (b - c * c / a).max(0.0).sqrt())
    } else {
        (0.0, b.max(0.0).sqrt())
    };
    let tau = 2.0 * PI;
    let phi = l22.atan2(l21);
    let mut cuts: Vec<f64> = [
        PI / 2.0,
        1.5 * PI,
        phi + PI / 2.0,
        phi - PI / 2.0,
        phi + 1.5 * PI,
    ]
    .into_iter()
    .map(|t| t.rem_euclid(tau))
    .chain([0.0, tau])
    .collect();
    cuts.sort_by(f64::total_cmp);
    let angular: f64 = cuts
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| {
            rule.integrate(w[0], w[1], |t| {
                let (ct, st) = (t.cos(), t.sin());
                g(l11 * ct) * h(l21 * ct + l22 * st)
            })
        })
        .sum();
    angular / tau * radial_moment(kg + kh)
}

impl GaussianPair {
    /// Expectations of `activation`.
    pub fn new(activation: Activation) -> Self {
        Self { activation }
    }

    /// Whether the pairwise maps evaluate closed forms (ReLU) or tabulate quadratures.
    pub(crate) fn evaluation(&self) -> Evaluation {
        match self.activation {
            Activation::Relu => Evaluation::Direct,
            _ => Evaluation::Tabulate,
        }
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
        let pair = GaussianPair::new(Activation::Relu);
        let relu = |z: f64| z.max(0.0);
        let step = |z: f64| f64::from(u8::from(z > 0.0));
        for (a, b, c) in [
            (1.0, 1.0, 0.3),
            (0.7, 1.3, -0.4),
            (2.0, 0.5, 0.9),
            (1.0, 1.0, 0.999_999),
            (1.0, 1.0, -0.99),
            (1.5, 1.5, 1.5),
        ] {
            let q = homogeneous_quadrature((a, b, c), (relu, 1), (relu, 1));
            let exact = pair.sigma_sigma(a, b, c);
            assert!(
                (q - exact).abs() < 1e-8 * exact.abs().max(1e-3),
                "{q} vs {exact}"
            );
            let q = homogeneous_quadrature((a, b, c), (step, 0), (step, 0));
            let exact = pair.dsigma_dsigma(a, b, c);
            assert!((q - exact).abs() < 1e-8, "{q} vs {exact}");
        }
        // Mixed degrees: E[relu(u) 1{v > 0}] at ρ = 0 is E[relu(u)] / 2 = sqrt(a/2π) / 2.
        let q = homogeneous_quadrature((2.0, 1.0, 0.0), (relu, 1), (step, 0));
        assert!((q - (2.0 / (2.0 * PI)).sqrt() / 2.0).abs() < 1e-12, "{q}");
        // The tensor Gauss–Hermite rule is exact on the diagonal (ρ = 1) only.
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
