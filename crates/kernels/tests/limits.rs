//! Kernels against Monte Carlo, and the kernel prediction against an exact GD trajectory.

use faer::Mat;
use faer::linalg::solvers::Solve;
use overparam_kernels::{h_infinity, ntk_limit, predict, predict_test};
use overparam_models::{Activation, Architecture, ModelConfig};

/// A tiny deterministic generator (splitmix64) with Box–Muller normals, to keep the Monte
/// Carlo independent of the library's samplers.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn unit_rows(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut g = Normal(seed);
    (0..n)
        .flat_map(|_| {
            let r: Vec<f64> = (0..d).map(|_| g.sample()).collect();
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.into_iter().map(move |v| v / norm)
        })
        .collect()
}

/// Monte Carlo mean and standard error of `f(w)` per pair, `w ~ N(0, I_d)`.
fn monte_carlo(
    n: usize,
    d: usize,
    samples: usize,
    f: impl Fn(&[f64], usize, usize) -> f64,
) -> (Mat<f64>, Mat<f64>) {
    let mut g = Normal(99);
    let mut sum = Mat::<f64>::zeros(n, n);
    let mut sq = Mat::<f64>::zeros(n, n);
    let mut w = vec![0.0; d];
    for _ in 0..samples {
        w.iter_mut().for_each(|v| *v = g.sample());
        for i in 0..n {
            for j in 0..n {
                let v = f(&w, i, j);
                sum[(i, j)] += v;
                sq[(i, j)] += v * v;
            }
        }
    }
    let s = samples as f64;
    let mean = Mat::from_fn(n, n, |i, j| sum[(i, j)] / s);
    let se = Mat::from_fn(n, n, |i, j| {
        ((sq[(i, j)] / s - mean[(i, j)].powi(2)).max(0.0) / s).sqrt()
    });
    (mean, se)
}

#[test]
fn h_infinity_and_relu_kernel_match_monte_carlo() {
    let (n, d) = (4, 3);
    let x = unit_rows(n, d, 1);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let hinf = h_infinity(&x, d);
    let (mean, se) = monte_carlo(n, d, 1_000_000, |w, i, j| {
        let both = dot(w, row(i)) >= 0.0 && dot(w, row(j)) >= 0.0;
        if both { dot(row(i), row(j)) } else { 0.0 }
    });
    for i in 0..n {
        for j in 0..n {
            let z = (hinf[(i, j)] - mean[(i, j)]).abs() / se[(i, j)].max(1e-12);
            assert!(
                z < 4.0,
                "H^inf[{i},{j}] {} vs MC {} ({z:.1} SE)",
                hinf[(i, j)],
                mean[(i, j)]
            );
        }
    }
    // B's H^inf is half of the relu K^(1) = c_σ ⟨x_i, x_j⟩ E[σ'σ'] (papers.md §1.4).
    let config = ModelConfig {
        input_dim: d,
        arch: Architecture::Fc {
            depth: 1,
            width: 1,
            activation: Activation::Relu,
        },
        seed: 0,
    };
    let limit = ntk_limit(&config, &x).unwrap();
    for i in 0..n {
        for j in 0..n {
            assert!((limit.k_h()[(i, j)] - 2.0 * hinf[(i, j)]).abs() < 1e-14);
        }
    }
    // The output-layer limit Σ^(1) = 2 E[relu(wᵀx_i) relu(wᵀx_j)].
    let (mean, se) = monte_carlo(n, d, 1_000_000, |w, i, j| {
        2.0 * dot(w, row(i)).max(0.0) * dot(w, row(j)).max(0.0)
    });
    let sigma1 = &limit.layers[1];
    for i in 0..n {
        for j in 0..n {
            let z = (sigma1[(i, j)] - mean[(i, j)]).abs() / se[(i, j)].max(1e-12);
            assert!(
                z < 4.0,
                "Σ1[{i},{j}] {} vs MC {} ({z:.1} SE)",
                sigma1[(i, j)],
                mean[(i, j)]
            );
        }
    }
}

#[test]
fn kernel_prediction_of_a_linear_model_is_its_gd_trajectory() {
    // f(x) = wᵀx, L = ½‖Xw − y‖²: u(k+1) − y = (I − η XXᵀ)(u(k) − y) exactly, Θ = XXᵀ.
    let (n, d, eta, steps) = (6, 9, 0.1, 40);
    let x = unit_rows(n, d, 3);
    let mut g = Normal(5);
    let y: Vec<f64> = (0..n).map(|_| g.sample()).collect();
    let mut w: Vec<f64> = (0..d).map(|_| g.sample()).collect();
    let outputs = |w: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| (0..d).map(|c| x[i * d + c] * w[c]).sum())
            .collect()
    };
    let theta = Mat::from_fn(n, n, |i, j| {
        (0..d).map(|c| x[i * d + c] * x[j * d + c]).sum::<f64>()
    });
    let u0 = outputs(&w);
    let prediction = predict(&theta, eta, &y, &u0, steps);
    for k in 0..=steps {
        let u = outputs(&w);
        for (predicted, actual) in prediction.outputs[k].iter().zip(&u) {
            assert!((predicted - actual).abs() < 1e-12, "step {k}");
        }
        let residual: Vec<f64> = u.iter().zip(&y).map(|(a, b)| a - b).collect();
        for c in 0..d {
            let grad: f64 = (0..n).map(|i| residual[i] * x[i * d + c]).sum();
            w[c] -= eta * grad;
        }
    }
}

#[test]
fn test_predictions_of_a_linear_model_are_its_gd_outputs() {
    // f(x) = Wᵀx with two outputs, trained by GD on 6 points in d = 9: the test outputs X_t W(k)
    // are the kernel prediction with Θ = XXᵀ, Θ_t = X_t Xᵀ at every k; as k → ∞, GD reaches
    // the interpolant nearest W(0), W(0) + Xᵀ(XXᵀ)⁻¹(Y − XW(0)) (solved here by faer's LU).
    let (n, n_test, d, eta, steps) = (6, 4, 9, 0.1, 60);
    let x = unit_rows(n, d, 3);
    let xt = unit_rows(n_test, d, 4);
    let mut g = Normal(7);
    let y = Mat::<f64>::from_fn(n, 2, |_, _| g.sample());
    let mut w = Mat::<f64>::from_fn(d, 2, |_, _| g.sample());
    let xm = Mat::<f64>::from_fn(n, d, |i, c| x[i * d + c]);
    let xtm = Mat::<f64>::from_fn(n_test, d, |i, c| xt[i * d + c]);
    let theta = &xm * xm.transpose();
    let cross = &xtm * xm.transpose();
    let (u0, f0) = (&xm * &w, &xtm * &w);
    let requested: Vec<Option<usize>> = vec![Some(0), Some(7), Some(steps), None];
    let prediction = predict_test(&theta, &cross, eta, (&y, &u0), &f0, &requested);
    let close = |a: &Mat<f64>, b: &Mat<f64>, what: &str| {
        for i in 0..a.nrows() {
            for c in 0..a.ncols() {
                assert!(
                    (a[(i, c)] - b[(i, c)]).abs() < 1e-11,
                    "{what}: {a:?} vs {b:?}"
                );
            }
        }
    };
    let w0 = w.clone();
    for k in 0..=steps {
        if let Some(at) = requested.iter().position(|&s| s == Some(k)) {
            close(&prediction.outputs[at], &(&xtm * &w), &format!("step {k}"));
        }
        let residual = &xm * &w - &y;
        w -= eta * xm.transpose() * residual;
    }
    let interpolant = &w0 + xm.transpose() * theta.partial_piv_lu().solve(&y - &u0);
    close(&prediction.outputs[3], &(&xtm * &interpolant), "k → ∞");
}
