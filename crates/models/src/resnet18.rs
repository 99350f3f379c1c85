//! D's ResNet-18 (papers.md §4.4, Figure 1): the CIFAR-style ResNet-18 of He et al. with
//! BatchNorm, built from 2-D parameter matrices like every other network here.
//!
//! - Stem: 3 × 3 conv (stride 1, padding 1) from the input channels to `w`, BatchNorm, ReLU.
//! - Four stages of two BasicBlocks at widths `w, 2w, 4w, 8w` with strides `1, 2, 2, 2`.
//!   A block is `relu(BN(conv₃(relu(BN(conv₃(x))))) + s(x))` where the first 3 × 3 conv
//!   carries the stride and the shortcut `s` is the identity, or a 1 × 1 conv with the
//!   stride followed by BatchNorm when the shape changes.
//! - Global average pool over the remaining positions, then a linear read-out to k classes.
//!
//! Conv weights are stored as `[out, in·k·k]` (PyTorch's `weight.reshape(out, -1)`), BatchNorm's
//! γ and β as `[1, c]`, and its running mean and variance as `[1, c]` layers of kind
//! [`LayerKind::Statistic`]: they are never trained, they are part of the saved state, and the
//! training forward pass returns their updated values. Names follow torchvision's state dict
//! (`layer2.0.downsample.0.weight`, `bn1.running_var`, …).
//!
//! BatchNorm (Ioffe & Szegedy 2015, PyTorch's defaults): in training mode it normalizes with
//! the batch's per-channel mean and biased variance over (samples, positions), ε = 10⁻⁵, and
//! moves the running statistics by `r ← (1 − 0.1) r + 0.1 s`, with the unbiased batch variance
//! for `s`; in evaluation mode it normalizes with the running statistics, so that the network
//! is a function of each sample alone (what the Gram matrices and accuracies use).
//!
//! Init as torchvision's: convs `N(0, 2/(out·k·k))` (He, fan-out), γ = 1, β = 0, running
//! mean 0 and variance 1; the read-out `N(0, 1/(8w))` (torchvision draws it uniform with the
//! same fan-in scale) and a zero bias.

use crate::config::{Init, LayerKind, LayerSpec};
use burn::tensor::Tensor;
use overparam_device::conv::{ConvGeometry, conv2d};
use overparam_device::norm::{batch_norm, normalizer};

/// BatchNorm's ε (PyTorch's default).
pub const EPSILON: f64 = 1e-5;
/// BatchNorm's running-statistics momentum (PyTorch's default).
pub const MOMENTUM: f64 = 0.1;

/// Widths multiply by 2 and positions halve at the start of stages 2, 3 and 4.
const STAGES: usize = 4;
const BLOCKS_PER_STAGE: usize = 2;

/// Whether the forward pass uses batch statistics (training) or running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics; the pass returns the updated running statistics.
    Train,
    /// Running statistics: each output depends on its own sample only.
    Eval,
}

/// One conv of the net: its name stem, channels, patch side and stride.
struct ConvShape {
    name: String,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
}

/// The convs of the net in forward order, each followed by its BatchNorm.
fn convs(channels: usize, width: usize) -> Vec<ConvShape> {
    let conv = |name: String, c_in, c_out, kernel, stride| ConvShape {
        name,
        c_in,
        c_out,
        kernel,
        stride,
    };
    let mut out = vec![conv("conv1".into(), channels, width, 3, 1)];
    let mut c_in = width;
    for stage in 0..STAGES {
        let c_out = width << stage;
        for block in 0..BLOCKS_PER_STAGE {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let prefix = format!("layer{}.{block}", stage + 1);
            out.push(conv(format!("{prefix}.conv1"), c_in, c_out, 3, stride));
            out.push(conv(format!("{prefix}.conv2"), c_out, c_out, 3, 1));
            if stride != 1 || c_in != c_out {
                out.push(conv(
                    format!("{prefix}.downsample.0"),
                    c_in,
                    c_out,
                    1,
                    stride,
                ));
            }
            c_in = c_out;
        }
    }
    out
}

/// The BatchNorm after a conv: `conv1` → `bn1`, `….conv2` → `….bn2`, `….downsample.0` →
/// `….downsample.1`.
fn norm_name(conv: &str) -> String {
    if let Some(stem) = conv.strip_suffix(".0") {
        format!("{stem}.1")
    } else {
        let (stem, index) = conv.rsplit_once("conv").expect("conv names contain 'conv'");
        format!("{stem}bn{index}")
    }
}

fn spec(name: String, shape: [usize; 2], kind: LayerKind, init: Init) -> LayerSpec {
    LayerSpec {
        name,
        shape,
        kind,
        init,
        trained_by_default: kind != LayerKind::Statistic,
    }
}

/// The parameter and statistic tensors, in forward order: per conv its weight, then its
/// BatchNorm's weight (γ), bias (β), running mean and running variance; last `fc.weight`
/// `[k, 8w]` and `fc.bias` `[1, k]`.
pub fn layers(channels: usize, width: usize, outputs: usize) -> Vec<LayerSpec> {
    let mut out = Vec::new();
    for c in convs(channels, width) {
        let fan_out = c.c_out * c.kernel * c.kernel;
        out.push(spec(
            format!("{}.weight", c.name),
            [c.c_out, c.c_in * c.kernel * c.kernel],
            LayerKind::Conv,
            Init::Gaussian {
                std: (2.0 / fan_out as f64).sqrt(),
            },
        ));
        let bn = norm_name(&c.name);
        let per_channel = [1, c.c_out];
        out.push(spec(
            format!("{bn}.weight"),
            per_channel,
            LayerKind::Norm,
            Init::Ones,
        ));
        out.push(spec(
            format!("{bn}.bias"),
            per_channel,
            LayerKind::Norm,
            Init::Zeros,
        ));
        out.push(spec(
            format!("{bn}.running_mean"),
            per_channel,
            LayerKind::Statistic,
            Init::Zeros,
        ));
        out.push(spec(
            format!("{bn}.running_var"),
            per_channel,
            LayerKind::Statistic,
            Init::Ones,
        ));
    }
    let features = width << (STAGES - 1);
    out.push(spec(
        "fc.weight".into(),
        [outputs, features],
        LayerKind::Readout,
        Init::Gaussian {
            std: (1.0 / features as f64).sqrt(),
        },
    ));
    out.push(spec(
        "fc.bias".into(),
        [1, outputs],
        LayerKind::Bias,
        Init::Zeros,
    ));
    out
}

/// The output of a forward pass.
pub struct Output {
    /// Logits `[n, k]`.
    pub logits: Tensor<2>,
    /// In training mode, the new value of every running statistic by layer index (`None` for
    /// the other layers and in evaluation mode).
    pub statistics: Vec<Option<Tensor<2>>>,
}

/// Reads the parameters in order and applies conv + BatchNorm units.
///
/// Activations are channel-major matrices `[c, n·h·w]` (one row per channel; see
/// [`overparam_device::conv`]): convolutions are one product per tile of images and BatchNorm's
/// statistics are row means, with no layout change between layers.
struct Pass<'a> {
    params: &'a [Tensor<2>],
    next: usize,
    mode: Mode,
    images: usize,
    statistics: Vec<Option<Tensor<2>>>,
}

impl Pass<'_> {
    fn take(&mut self) -> Tensor<2> {
        let t = self.params[self.next].clone();
        self.next += 1;
        t
    }

    /// `BN(conv(x))` for the next conv of [`convs`] on `x: [c_in, n·h·w]` with `[h, w] =
    /// spatial`; returns `[c_out, n·h'·w']` and `[h', w']`.
    fn conv_norm(
        &mut self,
        x: Tensor<2>,
        spatial: [usize; 2],
        c: &ConvShape,
    ) -> (Tensor<2>, [usize; 2]) {
        let geometry = ConvGeometry {
            images: self.images,
            height: spatial[0],
            width: spatial[1],
            kernel: c.kernel,
            stride: c.stride,
            padding: (c.kernel - 1) / 2,
        };
        let z = conv2d(x, self.take(), geometry);
        let column = [c.c_out, 1];
        let gamma = self.take().reshape(column);
        let beta = self.take().reshape(column);
        let (mean_index, var_index) = (self.next, self.next + 1);
        let running_mean = self.take();
        let running_var = self.take();
        let normalized = match self.mode {
            Mode::Eval => normalize(
                z,
                running_mean.reshape(column),
                running_var.reshape(column),
                gamma,
                beta,
            ),
            Mode::Train => {
                let count = z.dims()[1] as f64;
                let batch = batch_norm(z, gamma, beta, EPSILON);
                let unbiased = if count > 1.0 {
                    count / (count - 1.0)
                } else {
                    1.0
                };
                let row = [1, c.c_out];
                let keep = 1.0 - MOMENTUM;
                self.statistics[mean_index] = Some(
                    running_mean.mul_scalar(keep) + batch.mean.reshape(row).mul_scalar(MOMENTUM),
                );
                self.statistics[var_index] = Some(
                    running_var.mul_scalar(keep)
                        + batch.variance.reshape(row).mul_scalar(MOMENTUM * unbiased),
                );
                batch.output
            }
        };
        (normalized, [geometry.out_height(), geometry.out_width()])
    }
}

/// BatchNorm with given statistics: `(z − μ) γ / √(v + ε) + β` per row of `z`.
fn normalize(
    z: Tensor<2>,
    mean: Tensor<2>,
    var: Tensor<2>,
    gamma: Tensor<2>,
    beta: Tensor<2>,
) -> Tensor<2> {
    (z - mean) * normalizer(var, gamma, EPSILON) + beta
}

/// The forward pass on inputs `x: [n, channels·height·width]` (channels-major images).
pub fn forward(
    params: &[Tensor<2>],
    x: Tensor<2>,
    channels: usize,
    spatial: [usize; 2],
    width: usize,
    mode: Mode,
) -> Output {
    use burn::tensor::activation::relu;
    let n = x.dims()[0];
    let mut pass = Pass {
        params,
        next: 0,
        mode,
        images: n,
        statistics: vec![None; params.len()],
    };
    let shapes = convs(channels, width);
    let mut units = shapes.iter();
    let mut unit = || {
        units
            .next()
            .expect("the conv list matches the forward order")
    };
    let pixels = spatial[0] * spatial[1];
    let rows = x
        .reshape([n, channels, pixels])
        .swap_dims(0, 1)
        .reshape([channels, n * pixels]);
    let (stem, mut size) = pass.conv_norm(rows, spatial, unit());
    let mut h = relu(stem);
    for _ in 0..STAGES * BLOCKS_PER_STAGE {
        let first = unit();
        let (inner, inner_size) = pass.conv_norm(h.clone(), size, first);
        let (residual, out_size) = pass.conv_norm(relu(inner), inner_size, unit());
        let projects = first.stride != 1 || first.c_in != first.c_out;
        let shortcut = if projects {
            pass.conv_norm(h, size, unit()).0
        } else {
            h
        };
        h = relu(residual + shortcut);
        size = out_size;
    }
    let c = h.dims()[0];
    let pooled = h
        .reshape([c, n, size[0] * size[1]])
        .mean_dim(2)
        .reshape([c, n])
        .transpose();
    let w = pass.take();
    let b = pass.take();
    Output {
        logits: pooled.matmul(w.transpose()) + b,
        statistics: pass.statistics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_torchvision() {
        let specs = layers(3, 64, 10);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for name in [
            "conv1.weight",
            "bn1.weight",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer1.1.bn2.bias",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_mean",
            "layer4.1.conv2.weight",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        // 20 convs (stem, 16 in blocks, 3 projections), each with 4 BatchNorm tensors, + fc.
        assert_eq!(specs.len(), 20 * 5 + 2);
    }

    #[test]
    fn parameter_count_is_resnet18s() {
        // The CIFAR ResNet-18 with 10 classes has 11 173 962 trained parameters.
        let trained: usize = layers(3, 64, 10)
            .iter()
            .filter(|s| s.kind != LayerKind::Statistic)
            .map(|s| s.shape[0] * s.shape[1])
            .sum();
        assert_eq!(trained, 11_173_962);
    }
}
