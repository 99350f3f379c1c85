//! Forward passes against hand-computed values and an independent loop implementation; inits
//! against the papers' distributions; safetensors round trips.

mod common;

use common::{reference_forward, tiny_models};
use overparam::data::{Labels, sphere};
use overparam::device::{Compute, Precision, to_f64_vec};
use overparam::models::{
    Activation, Architecture, ModelConfig, Network, initial_values, load_safetensors,
    save_safetensors,
};

fn f64_cpu() -> Compute {
    Compute::cpu_f64().expect("the default CPU backend is compiled in")
}

fn outputs(net: &Network, compute: &Compute, x: &[f64], n: usize) -> Vec<f64> {
    let d = net.config().input_dim;
    to_f64_vec(net.forward(compute.tensor(x, [n, d])))
}

#[test]
fn forward_matches_loop_reference_for_every_model() {
    let compute = f64_cpu();
    for config in tiny_models() {
        let n = 4;
        let data = sphere(n, config.input_dim, Labels::Gaussian, 11).unwrap();
        let values = initial_values(&config);
        let net = Network::from_values(&config, &compute, &values).unwrap();
        let got = outputs(&net, &compute, data.inputs(), n);
        let k = config.outputs();
        for (i, x) in data.inputs().chunks(config.input_dim).enumerate() {
            let want = reference_forward(&config, &values, x);
            for (c, w) in want.iter().enumerate() {
                let g = got[i * k + c];
                assert!(
                    (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                    "{}: sample {i} output {c}: burn {g} vs loops {w}",
                    config.kind_name()
                );
            }
        }
    }
}

#[test]
fn fc_and_two_layer_forward_by_hand() {
    let compute = f64_cpu();
    // fc, H = 1, m = 1, relu: x1 = sqrt(2/1) relu(2 * 0.5), f = 3 * x1 = 3 sqrt(2).
    let fc = ModelConfig {
        input_dim: 1,
        arch: Architecture::Fc {
            depth: 1,
            width: 1,
            activation: Activation::Relu,
        },
        seed: 0,
    };
    let net = Network::from_values(&fc, &compute, &[vec![2.0], vec![3.0]]).unwrap();
    let f = outputs(&net, &compute, &[0.5], 1)[0];
    assert!((f - 3.0 * 2f64.sqrt()).abs() < 1e-12, "{f}");

    // two_layer, m = 4: f = (1/2) [1*relu(1) - 1*relu(-1) + 1*relu(2) - 1*relu(0.5)] = 1.25.
    let two = ModelConfig {
        input_dim: 2,
        arch: Architecture::TwoLayer { width: 4 },
        seed: 0,
    };
    let w = vec![1.0, 0.0, -1.0, 0.0, 2.0, 0.0, 0.5, 0.0];
    let net = Network::from_values(&two, &compute, &[w, vec![1.0, -1.0, 1.0, -1.0]]).unwrap();
    let f = outputs(&net, &compute, &[1.0, 7.0], 1)[0];
    assert!((f - 1.25).abs() < 1e-14, "{f}");
}

#[test]
fn inits_follow_the_papers() {
    // B: a uniform ±1; C: v half +1, half −1, columns of W_l ~ N(0, 2/m); A: N(0, 1).
    let two = ModelConfig {
        input_dim: 50,
        arch: Architecture::TwoLayer { width: 2000 },
        seed: 5,
    };
    let v = initial_values(&two);
    assert!(v[1].iter().all(|&a| a == 1.0 || a == -1.0));
    let plus = v[1].iter().filter(|&&a| a == 1.0).count() as f64;
    // Binomial(2000, 1/2): std 22.4; 5 sigma.
    assert!((plus - 1000.0).abs() < 112.0, "{plus}");
    let var = v[0].iter().map(|w| w * w).sum::<f64>() / v[0].len() as f64;
    assert!(
        (var - 1.0).abs() < 0.01,
        "B's w_r ~ N(0, I): variance {var}"
    );

    let deep = ModelConfig {
        input_dim: 20,
        arch: Architecture::DeepRelu {
            depth: 2,
            width: 400,
        },
        seed: 5,
    };
    let v = initial_values(&deep);
    assert_eq!(v[2].iter().sum::<f64>(), 0.0);
    assert!(v[2][..200].iter().all(|&a| a == 1.0));
    for layer in &v[..2] {
        let var = layer.iter().map(|w| w * w).sum::<f64>() / layer.len() as f64;
        // 8000 or 160000 samples of a variance 0.005 entry: relative std ≤ 1.6%.
        assert!(
            (var / (2.0 / 400.0) - 1.0).abs() < 0.08,
            "C's N(0, 2/m): {var}"
        );
    }
}

#[test]
fn safetensors_round_trip_is_bit_identical() {
    let dir = std::env::temp_dir().join(format!("overparam-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for precision in [Precision::F32, Precision::F64] {
        let compute = Compute::new(overparam::device::BackendKind::CPU, precision).unwrap();
        for config in tiny_models() {
            let net = Network::init(&config, &compute).unwrap();
            let path = dir.join(format!("{}-{precision}.safetensors", config.kind_name()));
            save_safetensors(&net, precision, &path).unwrap();
            let back = load_safetensors(&path, &compute, None).unwrap();
            assert_eq!(back.config(), net.config());
            let data = sphere(3, config.input_dim, Labels::Gaussian, 1).unwrap();
            let a = outputs(&net, &compute, data.inputs(), 3);
            let b = outputs(&back, &compute, data.inputs(), 3);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{} {precision}",
                config.kind_name()
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn loading_a_bad_file_names_it() {
    let dir = std::env::temp_dir().join(format!("overparam-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("garbage.safetensors");
    std::fs::write(&path, b"definitely not a safetensors header").unwrap();
    let err = load_safetensors(&path, &f64_cpu(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.safetensors"), "{err}");
    let missing = dir.join("missing.safetensors");
    let err = load_safetensors(&missing, &f64_cpu(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
