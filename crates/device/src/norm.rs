//! Training-mode BatchNorm over the rows of a channel-major matrix (see [`crate::conv`]).
//!
//! For `z: [c, m]` (one row per channel, `m = n·h·w` values each) BatchNorm (Ioffe & Szegedy
//! 2015) normalizes each row with its own mean `μ` and biased variance `v`:
//! `out = γ (z − μ)/√(v + ε) + β`. With `x̂ = (z − μ)/√(v + ε)` its gradients are
//! `∂β = Σ_m ḡ`, `∂γ = Σ_m ḡ x̂` and `∂z = γ/√(v + ε) · (ḡ − ∂β/m − x̂ ∂γ/m)`. On flex the
//! forward pass and this backward rule are each one fused pass per row over rayon's threads
//! ([`crate::fused_norm`]); elsewhere they are Burn's differentiable ops.

use burn::tensor::Tensor;

/// The normalized rows and the batch statistics of [`batch_norm`].
#[derive(Debug, Clone)]
pub struct BatchNormRows {
    /// `γ (z − μ)/√(v + ε) + β`, `[c, m]`, differentiable in `z`, `γ` and `β`.
    pub output: Tensor<2>,
    /// Each row's mean `μ`, `[c, 1]`, without autodiff.
    pub mean: Tensor<2>,
    /// Each row's biased variance `v`, `[c, 1]`, without autodiff.
    pub variance: Tensor<2>,
}

/// Training-mode BatchNorm of each row of `z: [c, m]` with `γ`, `β: [c, 1]`.
pub fn batch_norm(z: Tensor<2>, gamma: Tensor<2>, beta: Tensor<2>, epsilon: f64) -> BatchNormRows {
    #[cfg(feature = "flex")]
    if crate::is_flex(&z.device()) {
        return crate::fused_norm::batch_norm(z, gamma, beta, epsilon);
    }
    batch_norm_composed(z, gamma, beta, epsilon)
}

/// [`batch_norm`] from Burn's ops (other backends, and the flex kernels' test reference).
pub(crate) fn batch_norm_composed(
    z: Tensor<2>,
    gamma: Tensor<2>,
    beta: Tensor<2>,
    epsilon: f64,
) -> BatchNormRows {
    let mean = z.clone().mean_dim(1);
    let centered = z - mean.clone();
    let variance = (centered.clone() * centered.clone()).mean_dim(1);
    let output = centered * normalizer(variance.clone(), gamma, epsilon) + beta;
    BatchNormRows {
        output,
        mean: mean.without_autodiff(),
        variance: variance.without_autodiff(),
    }
}

/// `γ / √(v + ε)` per row.
pub fn normalizer(variance: Tensor<2>, gamma: Tensor<2>, epsilon: f64) -> Tensor<2> {
    gamma * variance.add_scalar(epsilon).sqrt().recip()
}
