//! The papers' training losses.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A training loss over outputs `f ∈ R^{n×k}` and targets `y ∈ R^{n×k}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `½ Σ_i (f_i − y_i)²`, a sum as in A eq. 1 and B eq. 2.
    Quadratic,
    /// `(1/n) Σ_i log(1 + exp(−y_i f_i))` for `y_i ∈ {−1, +1}` (C, cross-entropy).
    Logistic,
    /// `(1/n) Σ_i exp(−y_i f_i)` for `y_i ∈ {−1, +1}` (C).
    Exponential,
    /// `−(1/n) Σ_i Σ_c y_ic log softmax(f_i)_c` for one-hot targets (multi-class, D).
    CrossEntropy,
}

impl Loss {
    /// Every loss.
    pub const ALL: [Loss; 4] = [
        Loss::Quadratic,
        Loss::Logistic,
        Loss::Exponential,
        Loss::CrossEntropy,
    ];

    /// The loss as a one-element tensor (differentiable through autodiff).
    pub fn tensor(self, f: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        let n = f.dims()[0] as f64;
        match self {
            Loss::Quadratic => (f - y).powi_scalar(2).sum().mul_scalar(0.5),
            Loss::Logistic => {
                // log(1 + e^{−z}) = relu(−z) + log1p(e^{−|z|}), stable for every z = y f.
                let z = y * f;
                let tail = z.clone().abs().neg().exp().log1p();
                (burn::tensor::activation::relu(z.neg()) + tail)
                    .sum()
                    .mul_scalar(1.0 / n)
            }
            Loss::Exponential => (y * f).neg().exp().sum().mul_scalar(1.0 / n),
            Loss::CrossEntropy => {
                let log_p = burn::tensor::activation::log_softmax(f, 1);
                (y * log_p).sum().neg().mul_scalar(1.0 / n)
            }
        }
    }

    /// The same loss on host values (row-major `n × k`), for checks and observers.
    pub fn value(self, f: &[f64], y: &[f64], k: usize) -> f64 {
        let n = (f.len() / k) as f64;
        match self {
            Loss::Quadratic => 0.5 * f.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>(),
            Loss::Logistic => {
                f.iter()
                    .zip(y)
                    .map(|(a, b)| {
                        let z = a * b;
                        (-z).max(0.0) + (-z.abs()).exp().ln_1p()
                    })
                    .sum::<f64>()
                    / n
            }
            Loss::Exponential => f.iter().zip(y).map(|(a, b)| (-a * b).exp()).sum::<f64>() / n,
            Loss::CrossEntropy => {
                let total: f64 = f
                    .chunks(k)
                    .zip(y.chunks(k))
                    .map(|(row, target)| {
                        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let log_sum = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                        row.iter()
                            .zip(target)
                            .map(|(v, t)| -t * (v - log_sum))
                            .sum::<f64>()
                    })
                    .sum();
                total / n
            }
        }
    }

    /// Checks that targets fit the loss; the error names the first bad value.
    pub fn check_targets(self, y: &[f64], k: usize) -> Result<(), String> {
        match self {
            Loss::Quadratic => Ok(()),
            Loss::Logistic | Loss::Exponential => {
                if k != 1 {
                    return Err(format!(
                        "loss {self} needs one output per sample, the targets have {k}"
                    ));
                }
                match y.iter().position(|&v| v != 1.0 && v != -1.0) {
                    Some(i) => Err(format!(
                        "loss {self} needs labels in {{-1, +1}}, sample {i} has {}",
                        y[i]
                    )),
                    None => Ok(()),
                }
            }
            Loss::CrossEntropy => {
                for (i, row) in y.chunks(k).enumerate() {
                    let sum: f64 = row.iter().sum();
                    if row.iter().any(|&v| v < 0.0) || (sum - 1.0).abs() > 1e-9 {
                        return Err(format!(
                            "loss {self} needs one-hot (probability) targets, sample {i} has {row:?}"
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::Quadratic => "quadratic",
            Loss::Logistic => "logistic",
            Loss::Exponential => "exponential",
            Loss::CrossEntropy => "cross_entropy",
        })
    }
}

impl FromStr for Loss {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Loss::ALL
            .into_iter()
            .find(|l| l.to_string() == s.to_ascii_lowercase().replace('-', "_"))
            .ok_or_else(|| {
                format!(
                    "unknown loss '{s}': expected quadratic, logistic, exponential or cross_entropy"
                )
            })
    }
}
