//! Gram strategies against each other and against B's closed form; the recorder against
//! hand-computed values.

use faer::Mat;
use overparam_analysis::{DynamicsRecorder, GramPrecision, GramStrategy, grams, grams_in};
use overparam_data::{Labels, sphere};
use overparam_device::Compute;
use overparam_models::{Activation, Architecture, ModelConfig, Network, initial_values};
use overparam_train::{TrainConfig, train};

fn max_rel(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let mut scale = 0.0f64;
    let mut diff = 0.0f64;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            scale = scale.max(b[(i, j)].abs());
            diff = diff.max((a[(i, j)] - b[(i, j)]).abs());
        }
    }
    diff / scale
}

fn models() -> Vec<ModelConfig> {
    let cfg = |input_dim, arch| ModelConfig {
        input_dim,
        arch,
        seed: 1,
    };
    vec![
        cfg(
            5,
            Architecture::Fc {
                depth: 3,
                width: 16,
                activation: Activation::Softplus,
            },
        ),
        cfg(
            5,
            Architecture::Resnet {
                depth: 3,
                width: 16,
                activation: Activation::Gelu,
                c_res: 0.5,
            },
        ),
        cfg(
            2 * 6,
            Architecture::ConvResnet {
                depth: 2,
                width: 4,
                activation: Activation::Tanh,
                c_res: 0.5,
                channels: 2,
                spatial: vec![6],
                kernel: 3,
            },
        ),
        cfg(
            12,
            Architecture::ConvResnet {
                depth: 2,
                width: 3,
                activation: Activation::Softplus,
                c_res: 0.3,
                channels: 1,
                spatial: vec![3, 4],
                kernel: 3,
            },
        ),
        cfg(5, Architecture::TwoLayer { width: 32 }),
        cfg(
            5,
            Architecture::DeepRelu {
                depth: 3,
                width: 16,
            },
        ),
    ]
}

#[test]
fn autodiff_and_structured_agree_on_every_model() {
    let compute = Compute::cpu_f64().unwrap();
    for config in models() {
        let data = sphere(7, config.input_dim, Labels::Gaussian, 2).unwrap();
        let net = Network::init(&config, &compute).unwrap();
        let a = grams(&net, data.inputs(), &compute, GramStrategy::Autodiff).unwrap();
        let s = grams(&net, data.inputs(), &compute, GramStrategy::Structured).unwrap();
        assert_eq!(s.strategy, GramStrategy::Structured);
        for (name, (ga, gs)) in a.names.iter().zip(a.layers.iter().zip(&s.layers)) {
            let err = max_rel(gs, ga);
            assert!(
                err < 1e-9,
                "{} {name}: relative difference {err:e}",
                config.kind_name()
            );
        }
        assert!(max_rel(&s.total, &a.total) < 1e-9);
    }
}

#[test]
fn f32_products_stay_within_1e6_of_f64() {
    // A's fc benchmark net (softplus, H = 3, d = 100, m = 1024) in f64 on 300 sphere points:
    // the same traced matrices, products in f32 against f64.
    let compute = Compute::cpu_f64().unwrap();
    let config = ModelConfig {
        input_dim: 100,
        arch: Architecture::Fc {
            depth: 3,
            width: 1024,
            activation: Activation::Softplus,
        },
        seed: 0,
    };
    let data = sphere(300, 100, Labels::Gaussian, 0).unwrap();
    let net = Network::init(&config, &compute).unwrap();
    let run = |p| grams_in(&net, data.inputs(), &compute, GramStrategy::Structured, p).unwrap();
    let (f64_run, f32_run) = (run(GramPrecision::F64), run(GramPrecision::F32));
    let mut worst = 0.0f64;
    for (name, (a, b)) in f64_run
        .names
        .iter()
        .zip(f64_run.layers.iter().zip(&f32_run.layers))
    {
        let err = max_rel(b, a);
        // f32 rounding shows: the products are not done in f64 by mistake.
        assert!(err > 1e-12, "{name}: f32 products agree to {err:e}");
        worst = worst.max(err);
    }
    let total = max_rel(&f32_run.total, &f64_run.total);
    assert!(worst < 1e-6, "largest layer difference {worst:e}");
    assert!(total < 1e-6, "total difference {total:e}");
}

#[test]
fn two_layer_first_layer_gram_is_b_equation_6() {
    // H_ij = (1/m) x_iᵀx_j Σ_r 1{w_rᵀx_i ≥ 0, w_rᵀx_j ≥ 0}, computed directly from the weights.
    let compute = Compute::cpu_f64().unwrap();
    let (n, d, m) = (9, 4, 50);
    let config = ModelConfig {
        input_dim: d,
        arch: Architecture::TwoLayer { width: m },
        seed: 4,
    };
    let data = sphere(n, d, Labels::Gaussian, 3).unwrap();
    let net = Network::init(&config, &compute).unwrap();
    let w = &initial_values(&config)[0];
    let x = data.inputs();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let g = grams(&net, x, &compute, GramStrategy::Structured).unwrap();
    let h = g.first_layer();
    for i in 0..n {
        for j in 0..n {
            let (xi, xj) = (&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
            let both = (0..m)
                .filter(|&r| {
                    dot(&w[r * d..(r + 1) * d], xi) >= 0.0 && dot(&w[r * d..(r + 1) * d], xj) >= 0.0
                })
                .count();
            let expected = dot(xi, xj) * both as f64 / m as f64;
            assert!(
                (h[(i, j)] - expected).abs() < 1e-12,
                "H[{i},{j}] = {} vs {expected}",
                h[(i, j)]
            );
        }
    }
}

#[test]
fn practical_falls_back_to_autodiff_with_a_warning() {
    let compute = Compute::cpu_f64().unwrap();
    let config = ModelConfig {
        input_dim: 4,
        arch: Architecture::Practical {
            blocks: 1,
            width: 8,
            activation: Activation::Softplus,
            outputs: 1,
        },
        seed: 0,
    };
    let data = sphere(5, 4, Labels::Gaussian, 3).unwrap();
    let net = Network::init(&config, &compute).unwrap();
    let s = grams(&net, data.inputs(), &compute, GramStrategy::Structured).unwrap();
    assert_eq!(s.strategy, GramStrategy::Autodiff);
    assert!(s.warnings[0].contains("autodiff"), "{:?}", s.warnings);
    let a = grams(&net, data.inputs(), &compute, GramStrategy::Autodiff).unwrap();
    assert!(max_rel(&s.total, &a.total) == 0.0);
}

#[test]
fn f32_network_gram_is_close_to_f64() {
    let config = models().remove(0);
    let data = sphere(6, config.input_dim, Labels::Gaussian, 2).unwrap();
    let f64c = Compute::cpu_f64().unwrap();
    let f32c = Compute::new(
        overparam_device::BackendKind::CPU,
        overparam_device::Precision::F32,
    )
    .unwrap();
    let g64 = grams(
        &Network::init(&config, &f64c).unwrap(),
        data.inputs(),
        &f64c,
        GramStrategy::Structured,
    )
    .unwrap();
    let g32 = grams(
        &Network::init(&config, &f32c).unwrap(),
        data.inputs(),
        &f32c,
        GramStrategy::Structured,
    )
    .unwrap();
    let err = max_rel(&g32.total, &g64.total);
    assert!(err < 1e-5 && err > 0.0, "{err:e}");
}

#[test]
fn recorder_matches_hand_computed_values_on_a_three_step_run() {
    let compute = Compute::cpu_f64().unwrap();
    let (n, d, m) = (6, 3, 10);
    let config = ModelConfig {
        input_dim: d,
        arch: Architecture::TwoLayer { width: m },
        seed: 8,
    };
    let data = sphere(n, d, Labels::Gaussian, 5).unwrap();
    let mut net = Network::init(&config, &compute).unwrap();
    let w0 = initial_values(&config)[0].clone();
    let a = initial_values(&config)[1].clone();
    let (lambda0, eta) = (0.2, 0.3);
    let mut rec = DynamicsRecorder::new(
        &net,
        &compute,
        GramStrategy::Structured,
        Some((lambda0, eta)),
    )
    .unwrap();
    train(
        &mut net,
        &data,
        &compute,
        &TrainConfig::gd(eta, 3),
        &mut rec,
    )
    .unwrap();
    assert_eq!(rec.records.len(), 4);

    // Replay GD by hand: ∂L/∂w_r = (1/sqrt m) Σ_i (f_i − y_i) a_r x_i 1{w_rᵀx_i ≥ 0} (B eq. 4).
    let x = data.inputs();
    let y = data.targets();
    let dot = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(s, t)| s * t).sum::<f64>();
    let f = |w: &[f64], i: usize| -> f64 {
        (0..m)
            .map(|r| a[r] * dot(&w[r * d..(r + 1) * d], &x[i * d..(i + 1) * d]).max(0.0))
            .sum::<f64>()
            / (m as f64).sqrt()
    };
    let mut w = w0.clone();
    let loss0: f64 = (0..n).map(|i| 0.5 * (f(&w0, i) - y[i]).powi(2)).sum();
    for (k, record) in rec.records.iter().enumerate() {
        let residual: Vec<f64> = (0..n).map(|i| f(&w, i) - y[i]).collect();
        let loss: f64 = residual.iter().map(|e| 0.5 * e * e).sum();
        assert!((record.loss - loss).abs() < 1e-12 * loss, "step {k} loss");
        assert!((record.ln_mse - (2.0 * loss / n as f64).ln()).abs() < 1e-10);
        let fro: f64 = w
            .iter()
            .zip(&w0)
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (record.distance[0] - fro).abs() < 1e-12,
            "step {k} distance"
        );
        assert!((record.distance_per_sqrt_m[0] - fro / (m as f64).sqrt()).abs() < 1e-12);
        let max_row = (0..m)
            .map(|r| {
                (0..d)
                    .map(|c| (w[r * d + c] - w0[r * d + c]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0.0, f64::max);
        assert!((record.max_neuron_distance[0] - max_row).abs() < 1e-12);
        let changed = (0..m)
            .flat_map(|r| (0..n).map(move |i| (r, i)))
            .filter(|&(r, i)| {
                (dot(&w[r * d..(r + 1) * d], &x[i * d..(i + 1) * d]) >= 0.0)
                    != (dot(&w0[r * d..(r + 1) * d], &x[i * d..(i + 1) * d]) >= 0.0)
            })
            .count();
        assert_eq!(
            record.pattern_change[0],
            Some(changed as f64 / (n * m) as f64)
        );
        assert_eq!(record.pattern_change[1], None);
        let bound = (1.0 - eta * lambda0 / 2.0).powi(k as i32) * loss0;
        assert!((record.bound.unwrap() - bound).abs() < 1e-12 * bound);
        // The read-out is frozen: it never moves.
        assert_eq!(record.distance[1], 0.0);
        // One GD step by hand.
        let mut grad = vec![0.0; m * d];
        for r in 0..m {
            for i in 0..n {
                let xi = &x[i * d..(i + 1) * d];
                if dot(&w[r * d..(r + 1) * d], xi) >= 0.0 {
                    for c in 0..d {
                        grad[r * d + c] += residual[i] * a[r] * xi[c] / (m as f64).sqrt();
                    }
                }
            }
        }
        w.iter_mut().zip(&grad).for_each(|(p, g)| *p -= eta * g);
    }
    assert_eq!(rec.records[0].gram_drift, 0.0);
    assert!(rec.records[3].gram_drift > 0.0);
    // λ_min of the total Gram at step 0 equals the eigenvalue computed from the Gram itself.
    let g0 = grams(
        &Network::init(&config, &compute).unwrap(),
        x,
        &compute,
        GramStrategy::Autodiff,
    )
    .unwrap();
    let lmin = overparam_analysis::Spectrum::of(&g0.total).lambda_min();
    assert!((rec.records[0].lambda_min - lmin).abs() < 1e-12);
}
