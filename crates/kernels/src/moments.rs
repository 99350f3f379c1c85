//! One layer's Gaussian expectations `E[σ(u)σ(v)]` and `E[σ'(u)σ'(v)]` for any pair of its
//! (sample, position) entries, `(u, v) ~ N(0, [[a, c], [c, b]])` with a, b the two entries'
//! variances (the diagonal of `C^(h)`) and c their covariance.

use crate::expectation::{GaussianPair, Moment, relu_moments};
use crate::pairwise::Tabulated;
use crate::series::SeriesBlocks;

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
///   Mehler's series from the Hermite coefficients of σ' per entry, eight positions at a
///   time ([`SeriesBlocks`]); where its truncated tail could matter, Price's series around
///   perfect correlation (softplus, sigmoid, tanh: `crate::price`) or the direct quadrature.
pub(crate) enum Moments {
    Closed,
    Table {
        values: Tabulated,
        derivatives: Tabulated,
        /// Both maps at c = q, computed directly (a sample with itself).
        at_q: (f64, f64),
    },
    Series(SeriesBlocks),
}

impl Moments {
    /// The evaluator for a layer whose entries (sample, position), `positions` per sample,
    /// have the variances `diag` and the means `E[σ(u)]`, `means`.
    pub(crate) fn new(pair: GaussianPair, diag: &[f64], means: &[f64], positions: usize) -> Self {
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
        Self::Series(SeriesBlocks::new(pair, diag, means, positions))
    }

    /// The bytes a [`Moments::Series`] holds per entry at most.
    pub(crate) const SERIES_BYTES: usize = SeriesBlocks::ENTRY_BYTES;

    /// How many positions of a pair to evaluate at a time: a block for the series (so that a
    /// tile of pairs reads each block of coefficients from cache), all of them otherwise.
    pub(crate) fn chunk(&self, positions: usize) -> usize {
        match self {
            Self::Series(_) => crate::series::LANES,
            _ => positions,
        }
    }

    /// Both expectations at positions `first ..` of the samples i and j, `positions` per
    /// sample, `first` a multiple of 8 ([`crate::series::LANES`]): variances `a[l]`, `b[l]`
    /// and covariances `c[l]`, into `values[l]` and `derivatives[l]`; `same` when both are
    /// one sample (c = a = b).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval_positions(
        &self,
        pair: GaussianPair,
        (i, j, first): (usize, usize, usize),
        (a, b): (&[f64], &[f64]),
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
        match self {
            Self::Series(blocks) => {
                blocks.eval(pair, (i, j, first), (a, b, c), same, values, derivatives)
            }
            Self::Closed if pair.is_relu() => {
                for (((&a, &b), &c), (v, dv)) in entries {
                    (*v, *dv) = relu_moments(a, b, c);
                }
            }
            Self::Closed => {
                for (((&a, &b), &c), (v, dv)) in entries {
                    (*v, *dv) = pair.moments(a, b, c);
                }
            }
            Self::Table {
                values,
                derivatives,
                at_q,
            } => {
                for (((_, _), &c), (v, dv)) in entries {
                    (*v, *dv) = if same {
                        *at_q
                    } else {
                        (values.eval(c), derivatives.eval(c))
                    };
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
            let means: Vec<f64> = diag.iter().map(|&a| pair.mean(a)).collect();
            let moments = Moments::new(pair, &diag, &means, 1);
            assert_eq!(
                matches!(moments, Moments::Series { .. }),
                scaled,
                "{act}: path"
            );
            // Every fourth pair against the (slower) direct quadrature.
            for i in 0..n {
                for j in (i % 4..=i).step_by(4) {
                    let (a, b, c) = (diag[i], diag[j], cov(i, j));
                    let (mut v, mut dv) = ([0.0], [0.0]);
                    moments.eval_positions(
                        pair,
                        (i, j, 0),
                        (&[a], &[b]),
                        &[c],
                        i == j,
                        &mut v,
                        &mut dv,
                    );
                    let (v, dv) = (v[0], dv[0]);
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
