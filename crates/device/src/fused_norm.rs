//! [`crate::norm`]'s training-mode BatchNorm on flex: one fused pass per row each way.
//!
//! Forward, per row: the mean and the biased variance (two sweeps over the row while it is in
//! cache, accumulated in f64), then `out = a z + b` with `a = γ/√(v + ε)`, `b = β − a μ`.
//! Backward, per row: `Σ ḡ` and `Σ ḡ (z − μ)` in one sweep, then `∂z` in another. Rows run on
//! rayon's threads. The backward rule itself is not differentiable again (like Burn's own
//! `batch_norm_train_backward`); nothing here differentiates twice.

use crate::lanes::{Lane, float_kernel};
use crate::norm::BatchNormRows;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, s};
use rayon::prelude::*;

/// Training-mode BatchNorm over rows and its backward rule as backend operations.
#[backend_extension(Flex, Autodiff)]
pub trait RowBatchNorm: Backend {
    /// `(γ (z − μ)/√(v + ε) + β, [μ, v])` for `z: [c, m]`, `γ, β: [c, 1]`; the moments are
    /// `[c, 2]`.
    fn row_batch_norm(
        z: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `(∂z, ∂γ, ∂β)` for the upstream gradient `grad` of the output.
    fn row_batch_norm_backward(
        z: FloatTensor<Self>,
        moments: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// [`crate::norm::batch_norm`] of flex tensors (with or without autodiff).
pub fn batch_norm(z: Tensor<2>, gamma: Tensor<2>, beta: Tensor<2>, epsilon: f64) -> BatchNormRows {
    let (output, moments) = <Dispatch as RowBatchNorm>::row_batch_norm(
        z.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    let moments = Tensor::<2>::from_dispatch(moments).without_autodiff();
    let channels = moments.dims()[0];
    BatchNormRows {
        output: Tensor::from_dispatch(output),
        mean: moments.clone().slice(s![0..channels, 0..1]),
        variance: moments.slice(s![0..channels, 1..2]),
    }
}

/// Mean and biased variance of a row (two sweeps).
fn moments<T: Lane>(z: &[T]) -> (f64, f64) {
    let m = z.len() as f64;
    let mean = z.iter().map(|&x| x.widen()).sum::<f64>() / m;
    let var = z
        .iter()
        .map(|&x| {
            let d = x.widen() - mean;
            d * d
        })
        .sum::<f64>()
        / m;
    (mean, var)
}

fn forward<T: Lane>(
    [z, gamma, beta]: [&[T]; 3],
    row: usize,
    epsilon: f64,
) -> [(Vec<T>, [usize; 2]); 2] {
    let channels = gamma.len();
    let mut out = vec![T::narrow(0.0); z.len()];
    let mut stats = vec![T::narrow(0.0); 2 * channels];
    out.par_chunks_mut(row)
        .zip(z.par_chunks(row))
        .zip(stats.par_chunks_mut(2))
        .enumerate()
        .for_each(|(c, ((out, z), stats))| {
            let (mean, var) = moments(z);
            let a = gamma[c].widen() / (var + epsilon).sqrt();
            let b = beta[c].widen() - a * mean;
            for (o, &x) in out.iter_mut().zip(z) {
                *o = T::narrow(a * x.widen() + b);
            }
            stats[0] = T::narrow(mean);
            stats[1] = T::narrow(var);
        });
    [(out, [channels, row]), (stats, [channels, 2])]
}

fn backward<T: Lane>(
    [z, stats, gamma, grad]: [&[T]; 4],
    row: usize,
    epsilon: f64,
) -> [(Vec<T>, [usize; 2]); 3] {
    let channels = gamma.len();
    let m = row as f64;
    let mut dz = vec![T::narrow(0.0); z.len()];
    let mut affine = vec![(0.0, 0.0); channels];
    dz.par_chunks_mut(row)
        .zip(z.par_chunks(row).zip(grad.par_chunks(row)))
        .zip(affine.par_iter_mut())
        .enumerate()
        .for_each(|(c, ((dz, (z, g)), affine))| {
            let (mean, var) = (stats[2 * c].widen(), stats[2 * c + 1].widen());
            let inv = 1.0 / (var + epsilon).sqrt();
            let (mut sum_g, mut sum_gz) = (0.0, 0.0);
            for (&x, &g) in z.iter().zip(g) {
                let g = g.widen();
                sum_g += g;
                sum_gz += g * (x.widen() - mean);
            }
            // ∂z = a (ḡ − Σḡ/m − x̂ Σḡx̂/m), x̂ = (z − μ)·inv, a = γ·inv.
            let a = gamma[c].widen() * inv;
            let (shift, slope) = (-a * sum_g / m, -a * inv * inv * sum_gz / m);
            for ((d, &x), &g) in dz.iter_mut().zip(z).zip(g) {
                *d = T::narrow(a * g.widen() + slope * (x.widen() - mean) + shift);
            }
            *affine = (inv * sum_gz, sum_g);
        });
    let column = |f: fn(&(f64, f64)) -> f64| affine.iter().map(|p| T::narrow(f(p))).collect();
    [
        (dz, [channels, row]),
        (column(|p| p.0), [channels, 1]),
        (column(|p| p.1), [channels, 1]),
    ]
}

impl RowBatchNorm for Flex {
    fn row_batch_norm(
        z: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor) {
        let row = z.shape()[1];
        let [out, stats] = float_kernel(
            [z, gamma, beta],
            |v| forward(v, row, epsilon),
            |v| forward(v, row, epsilon),
        );
        (out, stats)
    }

    fn row_batch_norm_backward(
        z: FlexTensor,
        moments: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let row = z.shape()[1];
        let [dz, dgamma, dbeta] = float_kernel(
            [z, moments, gamma, grad],
            |v| backward(v, row, epsilon),
            |v| backward(v, row, epsilon),
        );
        (dz, dgamma, dbeta)
    }
}

/// The backward step of [`RowBatchNorm::row_batch_norm`] on autodiff: keeps `z`, the
/// moments, `γ` and `ε`.
#[derive(Debug)]
struct NormBackward;

impl<B: RowBatchNorm> Backward<B, 3> for NormBackward {
    type State = (
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        f64,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (z, moments, gamma, epsilon) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (dz, dgamma, dbeta) = B::row_batch_norm_backward(z, moments, gamma, grad, epsilon);
        for (parent, grad) in ops.parents.into_iter().zip([dz, dgamma, dbeta]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: RowBatchNorm, C: CheckpointStrategy> RowBatchNorm for Autodiff<B, C> {
    fn row_batch_norm(
        z: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (z, z_node) = z.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let (out, moments) = B::row_batch_norm(z.clone(), gamma.clone(), beta, epsilon);
        let out = match NormBackward
            .prepare::<C>([z_node, gamma_node, beta_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((z, moments.clone(), gamma, epsilon), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, FloatTensor::<Self>::new(moments))
    }

    /// # Panics
    /// Always: the backward rule is not differentiable (as Burn's `batch_norm_train_backward`).
    fn row_batch_norm_backward(
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: FloatTensor<Self>,
        _: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        panic!("the BatchNorm backward rule cannot be differentiated again")
    }
}

#[cfg(test)]
mod tests {
    use crate::norm::{batch_norm, batch_norm_composed};
    use crate::{BackendKind, Compute, Precision, to_f64_vec};

    /// The fused pass against Burn's composed ops: output, batch moments and the gradients of
    /// `Σ r ⊙ out` in z, γ and β; rows offset far from zero (the variance must not cancel)
    /// and a transposed (non-contiguous) input.
    #[test]
    fn fused_batch_norm_matches_the_composed_ops() {
        let (channels, m) = (7, 3001);
        let value = |i: usize, k: f64| (i as f64 * k).fract() * 2.0 - 1.0;
        let z: Vec<f64> = (0..channels * m)
            .map(|i| 50.0 * (i % channels) as f64 + (1.0 + (i % 5) as f64) * value(i, 0.618_034))
            .collect();
        let r: Vec<f64> = (0..channels * m).map(|i| value(i, 0.414_214)).collect();
        let gamma: Vec<f64> = (0..channels).map(|c| 0.5 + 0.3 * c as f64).collect();
        let beta: Vec<f64> = (0..channels).map(|c| 0.2 * c as f64 - 0.5).collect();
        // The reference is the composed ops in f64 on the same (f32-rounded, for f32) inputs:
        // in f32 the composed ops lose digits to the row offsets, the fused pass does not.
        let run = |precision: Precision, fused: bool| {
            let compute = Compute::new(BackendKind::Flex, precision).expect("flex");
            let round = |v: &[f64]| -> Vec<f64> {
                match precision {
                    Precision::F32 => v.iter().map(|&x| f64::from(x as f32)).collect(),
                    Precision::F64 => v.to_vec(),
                }
            };
            let f64_compute = Compute::new(BackendKind::Flex, Precision::F64).expect("flex");
            let compute = if fused { compute } else { f64_compute };
            // z is stored [m, c] and used transposed.
            let zt = compute
                .tensor(&round(&z), [m, channels])
                .autodiff()
                .require_grad();
            let g = compute
                .tensor(&round(&gamma), [channels, 1])
                .autodiff()
                .require_grad();
            let b = compute
                .tensor(&round(&beta), [channels, 1])
                .autodiff()
                .require_grad();
            let f = if fused {
                batch_norm
            } else {
                batch_norm_composed
            };
            let out = f(zt.clone().transpose(), g.clone(), b.clone(), 1e-5);
            let weights = compute.tensor(&round(&r), [channels, m]).autodiff();
            let grads = (out.output.clone() * weights).sum().backward();
            [
                to_f64_vec(out.output.without_autodiff()),
                to_f64_vec(out.mean),
                to_f64_vec(out.variance),
                to_f64_vec(zt.grad(&grads).expect("z")),
                to_f64_vec(g.grad(&grads).expect("γ")),
                to_f64_vec(b.grad(&grads).expect("β")),
            ]
        };
        for (precision, tol) in [(Precision::F64, 1e-12), (Precision::F32, 1e-6)] {
            let (got, want) = (run(precision, true), run(precision, false));
            for (k, what) in ["out", "μ", "v", "∂z", "∂γ", "∂β"].iter().enumerate() {
                let scale = want[k].iter().fold(0.0f64, |a, x| a.max(x.abs()));
                for (i, (g, w)) in got[k].iter().zip(&want[k]).enumerate() {
                    assert!(
                        (g - w).abs() <= tol * scale,
                        "{precision:?} {what}[{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}
