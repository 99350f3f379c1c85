//! Synthetic data of the papers.

use crate::{DataError, Dataset};
use overparam_rng::{ChaCha8Rng, Purpose, gaussian, random_sign, stream};
use serde::{Deserialize, Serialize};

/// How targets are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Labels {
    /// `y_i ~ N(0, 1)` (B §5).
    Gaussian,
    /// `y_i` uniform on {−1, +1}.
    Sign,
    /// A random teacher, B's network at its init: `y = (1/sqrt(m)) Σ_r a_r relu(w_rᵀ x)` with
    /// `w_r ~ N(0, I)` and `a_r` uniform ±1, drawn from the teacher stream of its own seed.
    Teacher {
        /// The teacher's width m.
        width: usize,
        /// The teacher's seed.
        seed: u64,
    },
}

fn unit_vector(rng: &mut ChaCha8Rng, d: usize) -> Vec<f64> {
    let row: Vec<f64> = (0..d).map(|_| gaussian(rng)).collect();
    let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
    row.iter().map(|v| v / norm).collect()
}

fn sign(z: f64) -> f64 {
    if z >= 0.0 { 1.0 } else { -1.0 }
}

fn teacher_labels(inputs: &[f64], d: usize, width: usize, seed: u64) -> Vec<f64> {
    let mut rng = stream(seed, Purpose::Teacher);
    let w: Vec<f64> = (0..width * d).map(|_| gaussian(&mut rng)).collect();
    let a: Vec<f64> = (0..width).map(|_| random_sign(&mut rng)).collect();
    inputs
        .chunks(d)
        .map(|x| {
            let sum: f64 = w
                .chunks(d)
                .zip(&a)
                .map(|(wr, ar)| ar * wr.iter().zip(x).map(|(p, q)| p * q).sum::<f64>().max(0.0))
                .sum();
            sum / (width as f64).sqrt()
        })
        .collect()
}

/// `n` points uniform on the unit sphere `S^{d−1}` (B §5: normalized standard Gaussians) with
/// targets drawn as `labels` says: inputs from the data stream of `seed`, targets from its
/// labels stream (or the teacher's), so inputs do not depend on the labels chosen.
pub fn sphere(n: usize, d: usize, labels: Labels, seed: u64) -> Result<Dataset, DataError> {
    for (what, size) in [("sample count n", n), ("input dimension d", d)] {
        if size == 0 {
            return Err(DataError::Empty { what });
        }
    }
    let mut rng = stream(seed, Purpose::Data);
    let inputs: Vec<f64> = (0..n).flat_map(|_| unit_vector(&mut rng, d)).collect();
    let mut rng = stream(seed, Purpose::Labels);
    let targets = match labels {
        Labels::Gaussian => (0..n).map(|_| gaussian(&mut rng)).collect(),
        Labels::Sign => (0..n).map(|_| random_sign(&mut rng)).collect(),
        Labels::Teacher { width, seed } => {
            if width == 0 {
                return Err(DataError::Empty {
                    what: "teacher width",
                });
            }
            teacher_labels(&inputs, d, width, seed)
        }
    };
    Dataset::new(inputs, targets, n, d, 1)
}

/// C's binary data and the separation it achieved.
#[derive(Debug, Clone)]
pub struct SeparatedBinary {
    /// The data: `‖x_i‖ = 1`, `(x_i)_d = μ`, `y_i ∈ {−1, +1}`.
    pub data: Dataset,
    /// The achieved φ: the smallest distance `‖x_i − x_j‖` over pairs with `y_i ≠ y_j`.
    pub phi: f64,
}

/// C's binary setting (Assumptions 3.4–3.5): unit-norm inputs whose last coordinate is `μ`,
/// labelled by a random hyperplane through the origin of the first `d − 1` coordinates, and
/// kept only when their margin to it is at least `φ/2`, so that opposite classes are at least
/// `φ` apart. Reports the achieved φ. The hyperplane comes from the labels stream of `seed`,
/// the points from its data stream.
pub fn separated_binary(
    n: usize,
    d: usize,
    mu: f64,
    phi: f64,
    seed: u64,
) -> Result<SeparatedBinary, DataError> {
    if n == 0 || d < 2 {
        return Err(DataError::Synthetic(format!(
            "C's binary data needs n ≥ 1 and d ≥ 2, got n = {n}, d = {d}"
        )));
    }
    if !(mu > 0.0 && mu < 1.0) {
        return Err(DataError::Synthetic(format!(
            "μ must lie in (0, 1) (C Assumption 3.4), got {mu}"
        )));
    }
    if !(phi.is_finite() && phi >= 0.0) {
        return Err(DataError::Synthetic(format!(
            "φ must be a non-negative number, got {phi}"
        )));
    }
    let normal = unit_vector(&mut stream(seed, Purpose::Labels), d - 1);
    let mut rng = stream(seed, Purpose::Data);
    let radius = (1.0 - mu * mu).sqrt();
    let mut inputs = Vec::with_capacity(n * d);
    let mut targets = Vec::with_capacity(n);
    let max_draws = 10_000 * n;
    for _ in 0..max_draws {
        if targets.len() == n {
            break;
        }
        let z = unit_vector(&mut rng, d - 1);
        let margin = radius * z.iter().zip(&normal).map(|(a, b)| a * b).sum::<f64>();
        if margin.abs() < phi / 2.0 {
            continue;
        }
        inputs.extend(z.iter().map(|v| radius * v));
        inputs.push(mu);
        targets.push(sign(margin));
    }
    if targets.len() < n {
        return Err(DataError::Synthetic(format!(
            "could not draw {n} points with margin φ/2 = {} in d = {d} after {max_draws} tries; use a smaller φ",
            phi / 2.0
        )));
    }
    let achieved = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|&(i, j)| targets[i] != targets[j])
        .map(|(i, j)| {
            (0..d)
                .map(|c| (inputs[i * d + c] - inputs[j * d + c]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(f64::INFINITY, f64::min);
    Ok(SeparatedBinary {
        data: Dataset::new(inputs, targets, n, d, 1)?,
        phi: achieved,
    })
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

    #[test]
    fn teacher_labels_have_the_init_variance() {
        // E[f(x)^2] = E[relu(z)^2] = 1/2 for B's network at init (B Lemma 3.3 remark).
        let labels = Labels::Teacher {
            width: 4000,
            seed: 3,
        };
        let data = sphere(400, 20, labels, 2).unwrap();
        let second: f64 = data.targets().iter().map(|y| y * y).sum::<f64>() / 400.0;
        assert!((second - 0.5).abs() < 0.15, "{second}");
    }

    #[test]
    fn separated_binary_meets_c_assumptions() {
        let out = separated_binary(100, 10, 0.3, 0.1, 5).unwrap();
        assert!(out.phi >= 0.1, "achieved φ {}", out.phi);
        for row in out.data.inputs().chunks(10) {
            assert!((row.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-12);
            assert_eq!(row[9], 0.3);
        }
        assert!(separated_binary(10, 10, 1.5, 0.1, 0).is_err());
        assert!(separated_binary(10, 10, 0.5, 5.0, 0).is_err());
    }
}
