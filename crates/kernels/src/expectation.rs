//! `E_{(u,v)~N(0,Λ)}[g(u) h(v)]` for a 2 × 2 covariance `Λ = [[a, c], [c, b]]`.

use crate::fma::fma_variants;
use faer::Mat;
use overparam_device::vmath::{self, Simd};
use overparam_models::{Activation, GaussHermite, GaussLegendre};
use std::f64::consts::{FRAC_PI_2, PI};
use std::sync::OnceLock;

/// Which of the two expectations the recursions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `E[σ(u) σ(v)]`.
    Values,
    /// `E[σ'(u) σ'(v)]`.
    Derivatives,
}

impl Moment {
    /// The function whose products this moment averages: σ or σ'.
    pub(crate) fn of(self, activation: Activation) -> impl Fn(f64) -> f64 + Copy {
        move |u| match self {
            Moment::Values => activation.eval(u),
            Moment::Derivatives => activation.derivative(u),
        }
    }
}

/// `weights[t] · g(sqrt(a) nodes[t])` for every node t, g = σ or σ' (`which`).
struct WeightedSamples<'a> {
    activation: Activation,
    which: Moment,
    a: f64,
    nodes: &'a [f64],
    weights: &'a [f64],
}

impl WeightedSamples<'_> {
    fma_variants! {
        /// Writes the samples to `out`. Softplus and sigmoid run [`vmath`]'s branch-free
        /// functions, compiled for the CPU's FMA set ([`Simd`]), so that the loop is
        /// vectorized; the other activations call [`Activation::eval`] or its derivative.
        fn write(&self, out: &mut [f64]) = write_with on Simd::detect(), via write_avx512, write_avx2
    }

    #[inline(always)]
    fn write_with<const FMA: bool>(&self, out: &mut [f64]) {
        #[inline(always)]
        fn fill(
            g: impl Fn(f64) -> f64,
            scale: f64,
            nodes: &[f64],
            weights: &[f64],
            out: &mut [f64],
        ) {
            for ((o, &z), &w) in out.iter_mut().zip(nodes).zip(weights) {
                *o = w * g(scale * z);
            }
        }
        let (scale, nodes, weights) = (self.a.max(0.0).sqrt(), self.nodes, self.weights);
        match (self.activation, self.which) {
            (Activation::Softplus, Moment::Values) if FMA => {
                fill(vmath::softplus, scale, nodes, weights, out)
            }
            (Activation::Softplus, Moment::Derivatives) | (Activation::Sigmoid, Moment::Values)
                if FMA =>
            {
                fill(vmath::sigmoid, scale, nodes, weights, out)
            }
            (act, which) => fill(which.of(act), scale, nodes, weights, out),
        }
    }
}

/// The bivariate Gaussian expectations of an activation that the recursions need.
#[derive(Debug, Clone, Copy)]
pub struct GaussianPair {
    activation: Activation,
}

/// The largest standard deviation of the inner direction that [`quadrature`] integrates with
/// a 16-point Gauss–Hermite rule instead of the trapezoid rule.
const NARROW: f64 = 0.3;

/// Half-width of the integration range in standard deviations (the Gaussian tail beyond it
/// is below e^{−40}).
const RANGE: f64 = 9.0;

/// Trapezoid nodes `z_k = k h`, `|z_k| ≤ 9`, and weights `h φ(z_k)` for `E_{z~N(0,1)}`, for
/// an integrand `f(scale·z)·φ(z)` with f analytic in the strip `|Im| < strip`. In z that
/// strip has half-width `δ = strip/scale`; along `z + iy` the error of the rule is about
/// `M e^{y²/2 − 2πy/h}` (φ grows as `e^{y²/2}` off the real axis, M bounds f there), so the
/// step is the largest with `y²/2 − 2πy/h ≤ −33` for `y = 3δ/4` ([`MARGIN`]), where the
/// poles of σ at distance δ leave M moderate (at most 0.5): errors ≤ 1e-13 relative against
/// 8× finer steps (test below).
pub(crate) fn trapezoid(scale: f64, strip: f64) -> impl Iterator<Item = (f64, f64)> {
    let (h, k) = trapezoid_step(scale, strip);
    let norm = h / (2.0 * PI).sqrt();
    (-k..=k).map(move |i| {
        let z = i as f64 * h;
        (z, norm * (-0.5 * z * z).exp())
    })
}

/// [`trapezoid`]'s step h and its last node index k (nodes `i h`, `|i| ≤ k`).
pub(crate) fn trapezoid_step(scale: f64, strip: f64) -> (f64, i64) {
    let y = (MARGIN * strip / scale.max(1e-300)).min((2.0 * EXPONENT).sqrt());
    let h = (2.0 * PI * y / (EXPONENT + 0.5 * y * y)).min(0.5);
    (h, (RANGE / h).ceil() as i64)
}

/// The exponent of the trapezoid rule's error target `e^{−33}` (see [`trapezoid`]).
const EXPONENT: f64 = 33.0;
/// The fraction of the strip the contour of [`trapezoid`]'s error bound keeps (σ has poles on
/// the strip's edge; at 0.9 tanh's σ' was 1.3e-12 off, at 0.75 every case ≤ 1e-13).
const MARGIN: f64 = 0.75;

/// The half-width of the strip around the real axis where σ and σ' are analytic: π for
/// softplus and sigmoid (poles of `1/(1 + e^{−u})` at `u = ±iπ`), π/2 for tanh, and π/2 as
/// a safe choice for the entire GELU (and for any g, h of [`quadrature`]).
pub(crate) fn analytic_strip(activation: Activation) -> f64 {
    match activation {
        Activation::Softplus | Activation::Sigmoid => PI,
        _ => FRAC_PI_2,
    }
}

/// `E[g(u) h(v)]` for `(u, v) ~ N(0, [[a, c], [c, b]])`, with `u = sqrt(a) z1`,
/// `v = sqrt(b) (ρ z1 + sqrt(1 − ρ²) z2)`, `ρ = c / sqrt(ab)`, by the trapezoid rule in each
/// of z1, z2, for g and h analytic in the strip `|Im| < π/2` (tanh's; entire functions too).
/// The step follows the widest scale of each direction (`sqrt(a)` and `sqrt(b)|ρ|` for z1,
/// `sqrt(b(1 − ρ²))` for z2, see [`trapezoid`]), so deep layers with variances ~10 stay
/// accurate to ~1e-12, where a fixed Gauss–Hermite rule is not (64 × 64 nodes: 2e-8 for
/// softplus, 2e-7 for tanh', measured against 400 nodes).
pub fn quadrature(a: f64, b: f64, c: f64, g: impl Fn(f64) -> f64, h: impl Fn(f64) -> f64) -> f64 {
    quadrature_in_strip(a, b, c, FRAC_PI_2, g, h)
}

/// [`quadrature`] for g and h analytic in the strip `|Im| < strip` (see [`trapezoid`]).
/// Near ρ = ±1 the inner direction `E_z[h(m + s z)]` (s ≤ 0.3) is analytic in a strip of
/// half-width `strip/s ≥ strip/0.3` in z, where a Gauss–Hermite rule of N nodes errs by about
/// `exp(−(strip/s)·sqrt(2N))`: 16 nodes for strip π/2 (e^{−29.6}), 8 for strip π (e^{−41.9}).
fn quadrature_in_strip(
    a: f64,
    b: f64,
    c: f64,
    strip: f64,
    g: impl Fn(f64) -> f64,
    h: impl Fn(f64) -> f64,
) -> f64 {
    let (sa, sb) = (a.max(0.0).sqrt(), b.max(0.0).sqrt());
    let rho = if sa * sb > 0.0 {
        (c / (sa * sb)).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let perp = (1.0 - rho * rho).max(0.0).sqrt();
    // At ρ = ±1 (a sample with itself, or two samples alike at a position) v is a multiple
    // of u and the inner integral is h at one point; near ±1 the inner direction is narrow.
    let spread = sb * perp;
    let inner_nodes: Vec<(f64, f64)> = if perp == 0.0 {
        vec![(0.0, 1.0)]
    } else if spread <= NARROW {
        static RULES: OnceLock<[GaussHermite; 2]> = OnceLock::new();
        let [eight, sixteen] = RULES.get_or_init(|| [GaussHermite::new(8), GaussHermite::new(16)]);
        let rule = if strip >= PI { eight } else { sixteen };
        rule.nodes
            .iter()
            .copied()
            .zip(rule.weights.iter().copied())
            .collect()
    } else {
        trapezoid(spread, strip).collect()
    };
    trapezoid(sa.max(sb * rho.abs()), strip)
        .map(|(z1, w1)| {
            let shift = sb * rho * z1;
            let inner: f64 = inner_nodes
                .iter()
                .map(|&(z2, w2)| w2 * h(shift + sb * perp * z2))
                .sum();
            w1 * g(sa * z1) * inner
        })
        .sum()
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

/// ReLU's `(E[σ(u)σ(v)], E[σ'(u)σ'(v)]) = (sqrt(ab)/(2π) (sin θ + (π − θ) cos θ), (π − θ)/(2π))`
/// with `cos θ = ρ = c/sqrt(ab)` (Cho & Saul), and `(0, 1/4)` when a variance is 0.
#[inline(always)]
pub(crate) fn relu_moments(a: f64, b: f64, c: f64) -> (f64, f64) {
    let s = (a * b).sqrt();
    if s == 0.0 {
        return (0.0, 0.25);
    }
    let rho = (c / s).clamp(-1.0, 1.0);
    let angle = PI - rho.acos();
    (
        s / (2.0 * PI) * ((1.0 - rho * rho).sqrt() + angle * rho),
        angle / (2.0 * PI),
    )
}

impl GaussianPair {
    /// Expectations of `activation`.
    pub fn new(activation: Activation) -> Self {
        Self { activation }
    }

    /// The activation σ.
    pub(crate) fn activation(&self) -> Activation {
        self.activation
    }

    /// Whether the expectations have closed forms (ReLU, erf) rather than quadratures.
    pub(crate) fn has_closed_form(&self) -> bool {
        matches!(self.activation, Activation::Relu | Activation::Erf)
    }

    /// Both expectations, `(E[σ(u)σ(v)], E[σ'(u)σ'(v)])`, sharing the arc-cosine of the
    /// ReLU forms.
    pub fn moments(&self, a: f64, b: f64, c: f64) -> (f64, f64) {
        match self.activation {
            Activation::Relu => relu_moments(a, b, c),
            _ => (self.sigma_sigma(a, b, c), self.dsigma_dsigma(a, b, c)),
        }
    }

    /// Whether σ is ReLU (the recursions' tightest loop).
    pub(crate) fn is_relu(&self) -> bool {
        self.activation == Activation::Relu
    }

    /// `E[σ(u) σ(v)]`; for ReLU the arc-cosine closed form
    /// `sqrt(ab)/(2π) (sin θ + (π − θ) cos θ)`, `cos θ = ρ = c/sqrt(ab)` (Cho & Saul), for erf
    /// `(2/π) arcsin(2c / sqrt((1 + 2a)(1 + 2b)))` (Williams 1997), otherwise quadrature.
    pub fn sigma_sigma(&self, a: f64, b: f64, c: f64) -> f64 {
        match self.activation {
            Activation::Relu => self.moments(a, b, c).0,
            Activation::Erf => {
                let arg = 2.0 * c / ((1.0 + 2.0 * a) * (1.0 + 2.0 * b)).sqrt();
                2.0 / PI * arg.clamp(-1.0, 1.0).asin()
            }
            act => {
                let f = Moment::Values.of(act);
                quadrature_in_strip(a, b, c, analytic_strip(act), f, f)
            }
        }
    }

    /// `E[σ'(u) σ'(v)]`; for ReLU `(π − θ)/(2π)`, for erf
    /// `(4/π) / sqrt((1 + 2a)(1 + 2b) − 4c²)`, otherwise quadrature.
    pub fn dsigma_dsigma(&self, a: f64, b: f64, c: f64) -> f64 {
        match self.activation {
            Activation::Relu => self.moments(a, b, c).1,
            Activation::Erf => 4.0 / PI / ((1.0 + 2.0 * a) * (1.0 + 2.0 * b) - 4.0 * c * c).sqrt(),
            act => {
                let d = Moment::Derivatives.of(act);
                quadrature_in_strip(a, b, c, analytic_strip(act), d, d)
            }
        }
    }

    /// `E[σ(u)σ(v)]` or `E[σ'(u)σ'(v)]` for `(u, v) ~ N(0, [[a, c], [c, b]])`.
    pub fn moment(&self, which: Moment, a: f64, b: f64, c: f64) -> f64 {
        match which {
            Moment::Values => self.sigma_sigma(a, b, c),
            Moment::Derivatives => self.dsigma_dsigma(a, b, c),
        }
    }

    /// The orthonormal Hermite coefficients `c_k = E[g(sqrt(a) z) h_k(z)]`
    /// (`h_k = He_k / sqrt(k!)`) of σ (`Values`) or σ' (`Derivatives`) at every variance
    /// `a = variances[i]`, for k ≤ `degree(i)`, on all cores: by Mehler's formula
    /// `E[g(u)g(v)] = Σ_k ρ^k c_k(a) c_k(b)` for `u = sqrt(a) z1`, `v = sqrt(b) z2`,
    /// corr(z1, z2) = ρ. The variances are taken in ascending groups; each group
    /// integrates on one trapezoid grid, so the Hermite functions at its nodes are one matrix
    /// B and the coefficients of the group one product `B · [w_z g(sqrt(a) z)]`.
    ///
    /// The integrand is `g(sqrt(a) z) ψ_k(z) e^{−z²/4}` up to a constant, with the Hermite
    /// function `ψ_k = h_k sqrt(φ)` (at most ~1 on the real line): the nodes stop at
    /// |z| = 14 (e^{−49}), and B holds `h_k(z) e^{−z²/4}` (by the recurrence
    /// `h_{j+1} = (z h_j − sqrt(j) h_{j−1}) / sqrt(j + 1)` from `h_0 = e^{−z²/4}`), so no
    /// value is large. Off the axis, at `z + iy`, `ψ_k` grows at most like `e^{y sqrt(2k + 1)}`
    /// and `e^{−z²/4}` like `e^{y²/4}`, while g is analytic for `|y| < δ/sqrt(a)` (δ its
    /// strip, [`analytic_strip`]): the trapezoid rule's error is about
    /// `e^{y sqrt(2K + 1) + y²/4 − 2πy/h}`, and the step h is the largest that brings it to
    /// e^{−36} at `y = 0.75 δ / sqrt(a)` (at most 4) for the group's largest variance and
    /// degree K.
    pub(crate) fn hermite_batch(
        &self,
        which: Moment,
        variances: &[f64],
        degree: impl Fn(usize) -> usize + Sync,
    ) -> Vec<Vec<f64>> {
        const GROUP: usize = 256;
        const RANGE: f64 = 14.0;
        let mut order: Vec<usize> = (0..variances.len()).collect();
        order.sort_by(|&i, &j| variances[i].total_cmp(&variances[j]));
        let groups = order.len().div_ceil(GROUP);
        let strip = analytic_strip(self.activation);
        let parts = crate::pairwise::parallel_map(groups, &|group| {
            let members = &order[group * GROUP..((group + 1) * GROUP).min(order.len())];
            let largest = members
                .iter()
                .fold(0.0f64, |m, &i| m.max(variances[i]))
                .max(0.0);
            let k = members.iter().map(|&i| degree(i)).max().unwrap_or(0);
            let y = (MARGIN * strip / largest.sqrt().max(1e-300)).min(4.0);
            let h =
                (2.0 * PI * y / (36.0 + y * ((2 * k + 1) as f64).sqrt() + y * y / 4.0)).min(0.1);
            let last = (RANGE / h).ceil() as i64;
            let nodes: Vec<f64> = (-last..=last).map(|i| i as f64 * h).collect();
            let mut basis = Mat::<f64>::zeros(k + 1, nodes.len());
            for (t, &z) in nodes.iter().enumerate() {
                // h_j and h_{j−1}, times e^{−z²/4}.
                let (mut here, mut below) = ((-0.25 * z * z).exp(), 0.0);
                basis[(0, t)] = here;
                for j in 0..k {
                    let next = (z * here - (j as f64).sqrt() * below) / ((j + 1) as f64).sqrt();
                    basis[(j + 1, t)] = next;
                    (below, here) = (here, next);
                }
            }
            // The other half of φ, e^{−z²/4}, with the step and φ's constant.
            let norm = h / (2.0 * PI).sqrt();
            let weights: Vec<f64> = nodes.iter().map(|z| norm * (-0.25 * z * z).exp()).collect();
            let mut samples = Mat::<f64>::zeros(nodes.len(), members.len());
            for (v, &i) in members.iter().enumerate() {
                let column = samples
                    .col_mut(v)
                    .try_as_col_major_mut()
                    .expect("an owned matrix is column-major")
                    .as_slice_mut();
                WeightedSamples {
                    activation: self.activation,
                    which,
                    a: variances[i],
                    nodes: &nodes,
                    weights: &weights,
                }
                .write(column);
            }
            let mut coefficients = Mat::<f64>::zeros(k + 1, members.len());
            faer::linalg::matmul::matmul(
                coefficients.as_mut(),
                faer::Accum::Replace,
                basis.as_ref(),
                samples.as_ref(),
                1.0,
                faer::Par::Seq,
            );
            members
                .iter()
                .enumerate()
                .map(|(v, &i)| {
                    let count = degree(i) + 1;
                    (i, coefficients.col(v).iter().take(count).copied().collect())
                })
                .collect::<Vec<(usize, Vec<f64>)>>()
        });
        let mut out = vec![Vec::new(); variances.len()];
        for (i, c) in parts.into_iter().flatten() {
            out[i] = c;
        }
        out
    }

    /// `E_{u~N(0,a)}[σ(u)]`; for ReLU `sqrt(a/(2π))`, for erf (odd) 0, otherwise by the
    /// trapezoid rule with the step of σ's strip (`trapezoid`): ~1e-16 at every variance,
    /// where a 120-point Gauss–Hermite rule was off by 1.3e-10 for softplus at a = 10 and
    /// 2e-6 for GELU at a = 20 (against 30-digit quadrature, test below).
    pub fn mean(&self, a: f64) -> f64 {
        match self.activation {
            Activation::Relu => (a / (2.0 * PI)).sqrt(),
            Activation::Erf => 0.0,
            act => {
                let scale = a.max(0.0).sqrt();
                trapezoid(scale, analytic_strip(act))
                    .map(|(z, w)| w * act.eval(scale * z))
                    .sum()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples behind the Hermite coefficients, on the FMA path (vmath for softplus and
    /// sigmoid) and the C library's, against the scalar formulas.
    #[test]
    fn weighted_samples_match_the_formulas_on_both_paths() {
        let nodes: Vec<f64> = (-400..=400).map(|i| f64::from(i) * 0.06).collect();
        let weights: Vec<f64> = nodes.iter().map(|z| 1.0 + 0.1 * z).collect();
        for act in Activation::ALL {
            for which in [Moment::Values, Moment::Derivatives] {
                for a in [0.0, 0.3, 9.0, 400.0] {
                    let g = which.of(act);
                    let samples = WeightedSamples {
                        activation: act,
                        which,
                        a,
                        nodes: &nodes,
                        weights: &weights,
                    };
                    let mut fast = vec![0.0; nodes.len()];
                    let mut library = vec![0.0; nodes.len()];
                    samples.write(&mut fast);
                    samples.write_with::<false>(&mut library);
                    for (t, &z) in nodes.iter().enumerate() {
                        let want = weights[t] * g(a.sqrt() * z);
                        for got in [fast[t], library[t]] {
                            assert!(
                                (got - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
                                "{act} {which:?} a = {a}, z = {z}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

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
    }

    #[test]
    fn quadrature_reproduces_the_erf_kernels() {
        // erf is smooth and has closed forms: an independent check of the general path.
        let pair = GaussianPair::new(Activation::Erf);
        let erf = |u: f64| Activation::Erf.eval(u);
        let derf = |u: f64| Activation::Erf.derivative(u);
        for (a, b) in [(0.3, 0.8), (1.0, 1.0), (9.0, 7.0), (0.05, 3.0)] {
            for rho in [-0.95, -0.3, 0.0, 0.6, 0.999] {
                let c = rho * f64::sqrt(a * b);
                for (quad, exact) in [
                    (quadrature(a, b, c, erf, erf), pair.sigma_sigma(a, b, c)),
                    (quadrature(a, b, c, derf, derf), pair.dsigma_dsigma(a, b, c)),
                ] {
                    assert!(
                        (quad - exact).abs() < 1e-10,
                        "a={a} b={b} ρ={rho}: quadrature {quad} vs {exact}"
                    );
                }
            }
        }
        // Its mean is 0 (odd), as the quadrature says.
        assert!(GaussHermite::standard().expect(|z| erf(3.0 * z)).abs() < 1e-13);
    }

    #[test]
    fn means_match_30_digit_quadrature() {
        // mpmath.quad of E[σ(sqrt(a) z)] at 30 digits.
        for (act, a, reference) in [
            (Activation::Softplus, 0.3, 0.729_363_015_987_475_8),
            (Activation::Softplus, 10.0, 1.450_337_866_270_913_9),
            (Activation::Softplus, 12.0, 1.556_665_778_901_428_5),
            (Activation::Softplus, 20.0, 1.923_482_074_754_866_4),
            (Activation::Gelu, 20.0, 1.741_126_855_102_726_6),
            (Activation::Sigmoid, 20.0, 0.5),
            (Activation::Tanh, 20.0, 0.0),
        ] {
            let mean = GaussianPair::new(act).mean(a);
            assert!(
                (mean - reference).abs() < 1e-14,
                "{act} a = {a}: {mean} vs {reference}"
            );
        }
    }

    #[test]
    fn nearly_parallel_pairs_match_a_fine_trapezoid() {
        // ρ within 1e-3 of ±1, where the inner direction is narrow (the Gauss–Hermite path),
        // against a plain 2-D trapezoid with step 0.01 written out here.
        let fine = |a: f64, b: f64, rho: f64, g: &dyn Fn(f64) -> f64, h: &dyn Fn(f64) -> f64| {
            let step = 0.01;
            let k = (9.0 / step) as i64;
            let w = |z: f64| step * (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
            let perp = (1.0 - rho * rho).sqrt();
            (-k..=k)
                .map(|i| {
                    let z1 = i as f64 * step;
                    let inner: f64 = (-k..=k)
                        .map(|j| {
                            let z2 = j as f64 * step;
                            w(z2) * h(b.sqrt() * (rho * z1 + perp * z2))
                        })
                        .sum();
                    w(z1) * g(a.sqrt() * z1) * inner
                })
                .sum::<f64>()
        };
        for act in [
            Activation::Tanh,
            Activation::Softplus,
            Activation::Sigmoid,
            Activation::Gelu,
        ] {
            let pair = GaussianPair::new(act);
            for (a, b, rho) in [
                (9.0, 7.0, 0.9995),
                (4.0, 4.5, -0.999),
                (0.5, 2.0, 0.9999),
                (9.0, 9.0, 0.9954),
            ] {
                let c = rho * f64::sqrt(a * b);
                assert!(
                    f64::sqrt(b * (1.0 - rho * rho)) <= NARROW,
                    "the narrow path"
                );
                for which in [Moment::Values, Moment::Derivatives] {
                    let g = which.of(act);
                    let q = pair.moment(which, a, b, c);
                    let reference = fine(a, b, rho, &g, &g);
                    assert!(
                        (q - reference).abs() < 1e-10,
                        "{act} {which:?} a={a} b={b} ρ={rho}: {q} vs {reference}"
                    );
                }
            }
        }
    }

    #[test]
    fn steps_from_the_strip_match_eight_times_finer_steps() {
        // Each smooth activation's steps (from its strip: π for softplus and sigmoid, π/2 for
        // tanh and gelu) and inner Gauss–Hermite rule (8 or 16 nodes) against the rule for a
        // strip 8× narrower (steps about 8× finer, 16 inner nodes), from independent to
        // nearly parallel pairs.
        let mut worst: f64 = 0.0;
        for act in [
            Activation::Softplus,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Gelu,
        ] {
            let pair = GaussianPair::new(act);
            let narrow = analytic_strip(act) / 8.0;
            for (a, b) in [
                (0.05, 0.3),
                (1.0, 1.0),
                (2.5, 0.7),
                (9.0, 7.0),
                (12.0, 10.5),
            ] {
                for rho in [-0.97, -0.3, 0.0, 0.45, 0.9, 0.99, 0.996, 0.9995, 0.999_999] {
                    let c = rho * f64::sqrt(a * b);
                    for which in [Moment::Values, Moment::Derivatives] {
                        let g = which.of(act);
                        let q = pair.moment(which, a, b, c);
                        let fine = quadrature_in_strip(a, b, c, narrow, g, g);
                        let e = (q - fine).abs() / fine.abs().max(1.0);
                        worst = worst.max(e);
                    }
                }
            }
        }
        assert!(worst < 1e-12, "worst relative difference {worst:e}");
    }

    #[test]
    fn smooth_expectations_match_closed_forms() {
        // E[tanh'(u)...] has no closed form, but E[uv] = c, E[e^{u+v}] = e^{(a+b+2c)/2} and
        // E[sin(u) sin(v)] = e^{−(a+b)/2} sinh(c), also at the variances of deep conv layers.
        for (a, b, c) in [(0.8, 1.1, 0.3), (9.0, 7.0, -7.5), (0.05, 3.0, 0.3)] {
            let q = quadrature(a, b, c, |u| u, |v| v);
            assert!((q - c).abs() < 1e-12, "{q} vs {c}");
            let q = quadrature(a, b, c, f64::sin, f64::sin);
            let exact = (-(a + b) / 2.0).exp() * c.sinh();
            assert!((q - exact).abs() < 1e-12, "{q} vs {exact}");
        }
        let q = quadrature(0.8, 1.1, 0.3, f64::exp, f64::exp);
        assert!((q - ((0.8f64 + 1.1 + 0.6) / 2.0).exp()).abs() < 1e-11);
    }
}
