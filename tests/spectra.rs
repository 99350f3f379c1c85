//! The Lanczos extremes against the full symmetric eigensolver on the matrices the commands
//! meet: B's H^∞, A's fc NTK limit (a crowded bottom: the shifted refinement runs) and a finite
//! network's Gram.

use faer::{Mat, Side};
use overparam::analysis::{ExtremesMethod, GramStrategy, extremes, grams};
use overparam::data::{Labels, sphere};
use overparam::device::Compute;
use overparam::kernels::{h_infinity, ntk_limit};
use overparam::models::{Activation, Architecture, ModelConfig, Network};

fn check(name: &str, g: &Mat<f64>) {
    let full = g.self_adjoint_eigenvalues(Side::Lower).unwrap();
    let e = extremes(g);
    assert_eq!(e.method, ExtremesMethod::Lanczos, "{name}: {e:?}");
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    assert!(
        rel(e.lambda_min, full[0]) < 1e-10,
        "{name}: λ_min {} against {}",
        e.lambda_min,
        full[0]
    );
    assert!(
        rel(e.lambda_max, full[full.len() - 1]) < 1e-10,
        "{name}: λ_max {} against {}",
        e.lambda_max,
        full[full.len() - 1]
    );
}

#[test]
fn extremes_agree_with_the_full_solver_to_1e10() {
    let (n, d) = (400, 30);
    let data = sphere(n, d, Labels::Gaussian, 11).unwrap();
    check("H^inf", &h_infinity(data.inputs(), d));
    let fc = |width| ModelConfig {
        input_dim: d,
        arch: Architecture::Fc {
            depth: 3,
            width,
            activation: Activation::Softplus,
        },
        seed: 2,
    };
    check(
        "fc NTK limit",
        &ntk_limit(&fc(1), data.inputs()).unwrap().total,
    );
    let compute = Compute::cpu_f64().unwrap();
    let net = Network::init(&fc(256), &compute).unwrap();
    let g = grams(&net, data.inputs(), &compute, GramStrategy::Structured).unwrap();
    check("finite fc Gram", &g.total);
}
