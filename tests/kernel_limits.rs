//! Finite-width Grams at initialization approach the infinite-width limits as m grows, at the
//! rate m^(−1/2) (A Thm E.1): the log-log slope of the operator-norm error is checked.

use faer::Mat;
use overparam::analysis::{GramStrategy, grams, operator_norm};
use overparam::data::{Labels, sphere};
use overparam::device::Compute;
use overparam::kernels::ntk_limit;
use overparam::models::{Activation, Architecture, ModelConfig, Network};

/// Least-squares slope of `ln y` against `ln x`.
fn log_slope(x: &[f64], y: &[f64]) -> f64 {
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let (mx, my) = (
        lx.iter().sum::<f64>() / lx.len() as f64,
        ly.iter().sum::<f64>() / ly.len() as f64,
    );
    let cov: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
    let var: f64 = lx.iter().map(|a| (a - mx).powi(2)).sum();
    cov / var
}

/// The input dimension and the architecture at width m: A's fc and resnet on d = 5, and the
/// conv ResNet on 2 channels × 5 positions (1-D patches of 3, zero padding).
fn architecture(kind: &str, width: usize, activation: Activation) -> (usize, Architecture) {
    match kind {
        "fc" => (
            5,
            Architecture::Fc {
                depth: 3,
                width,
                activation,
            },
        ),
        "resnet" => (
            5,
            Architecture::Resnet {
                depth: 3,
                width,
                activation,
                c_res: 0.5,
            },
        ),
        _ => (
            10,
            Architecture::ConvResnet {
                depth: 3,
                width,
                activation,
                c_res: 0.5,
                channels: 2,
                spatial: vec![5],
                kernel: 3,
            },
        ),
    }
}

#[test]
fn finite_width_grams_approach_the_limit_at_rate_one_over_sqrt_m() {
    let compute = Compute::cpu_f64().unwrap();
    for activation in [Activation::Softplus, Activation::Relu, Activation::Erf] {
        for kind in ["fc", "resnet", "conv_resnet"] {
            let arch = |width| architecture(kind, width, activation).1;
            let d = architecture(kind, 1, activation).0;
            // A conv layer has q·m² weights: its widths stop at 1024 to keep the test short,
            // and twice the seeds average out the larger spread at small widths.
            let (widths, seeds): (&[usize], _) = match kind {
                "conv_resnet" => (&[64, 128, 256, 512, 1024], 0..8u64),
                _ => (&[128, 256, 512, 1024, 2048], 0..4u64),
            };
            let data = sphere(8, d, Labels::Gaussian, 11).unwrap();
            let limit = ntk_limit(
                &ModelConfig {
                    input_dim: d,
                    arch: arch(1),
                    seed: 0,
                },
                data.inputs(),
            )
            .unwrap();
            let (mut err_last, mut err_total) = (Vec::new(), Vec::new());
            for &width in widths {
                let (mut last, mut total) = (0.0, 0.0);
                for seed in seeds.clone() {
                    let config = ModelConfig {
                        input_dim: d,
                        arch: arch(width),
                        seed,
                    };
                    let net = Network::init(&config, &compute).unwrap();
                    let g = grams(&net, data.inputs(), &compute, GramStrategy::Structured).unwrap();
                    let diff: Mat<f64> = g.last_hidden() - limit.k_h();
                    last += operator_norm(&diff);
                    total += operator_norm(&(&g.total - &limit.total));
                }
                err_last.push(last / seeds.clone().count() as f64);
                err_total.push(total / seeds.clone().count() as f64);
            }
            let m: Vec<f64> = widths.iter().map(|&w| w as f64).collect();
            let name = format!("{kind} {activation}");
            for (what, err) in [("G^(H)", &err_last), ("G", &err_total)] {
                let slope = log_slope(&m, err);
                println!("{name} {what}: slope {slope:.3}, mean errors {err:?}");
                assert!(
                    (-0.7..=-0.3).contains(&slope),
                    "{name} {what}: slope {slope:.3}, errors {err:?}"
                );
            }
        }
    }
}
