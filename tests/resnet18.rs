//! D's ResNet-18 against an independent host implementation written from the torchvision
//! layer names (strided convs, BatchNorm in both modes, average pool, read-out), its
//! training-mode gradients against finite differences, and the running statistics the
//! trainer keeps.

use overparam::data::Dataset;
use overparam::device::{Compute, to_f64_vec};
use overparam::models::resnet18::{EPSILON, MOMENTUM};
use overparam::models::{Architecture, ModelConfig, Network, forward_train, initial_values};
use overparam::train::{Loss, TrainConfig, loss_and_gradients, train};
use std::collections::HashMap;

const CHANNELS: usize = 2;
const SPATIAL: [usize; 2] = [5, 4];
const WIDTH: usize = 2;
const CLASSES: usize = 3;
const N: usize = 4;

/// A fixed pseudo-random value in (−1, 1) for index `i` of sequence `seq` (test inputs only).
fn noise(seq: usize, i: usize) -> f64 {
    let t = ((seq * 7919 + i) as f64 * 12.9898).sin() * 43_758.545_3;
    2.0 * (t - t.floor()) - 1.0
}

fn config() -> ModelConfig {
    ModelConfig {
        input_dim: CHANNELS * SPATIAL[0] * SPATIAL[1],
        arch: Architecture::Resnet18 {
            width: WIDTH,
            channels: CHANNELS,
            spatial: SPATIAL.to_vec(),
            outputs: CLASSES,
        },
        seed: 5,
    }
}

/// The init, with every BatchNorm tensor and bias moved off its constant init so that no
/// term can hide: γ ∈ 1 ± 0.3, β and biases ±0.2, running means ±0.3, variances in [0.5, 1.5].
fn values() -> Vec<Vec<f64>> {
    let specs = config().layers();
    initial_values(&config())
        .into_iter()
        .zip(&specs)
        .enumerate()
        .map(|(l, (v, spec))| {
            let name = spec.name.as_str();
            v.into_iter()
                .enumerate()
                .map(|(i, x)| {
                    let g = noise(l, i);
                    if name.ends_with("running_var") {
                        1.0 + 0.5 * g
                    } else if name.ends_with("running_mean") {
                        0.3 * g
                    } else if name.starts_with("bn")
                        || name.contains(".bn")
                        || name.contains("downsample.1")
                    {
                        x + if name.ends_with("weight") { 0.3 } else { 0.2 } * g
                    } else if name == "fc.bias" {
                        0.2 * g
                    } else {
                        x
                    }
                })
                .collect()
        })
        .collect()
}

fn inputs() -> Vec<f64> {
    (0..N * config().input_dim)
        .map(|i| 2.0 * noise(1000, i))
        .collect()
}

/// A host image batch `[n][c][h][w]`, row-major.
#[derive(Clone)]
struct Maps {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Maps {
    fn at(&self, i: usize, c: usize, y: usize, x: usize) -> f64 {
        self.v[((i * self.c + c) * self.h + y) * self.w + x]
    }
}

/// `out[i][o][y][x] = Σ_{c,u,v} W[o][c·k·k + u·k + v] in[i][c][s·y+u−p][s·x+v−p]`.
fn conv(input: &Maps, w: &[f64], c_out: usize, k: usize, stride: usize) -> Maps {
    let pad = (k - 1) / 2;
    let h = (input.h + 2 * pad - k) / stride + 1;
    let wd = (input.w + 2 * pad - k) / stride + 1;
    let mut v = vec![0.0; N * c_out * h * wd];
    for i in 0..N {
        for o in 0..c_out {
            for y in 0..h {
                for x in 0..wd {
                    let mut sum = 0.0;
                    for c in 0..input.c {
                        for u in 0..k {
                            for t in 0..k {
                                let yy = (stride * y + u) as isize - pad as isize;
                                let xx = (stride * x + t) as isize - pad as isize;
                                if yy < 0
                                    || xx < 0
                                    || yy >= input.h as isize
                                    || xx >= input.w as isize
                                {
                                    continue;
                                }
                                sum += w[o * input.c * k * k + c * k * k + u * k + t]
                                    * input.at(i, c, yy as usize, xx as usize);
                            }
                        }
                    }
                    v[((i * c_out + o) * h + y) * wd + x] = sum;
                }
            }
        }
    }
    Maps {
        c: c_out,
        h,
        w: wd,
        v,
    }
}

/// Batch mean and biased variance of every BatchNorm, by its name stem (`bn1`, `layer2.0.bn1`).
type BatchStats = HashMap<String, (Vec<f64>, Vec<f64>)>;

struct Reference<'a> {
    params: HashMap<&'a str, &'a [f64]>,
    train: bool,
    stats: BatchStats,
}

impl Reference<'_> {
    fn norm(&mut self, z: Maps, bn: &str) -> Maps {
        let p = |s: &str| self.params[format!("{bn}.{s}").as_str()];
        let count = (N * z.h * z.w) as f64;
        let (mut mean, mut var) = (vec![0.0; z.c], vec![0.0; z.c]);
        for c in 0..z.c {
            let vals: Vec<f64> = (0..N)
                .flat_map(|i| (0..z.h).flat_map(move |y| (0..z.w).map(move |x| (i, y, x))))
                .map(|(i, y, x)| z.at(i, c, y, x))
                .collect();
            mean[c] = vals.iter().sum::<f64>() / count;
            var[c] = vals.iter().map(|v| (v - mean[c]).powi(2)).sum::<f64>() / count;
        }
        let (use_mean, use_var) = if self.train {
            (mean.clone(), var.clone())
        } else {
            (p("running_mean").to_vec(), p("running_var").to_vec())
        };
        let (gamma, beta) = (p("weight"), p("bias"));
        self.stats.insert(bn.to_string(), (mean, var));
        let mut out = z.clone();
        let plane = z.h * z.w;
        for (idx, v) in out.v.iter_mut().enumerate() {
            let c = (idx / plane) % z.c;
            *v = gamma[c] * (*v - use_mean[c]) / (use_var[c] + EPSILON).sqrt() + beta[c];
        }
        out
    }

    fn unit(
        &mut self,
        x: &Maps,
        conv_name: &str,
        bn: &str,
        c_out: usize,
        k: usize,
        s: usize,
    ) -> Maps {
        let w = self.params[format!("{conv_name}.weight").as_str()];
        let z = conv(x, w, c_out, k, s);
        self.norm(z, bn)
    }

    fn forward(&mut self, x: &[f64]) -> Vec<f64> {
        let relu = |mut m: Maps| {
            m.v.iter_mut().for_each(|v| *v = v.max(0.0));
            m
        };
        let input = Maps {
            c: CHANNELS,
            h: SPATIAL[0],
            w: SPATIAL[1],
            v: x.to_vec(),
        };
        let mut h = relu(self.unit(&input, "conv1", "bn1", WIDTH, 3, 1));
        for stage in 1..=4 {
            let c_out = WIDTH << (stage - 1);
            for block in 0..2 {
                let p = format!("layer{stage}.{block}");
                let stride = if stage > 1 && block == 0 { 2 } else { 1 };
                let a = relu(self.unit(
                    &h,
                    &format!("{p}.conv1"),
                    &format!("{p}.bn1"),
                    c_out,
                    3,
                    stride,
                ));
                let b = self.unit(&a, &format!("{p}.conv2"), &format!("{p}.bn2"), c_out, 3, 1);
                let shortcut = if h.c != c_out || stride != 1 {
                    let name = format!("{p}.downsample");
                    self.unit(
                        &h,
                        &format!("{name}.0"),
                        &format!("{name}.1"),
                        c_out,
                        1,
                        stride,
                    )
                } else {
                    h.clone()
                };
                let mut sum = b;
                sum.v.iter_mut().zip(&shortcut.v).for_each(|(a, b)| *a += b);
                h = relu(sum);
            }
        }
        let (w, b) = (self.params["fc.weight"], self.params["fc.bias"]);
        let plane = (h.h * h.w) as f64;
        let mut logits = vec![0.0; N * CLASSES];
        for i in 0..N {
            let pooled: Vec<f64> = (0..h.c)
                .map(|c| {
                    (0..h.h)
                        .flat_map(|y| (0..h.w).map(move |x| (y, x)))
                        .map(|(y, x)| h.at(i, c, y, x))
                        .sum::<f64>()
                        / plane
                })
                .collect();
            for k in 0..CLASSES {
                logits[i * CLASSES + k] =
                    b[k] + (0..h.c).map(|c| w[k * h.c + c] * pooled[c]).sum::<f64>();
            }
        }
        logits
    }
}

fn reference(values: &[Vec<f64>], x: &[f64], train: bool) -> (Vec<f64>, BatchStats) {
    let specs = config().layers();
    let mut r = Reference {
        params: specs
            .iter()
            .zip(values)
            .map(|(s, v)| (s.name.as_str(), v.as_slice()))
            .collect(),
        train,
        stats: HashMap::new(),
    };
    let logits = r.forward(x);
    (logits, r.stats)
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn both_modes_match_the_host_reference() {
    let compute = Compute::cpu_f64().unwrap();
    let values = values();
    let net = Network::from_values(&config(), &compute, &values).unwrap();
    let x = inputs();
    let d = config().input_dim;

    let (want, _) = reference(&values, &x, false);
    let got = to_f64_vec(net.forward(compute.tensor(&x, [N, d])));
    assert_close("eval logits", &got, &want, 1e-10);

    let (want, stats) = reference(&values, &x, true);
    let (logits, statistics) = forward_train(&config(), &net.values(), compute.tensor(&x, [N, d]));
    assert_close("train logits", &to_f64_vec(logits), &want, 1e-10);
    // The two modes really differ on these values.
    assert!(got.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3));

    // Running statistics: r ← 0.9 r + 0.1 s, with the unbiased variance for s.
    let specs = net.specs();
    let mut checked = 0;
    for (l, spec) in specs.iter().enumerate() {
        let Some(stem) = spec
            .name
            .strip_suffix(".running_mean")
            .or(spec.name.strip_suffix(".running_var"))
        else {
            assert!(statistics[l].is_none(), "{} has no statistic", spec.name);
            continue;
        };
        let (mean, var) = &stats[stem];
        let count = if stem == "bn1" || stem.starts_with("layer1") {
            N * SPATIAL[0] * SPATIAL[1]
        } else {
            // Positions after the strides: 5×4 → 3×2 → 2×1 → 1×1.
            let stage: usize = stem[5..6].parse().unwrap();
            N * [6, 2, 1][stage - 2]
        } as f64;
        let new = to_f64_vec(statistics[l].clone().expect("a statistic is updated"));
        let want: Vec<f64> = if spec.name.ends_with("mean") {
            values[l]
                .iter()
                .zip(mean)
                .map(|(r, s)| (1.0 - MOMENTUM) * r + MOMENTUM * s)
                .collect()
        } else {
            values[l]
                .iter()
                .zip(var)
                .map(|(r, s)| (1.0 - MOMENTUM) * r + MOMENTUM * s * count / (count - 1.0))
                .collect()
        };
        assert_close(&spec.name, &new, &want, 1e-10);
        checked += 1;
    }
    assert_eq!(checked, 2 * 20);
}

#[test]
fn training_mode_gradients_match_finite_differences() {
    let compute = Compute::cpu_f64().unwrap();
    let config = config();
    let values = values();
    let d = config.input_dim;
    let x = inputs();
    let y: Vec<f64> = (0..N)
        .flat_map(|i| (0..CLASSES).map(move |k| f64::from(u8::from(k == i % CLASSES))))
        .collect();
    let tensors =
        |v: &[Vec<f64>]| -> Vec<_> { Network::from_values(&config, &compute, v).unwrap().values() };
    let loss_at = |v: &[Vec<f64>]| -> f64 {
        let (f, _) = forward_train(&config, &tensors(v), compute.tensor(&x, [N, d]));
        Loss::CrossEntropy.value(&to_f64_vec(f), &y, CLASSES)
    };
    let specs = config.layers();
    let mask: Vec<bool> = specs.iter().map(|s| s.trained_by_default).collect();
    let result = loss_and_gradients(
        &config,
        &tensors(&values),
        &mask,
        compute.tensor(&x, [N, d]),
        compute.tensor(&y, [N, CLASSES]),
        Loss::CrossEntropy,
    );
    assert!((result.loss - loss_at(&values)).abs() < 1e-12);
    let h = 1e-6;
    for (l, (spec, grad)) in specs.iter().zip(result.gradients).enumerate() {
        if !spec.trained_by_default {
            assert!(grad.is_none(), "{} is never trained", spec.name);
            continue;
        }
        let g = to_f64_vec(grad.expect("trained"));
        // Four entries per layer (all of them for small layers).
        let picks: Vec<usize> = if g.len() <= 4 {
            (0..g.len()).collect()
        } else {
            (0..4)
                .map(|j| ((noise(2000 + l, j) + 1.0) * 1e6) as usize % g.len())
                .collect()
        };
        for i in picks {
            let mut plus = values.clone();
            plus[l][i] += h;
            let mut minus = values.clone();
            minus[l][i] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
            assert!(
                (g[i] - fd).abs() <= 1e-6 * fd.abs() + 1e-8,
                "{}[{i}]: autodiff {} vs finite differences {fd}",
                spec.name,
                g[i]
            );
        }
    }
}

#[test]
fn the_trainer_moves_running_statistics_and_refuses_to_train_them() {
    let compute = Compute::cpu_f64().unwrap();
    let config = config();
    let values = values();
    let x = inputs();
    let y: Vec<f64> = (0..N)
        .flat_map(|i| (0..CLASSES).map(move |k| f64::from(u8::from(k == i % CLASSES))))
        .collect();
    let data = Dataset::new(x.clone(), y, N, config.input_dim, CLASSES).unwrap();
    let mut net = Network::from_values(&config, &compute, &values).unwrap();
    let mut cfg = TrainConfig::gd(1e-3, 1);
    cfg.loss = Loss::CrossEntropy;
    train(&mut net, &data, &compute, &cfg, &mut ()).unwrap();
    let (_, stats) = reference(&values, &x, true);
    let idx = net.layer_index("bn1.running_mean").unwrap();
    let want: Vec<f64> = values[idx]
        .iter()
        .zip(&stats["bn1"].0)
        .map(|(r, s)| (1.0 - MOMENTUM) * r + MOMENTUM * s)
        .collect();
    assert_close(
        "bn1.running_mean after one step",
        &to_f64_vec(net.values()[idx].clone()),
        &want,
        1e-10,
    );

    cfg.trainable = Some(vec!["bn1.running_var".into()]);
    let err = train(&mut net, &data, &compute, &cfg, &mut ()).unwrap_err();
    assert!(err.to_string().contains("running statistic"), "{err}");
}

#[test]
fn bad_shapes_are_errors() {
    let mut c = config();
    c.input_dim += 1;
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("2 channels x 20 positions = 40 values"),
        "{err}"
    );
    let mut c = config();
    c.arch = Architecture::Resnet18 {
        width: WIDTH,
        channels: CHANNELS,
        spatial: vec![40],
        outputs: CLASSES,
    };
    c.input_dim = 80;
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("resnet18 model needs a spatial shape of 2 dimensions"),
        "{err}"
    );
}

/// flex runs ResNet-18's convolutions and BatchNorm through its fused kernels, every other
/// backend through Burn's `conv2d` and composed ops: on ndarray the loss, the gradient of every
/// trained tensor and the updated running statistics must agree with flex's to f64 rounding.
#[test]
fn ndarray_runs_the_same_network_as_flexs_fused_kernels() {
    use overparam::device::{BackendKind, Precision};
    let config = config();
    let values = values();
    let d = config.input_dim;
    let x = inputs();
    let y: Vec<f64> = (0..N)
        .flat_map(|i| (0..CLASSES).map(move |k| f64::from(u8::from(k == (i + 1) % CLASSES))))
        .collect();
    let specs = config.layers();
    let mask: Vec<bool> = specs.iter().map(|s| s.trained_by_default).collect();
    let run = |backend: BackendKind| {
        let compute = Compute::new(backend, Precision::F64).unwrap();
        let tensors = Network::from_values(&config, &compute, &values)
            .unwrap()
            .values();
        let (_, statistics) = forward_train(&config, &tensors, compute.tensor(&x, [N, d]));
        let result = loss_and_gradients(
            &config,
            &tensors,
            &mask,
            compute.tensor(&x, [N, d]),
            compute.tensor(&y, [N, CLASSES]),
            Loss::CrossEntropy,
        );
        let gradients: Vec<Vec<f64>> = result
            .gradients
            .into_iter()
            .flatten()
            .map(to_f64_vec)
            .collect();
        let statistics: Vec<Vec<f64>> = statistics.into_iter().flatten().map(to_f64_vec).collect();
        (result.loss, gradients, statistics)
    };
    let (flex, ndarray) = (run(BackendKind::Flex), run(BackendKind::Ndarray));
    assert!(
        (flex.0 - ndarray.0).abs() < 1e-12,
        "loss {} vs {}",
        flex.0,
        ndarray.0
    );
    assert_eq!(flex.1.len(), ndarray.1.len());
    assert_eq!(flex.2.len(), 2 * 20, "two running statistics per BatchNorm");
    for (what, a, b) in [
        ("gradient", &flex.1, &ndarray.1),
        ("statistic", &flex.2, &ndarray.2),
    ] {
        for (k, (a, b)) in a.iter().zip(b).enumerate() {
            assert_close(&format!("{what} {k}"), a, b, 1e-11);
        }
    }
}
