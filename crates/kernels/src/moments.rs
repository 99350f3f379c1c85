//! One layer's Gaussian expectations `E[σ(u)σ(v)]` and `E[σ'(u)σ'(v)]` for any pair of its
//! (sample, position) entries, `(u, v) ~ N(0, [[a, c], [c, b]])` with a, b the two entries'
//! variances (the diagonal of `C^(h)`) and c their covariance.

use crate::expectation::{GaussianPair, Moment, mehler, relu_moments};
use crate::pairwise::{Tabulated, per_distinct};
use crate::price::PriceSeries;

/// Below this many entries the direct evaluation is cheaper than building a table.
const TABLE_MIN_ENTRIES: usize = 48;

/// How a layer evaluates its expectations. Each way is exact to 1e-8 against the direct 2-D
/// quadrature (tests below):
/// - closed forms (ReLU, erf) at every pair: they are cheap, and the arc-cosine kernels have a
///   square-root singularity at `c = ±q` that no polynomial resolves;
/// - equal variances q (unit-norm inputs keep them equal at every layer of fc and resnet):
///   the maps depend on c alone and are tabulated once on [−q, q] (Chebyshev) and
///   interpolated;
/// - otherwise (the conv recursions, whose variances depend on sample and position):
///   Mehler's series `Σ_k ρ^k c_k(a) c_k(b)` from Hermite coefficients computed once per
///   distinct variance; where its truncated tail could matter (ρ near ±1), Price's series
///   around perfect correlation (softplus, sigmoid, tanh: one 1-D pass for both
///   expectations, `crate::price`), and the direct quadrature beyond both.
pub(crate) enum Moments {
    Closed,
    Table {
        values: Tabulated,
        derivatives: Tabulated,
        /// Both maps at c = q, computed directly (a sample with itself).
        at_q: (f64, f64),
    },
    Series {
        /// Hermite coefficients of σ and of σ' per distinct variance.
        values: Vec<Vec<f64>>,
        derivatives: Vec<Vec<f64>>,
        /// Each entry's slot among the distinct variances.
        slot: Vec<u32>,
        /// The expansion around ρ = ±1, for the activations it supports.
        price: Option<PriceSeries>,
    },
}

impl Moments {
    /// The evaluator for a layer whose entries have the variances `diag`.
    pub(crate) fn new(pair: GaussianPair, diag: &[f64]) -> Self {
        if pair.has_closed_form() {
            return Self::Closed;
        }
        let q = diag[0];
        let equal = diag.iter().all(|d| (d - q).abs() <= 1e-12 * q.abs());
        if equal && diag.len() >= TABLE_MIN_ENTRIES && q > 0.0 {
            return Self::Table {
                values: Tabulated::new(q, |c| pair.moment(Moment::Values, q, q, c)),
                derivatives: Tabulated::new(q, |c| pair.moment(Moment::Derivatives, q, q, c)),
                at_q: pair.moments(q, q, q),
            };
        }
        let (distinct, slot) = per_distinct(diag, |a| a);
        let coefficients = |which| pair.hermite_batch(which, &distinct);
        Self::Series {
            values: coefficients(Moment::Values),
            derivatives: coefficients(Moment::Derivatives),
            slot: slot.into_iter().map(|s| s as u32).collect(),
            price: PriceSeries::new(pair.activation()),
        }
    }

    /// The bytes of the Hermite coefficients a [`Moments::Series`] holds per distinct variance.
    pub(crate) const SERIES_BYTES: usize = 2 * 8 * (crate::expectation::MEHLER_DEGREE + 1);

    /// Both expectations at every position of a pair of samples: entries `ia + l` and
    /// `ib + l` with variances `a[l]`, `b[l]` and covariance `c[l]`, into `values[l]` and
    /// `derivatives[l]`; `same` when both are one sample (c = a = b).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval_positions(
        &self,
        pair: GaussianPair,
        (a, ia): (&[f64], usize),
        (b, ib): (&[f64], usize),
        c: &[f64],
        same: bool,
        values: &mut [f64],
        derivatives: &mut [f64],
    ) {
        // A sample with itself has ρ = 1 exactly, whatever the rounding of its covariance.
        let c = if same { a } else { c };
        let entries = a
            .iter()
            .zip(b)
            .zip(c)
            .zip(values.iter_mut().zip(derivatives.iter_mut()));
        if matches!(self, Self::Closed) && pair.is_relu() {
            for (((&a, &b), &c), (v, dv)) in entries {
                (*v, *dv) = relu_moments(a, b, c);
            }
        } else {
            for (l, (((&a, &b), &c), (v, dv))) in entries.enumerate() {
                (*v, *dv) = self.eval(pair, (a, ia + l), (b, ib + l), c, same);
            }
        }
    }

    /// `(E[σ(u)σ(v)], E[σ'(u)σ'(v)])` for the entries `ia`, `ib` with variances `a`, `b` and
    /// covariance `c`; `same` when both are one sample at one position (c = a = b).
    pub(crate) fn eval(
        &self,
        pair: GaussianPair,
        (a, ia): (f64, usize),
        (b, ib): (f64, usize),
        c: f64,
        same: bool,
    ) -> (f64, f64) {
        match self {
            Self::Closed => pair.moments(a, b, c),
            Self::Table {
                values,
                derivatives,
                at_q,
            } => {
                if same {
                    *at_q
                } else {
                    (values.eval(c), derivatives.eval(c))
                }
            }
            Self::Series {
                values,
                derivatives,
                slot,
                price,
            } => {
                let norm = (a * b).sqrt();
                let rho = if norm > 0.0 {
                    (c / norm).clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                let (sa, sb) = (slot[ia] as usize, slot[ib] as usize);
                let v = mehler(&values[sa], &values[sb], rho);
                let d = mehler(&derivatives[sa], &derivatives[sb], rho);
                if let (Some(v), Some(d)) = (v, d) {
                    return (v, d);
                }
                match price.as_ref().and_then(|p| p.moments(a, b, c)) {
                    Some((pv, pd)) => (v.unwrap_or(pv), d.unwrap_or(pd)),
                    None => (
                        v.unwrap_or_else(|| pair.moment(Moment::Values, a, b, c)),
                        d.unwrap_or_else(|| pair.moment(Moment::Derivatives, a, b, c)),
                    ),
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
    fn tabulated_and_series_paths_match_direct_quadrature() {
        // 60 unit vectors: equal variances, so the table is used off the diagonal; rows
        // scaled by 0.5 … 3: unequal variances, the Mehler series path.
        let (n, d) = (60, 7);
        let x: Vec<f64> = (0..n * d)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let k = crate::hinf::cosine_gram(&x, d);
        let scales: Vec<f64> = (0..n).map(|i| 0.5 + (i % 11) as f64 / 4.0).collect();
        for (scaled, act) in [false, true].into_iter().flat_map(|s| {
            [
                Activation::Softplus,
                Activation::Tanh,
                Activation::Gelu,
                Activation::Sigmoid,
            ]
            .map(|act| (s, act))
        }) {
            let s = |i: usize| if scaled { scales[i] } else { 1.0 };
            let cov = |i: usize, j: usize| s(i) * s(j) * k[(i, j)];
            let diag: Vec<f64> = (0..n).map(|i| cov(i, i)).collect();
            let pair = GaussianPair::new(act);
            let moments = Moments::new(pair, &diag);
            assert_eq!(
                matches!(moments, Moments::Series { .. }),
                scaled,
                "{act}: path"
            );
            // Every fourth pair against the (slower) direct quadrature.
            for i in 0..n {
                for j in (i % 4..=i).step_by(4) {
                    let (a, b, c) = (diag[i], diag[j], cov(i, j));
                    let (v, dv) = moments.eval(pair, (a, i), (b, j), c, i == j);
                    assert!((v - pair.sigma_sigma(a, b, c)).abs() < 1e-8, "{act} σσ");
                    assert!(
                        (dv - pair.dsigma_dsigma(a, b, c)).abs() < 1e-8,
                        "{act} σ'σ'"
                    );
                }
            }
        }
    }
}
