//! The training trajectory a fixed kernel predicts.

use faer::{Mat, Side};

/// Predicted outputs for every step.
#[derive(Debug, Clone)]
pub struct KernelPrediction {
    /// `u(k)` for k = 0..=steps (or at the requested times for gradient flow).
    pub outputs: Vec<Vec<f64>>,
    /// `½‖y − u(k)‖²`.
    pub loss: Vec<f64>,
}

/// Linearized GD with kernel `Θ`: `u(k) = y − (I − ηΘ)^k (y − u(0))`, for k = 0..=steps, from
/// one eigendecomposition `Θ = Q diag(λ) Qᵀ` (so all k cost one `O(n³)` solve plus `O(n²)`
/// per step).
pub fn predict(
    theta: &Mat<f64>,
    eta: f64,
    y: &[f64],
    u0: &[f64],
    steps: usize,
) -> KernelPrediction {
    let factors: Vec<Box<dyn Fn(f64) -> f64>> = (0..=steps)
        .map(|k| Box::new(move |l: f64| (1.0 - eta * l).powi(k as i32)) as Box<dyn Fn(f64) -> f64>)
        .collect();
    propagate(theta, y, u0, &factors)
}

/// Gradient flow `u(t) = y − exp(−Θ t)(y − u(0))` at the given times.
pub fn predict_flow(theta: &Mat<f64>, y: &[f64], u0: &[f64], times: &[f64]) -> KernelPrediction {
    let factors: Vec<Box<dyn Fn(f64) -> f64>> = times
        .iter()
        .map(|&t| Box::new(move |l: f64| (-l * t).exp()) as Box<dyn Fn(f64) -> f64>)
        .collect();
    propagate(theta, y, u0, &factors)
}

fn propagate(
    theta: &Mat<f64>,
    y: &[f64],
    u0: &[f64],
    factors: &[Box<dyn Fn(f64) -> f64>],
) -> KernelPrediction {
    let n = y.len();
    let eig = theta
        .self_adjoint_eigen(Side::Lower)
        .expect("the symmetric eigen-solver converges");
    let q = eig.U();
    let lambda: Vec<f64> = (0..n).map(|i| eig.S().column_vector()[i]).collect();
    // Residual in the eigenbasis: c = Qᵀ (y − u(0)).
    let coeffs: Vec<f64> = (0..n)
        .map(|k| (0..n).map(|i| q[(i, k)] * (y[i] - u0[i])).sum())
        .collect();
    let mut outputs = Vec::with_capacity(factors.len());
    let mut loss = Vec::with_capacity(factors.len());
    for f in factors {
        let scaled: Vec<f64> = coeffs.iter().zip(&lambda).map(|(c, &l)| c * f(l)).collect();
        let residual: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|k| q[(i, k)] * scaled[k]).sum())
            .collect();
        loss.push(0.5 * residual.iter().map(|r| r * r).sum::<f64>());
        outputs.push(y.iter().zip(&residual).map(|(y, r)| y - r).collect());
    }
    KernelPrediction { outputs, loss }
}
