//! Helpers shared by the integration tests: tiny configs of every model, an independent
//! plain-loop forward pass to check Burn's against, and scratch folders.
#![allow(dead_code)]
// The reference is written with explicit layer indices, like the papers' equations.
#![allow(clippy::needless_range_loop)]

use overparam::models::{Activation, Architecture, ModelConfig};
use std::path::PathBuf;

/// A fresh folder under the system's temporary directory, unique to this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overparam-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One tiny config of every architecture (conv in 1-D and 2-D), input dimension as given.
pub fn tiny_models() -> Vec<ModelConfig> {
    let config = |input_dim, arch| ModelConfig {
        input_dim,
        arch,
        seed: 3,
    };
    vec![
        config(
            3,
            Architecture::Fc {
                depth: 3,
                width: 4,
                activation: Activation::Softplus,
            },
        ),
        config(
            3,
            Architecture::Resnet {
                depth: 3,
                width: 4,
                activation: Activation::Tanh,
                c_res: 0.5,
            },
        ),
        config(
            2 * 5,
            Architecture::ConvResnet {
                depth: 2,
                width: 3,
                activation: Activation::Erf,
                c_res: 0.5,
                channels: 2,
                spatial: vec![5],
                kernel: 3,
            },
        ),
        config(
            4 * 3,
            Architecture::ConvResnet {
                depth: 2,
                width: 2,
                activation: Activation::Gelu,
                c_res: 0.3,
                channels: 1,
                spatial: vec![4, 3],
                kernel: 3,
            },
        ),
        config(3, Architecture::TwoLayer { width: 6 }),
        config(3, Architecture::DeepRelu { depth: 2, width: 4 }),
        config(
            3,
            Architecture::Practical {
                blocks: 1,
                width: 4,
                activation: Activation::Sigmoid,
                outputs: 2,
            },
        ),
    ]
}

fn dense(w: &[f64], rows: usize, cols: usize, h: &[f64]) -> Vec<f64> {
    (0..rows)
        .map(|r| (0..cols).map(|c| w[r * cols + c] * h[c]).sum())
        .collect()
}

/// `W φ(h)` written out as loops: `h` is `[c_in][positions]` flattened channels-major, the
/// result `[m][positions]`; zero padding, stride 1, patch entries per channel then offset.
fn conv(w: &[f64], m: usize, c_in: usize, spatial: &[usize], k: usize, h: &[f64]) -> Vec<f64> {
    let pad = (k as isize - 1) / 2;
    let (rows, cols) = match spatial {
        [p] => (1, *p),
        [a, b] => (*a, *b),
        _ => unreachable!(),
    };
    let two_d = spatial.len() == 2;
    let kr = if two_d { k } else { 1 };
    let q = kr * k;
    let mut out = vec![0.0; m * rows * cols];
    for o in 0..m {
        for i in 0..rows {
            for j in 0..cols {
                let mut sum = 0.0;
                for c in 0..c_in {
                    for u in 0..kr {
                        for v in 0..k {
                            let ii = if two_d {
                                i as isize + u as isize - pad
                            } else {
                                0
                            };
                            let jj = j as isize + v as isize - pad;
                            if ii < 0 || jj < 0 || ii >= rows as isize || jj >= cols as isize {
                                continue;
                            }
                            let x = h[c * rows * cols + ii as usize * cols + jj as usize];
                            sum += w[o * c_in * q + c * q + u * k + v] * x;
                        }
                    }
                }
                out[o * rows * cols + i * cols + j] = sum;
            }
        }
    }
    out
}

/// The papers' forward pass for one input, written independently of the library's tensor code.
pub fn reference_forward(config: &ModelConfig, params: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    let d = config.input_dim;
    let relu = |v: f64| v.max(0.0);
    match &config.arch {
        Architecture::Fc {
            depth,
            width,
            activation,
        } => {
            let s = (activation.c_sigma() / *width as f64).sqrt();
            let mut h = x.to_vec();
            for l in 0..*depth {
                let cols = if l == 0 { d } else { *width };
                h = dense(&params[l], *width, cols, &h)
                    .iter()
                    .map(|&z| s * activation.eval(z))
                    .collect();
            }
            dense(&params[*depth], 1, *width, &h)
        }
        Architecture::Resnet {
            depth,
            width,
            activation,
            c_res,
        } => {
            let m = *width as f64;
            let s = (activation.c_sigma() / m).sqrt();
            let mut h: Vec<f64> = dense(&params[0], *width, d, x)
                .iter()
                .map(|&z| s * activation.eval(z))
                .collect();
            for l in 1..*depth {
                let z = dense(&params[l], *width, *width, &h);
                for (hr, zr) in h.iter_mut().zip(z) {
                    *hr += c_res / (*depth as f64 * m.sqrt()) * activation.eval(zr);
                }
            }
            dense(&params[*depth], 1, *width, &h)
        }
        Architecture::ConvResnet {
            depth,
            width,
            activation,
            c_res,
            channels,
            spatial,
            kernel,
        } => {
            let m = *width as f64;
            let s = (activation.c_sigma() / m).sqrt();
            let mut h: Vec<f64> = conv(&params[0], *width, *channels, spatial, *kernel, x)
                .iter()
                .map(|&z| s * activation.eval(z))
                .collect();
            for l in 1..*depth {
                let z = conv(&params[l], *width, *width, spatial, *kernel, &h);
                for (hr, zr) in h.iter_mut().zip(z) {
                    *hr += c_res / (*depth as f64 * m.sqrt()) * activation.eval(zr);
                }
            }
            vec![params[*depth].iter().zip(&h).map(|(a, v)| a * v).sum()]
        }
        Architecture::TwoLayer { width } => {
            let z = dense(&params[0], *width, d, x);
            let sum: f64 = z.iter().zip(&params[1]).map(|(&z, a)| a * relu(z)).sum();
            vec![sum / (*width as f64).sqrt()]
        }
        Architecture::DeepRelu { depth, width } => {
            let mut h = x.to_vec();
            for l in 0..*depth {
                let cols = if l == 0 { d } else { *width };
                h = dense(&params[l], *width, cols, &h)
                    .into_iter()
                    .map(relu)
                    .collect();
            }
            dense(&params[*depth], 1, *width, &h)
        }
        Architecture::Resnet18 { .. } => {
            unreachable!("ResNet-18's own tests (tests/resnet18.rs) keep its reference")
        }
        Architecture::Practical {
            blocks,
            width,
            activation,
            outputs,
        } => {
            let affine = |w: &[f64], b: &[f64], rows, cols, h: &[f64]| -> Vec<f64> {
                dense(w, rows, cols, h)
                    .iter()
                    .zip(b)
                    .map(|(z, b)| z + b)
                    .collect()
            };
            let act =
                |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|z| activation.eval(z)).collect() };
            let mut h = act(affine(&params[0], &params[1], *width, d, x));
            for b in 0..*blocks {
                let p = &params[2 + 4 * b..6 + 4 * b];
                let inner = act(affine(&p[0], &p[1], *width, *width, &h));
                let branch = affine(&p[2], &p[3], *width, *width, &inner);
                h = act(h.iter().zip(branch).map(|(a, b)| a + b).collect());
            }
            affine(
                &params[2 + 4 * blocks],
                &params[3 + 4 * blocks],
                *outputs,
                *width,
                &h,
            )
        }
    }
}
