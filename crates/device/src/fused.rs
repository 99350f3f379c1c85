//! Softplus on flex as one fused, vectorized, multi-threaded pass each way.
//!
//! A's guiding activation `σ(z) = log(1 + e^z)` (A §3.1) and its derivative, the logistic
//! function, are the only transcendental work of a GD step on A's nets. flex evaluates them one
//! element at a time with the C library's `exp` and `log1p` on one core; here they run as a
//! Burn backend extension: [`crate::vmath`]'s branch-free formulas, compiled for AVX-512 or
//! AVX2 + FMA (picked at run time), over chunks split across rayon's threads. On autodiff the
//! backward rule `∂σ(z)/∂z = 1/(1 + e^{−z})` is one more such pass.
//!
//! Without FMA ([`vmath::Simd::None`]: x86-64 before AVX2 + FMA, architectures other than
//! x86-64 and aarch64) and for half-precision tensors, flex's own `log σ` op is used.

use crate::lanes::Lane;
use crate::vmath::{self, Simd};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Softplus and its backward rule as backend operations.
#[backend_extension(Flex, Autodiff)]
pub trait FusedSoftplus: Backend {
    /// `log(1 + e^z)`, elementwise.
    fn softplus(z: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `grad · σ(z)` with the logistic `σ(z) = 1/(1 + e^{−z})`, elementwise.
    fn softplus_backward(z: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Softplus of a flex tensor (with or without autodiff) through [`FusedSoftplus`].
pub fn softplus<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedSoftplus>::softplus(z.into_dispatch()))
}

impl FusedSoftplus for Flex {
    fn softplus(z: FlexTensor) -> FlexTensor {
        map::<Softplus>(z.clone(), z, |z, _| {
            Flex::float_neg(Flex::log_sigmoid(Flex::float_neg(z)))
        })
    }

    fn softplus_backward(z: FlexTensor, grad: FlexTensor) -> FlexTensor {
        map::<SoftplusGrad>(z, grad, |z, grad| Flex::float_mul(grad, Flex::sigmoid(z)))
    }
}

/// An elementwise map `(z, g) ↦ out` evaluated in f64.
trait Kernel: Send + Sync {
    fn eval(z: f64, g: f64) -> f64;
}

/// `log(1 + e^z)` (ignores `g`).
struct Softplus;

impl Kernel for Softplus {
    #[inline(always)]
    fn eval(z: f64, _: f64) -> f64 {
        vmath::softplus(z)
    }
}

/// `g σ(z)`.
struct SoftplusGrad;

impl Kernel for SoftplusGrad {
    #[inline(always)]
    fn eval(z: f64, g: f64) -> f64 {
        g * vmath::sigmoid(z)
    }
}

/// Elements per task: large enough to amortize rayon, small enough to split a layer's
/// activations over every core.
const CHUNK: usize = 1 << 15;

/// `K` over `z` and `g` (same shape) into a new contiguous tensor; `fallback` (flex's own ops)
/// when the CPU has no FMA or the dtype is not f32/f64.
fn map<K: Kernel>(
    z: FlexTensor,
    g: FlexTensor,
    fallback: impl FnOnce(FlexTensor, FlexTensor) -> FlexTensor,
) -> FlexTensor {
    let isa = Simd::detect();
    if isa == Simd::None || z.dtype() != g.dtype() || z.shape() != g.shape() {
        return fallback(z, g);
    }
    match z.dtype() {
        DType::F64 => map_typed::<K, f64>(isa, &z, &g),
        DType::F32 => map_typed::<K, f32>(isa, &z, &g),
        _ => fallback(z, g),
    }
}

fn map_typed<K: Kernel, T: Lane>(isa: Simd, z: &FlexTensor, g: &FlexTensor) -> FlexTensor {
    let shape = z.shape();
    let (z, g) = (z.to_contiguous(), g.to_contiguous());
    let zs = z.as_slice::<T>().expect("a contiguous tensor has a slice");
    let gs = g.as_slice::<T>().expect("a contiguous tensor has a slice");
    let mut out = vec![T::narrow(0.0); zs.len()];
    out.par_chunks_mut(CHUNK)
        .zip(zs.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
        .for_each(|(out, (z, g))| simd::run::<K, T>(isa, z, g, out));
    FlexTensor::from_data(TensorData::new(out, shape))
}

/// Runs a kernel over slices with the widest FMA instruction set the CPU has.
mod simd {
    use super::{Kernel, Lane};
    use crate::vmath::Simd;

    #[inline(always)]
    fn lanes<K: Kernel, T: Lane>(z: &[T], g: &[T], out: &mut [T]) {
        for ((o, &z), &g) in out.iter_mut().zip(z).zip(g) {
            *o = T::narrow(K::eval(z.widen(), g.widen()));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
    fn lanes_avx512<K: Kernel, T: Lane>(z: &[T], g: &[T], out: &mut [T]) {
        lanes::<K, T>(z, g, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn lanes_avx2<K: Kernel, T: Lane>(z: &[T], g: &[T], out: &mut [T]) {
        lanes::<K, T>(z, g, out);
    }

    /// `out[i] = K(z[i], g[i])` compiled for `isa`, as detected (never `Simd::None`: the
    /// polynomials need fused multiply–add).
    pub fn run<K: Kernel, T: Lane>(isa: Simd, z: &[T], g: &[T], out: &mut [T]) {
        match isa {
            // SAFETY: each variant runs only where its features were detected.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { lanes_avx512::<K, T>(z, g, out) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { lanes_avx2::<K, T>(z, g, out) },
            _ => lanes::<K, T>(z, g, out),
        }
    }
}

/// The backward step of [`FusedSoftplus::softplus`] on autodiff: keeps `z`.
#[derive(Debug)]
struct SoftplusBackward;

impl<B: FusedSoftplus> Backward<B, 1> for SoftplusBackward {
    type State = B::FloatTensorPrimitive;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let z = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::softplus_backward(z, grad)
        });
    }
}

impl<B: FusedSoftplus, C: CheckpointStrategy> FusedSoftplus for Autodiff<B, C> {
    fn softplus(z: FloatTensor<Self>) -> FloatTensor<Self> {
        let (z, node) = z.into_parts();
        match SoftplusBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(z.clone(), B::softplus(z)),
            OpsKind::UnTracked(prep) => prep.finish(B::softplus(z)),
        }
    }

    /// Only reached when differentiating twice: Burn's differentiable ops.
    fn softplus_backward(z: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_mul(grad, Self::sigmoid(z))
    }
}

#[cfg(test)]
mod tests {
    use crate::vmath::reference::{sigmoid, softplus};
    use crate::{BackendKind, Compute, Precision, to_f64_vec};

    /// Large enough for several threads' chunks, with a ragged last one; transposed, so the
    /// kernel reads a non-contiguous view; values over the range where each branch matters.
    #[test]
    fn fused_softplus_and_its_gradient_match_the_formulas_in_both_precisions() {
        let (rows, cols) = (331, 307);
        let z: Vec<f64> = (0..rows * cols)
            .map(|i| {
                let t = (i as f64 * 0.618_033_988_749_895).fract();
                let s = (i as f64 * 0.414_213_562_373_095).fract();
                (2.0 * t - 1.0) * if i % 7 == 0 { 720.0 } else { 30.0 * s }
            })
            .collect();
        // The gradient of Σ w ⊙ σ(zᵀ) with weights w, so that the backward multiplies.
        let w: Vec<f64> = (0..rows * cols).map(|i| 0.5 + (i % 13) as f64).collect();
        // Relative tolerance and a floor of a few subnormal steps (the tails underflow).
        for (precision, tol, floor) in [
            (Precision::F64, 4.0 * f64::EPSILON, 1e-322),
            (Precision::F32, 1.2e-7, 3e-45),
        ] {
            let round = |x: f64| match precision {
                Precision::F32 => f64::from(x as f32),
                Precision::F64 => x,
            };
            let compute = Compute::new(BackendKind::Flex, precision).expect("flex");
            let leaf = compute.tensor(&z, [rows, cols]).autodiff().require_grad();
            let weights = compute.tensor(&w, [cols, rows]).autodiff();
            let out = super::softplus(leaf.clone().transpose());
            let loss = (out.clone() * weights).sum();
            let grad = to_f64_vec(leaf.grad(&loss.backward()).expect("leaf"));
            let values = to_f64_vec(out.without_autodiff());
            // The inputs as the network sees them (rounded to f32 in f32).
            let zs = to_f64_vec(compute.tensor(&z, [rows, cols]));
            for i in 0..rows {
                for j in 0..cols {
                    let (zk, v, g) = (zs[i * cols + j], values[j * rows + i], grad[i * cols + j]);
                    let want_v = round(softplus(zk));
                    let want_g = round(w[j * rows + i] * sigmoid(zk));
                    assert!(
                        (v - want_v).abs() <= tol * want_v.abs() + floor,
                        "{precision:?} softplus({zk}) = {v} vs {want_v}"
                    );
                    assert!(
                        (g - want_g).abs() <= tol * want_g.abs() + floor,
                        "{precision:?} gradient at {zk} = {g} vs {want_g}"
                    );
                }
            }
        }
    }
}
