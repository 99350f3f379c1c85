//! The wgpu backend against the CPU f64 reference: forward and backward of every model, GD and
//! SGD runs, and both Gram strategies. Runs only with `--features wgpu`; CI runs it on Mesa's
//! software Vulkan driver (lavapipe), a GPU machine runs the same tests on the GPU.
//!
//! Tolerances are f32's: wgpu computes in f32 (WGSL has no f64), the reference in f64.
#![cfg(feature = "wgpu")]

mod common;

use common::tiny_models;
use faer::Mat;
use overparam::analysis::{GramStrategy, Spectrum, grams, spectrum::lambda_min};
use overparam::data::{Labels, sphere};
use overparam::device::{BackendKind, Compute, Precision, to_f64_vec};
use overparam::models::{Activation, Architecture, LayerKind, ModelConfig, Network};
use overparam::train::{Loss, Optimizer, TrainConfig, loss_and_gradients, train};

fn wgpu() -> Compute {
    Compute::new(BackendKind::Wgpu, Precision::F32).expect("wgpu is compiled in")
}

fn cpu() -> Compute {
    Compute::cpu_f64().unwrap()
}

/// max |a − b| / max |b|.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
    diff / scale
}

fn matrix_rel_err(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let flat = |m: &Mat<f64>| -> Vec<f64> {
        (0..m.nrows())
            .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)]))
            .collect()
    };
    rel_err(&flat(a), &flat(b))
}

#[test]
fn forward_and_gradients_match_the_cpu_for_every_model() {
    for config in tiny_models() {
        let n = 6;
        let data = sphere(n, config.input_dim, Labels::Gaussian, 2).unwrap();
        let k = config.outputs();
        let y: Vec<f64> = (0..n * k).map(|i| (i % k == 0) as u8 as f64).collect();
        let loss = if k > 1 {
            Loss::CrossEntropy
        } else {
            Loss::Quadratic
        };
        let run = |compute: &Compute| {
            let net = Network::init(&config, compute).unwrap();
            let mask = vec![true; net.specs().len()];
            let x = compute.tensor(data.inputs(), [n, config.input_dim]);
            let y = compute.tensor(&y, [n, k]);
            let out = loss_and_gradients(&config, &net.values(), &mask, x, y, loss);
            let grads: Vec<Vec<f64>> = out
                .gradients
                .into_iter()
                .map(|g| to_f64_vec(g.unwrap()))
                .collect();
            (to_f64_vec(out.outputs), out.loss, grads)
        };
        let (f_gpu, l_gpu, g_gpu) = run(&wgpu());
        let (f_cpu, l_cpu, g_cpu) = run(&cpu());
        // The same network in f32 on the CPU: wgpu may lose what f32 loses, not more.
        let (_, _, g_f32) = run(&Compute::new(BackendKind::CPU, Precision::F32).unwrap());
        let name = config.kind_name();
        let e = rel_err(&f_gpu, &f_cpu);
        assert!(e < 1e-5, "{name} outputs: {e:.2e}");
        assert!((l_gpu - l_cpu).abs() < 1e-5 * l_cpu.abs(), "{name} loss");
        let specs = config.layers();
        for (layer, ((a, b), c)) in g_gpu.iter().zip(&g_cpu).zip(&g_f32).enumerate() {
            let (e, e_f32) = (rel_err(a, b), rel_err(c, b));
            // Measured on lavapipe: conv weight gradients differ from the f64 reference by
            // 4.1e-4 (relative to the largest entry) where CPU f32 differs by 1.5e-7; dense
            // layers agree to f32 accuracy. Burn's wgpu conv backward is the suspect (its
            // forward agrees to 1e-5); the bound below is what that path is held to.
            let bound: f64 = if specs[layer].kind == LayerKind::Conv {
                1e-3
            } else {
                1e-4
            };
            assert!(
                e < bound.max(4.0 * e_f32),
                "{name} gradient of layer {layer}: wgpu {e:.2e}, CPU f32 {e_f32:.2e}"
            );
        }
    }
}

fn resnet() -> ModelConfig {
    ModelConfig {
        input_dim: 8,
        arch: Architecture::Resnet {
            depth: 3,
            width: 64,
            activation: Activation::Softplus,
            c_res: 0.5,
        },
        seed: 5,
    }
}

#[test]
fn gd_and_sgd_runs_follow_the_cpu() {
    let data = sphere(32, 8, Labels::Gaussian, 3).unwrap();
    let sgd = Optimizer::Sgd {
        batch_size: 8,
        shuffle_seed: 1,
    };
    // η = 1/λ_max(G(0)): stable for GD on ½‖y − u‖² whatever the draw (a fixed η = 0.05 was
    // above 2/λ_max for some draws, and GD then first climbed).
    let g = grams(
        &Network::init(&resnet(), &cpu()).unwrap(),
        data.inputs(),
        &cpu(),
        GramStrategy::Structured,
    )
    .unwrap();
    let eta = 1.0 / Spectrum::of(&g.total).lambda_max();
    for optimizer in [Optimizer::Gd, sgd] {
        let mut cfg = TrainConfig::gd(eta, 15);
        cfg.optimizer = optimizer;
        let run = |compute: &Compute| {
            let mut net = Network::init(&resnet(), compute).unwrap();
            train(&mut net, &data, compute, &cfg, &mut ()).unwrap().loss
        };
        let (gpu, cpu) = (run(&wgpu()), run(&cpu()));
        // (SGD's history holds mini-batch losses, which need not fall monotonically.)
        if optimizer == Optimizer::Gd {
            assert!(
                gpu.last().unwrap() < &(0.5 * gpu[0]),
                "GD descends: {gpu:?}"
            );
        }
        for (step, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs(),
                "{optimizer:?} step {step}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn both_gram_strategies_on_wgpu_match_the_cpu_f64_gram() {
    let conv = ModelConfig {
        input_dim: 2 * 6,
        arch: Architecture::ConvResnet {
            depth: 2,
            width: 4,
            activation: Activation::Tanh,
            c_res: 0.5,
            channels: 2,
            spatial: vec![6],
            kernel: 3,
        },
        seed: 1,
    };
    for config in [resnet(), conv] {
        let data = sphere(12, config.input_dim, Labels::Gaussian, 4).unwrap();
        let reference = {
            let net = Network::init(&config, &cpu()).unwrap();
            grams(&net, data.inputs(), &cpu(), GramStrategy::Structured).unwrap()
        };
        let net = Network::init(&config, &wgpu()).unwrap();
        for strategy in [GramStrategy::Structured, GramStrategy::Autodiff] {
            let g = grams(&net, data.inputs(), &wgpu(), strategy).unwrap();
            let name = config.kind_name();
            for (a, b) in g.layers.iter().zip(&reference.layers) {
                assert!(matrix_rel_err(a, b) < 1e-5, "{name} {strategy:?}");
            }
            // Products of f32 factors contracted in f64 on the host keep λ_min to f32 accuracy.
            let (lg, lr) = (lambda_min(&g.total), lambda_min(&reference.total));
            assert!(
                (lg - lr).abs() < 1e-4 * lr,
                "{name} {strategy:?}: {lg} vs {lr}"
            );
        }
    }
}
