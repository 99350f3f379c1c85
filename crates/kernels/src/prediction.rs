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

/// Outputs on test points predicted by a kernel, at the requested numbers of GD steps.
#[derive(Debug, Clone)]
pub struct TestPrediction {
    /// The steps (`None`: k → ∞, kernel regression).
    pub steps: Vec<Option<usize>>,
    /// Per step, the `n_test × outputs` predictions.
    pub outputs: Vec<Mat<f64>>,
}

/// The linearized GD of a kernel on test points (A's kernel regime; what a wide net's test
/// outputs approach): with `Θ` the training kernel and `Θ_t` the test-against-training kernel,
/// `f_t(k) = f_t(0) + Θ_t Θ^{-1} (I − (I − ηΘ)^k) (y − u(0))`, and for k → ∞ kernel
/// regression `f_t(0) + Θ_t Θ^{-1} (y − u(0))`, all steps from one eigendecomposition
/// `Θ = Q diag(λ) Qᵀ`: `Θ^{-1}(I − (I − ηΘ)^k) = Q diag((1 − (1 − ηλ)^k)/λ) Qᵀ`, evaluated as
/// `−expm1(k ln(1 − ηλ))/λ` (→ kη as λ → 0). For k → ∞, eigenvalues below `1e-13 · λ_max`
/// count as zero (a pseudo-inverse). `y`, `u0` are `n × outputs`, `f0_test` `n_test × outputs`.
pub fn predict_test(
    theta: &Mat<f64>,
    cross: &Mat<f64>,
    eta: f64,
    (y, u0): (&Mat<f64>, &Mat<f64>),
    f0_test: &Mat<f64>,
    steps: &[Option<usize>],
) -> TestPrediction {
    let eig = theta
        .self_adjoint_eigen(Side::Lower)
        .expect("the symmetric eigen-solver converges");
    let q = eig.U();
    let lambda: Vec<f64> = eig.S().column_vector().iter().copied().collect();
    let largest = lambda.iter().fold(0.0f64, |m, l| m.max(l.abs()));
    // The residual in the eigenbasis, and the test kernel in it.
    let coefficients = q.transpose() * (y - u0);
    let projected = cross * q;
    let outputs = steps
        .iter()
        .map(|&k| {
            let gain = |l: f64| match k {
                None if l <= 1e-13 * largest => 0.0,
                None => 1.0 / l,
                Some(k) if l == 0.0 => k as f64 * eta,
                Some(k) if eta * l < 1.0 => -((k as f64) * (-eta * l).ln_1p()).exp_m1() / l,
                Some(k) => (1.0 - (1.0 - eta * l).powi(k as i32)) / l,
            };
            let scaled = Mat::from_fn(coefficients.nrows(), coefficients.ncols(), |i, c| {
                gain(lambda[i]) * coefficients[(i, c)]
            });
            f0_test + &projected * &scaled
        })
        .collect();
    TestPrediction {
        steps: steps.to_vec(),
        outputs,
    }
}
