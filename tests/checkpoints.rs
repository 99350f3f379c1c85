//! Momentum, weight decay and checkpoints: the update rule against a hand-written one, and a
//! run killed mid-way that resumes to the bits of an uninterrupted run.

use overparam::data::{Labels, sphere};
use overparam::device::{Compute, to_f64_vec};
use overparam::models::{Activation, Architecture, ModelConfig, Network};
use overparam::train::{
    Checkpointing, Loss, Optimizer, Snapshot, TrainConfig, TrainError, loss_and_gradients, train,
    trainable_mask,
};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

fn model() -> ModelConfig {
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

fn values(net: &Network) -> Vec<Vec<u64>> {
    net.values()
        .into_iter()
        .map(|t| to_f64_vec(t).iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overparam-ckpt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn momentum_and_weight_decay_follow_the_heavy_ball_rule() {
    // Two full-batch steps by hand: v1 = g0 + λθ0, θ1 = θ0 − ηv1, v2 = μv1 + g1 + λθ1,
    // θ2 = θ1 − ηv2, with the gradients from the same autodiff function.
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(12, 5, Labels::Gaussian, 1).unwrap();
    let (eta, mu, lambda) = (0.05, 0.8, 0.01);
    let mut net = Network::init(&model(), &compute).unwrap();
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
            &model(),
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
    let mut plain = Network::init(&model(), &compute).unwrap();
    train(
        &mut plain,
        &data,
        &compute,
        &TrainConfig::gd(eta, 2),
        &mut (),
    )
    .unwrap();
    assert_ne!(values(&plain), values(&net));
}

#[test]
fn a_killed_run_resumes_to_the_bits_of_an_uninterrupted_one() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(20, 5, Labels::Gaussian, 2).unwrap();
    let steps = 23;
    let mut straight = Network::init(&model(), &compute).unwrap();
    let history = train(&mut straight, &data, &compute, &sgd(steps, None), &mut ()).unwrap();

    let path = scratch("resume").join("checkpoint.safetensors");
    let _ = std::fs::remove_file(&path);
    let checkpointing = Checkpointing {
        path: path.clone(),
        every: 5,
        resume: true,
    };
    // The first attempt dies at step 13 (after the checkpoint of step 10).
    let mut first = Network::init(&model(), &compute).unwrap();
    let mut crash = |s: &Snapshot<'_>| assert!(s.step < 13, "killed");
    let died = std::panic::catch_unwind(AssertUnwindSafe(|| {
        train(
            &mut first,
            &data,
            &compute,
            &sgd(steps, Some(checkpointing.clone())),
            &mut crash,
        )
    }));
    assert!(died.is_err());
    // A fresh process: a newly initialized net, the same command.
    let mut resumed = Network::init(&model(), &compute).unwrap();
    let resumed_history = train(
        &mut resumed,
        &data,
        &compute,
        &sgd(steps, Some(checkpointing.clone())),
        &mut (),
    )
    .unwrap();
    assert_eq!(values(&resumed), values(&straight));
    let bits = |l: &[f64]| l.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed_history.loss), bits(&history.loss));
    assert_eq!(resumed_history.loss.len(), steps + 1);

    // A checkpoint of another run (another step size) is refused, naming the file.
    let other = TrainConfig {
        step_size: 0.02,
        ..sgd(steps, Some(checkpointing))
    };
    let mut net = Network::init(&model(), &compute).unwrap();
    let err = train(&mut net, &data, &compute, &other, &mut ()).unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("another run"), "{err}");
    assert!(err.to_string().contains("checkpoint.safetensors"), "{err}");
}

#[test]
fn bad_momentum_and_decay_are_errors() {
    let compute = Compute::cpu_f64().unwrap();
    let data = sphere(8, 5, Labels::Gaussian, 1).unwrap();
    for (momentum, weight_decay, needle) in [(1.0, 0.0, "momentum"), (0.5, -1.0, "weight decay")] {
        let mut net = Network::init(&model(), &compute).unwrap();
        let config = TrainConfig {
            momentum,
            weight_decay,
            ..TrainConfig::gd(0.1, 1)
        };
        let err = train(&mut net, &data, &compute, &config, &mut ()).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}
