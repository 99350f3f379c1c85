//! The float types of the flex kernels and their dtype dispatch.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{DType, FloatDType, TensorData};

/// The float types the kernels take: each value is widened to f64 and rounded back.
pub(crate) trait Lane: Copy + Send + Sync + bytemuck::Pod + burn::tensor::Element {
    /// The value in f64.
    fn widen(self) -> f64;
    /// `x` rounded to this type.
    fn narrow(x: f64) -> Self;
}

impl Lane for f64 {
    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }
    #[inline(always)]
    fn narrow(x: f64) -> Self {
        x
    }
}

impl Lane for f32 {
    #[inline(always)]
    fn widen(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn narrow(x: f64) -> Self {
        x as f32
    }
}

/// Runs a kernel on contiguous f32 or f64 views of flex tensors (the dtype of the first);
/// tensors of other float types are cast to f32 and the outputs cast back. The kernel returns
/// each output's values and `[rows, columns]`.
pub(crate) fn float_kernel<const N: usize, const K: usize>(
    inputs: [FlexTensor; N],
    run32: impl FnOnce([&[f32]; N]) -> [(Vec<f32>, [usize; 2]); K],
    run64: impl FnOnce([&[f64]; N]) -> [(Vec<f64>, [usize; 2]); K],
) -> [FlexTensor; K] {
    let dtype = inputs[0].dtype();
    let inputs = inputs.map(|t| match dtype {
        DType::F32 | DType::F64 => t.to_contiguous(),
        _ => Flex::float_cast(t, FloatDType::F32),
    });
    fn wrap<T: Lane>((values, shape): (Vec<T>, [usize; 2])) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }
    fn views<T: Lane, const N: usize>(inputs: &[FlexTensor; N]) -> [&[T]; N] {
        inputs
            .each_ref()
            .map(|t| t.as_slice::<T>().expect("a contiguous tensor has a slice"))
    }
    if dtype == DType::F64 {
        return run64(views(&inputs)).map(wrap);
    }
    let out = run32(views(&inputs)).map(wrap);
    if dtype == DType::F32 {
        return out;
    }
    out.map(|t| Flex::float_cast(t, dtype.into()))
}
