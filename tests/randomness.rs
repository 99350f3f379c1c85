//! Independent randomness: the init of every experiment setup is independent of its data, even
//! when one seed drives both, and every generator of the workspace is built by `overparam_rng`.
//!
//! The failure these tests guard against: data and init drawn row-major from generators seeded
//! alike give `w_r(0) = ‖g_r‖·x_r` for the first min(m, n) neurons (cosine exactly 1), and in B's
//! setup a loss at init far above what an independent init gives.

use faer::Mat;
use overparam::data::{Dataset, Purpose, random_images, separated_binary};
use overparam::device::{Compute, to_f64_vec};
use overparam::models::{Activation, ModelConfig, Network, initial_values};
use overparam_experiments::setups::{
    DeepArch, DeepData, DeepRun, ImageSource, b_figure1, c_deep_relu, d_images, d_practical,
};
use std::path::{Path, PathBuf};

/// Rows of a row-major `rows × dim` matrix scaled to unit norm, as a faer matrix.
fn unit_rows(values: &[f64], dim: usize) -> Mat<f64> {
    let rows = values.len() / dim;
    let mut m = Mat::from_fn(rows, dim, |r, c| values[r * dim + c]);
    for r in 0..rows {
        let norm = (0..dim).map(|c| m[(r, c)].powi(2)).sum::<f64>().sqrt();
        for c in 0..dim {
            m[(r, c)] /= norm;
        }
    }
    m
}

/// max over neurons r and samples i of |cos(w_r, x_i)|, w_r the rows of the first layer.
fn max_abs_cos(first_layer: &[f64], inputs: &[f64], dim: usize) -> f64 {
    let products = unit_rows(first_layer, dim) * unit_rows(inputs, dim).transpose();
    let mut max: f64 = 0.0;
    for j in 0..products.ncols() {
        for i in 0..products.nrows() {
            max = max.max(products[(i, j)].abs());
        }
    }
    max
}

/// A ceiling for max |cos| over `pairs` independent uniform directions in R^dim: each cosine has
/// P(|cos| > t) ≤ 2 exp(−dim t²/2), so the maximum passes t = 1.25 sqrt(2 ln(2·pairs)/dim) with
/// probability at most (2·pairs)^(−0.56), below 2e-3 at the sizes here.
fn independent_level(pairs: usize, dim: usize) -> f64 {
    1.25 * (2.0 * (2.0 * pairs as f64).ln() / dim as f64).sqrt()
}

/// Pearson correlation of the first `min(len)` entries of two sequences: the direct trace of
/// two purposes reading one stream (≈ 1 then, whatever per-row scaling followed), ~N(0, 1/L)
/// when independent.
fn sequence_correlation(a: &[f64], b: &[f64]) -> (f64, usize) {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / len as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    (ab / (aa * bb).sqrt(), len)
}

/// What is wrong with one setup (empty when nothing is): the first layer against the inputs,
/// by the correlation of the raw sequences and, when `rows` is true (neurons act on whole
/// inputs), by max |cos(w_r(0), x_i)|.
fn dependence(what: &str, data: &Dataset, config: &ModelConfig, rows: bool) -> Vec<String> {
    let first = &initial_values(config)[0];
    let x = data.inputs();
    let d = data.input_dim();
    let mut problems = Vec::new();
    let (corr, len) = sequence_correlation(first, x);
    // 6 standard deviations of a correlation of `len` independent pairs.
    let limit = 6.0 / (len as f64).sqrt();
    if corr.abs() >= limit {
        problems.push(format!(
            "{what}: init and data sequences correlate: {corr:.4} over {len} entries (limit {limit:.4})"
        ));
    }
    if rows {
        let max = max_abs_cos(first, x, d);
        let level = independent_level(first.len() / d * data.len(), d);
        if max >= level {
            problems.push(format!(
                "{what}: max |cos(w_r(0), x_i)| = {max:.4}; independent directions in R^{d} stay \
                 below {level:.4}"
            ));
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn b_init_is_independent_of_its_data() {
    // B's Figure 1 setup at n = d = 1000, m = 500: one seed for data, labels and init.
    // Independent directions give max |cos(w_r(0), x_i)| ≈ sqrt(2 ln(2nm)/d) = 0.17 (the
    // ceiling is 1.25× that); a shared stream gives 1.
    for seed in [0, 1] {
        let (data, config) = b_figure1(1000, 1000, 500, seed).unwrap();
        assert_none(dependence(&format!("B, seed {seed}"), &data, &config, true));
    }
}

#[test]
fn b_loss_at_init_is_in_the_independence_band() {
    // u_i(0) = (1/√m) Σ_r a_r relu(w_rᵀx_i) with w_r ~ N(0, I) independent of x_i (‖x_i‖ = 1):
    // w_rᵀx_i ~ N(0, 1), so given the frozen signs a (S = Σ_r a_r) u_i(0) has mean
    // c = S/√(2πm) and variance v = E relu(z)² − (E relu(z))² = 1/2 − 1/(2π). With y independent
    // of both, (1/n)‖y − u(0)‖² ≈ mean(y²) − 2 mean(y) c + c² + v. The aligned init of a shared
    // stream adds relu(‖g_r‖)²/m ≈ d/m per aligned sample (+1 on average at m = 500, n = d = 1000).
    let compute = Compute::cpu_f64().unwrap();
    let (n, d, m) = (1000, 1000, 500);
    let v = 0.5 - 1.0 / (2.0 * std::f64::consts::PI);
    for seed in [0, 1, 2] {
        let (data, config) = b_figure1(n, d, m, seed).unwrap();
        let net = Network::init(&config, &compute).unwrap();
        let u = to_f64_vec(net.forward(compute.tensor(data.inputs(), [n, d])));
        let y = data.targets();
        let mse = y.iter().zip(&u).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n as f64;
        let signs = &initial_values(&config)[1];
        let c = signs.iter().sum::<f64>() / (2.0 * std::f64::consts::PI * m as f64).sqrt();
        let mean_y = y.iter().sum::<f64>() / n as f64;
        let mean_y2 = y.iter().map(|t| t * t).sum::<f64>() / n as f64;
        let predicted = mean_y2 - 2.0 * mean_y * c + c * c + v;
        let gap = mse.ln() - predicted.ln();
        assert!(
            gap.abs() < 0.08,
            "seed {seed}: ln MSE(0) = {:.3}, independence predicts {:.3} (mean y² {mean_y2:.3}, \
             c {c:.3})",
            mse.ln(),
            predicted.ln()
        );
    }
}

#[test]
fn a_setups_draw_init_independently_of_data() {
    let data = DeepData {
        d: 100,
        images: ImageSource::Synthetic,
        image_side: 8,
        fashion_dir: PathBuf::new(),
    };
    let mut problems = Vec::new();
    for arch in DeepArch::ALL {
        let run = DeepRun {
            arch,
            depth: 2,
            width: 256,
            n: 200,
            data: data.clone(),
            activation: Activation::Softplus,
            c_res: 0.5,
            seed: 0,
        };
        let (samples, config) = run.setup().unwrap();
        // Conv filters act on 3 × 3 patches (q = 9 numbers): too few for a cosine test, so the
        // conv net is checked by the sequence correlation alone.
        let rows = arch != DeepArch::ConvResnet;
        problems.extend(dependence(arch.name(), &samples, &config, rows));
    }
    assert_none(problems);
}

#[test]
fn c_setup_draws_init_independently_of_data() {
    for seed in [0, 3] {
        let data = separated_binary(300, 50, 0.5, 0.1, seed).unwrap().data;
        let config = c_deep_relu(50, 3, 256, seed);
        assert_none(dependence("C", &data, &config, true));
    }
}

#[test]
fn d_setup_draws_init_independently_of_data() {
    // D's "Random" set at 12 × 12 (its natural-image settings read Fashion-MNIST; the same
    // `d_images` prepares them). Byte pixels are not a linear function of the normals an init
    // draws, so one shared stream would not show here; an init aligned with the inputs would.
    for seed in [0, 5] {
        let pixels = random_images(300, &[1, 12, 12], 10, seed).unwrap();
        let data = d_images(&pixels, None, seed, Purpose::Subsample, false).unwrap();
        let config = d_practical(144, 2, 256, Activation::Relu, 10, seed);
        assert_none(dependence("D", &data, &config, true));
    }
}

/// The Rust sources and manifests of the workspace, skipping build output.
fn workspace_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "results" && name != "plots" {
                workspace_files(&path, out);
            }
        } else if name.ends_with(".rs") || name == "Cargo.toml" {
            out.push(path);
        }
    }
}

#[test]
fn every_generator_comes_from_the_one_helper() {
    // Built by concatenation so that this file does not match itself.
    let seeding = [
        ["seed_from", "_u64"].concat(),
        ["from", "_seed("].concat(),
        ["from", "_rng("].concat(),
        ["thread", "_rng"].concat(),
        ["rand::", "rng("].concat(),
        ["rand::", "random"].concat(),
        ["Tensor::", "random("].concat(),
        ["TensorData::", "random("].concat(),
    ];
    let crates = [
        "rand.",
        "rand_chacha.",
        "rand_distr.",
        "rand = ",
        "rand_chacha = ",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let helper = root.join("crates").join("rng");
    let mut files = Vec::new();
    workspace_files(root, &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&helper)) {
        let text = std::fs::read_to_string(file).unwrap();
        let is_manifest = file.ends_with("Cargo.toml");
        let mut section = String::new();
        for (number, line) in text.lines().enumerate() {
            if line.starts_with('[') {
                section = line.trim().to_string();
            }
            let hit = if is_manifest {
                // The root's [workspace.dependencies] pins the versions the helper takes.
                section != "[workspace.dependencies]"
                    && crates.iter().any(|c| line.trim_start().starts_with(c))
            } else {
                seeding.iter().any(|p| line.contains(p.as_str()))
            };
            if hit {
                offenders.push(format!("{}:{}: {line}", file.display(), number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "random generators must come from overparam_rng::stream(seed, purpose):\n{}",
        offenders.join("\n")
    );
}
