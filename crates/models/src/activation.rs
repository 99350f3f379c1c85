//! Activation functions σ, their derivatives, and `c_σ = 1/E_{z~N(0,1)}[σ(z)²]` (A §3.1).

use crate::quadrature::GaussHermite;
use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An elementwise activation σ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(z, 0)` (B, C). Not covered by A's theory (not smooth).
    Relu,
    /// `ln(1 + e^z)`, A's guiding example (Lipschitz and smooth with constant 1).
    Softplus,
    /// `tanh(z)`.
    Tanh,
    /// `1/(1 + e^{−z})`.
    Sigmoid,
    /// `z Φ(z)` with the exact Gaussian CDF Φ.
    Gelu,
    /// The error function `erf(z)`, smooth and odd, with closed-form kernels (Williams 1997).
    Erf,
}

impl Activation {
    /// Every supported activation.
    pub const ALL: [Activation; 6] = [
        Activation::Relu,
        Activation::Softplus,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::Erf,
    ];

    /// σ applied elementwise to a Burn tensor (differentiable through autodiff).
    pub fn apply<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => activation::relu(z),
            Activation::Softplus => activation::softplus(z, 1.0),
            Activation::Tanh => activation::tanh(z),
            Activation::Sigmoid => activation::sigmoid(z),
            Activation::Gelu => activation::gelu(z),
            Activation::Erf => z.erf(),
        }
    }

    /// σ(z) on a scalar.
    #[inline]
    pub fn eval(self, z: f64) -> f64 {
        match self {
            Activation::Relu => z.max(0.0),
            Activation::Softplus => z.max(0.0) + (-z.abs()).exp().ln_1p(),
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => sigmoid(z),
            Activation::Gelu => z * normal_cdf(z),
            Activation::Erf => libm::erf(z),
        }
    }

    /// σ'(z) on a scalar; for ReLU the convention `1{z ≥ 0}` of B eq. 4 (footnote 2).
    #[inline]
    pub fn derivative(self, z: f64) -> f64 {
        match self {
            Activation::Relu => f64::from(u8::from(z >= 0.0)),
            Activation::Softplus => sigmoid(z),
            Activation::Tanh => 1.0 - z.tanh().powi(2),
            Activation::Sigmoid => sigmoid(z) * (1.0 - sigmoid(z)),
            Activation::Gelu => normal_cdf(z) + z * (-0.5 * z * z).exp() / (2.0 * PI).sqrt(),
            Activation::Erf => 2.0 / PI.sqrt() * (-z * z).exp(),
        }
    }

    /// `c_σ = (E_{z~N(0,1)}[σ(z)²])^{-1}` (A §3.1) by Gauss–Hermite quadrature.
    ///
    /// ReLU gives exactly 2; softplus ≈ 1.08549.
    pub fn c_sigma(self) -> f64 {
        1.0 / GaussHermite::standard().expect(|z| self.eval(z).powi(2))
    }
}

use std::f64::consts::PI;

#[inline]
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Φ(z), the standard Gaussian CDF.
fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Relu => "relu",
            Activation::Softplus => "softplus",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Gelu => "gelu",
            Activation::Erf => "erf",
        })
    }
}

impl FromStr for Activation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::ALL
            .into_iter()
            .find(|a| a.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "unknown activation '{s}': expected relu, softplus, tanh, sigmoid, gelu or erf"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_sigma_of_relu_and_softplus() {
        assert!((Activation::Relu.c_sigma() - 2.0).abs() < 1e-12);
        // papers.md §1.1: E[softplus(z)^2] = 0.92125, c_sigma = 1.08549.
        assert!((Activation::Softplus.c_sigma() - 1.08549).abs() < 5e-6);
        // E[erf(z)²] = (2/π) arcsin(2/3) (the erf kernel at a = b = c = 1).
        let erf = PI / (2.0 * (2.0f64 / 3.0).asin());
        assert!((Activation::Erf.c_sigma() - erf).abs() < 1e-12);
    }

    #[test]
    fn derivatives_match_central_differences() {
        let h = 1e-6;
        for act in Activation::ALL {
            for z in [-2.3, -0.7, 0.4, 1.9] {
                let fd = (act.eval(z + h) - act.eval(z - h)) / (2.0 * h);
                assert!((fd - act.derivative(z)).abs() < 1e-8, "{act} at {z}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for act in Activation::ALL {
            assert_eq!(act.to_string().parse::<Activation>(), Ok(act));
        }
        assert!(
            "swish"
                .parse::<Activation>()
                .unwrap_err()
                .contains("'swish'")
        );
    }
}
