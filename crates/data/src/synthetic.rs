//! Synthetic data of the papers.

use crate::{DataError, Dataset};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How targets are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Labels {
    /// `y_i ~ N(0, 1)` (B §5).
    Gaussian,
    /// `y_i` uniform on {−1, +1} (binary classification, C).
    Sign,
}

/// `n` points uniform on the unit sphere `S^{d−1}` (B §5: normalized standard Gaussians) with
/// targets drawn as `labels` says; inputs first, then targets, from one ChaCha8 stream.
pub fn sphere(n: usize, d: usize, labels: Labels, seed: u64) -> Result<Dataset, DataError> {
    if n == 0 {
        return Err(DataError::Empty {
            what: "sample count n",
        });
    }
    if d == 0 {
        return Err(DataError::Empty {
            what: "input dimension d",
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut inputs = Vec::with_capacity(n * d);
    for _ in 0..n {
        let row: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        inputs.extend(row.iter().map(|v| v / norm));
    }
    let targets = (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            match labels {
                Labels::Gaussian => z,
                Labels::Sign => {
                    if z >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    }
                }
            }
        })
        .collect();
    Dataset::new(inputs, targets, n, d, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_have_unit_norm_and_small_mean() {
        let data = sphere(2000, 5, Labels::Gaussian, 7).unwrap();
        for row in data.inputs().chunks(5) {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-12);
        }
        // Each coordinate has variance 1/d; the mean of 2000 has std sqrt(1/(5*2000)) = 0.01.
        for c in 0..5 {
            let mean: f64 = data.inputs().iter().skip(c).step_by(5).sum::<f64>() / 2000.0;
            assert!(mean.abs() < 0.05, "coordinate {c}: mean {mean}");
        }
        let y_mean: f64 = data.targets().iter().sum::<f64>() / 2000.0;
        assert!(y_mean.abs() < 0.1, "{y_mean}");
    }

    #[test]
    fn same_seed_same_data() {
        assert_eq!(
            sphere(10, 3, Labels::Sign, 1).unwrap(),
            sphere(10, 3, Labels::Sign, 1).unwrap()
        );
        assert!(sphere(0, 3, Labels::Sign, 1).is_err());
    }
}
