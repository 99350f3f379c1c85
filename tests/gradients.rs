//! Autodiff gradients of every model against central finite differences in f64.

mod common;

use common::tiny_models;
use overparam::data::{Dataset, Labels, sphere};
use overparam::device::{Compute, to_f64_vec};
use overparam::models::{ModelConfig, Network};
use overparam::train::{Loss, loss_and_gradients};

fn loss_at(
    config: &ModelConfig,
    compute: &Compute,
    values: &[Vec<f64>],
    data: &Dataset,
    loss: Loss,
) -> f64 {
    let net = Network::from_values(config, compute, values).unwrap();
    let (n, d) = (data.len(), data.input_dim());
    let f = to_f64_vec(net.forward(compute.tensor(data.inputs(), [n, d])));
    loss.value(&f, data.targets(), data.target_dim())
}

fn check(config: &ModelConfig, data: &Dataset, loss: Loss) {
    let compute = Compute::cpu_f64().unwrap();
    let values = overparam::models::initial_values(config);
    let net = Network::from_values(config, &compute, &values).unwrap();
    let (n, d, k) = (data.len(), data.input_dim(), data.target_dim());
    let mask = vec![true; values.len()];
    let result = loss_and_gradients(
        config,
        &net.values(),
        &mask,
        compute.tensor(data.inputs(), [n, d]),
        compute.tensor(data.targets(), [n, k]),
        loss,
    );
    let h = 1e-5;
    for (layer, (spec, grad)) in net.specs().iter().zip(result.gradients).enumerate() {
        let autodiff = to_f64_vec(grad.expect("every layer selected"));
        let fd: Vec<f64> = (0..values[layer].len())
            .map(|i| {
                let mut plus = values.clone();
                plus[layer][i] += h;
                let mut minus = values.clone();
                minus[layer][i] -= h;
                (loss_at(config, &compute, &plus, data, loss)
                    - loss_at(config, &compute, &minus, data, loss))
                    / (2.0 * h)
            })
            .collect();
        let diff = autodiff
            .iter()
            .zip(&fd)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = fd.iter().map(|b| b * b).sum::<f64>().sqrt();
        assert!(
            norm > 0.0 || spec.name.starts_with('b'),
            "{}: zero gradient",
            spec.name
        );
        assert!(
            diff <= 1e-6 * norm.max(1e-12),
            "{} layer {}: relative error {:e} (|fd| = {norm:e})",
            config.kind_name(),
            spec.name,
            diff / norm
        );
    }
}

#[test]
fn quadratic_loss_gradients_match_finite_differences() {
    for config in tiny_models() {
        let k = config.outputs();
        let base = sphere(5, config.input_dim, Labels::Gaussian, 9).unwrap();
        // Targets for multi-output models: repeat the Gaussian label on each output, shifted.
        let targets: Vec<f64> = base
            .targets()
            .iter()
            .flat_map(|&y| (0..k).map(move |c| y + c as f64))
            .collect();
        let data = Dataset::new(base.inputs().to_vec(), targets, 5, config.input_dim, k).unwrap();
        check(&config, &data, Loss::Quadratic);
    }
}

#[test]
fn classification_loss_gradients_match_finite_differences() {
    for config in tiny_models().into_iter().filter(|c| c.outputs() == 1) {
        let data = sphere(5, config.input_dim, Labels::Sign, 4).unwrap();
        for loss in [Loss::Logistic, Loss::Exponential] {
            check(&config, &data, loss);
        }
    }
}
