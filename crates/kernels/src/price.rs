//! Both expectations near perfect correlation, by Price's theorem.
//!
//! For `(u, v) ~ N(0, [[a, c], [c, b]])`, `∂^k/∂c^k E[g(u) h(v)] = E[g^{(k)}(u) h^{(k)}(v)]`
//! (Price 1958). At `c₁ = ±sqrt(ab)` (ρ = ±1) the pair is `(sqrt(a) x, ±sqrt(b) x)` with one
//! standard normal x, so every coefficient of the Taylor series in `Δc = c − c₁`,
//!
//! `E[σ(u)σ(v)] = Σ_k T_k Δc^k / k!`, `E[σ'(u)σ'(v)] = Σ_k T_{k+1} Δc^k / k!`,
//! `T_k = E_x[σ^{(k)}(sqrt(a) x) σ^{(k)}(±sqrt(b) x)]`,
//!
//! is a 1-D integral, and one pass over its nodes gives both series. Where Mehler's series
//! converges too slowly (ρ within ~1e-2 of ±1, the deep layers of the conv recursion) this
//! replaces a 2-D quadrature. For σ analytic in the strip `|Im| < δ`, `|σ^{(k)}| ≲ k!/δ^k`, so
//! the k-th term is at most about `k! (|Δc|/δ²)^k`. The expectation is smooth but in general not
//! analytic at ρ = ±1 (with a = b, Mehler's series has radius 1 and nonnegative coefficients),
//! so the series is asymptotic: its terms decrease up to k ≈ δ²/|Δc| ≥ 41 for the shifts used
//! here, far beyond the orders needed to bring the bound below 1e-16.

use crate::expectation::{analytic_strip, trapezoid_step};
use crate::fma::fma_variants;
use overparam_device::vmath::{self, Simd};
use overparam_models::Activation;
use std::f64::consts::PI;

/// The largest `|Δc|` handled (beyond it the terms shrink too slowly).
const MAX_SHIFT: f64 = 0.06;
/// The highest derivative order used.
const MAX_ORDER: usize = 24;
/// Terms are added until the bound on the last term of the derivative series,
/// `(k + 1)² k! (|Δc|/δ²)^k / δ²` (from `T_{k+1} ≲ ((k + 1)!/δ^{k+1})²`), falls below this.
const TOLERANCE: f64 = 1e-16;
/// `1/k` for the recurrences (a product instead of a division on their critical path).
const RECIPROCALS: [f64; MAX_ORDER + 2] = {
    let mut r = [0.0; MAX_ORDER + 2];
    let mut k = 1;
    while k < MAX_ORDER + 2 {
        r[k] = 1.0 / k as f64;
        k += 1;
    }
    r
};
/// `k!`, for `T_k = k!² τ_k`.
const FACTORIALS: [f64; MAX_ORDER + 2] = {
    let mut f = [1.0; MAX_ORDER + 2];
    let mut k = 1;
    while k < MAX_ORDER + 2 {
        f[k] = f[k - 1] * k as f64;
        k += 1;
    }
    f
};

/// The Taylor coefficients `σ^{(k)}(z)/k!` of σ at a point, by the recurrence of the ODE of its
/// base function: `t' = t − t²` for the logistic `t = 1/(1 + e^{−z})` (σ' of softplus, σ of
/// sigmoid) and `t' = 1 − t²` for `t = tanh z`. With `t(z + ε) = Σ_k t_k ε^k`,
/// `(k + 1) t_{k+1} = [t_k] − Σ_{i ≤ k} t_i t_{k−i}` (the bracket for the logistic, `δ_{k0}`
/// for tanh): O(k²/2) products for all orders, no tables.
///
/// Where the CPU has FMA ([`Simd`]), one call runs compiled for it, with the branch-free `exp`,
/// `log1p` and σ of [`vmath`]: the eight lanes of a pass then fill one AVX-512 register.
pub(crate) struct PriceSeries {
    activation: Activation,
    strip: f64,
    simd: Simd,
}

impl PriceSeries {
    /// The series of `activation`, or `None` when its base function has no such ODE here
    /// (ReLU and erf have closed forms; GELU keeps the quadrature).
    pub(crate) fn new(activation: Activation) -> Option<Self> {
        match activation {
            Activation::Softplus | Activation::Sigmoid | Activation::Tanh => Some(Self {
                activation,
                strip: analytic_strip(activation),
                simd: Simd::detect(),
            }),
            _ => None,
        }
    }

    /// `σ^{(k)}(z)/k!` for k = 0 ..= order at L points at once (`out[k][p]` for `z[p]`): the
    /// L recurrences run in lockstep, so that their dependency chains overlap and the products
    /// vectorize.
    #[inline(always)]
    fn taylor<const L: usize, const FMA: bool>(
        &self,
        z: [f64; L],
        order: usize,
        out: &mut [[f64; L]; MAX_ORDER + 2],
    ) {
        let softplus = self.activation == Activation::Softplus;
        let logistic = self.activation != Activation::Tanh;
        let mut t = [[0.0; L]; MAX_ORDER + 2];
        for p in 0..L {
            t[0][p] = if logistic && FMA {
                if softplus {
                    out[0][p] = vmath::softplus(z[p]);
                }
                vmath::sigmoid(z[p])
            } else if logistic {
                let e = (-z[p].abs()).exp();
                if softplus {
                    out[0][p] = z[p].max(0.0) + e.ln_1p();
                }
                if z[p] >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                }
            } else {
                z[p].tanh()
            };
        }
        // Softplus: σ = ∫ t, so its coefficient k is t_{k−1}/k and only order − 1 of t are needed.
        let last = if softplus { order - 1 } else { order };
        for k in 0..last {
            let (mut half, mut i, mut j) = ([0.0; L], 0, k);
            while i < j {
                for p in 0..L {
                    half[p] += t[i][p] * t[j][p];
                }
                (i, j) = (i + 1, j - 1);
            }
            for p in 0..L {
                let middle = if i == j { t[i][p] * t[i][p] } else { 0.0 };
                let linear = if logistic {
                    t[k][p]
                } else {
                    f64::from(u8::from(k == 0))
                };
                t[k + 1][p] = (linear - 2.0 * half[p] - middle) * RECIPROCALS[k + 1];
            }
        }
        if softplus {
            for k in 1..=order {
                for p in 0..L {
                    out[k][p] = t[k - 1][p] * RECIPROCALS[k];
                }
            }
        } else {
            out[..=order].copy_from_slice(&t[..=order]);
        }
    }

    fma_variants! {
        /// `(E[σ(u)σ(v)], E[σ'(u)σ'(v)])` when `c` is within [`MAX_SHIFT`] of `±sqrt(ab)`,
        /// otherwise `None`.
        pub(crate) fn moments(&self, a: f64, b: f64, c: f64) -> Option<(f64, f64)>
            = moments_with on self.simd, via moments_avx512, moments_avx2
    }

    /// [`Self::moments`] with [`vmath`]'s functions (`FMA`) or the C library's.
    #[inline(always)]
    fn moments_with<const FMA: bool>(&self, a: f64, b: f64, c: f64) -> Option<(f64, f64)> {
        let (sa, sb) = (a.max(0.0).sqrt(), b.max(0.0).sqrt());
        let sign = if c >= 0.0 { 1.0 } else { -1.0 };
        let shift = c - sign * sa * sb;
        if shift.abs() > MAX_SHIFT {
            return None;
        }
        // Terms k ≤ order of the value series (the derivative series needs order + 1).
        let delta2 = self.strip * self.strip;
        let ratio = shift.abs() / delta2;
        let (mut factorial_power, mut order) = (1.0, 0);
        while factorial_power * ((order + 1) * (order + 1)) as f64 / delta2 > TOLERANCE {
            order += 1;
            factorial_power *= order as f64 * ratio;
            if order == MAX_ORDER {
                return None;
            }
        }
        let n = order + 2;
        // Four trapezoid nodes per pass, each with its u (even lane) and v (odd lane); a
        // short last group is padded with weight 0.
        const NODES: usize = 4;
        let mut d = [[0.0; 2 * NODES]; MAX_ORDER + 2];
        // τ_k = E[σ^{(k)}(u) σ^{(k)}(v)] / k!², so that T_k = k!² τ_k.
        let mut tau = [0.0; MAX_ORDER + 2];
        let (h, last) = trapezoid_step(sa.max(sb), self.strip);
        let norm = h / (2.0 * PI).sqrt();
        let mut first = -last;
        while first <= last {
            let (mut z, mut w) = ([0.0; 2 * NODES], [0.0; NODES]);
            for q in 0..NODES {
                let i = first + q as i64;
                if i <= last {
                    let x = i as f64 * h;
                    let gauss = if FMA {
                        vmath::exp_nonpositive(-0.5 * x * x)
                    } else {
                        (-0.5 * x * x).exp()
                    };
                    (z[2 * q], z[2 * q + 1], w[q]) = (sa * x, sign * sb * x, norm * gauss);
                }
            }
            self.taylor::<{ 2 * NODES }, FMA>(z, n - 1, &mut d);
            for k in 0..n {
                tau[k] += (0..NODES)
                    .map(|q| w[q] * d[k][2 * q] * d[k][2 * q + 1])
                    .sum::<f64>();
            }
            first += NODES as i64;
        }
        // Σ_k T_{k+first} Δc^k / k! by Horner, with T_k = k!² τ_k.
        let series = |first: usize| {
            (0..=order).rev().fold(0.0, |acc, k| {
                let f = FACTORIALS[k + first];
                acc * shift * RECIPROCALS[k + 1] + f * f * tau[first + k]
            })
        };
        Some((series(0), series(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::{GaussianPair, Moment};

    /// The series on this CPU's path and on the C library's (no FMA).
    fn both_paths(act: Activation) -> [PriceSeries; 2] {
        let detected = PriceSeries::new(act).expect("supported");
        let library = PriceSeries {
            simd: Simd::None,
            ..PriceSeries::new(act).expect("supported")
        };
        [detected, library]
    }

    #[test]
    fn taylor_coefficients_match_central_differences() {
        // Both lanes of the lockstep recurrence, at z and at 0.37 − z.
        // With the C library's functions and with vmath's (FMA).
        for (act, fma) in [Activation::Softplus, Activation::Sigmoid, Activation::Tanh]
            .into_iter()
            .flat_map(|act| [(act, false), (act, true)])
        {
            let series = PriceSeries::new(act).expect("supported");
            let h = 1e-4;
            // σ^{(k)} = k! × the Taylor coefficient, per lane.
            let derivatives = |z: [f64; 2]| {
                let mut out = [[0.0; 2]; MAX_ORDER + 2];
                if fma {
                    series.taylor::<2, true>(z, 8, &mut out);
                } else {
                    series.taylor::<2, false>(z, 8, &mut out);
                }
                let mut factorial = 1.0;
                for (k, o) in out.iter_mut().enumerate() {
                    factorial *= k.max(1) as f64;
                    o.iter_mut().for_each(|v| *v *= factorial);
                }
                out
            };
            for z in [-3.1, -0.4, 0.0, 0.7, 2.6] {
                let points = [z, 0.37 - z];
                let shifted = |d: f64| derivatives(points.map(|p| p + d));
                let (at, plus, minus) = (derivatives(points), shifted(h), shifted(-h));
                for (p, &zp) in points.iter().enumerate() {
                    assert!((at[0][p] - act.eval(zp)).abs() < 1e-15, "{act} σ({zp})");
                    assert!(
                        (at[1][p] - act.derivative(zp)).abs() < 1e-15,
                        "{act} σ'({zp})"
                    );
                    for k in 0..6 {
                        let fd = (plus[k][p] - minus[k][p]) / (2.0 * h);
                        let tol = 1e-6 * at[k + 2][p].abs().max(1.0);
                        assert!(
                            (fd - at[k + 1][p]).abs() < tol,
                            "{act} order {} at {zp}",
                            k + 1
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn near_perfect_correlation_matches_the_quadrature() {
        // Unequal variances from deep conv layers, ρ from 0.99 to 1 and near −1, against the
        // 2-D quadrature (itself ~1e-13 against 4× finer steps).
        let mut worst: f64 = 0.0;
        for act in [Activation::Softplus, Activation::Sigmoid, Activation::Tanh] {
            let pair = GaussianPair::new(act);
            for series in both_paths(act) {
                for (a, b) in [(0.3, 0.2), (1.0, 1.0), (4.0, 2.5), (9.0, 7.0), (10.5, 12.0)] {
                    for rho in [0.999_999, 0.9999, 0.999, 0.996, -0.9995] {
                        let c = rho * f64::sqrt(a * b);
                        let Some((v, d)) = series.moments(a, b, c) else {
                            assert!(
                                (c.abs() - (a * b).sqrt()).abs() > 0.02,
                                "{act} {a} {b} {rho}"
                            );
                            continue;
                        };
                        for (got, which) in [(v, Moment::Values), (d, Moment::Derivatives)] {
                            let q = pair.moment(which, a, b, c);
                            worst = worst.max((got - q).abs() / q.abs().max(1.0));
                        }
                    }
                }
            }
        }
        assert!(worst < 1e-12, "worst relative difference {worst:e}");
    }

    #[test]
    fn matches_an_independent_fine_trapezoid() {
        // numpy, a 2-D trapezoid with step 0.002 on |z| ≤ 10 in both directions, in the
        // parametrization u = sqrt(a) z1, v = sqrt(b)(ρ z1 + sqrt(1 − ρ²) z2).
        let cases = [
            (
                Activation::Softplus,
                (9.0, 7.0, 0.9995),
                0,
                4.239818404202889f64,
            ),
            (
                Activation::Softplus,
                (9.0, 7.0, 0.9995),
                1,
                0.379328730500037,
            ),
            (Activation::Tanh, (1.0, 1.0, 0.996), 1, 0.46321031202135016),
            (Activation::Tanh, (4.0, 2.5, -0.999), 0, -0.5939104090083948),
        ];
        for ((act, (a, b, rho), which, reference), series) in cases
            .into_iter()
            .flat_map(|case| both_paths(case.0).map(|series| (case, series)))
        {
            let (v, d) = series
                .moments(a, b, rho * f64::sqrt(a * b))
                .expect("near ±1");
            let got = [v, d][which];
            let tolerance = 1e-12 * reference.abs().max(1.0);
            assert!(
                (got - reference).abs() < tolerance,
                "{act}: {got} vs {reference}"
            );
        }
    }

    #[test]
    fn far_from_perfect_correlation_is_left_to_the_other_paths() {
        let series = PriceSeries::new(Activation::Softplus).expect("supported");
        assert!(series.moments(4.0, 4.0, 0.9 * 4.0).is_none());
        assert!(PriceSeries::new(Activation::Gelu).is_none());
        assert!(PriceSeries::new(Activation::Relu).is_none());
    }
}
