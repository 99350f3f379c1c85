//! Training: convergence on B's setup, frozen layers, reproducibility, divergence, SGD, the
//! ndarray backend against flex; momentum and weight decay against the update rule written out,
//! and a run killed mid-way that resumes from its checkpoint to the bits of an uninterrupted one.

mod common;

use common::{scratch, tiny_models};
use overparam::data::{Dataset, Labels, sphere};
use overparam::device::{BackendKind, Compute, Precision, to_f64_vec};
use overparam::models::{Activation, Architecture, ModelConfig, Network};
use overparam::train::{
    Checkpointing, Loss, Observer, Optimizer, Snapshot, TrainConfig, TrainError,
    loss_and_gradients, train, trainable_mask,
};
use std::panic::AssertUnwindSafe;

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn two_layer(d: usize, width: usize, seed: u64) -> ModelConfig {
    ModelConfig {
        input_dim: d,
        arch: Architecture::TwoLayer { width },
        seed,
    }
}

#[test]
fn gd_on_two_layer_reaches_zero_loss() {
    // B's setting at n = 20: first layer trained, a = ±1 frozen, loss ½Σ(f−y)².
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(20, 10, Labels::Gaussian, 1).unwrap();
    let mut net = Network::init(&two_layer(10, 2000, 2), &compute).unwrap();
    let history = train(
        &mut net,
        &data,
        &compute,
        &TrainConfig::gd(0.5, 1500),
        &mut (),
    )
    .unwrap();
    let last = *history.loss.last().unwrap();
    assert!(history.loss[0] > 1.0, "initial loss {}", history.loss[0]);
    assert!(last < 1e-6, "final loss {last}");
    // GD with a small step decreases the loss at every step until it reaches round-off.
    assert!(
        history
            .loss
            .windows(2)
            .all(|w| w[0] < 1e-20 || w[1] <= w[0])
    );
}

#[test]
fn frozen_layers_stay_bit_identical() {
    let compute = Compute::cpu_f64().unwrap();
    for config in tiny_models() {
        let data = sphere(6, config.input_dim, Labels::Gaussian, 2).unwrap();
        let k = config.outputs();
        let data = overparam::data::Dataset::new(
            data.inputs().to_vec(),
            data.targets().iter().flat_map(|&y| vec![y; k]).collect(),
            6,
            config.input_dim,
            k,
        )
        .unwrap();
        let mut net = Network::init(&config, &compute).unwrap();
        let before: Vec<Vec<f64>> = net.values().into_iter().map(to_f64_vec).collect();
        // Train only the first layer; for paper defaults, also check the frozen output.
        let first = net.specs()[0].name.clone();
        let mut cfg = TrainConfig::gd(0.01, 3);
        cfg.trainable = Some(vec![first]);
        train(&mut net, &data, &compute, &cfg, &mut ()).unwrap();
        let after: Vec<Vec<f64>> = net.values().into_iter().map(to_f64_vec).collect();
        assert_ne!(
            bits(&before[0]),
            bits(&after[0]),
            "{}: W1 must move",
            config.kind_name()
        );
        for (b, a) in before.iter().zip(&after).skip(1) {
            assert_eq!(
                bits(b),
                bits(a),
                "{}: a frozen layer moved",
                config.kind_name()
            );
        }
    }
}

#[test]
fn paper_defaults_freeze_b_and_c_outputs() {
    let compute = Compute::cpu_f64().unwrap();
    for config in [
        two_layer(3, 8, 0),
        ModelConfig {
            input_dim: 3,
            arch: Architecture::DeepRelu { depth: 2, width: 4 },
            seed: 0,
        },
    ] {
        let data = sphere(5, 3, Labels::Sign, 0).unwrap();
        let mut net = Network::init(&config, &compute).unwrap();
        let out_before = to_f64_vec(net.values().pop().unwrap());
        let mut cfg = TrainConfig::gd(0.1, 2);
        cfg.loss = Loss::Logistic;
        train(&mut net, &data, &compute, &cfg, &mut ()).unwrap();
        assert_eq!(
            bits(&out_before),
            bits(&to_f64_vec(net.values().pop().unwrap()))
        );
    }
}

fn run_losses(compute: &Compute, optimizer: Optimizer) -> Vec<f64> {
    let config = ModelConfig {
        input_dim: 8,
        arch: Architecture::Resnet {
            depth: 3,
            width: 32,
            activation: Activation::Softplus,
            c_res: 0.5,
        },
        seed: 7,
    };
    let data = sphere(24, 8, Labels::Gaussian, 3).unwrap();
    let mut net = Network::init(&config, compute).unwrap();
    let mut cfg = TrainConfig::gd(0.05, 20);
    cfg.optimizer = optimizer;
    train(&mut net, &data, compute, &cfg, &mut ()).unwrap().loss
}

#[test]
fn same_seed_gives_bit_identical_losses() {
    let sgd = Optimizer::Sgd {
        batch_size: 5,
        shuffle_seed: 4,
    };
    for precision in [Precision::F32, Precision::F64] {
        let compute = Compute::new(BackendKind::CPU, precision).unwrap();
        for optimizer in [Optimizer::Gd, sgd] {
            let a = run_losses(&compute, optimizer);
            let b = run_losses(&compute, optimizer);
            assert_eq!(bits(&a), bits(&b), "{precision} {optimizer:?}");
        }
    }
}

#[test]
fn f32_follows_f64() {
    let f64_losses = run_losses(&Compute::cpu_f64().unwrap(), Optimizer::Gd);
    let f32_losses = run_losses(
        &Compute::new(BackendKind::CPU, Precision::F32).unwrap(),
        Optimizer::Gd,
    );
    for (a, b) in f64_losses.iter().zip(&f32_losses) {
        assert!((a - b).abs() <= 1e-4 * a.abs(), "f64 {a} vs f32 {b}");
    }
}

#[test]
fn ndarray_backend_matches_flex() {
    let flex = run_losses(&Compute::cpu_f64().unwrap(), Optimizer::Gd);
    let compute = Compute::new(BackendKind::Ndarray, Precision::F64).unwrap();
    let ndarray = run_losses(&compute, Optimizer::Gd);
    for (a, b) in flex.iter().zip(&ndarray) {
        assert!((a - b).abs() <= 1e-10 * a.abs(), "flex {a} vs ndarray {b}");
    }
}

#[test]
fn sgd_epochs_visit_every_sample_and_descend() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(30, 6, Labels::Sign, 5).unwrap();
    let config = ModelConfig {
        input_dim: 6,
        arch: Architecture::DeepRelu {
            depth: 2,
            width: 64,
        },
        seed: 1,
    };
    let mut net = Network::init(&config, &compute).unwrap();
    let mut cfg = TrainConfig::gd(0.5, 300);
    cfg.loss = Loss::Logistic;
    cfg.optimizer = Optimizer::Sgd {
        batch_size: 7,
        shuffle_seed: 0,
    };
    cfg.observe_every = 100;
    let history = train(&mut net, &data, &compute, &cfg, &mut ()).unwrap();
    assert_eq!(history.observed_steps, vec![0, 100, 200, 300]);
    let first = history.observed_loss[0];
    let last = *history.observed_loss.last().unwrap();
    assert!(last < 0.5 * first, "full loss {first} -> {last}");
}

#[test]
fn observer_sees_outputs_consistent_with_the_loss() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(10, 4, Labels::Gaussian, 8).unwrap();
    let mut net = Network::init(&two_layer(4, 50, 3), &compute).unwrap();
    let mut seen = Vec::new();
    let mut observer = |s: &Snapshot<'_>| {
        let f = to_f64_vec(s.outputs.clone());
        seen.push((
            s.step,
            s.loss,
            Loss::Quadratic.value(&f, s.data.targets(), 1),
        ));
    };
    let mut cfg = TrainConfig::gd(0.1, 5);
    cfg.observe_every = 2;
    let history = train(&mut net, &data, &compute, &cfg, &mut observer).unwrap();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![0, 2, 4, 5]
    );
    for (step, loss, recomputed) in seen {
        assert!((loss - recomputed).abs() < 1e-12 * loss, "step {step}");
        assert_eq!(loss.to_bits(), history.loss[step].to_bits());
    }
}

#[test]
fn divergence_names_the_step_and_keeps_the_history() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(10, 4, Labels::Gaussian, 8).unwrap();
    let config = ModelConfig {
        input_dim: 4,
        arch: Architecture::Fc {
            depth: 2,
            width: 16,
            activation: Activation::Relu,
        },
        seed: 0,
    };
    let mut net = Network::init(&config, &compute).unwrap();
    let err = train(
        &mut net,
        &data,
        &compute,
        // So large that the first update overflows whatever the draw (at η = 100 some draws
        // only kill every ReLU and stall at a finite loss).
        &TrainConfig::gd(1e200, 200),
        &mut (),
    )
    .unwrap_err();
    match &err {
        TrainError::Diverged {
            step,
            last_finite,
            history,
            ..
        } => {
            assert!(*step > 0 && *step < 200, "{step}");
            assert!(last_finite.is_finite());
            assert_eq!(history.loss.len(), step + 1);
        }
        other => panic!("expected divergence, got {other}"),
    }
    assert!(err.to_string().contains("step"), "{err}");
}

#[test]
fn bad_training_inputs_are_errors() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(10, 4, Labels::Gaussian, 8).unwrap();
    let mut net = Network::init(&two_layer(4, 8, 0), &compute).unwrap();
    for eta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = train(&mut net, &data, &compute, &TrainConfig::gd(eta, 1), &mut ()).unwrap_err();
        assert!(err.to_string().contains(&format!("{eta}")), "{err}");
    }
    let mut cfg = TrainConfig::gd(0.1, 1);
    cfg.optimizer = Optimizer::Sgd {
        batch_size: 11,
        shuffle_seed: 0,
    };
    let err = train(&mut net, &data, &compute, &cfg, &mut ()).unwrap_err();
    assert!(err.to_string().contains("11"), "{err}");
    let mut cfg = TrainConfig::gd(0.1, 1);
    cfg.loss = Loss::Logistic;
    let err = train(&mut net, &data, &compute, &cfg, &mut ()).unwrap_err();
    assert!(err.to_string().contains("{-1, +1}"), "{err}");
    let mut cfg = TrainConfig::gd(0.1, 1);
    cfg.trainable = Some(vec!["W7".into()]);
    let err = train(&mut net, &data, &compute, &cfg, &mut ()).unwrap_err();
    assert!(err.to_string().contains("'W7'"), "{err}");
    let other = sphere(10, 5, Labels::Gaussian, 8).unwrap();
    let err = train(
        &mut net,
        &other,
        &compute,
        &TrainConfig::gd(0.1, 1),
        &mut (),
    )
    .unwrap_err();
    assert!(err.to_string().contains("d = 5"), "{err}");
}

fn fc_model() -> ModelConfig {
    ModelConfig {
        input_dim: 5,
        arch: Architecture::Fc {
            depth: 2,
            width: 32,
            activation: Activation::Relu,
        },
        seed: 4,
    }
}

fn sgd(steps: usize, checkpoint: Option<Checkpointing>) -> TrainConfig {
    TrainConfig {
        loss: Loss::Quadratic,
        optimizer: Optimizer::Sgd {
            batch_size: 4,
            shuffle_seed: 3,
        },
        step_size: 0.01,
        steps,
        trainable: None,
        observe_every: 1,
        progress: false,
        momentum: 0.9,
        weight_decay: 1e-3,
        checkpoint,
    }
}

fn value_bits(net: &Network) -> Vec<Vec<u64>> {
    net.values()
        .into_iter()
        .map(|t| to_f64_vec(t).iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn momentum_and_weight_decay_follow_the_heavy_ball_rule() {
    // Two full-batch steps by hand: v1 = g0 + λθ0, θ1 = θ0 − ηv1, v2 = μv1 + g1 + λθ1,
    // θ2 = θ1 − ηv2, with the gradients from the same autodiff function.
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(12, 5, Labels::Gaussian, 1).unwrap();
    let (eta, mu, lambda) = (0.05, 0.8, 0.01);
    let mut net = Network::init(&fc_model(), &compute).unwrap();
    let mask = trainable_mask(&net, None).unwrap();
    let x = compute.tensor(data.inputs(), [12, 5]);
    let y = compute.tensor(data.targets(), [12, 1]);
    let grads = |theta: &[Vec<f64>], net: &Network| -> Vec<Vec<f64>> {
        let tensors: Vec<_> = net
            .values()
            .iter()
            .zip(theta)
            .map(|(t, v)| compute.tensor(v, t.dims()))
            .collect();
        loss_and_gradients(
            &fc_model(),
            &tensors,
            &mask,
            x.clone(),
            y.clone(),
            Loss::Quadratic,
        )
        .gradients
        .into_iter()
        .map(|g| g.map(to_f64_vec).unwrap())
        .collect()
    };
    let theta0: Vec<Vec<f64>> = net.values().into_iter().map(to_f64_vec).collect();
    let step = |theta: &[Vec<f64>], v: &[Vec<f64>]| -> Vec<Vec<f64>> {
        theta
            .iter()
            .zip(v)
            .map(|(t, v)| t.iter().zip(v).map(|(t, v)| t - eta * v).collect())
            .collect()
    };
    let v1: Vec<Vec<f64>> = grads(&theta0, &net)
        .iter()
        .zip(&theta0)
        .map(|(g, t)| g.iter().zip(t).map(|(g, t)| g + lambda * t).collect())
        .collect();
    let theta1 = step(&theta0, &v1);
    let v2: Vec<Vec<f64>> = grads(&theta1, &net)
        .iter()
        .zip(&theta1)
        .zip(&v1)
        .map(|((g, t), v)| {
            g.iter()
                .zip(t)
                .zip(v)
                .map(|((g, t), v)| mu * v + g + lambda * t)
                .collect()
        })
        .collect();
    let theta2 = step(&theta1, &v2);
    let config = TrainConfig {
        momentum: mu,
        weight_decay: lambda,
        ..TrainConfig::gd(eta, 2)
    };
    train(&mut net, &data, &compute, &config, &mut ()).unwrap();
    for (trained, expected) in net.values().into_iter().map(to_f64_vec).zip(&theta2) {
        for (a, b) in trained.iter().zip(expected) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
    // And momentum matters: plain GD ends elsewhere.
    let mut plain = Network::init(&fc_model(), &compute).unwrap();
    train(
        &mut plain,
        &data,
        &compute,
        &TrainConfig::gd(eta, 2),
        &mut (),
    )
    .unwrap();
    assert_ne!(value_bits(&plain), value_bits(&net));
}

/// Trains `model` for `steps` straight, then in a run killed at step 13 (after the checkpoint
/// of step 10) and resumed by a fresh process; both must end on the same bits.
fn kill_and_resume(
    name: &str,
    model: &ModelConfig,
    data: &Dataset,
    config: impl Fn(Option<Checkpointing>) -> TrainConfig,
) -> Checkpointing {
    let compute = Compute::cpu_f64().unwrap();
    let steps = config(None).steps;
    let mut straight = Network::init(model, &compute).unwrap();
    let history = train(&mut straight, data, &compute, &config(None), &mut ()).unwrap();

    let path = scratch(name).join("checkpoint.safetensors");
    let _ = std::fs::remove_file(&path);
    let checkpointing = Checkpointing {
        path,
        every: 5,
        resume: true,
    };
    let mut first = Network::init(model, &compute).unwrap();
    let mut crash = |s: &Snapshot<'_>| assert!(s.step < 13, "killed");
    let died = std::panic::catch_unwind(AssertUnwindSafe(|| {
        train(
            &mut first,
            data,
            &compute,
            &config(Some(checkpointing.clone())),
            &mut crash,
        )
    }));
    assert!(died.is_err());
    // A fresh process: a newly initialized net, the same command.
    let mut resumed = Network::init(model, &compute).unwrap();
    let resumed_history = train(
        &mut resumed,
        data,
        &compute,
        &config(Some(checkpointing.clone())),
        &mut (),
    )
    .unwrap();
    assert_eq!(value_bits(&resumed), value_bits(&straight));
    assert_eq!(bits(&resumed_history.loss), bits(&history.loss));
    assert_eq!(resumed_history.loss.len(), steps + 1);
    checkpointing
}

#[test]
fn a_killed_run_resumes_to_the_bits_of_an_uninterrupted_one() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(20, 5, Labels::Gaussian, 2).unwrap();
    let steps = 23;
    let checkpointing = kill_and_resume("resume", &fc_model(), &data, |c| sgd(steps, c));

    // A checkpoint of another run (another step size) is refused, naming the file.
    let other = TrainConfig {
        step_size: 0.02,
        ..sgd(steps, Some(checkpointing))
    };
    let mut net = Network::init(&fc_model(), &compute).unwrap();
    let err = train(&mut net, &data, &compute, &other, &mut ()).unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("another run"), "{err}");
    assert!(err.to_string().contains("checkpoint.safetensors"), "{err}");
}

#[test]
fn a_killed_resnet18_run_resumes_with_its_batchnorm_statistics() {
    // The running statistics move at every step and live only in the checkpoint: a resume
    // that lost them would end on other bits (the final loss is in evaluation mode).
    let model = ModelConfig {
        input_dim: 2 * 6 * 6,
        arch: Architecture::Resnet18 {
            width: 2,
            channels: 2,
            spatial: vec![6, 6],
            outputs: 3,
        },
        seed: 1,
    };
    let base = sphere(12, 72, Labels::Gaussian, 6).unwrap();
    let targets: Vec<f64> = (0..12)
        .flat_map(|i| (0..3).map(move |k| f64::from(u8::from(k == i % 3))))
        .collect();
    let data = Dataset::new(base.inputs().to_vec(), targets, 12, 72, 3).unwrap();
    kill_and_resume("resume-resnet18", &model, &data, |c| TrainConfig {
        loss: Loss::CrossEntropy,
        ..sgd(17, c)
    });
}

/// Stops the run once it has seen `at`.
struct StopAt {
    at: usize,
    seen: usize,
}

impl Observer for StopAt {
    fn observe(&mut self, s: &Snapshot<'_>) {
        self.seen = s.step;
    }

    fn stop(&self) -> bool {
        self.seen >= self.at
    }
}

#[test]
fn an_observer_can_end_the_run_at_an_observed_step() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(20, 5, Labels::Gaussian, 2).unwrap();
    let mut stopped = Network::init(&fc_model(), &compute).unwrap();
    let mut observer = StopAt { at: 6, seen: 0 };
    let config = TrainConfig {
        observe_every: 3,
        ..sgd(30, None)
    };
    let history = train(&mut stopped, &data, &compute, &config, &mut observer).unwrap();
    assert_eq!(history.observed_steps, vec![0, 3, 6]);
    assert_eq!(history.loss.len(), 7, "losses of steps 0 … 6");
    // The model is θ(6): the same as a run of 6 steps.
    let mut six = Network::init(&fc_model(), &compute).unwrap();
    train(&mut six, &data, &compute, &sgd(6, None), &mut ()).unwrap();
    assert_eq!(value_bits(&stopped), value_bits(&six));
}

#[test]
fn bad_momentum_and_decay_are_errors() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(8, 5, Labels::Gaussian, 1).unwrap();
    for (momentum, weight_decay, needle) in [(1.0, 0.0, "momentum"), (0.5, -1.0, "weight decay")] {
        let mut net = Network::init(&fc_model(), &compute).unwrap();
        let config = TrainConfig {
            momentum,
            weight_decay,
            ..TrainConfig::gd(0.1, 1)
        };
        let err = train(&mut net, &data, &compute, &config, &mut ()).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}
