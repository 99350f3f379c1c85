//! Spread over seeds: the mean and the min–max band of runs that share a grid point.

use overparam_plot::Series;
use std::collections::BTreeMap;

/// Mean, minimum and maximum of a non-empty sample.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (NaN entries are ignored; all-NaN gives NaNs).
    pub fn of(values: &[f64]) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if finite.is_empty() {
            return Self {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        Self {
            mean: finite.iter().sum::<f64>() / finite.len() as f64,
            min: finite.iter().copied().fold(f64::INFINITY, f64::min),
            max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Groups `(x, y)` samples by x (sorted) and returns each x's spread of y.
pub fn by_x(samples: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, Spread)> {
    let mut groups: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for (x, y) in samples {
        // Order by x; f64::to_bits is monotone for non-negative x, the only kind used here.
        groups
            .entry(x.to_bits())
            .or_insert((x, Vec::new()))
            .1
            .push(y);
    }
    groups
        .into_values()
        .map(|(x, ys)| (x, Spread::of(&ys)))
        .collect()
}

/// The mean curve with its min–max band, as a plot series.
pub fn band_series(label: impl Into<String>, points: &[(f64, Spread)]) -> Series {
    Series::line(label, points.iter().map(|(x, s)| (*x, s.mean)).collect())
        .band(points.iter().map(|(x, s)| (*x, s.min, s.max)).collect())
}

/// Element-wise spread of equally long curves (one per seed).
pub fn curves(curves: &[Vec<f64>]) -> Vec<Spread> {
    let len = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..len)
        .map(|i| Spread::of(&curves.iter().map(|c| c[i]).collect::<Vec<_>>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_group_by_x() {
        let g = by_x([(2.0, 1.0), (1.0, 5.0), (2.0, 3.0)]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, 1.0);
        assert_eq!(
            g[1].1,
            Spread {
                mean: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        let c = curves(&[vec![1.0, 2.0], vec![3.0, f64::NAN]]);
        assert_eq!(c[1].mean, 2.0);
    }
}
