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
    ///
    /// On flex, softplus is [`overparam_device::softplus`]'s vectorized, multi-threaded kernel,
    /// σ and GELU are flex's own: one fused pass each way, instead of the seven passes of
    /// Burn's `softplus`. The other backends run Burn's default
    /// bodies, where sigmoid is cast to f32 and GELU's backward is its tanh approximation, so
    /// there σ is `(1 + tanh(z/2))/2` and GELU `z (1 + erf(z/√2))/2`, exact in f64.
    pub fn apply<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        let flex = overparam_device::is_flex(&z.device());
        match self {
            Activation::Relu => activation::relu(z),
            Activation::Softplus => overparam_device::softplus(z),
            Activation::Tanh => activation::tanh(z),
            Activation::Sigmoid if flex => activation::sigmoid(z),
            Activation::Sigmoid => z.mul_scalar(0.5).tanh().add_scalar(1.0).mul_scalar(0.5),
            Activation::Gelu if flex => activation::gelu(z),
            Activation::Gelu => {
                let phi = z.clone().mul_scalar(FRAC_1_SQRT_2).erf().add_scalar(1.0);
                z.mul(phi).mul_scalar(0.5)
            }
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

use std::f64::consts::{FRAC_1_SQRT_2, PI};

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

    /// The tensor path (`apply` and its autodiff backward) against the scalar formulas, in
    /// f64 on both CPU backends, out to the tails where a naive `ln(1 + e^z)` overflows or
    /// rounds a tiny value to zero: relative 1e-14, plus two stated absolute floors. Burn's
    /// GELU is `z (1 + erf(z/√2))/2`, which cancels in the lower tail: `1e-16·(1 + |z|)`, one
    /// rounding of `1 + erf`. On ndarray, σ through tanh rounds its tiny lower tail through
    /// `1 + tanh`: 2.3e-16. flex's fused ops need no floor. (Burn's own ndarray sigmoid was
    /// 7.5e-8 off at z = −5 and its GELU gradient 4.6× off at z = −5.)
    #[test]
    fn tensor_path_matches_the_scalar_formulas() {
        use overparam_device::{BackendKind, Compute, Precision, to_f64_vec};
        let z = [
            -700.0, -40.0, -5.0, -0.3, -1e-9, 0.0, 1e-9, 0.3, 5.0, 40.0, 700.0,
        ];
        for backend in [BackendKind::Flex, BackendKind::Ndarray] {
            let compute = Compute::new(backend, Precision::F64).expect("CPU backends");
            for act in Activation::ALL {
                let leaf = compute.tensor(&z, [1, z.len()]).autodiff().require_grad();
                let out = act.apply(leaf.clone());
                let grad = to_f64_vec(leaf.grad(&out.clone().sum().backward()).expect("leaf"));
                let values = to_f64_vec(out.without_autodiff());
                for (k, &zk) in z.iter().enumerate() {
                    let mut floor = if backend == BackendKind::Ndarray {
                        2.3e-16
                    } else {
                        0.0
                    };
                    if act == Activation::Gelu {
                        floor += 1e-16 * (1.0 + zk.abs());
                    }
                    let close =
                        |got: f64, want: f64| (got - want).abs() <= 1e-14 * want.abs() + floor;
                    let (v, d) = (act.eval(zk), act.derivative(zk));
                    assert!(
                        close(values[k], v),
                        "{backend:?} {act}({zk}) = {} vs {v}",
                        values[k]
                    );
                    if !(act == Activation::Relu && zk == 0.0) {
                        assert!(
                            close(grad[k], d),
                            "{backend:?} {act}'({zk}) = {} vs {d}",
                            grad[k]
                        );
                    }
                }
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
