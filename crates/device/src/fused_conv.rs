//! [`crate::conv`]'s channel-major convolution on flex: patch matrix and GEMM per tile of images.
//!
//! Each of the three products, `Y = W·X̂`, `∂W = Ȳ·X̂ᵀ` and `∂X = col2im(Wᵀ·Ȳ)`, runs over tiles
//! of whole images on rayon's threads. A tile's patch matrix `X̂` (im2col) is built in a
//! reusable per-thread buffer sized to stay in cache and handed to the `gemm` crate
//! single-threaded; tiles write disjoint columns of `Y` and disjoint images of `∂X`, and the
//! weight gradient sums one partial product per task. In this layout the GEMM's long dimension
//! is always the pixels, so its vector lanes run along them whatever the channel count.
//!
//! On autodiff the three operations are closed under differentiation, so one backward node
//! serves all of them: with upstream gradient `G`,
//! `Y = F(X, W)` gives `∂X = D(W, G)`, `∂W = V(X, G)`; `D(W, Ȳ)` gives `∂W = V(G, Ȳ)`,
//! `∂Ȳ = F(G, W)`; `V(X, Ȳ)` gives `∂X = D(G, Ȳ)`, `∂Ȳ = F(X, G)` (`F` the convolution, `D`
//! its input gradient, `V` its weight gradient; all three are bilinear).

use crate::conv::ConvGeometry;
use crate::lanes::{Lane, float_kernel};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// The convolution of [`crate::conv`] and its two gradients as backend operations.
#[backend_extension(Flex, Autodiff)]
pub trait ChannelConv: Backend {
    /// `F(x, w)`: `[c, n·h·w]`, `[c_out, c·k·k]` → `[c_out, n·h_out·w_out]`.
    fn channel_conv(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self>;
    /// `D(w, ȳ) = col2im(wᵀ ȳ)`: the gradient with respect to `x`, `[c, n·h·w]`.
    fn channel_conv_input_grad(
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self>;
    /// `V(x, ȳ) = ȳ X̂ᵀ`: the gradient with respect to `w`, `[c_out, c·k·k]`.
    fn channel_conv_weight_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self>;
}

/// [`crate::conv::conv2d`] of flex tensors (with or without autodiff).
pub fn conv2d(x: Tensor<2>, w: Tensor<2>, geometry: ConvGeometry) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as ChannelConv>::channel_conv(
        x.into_dispatch(),
        w.into_dispatch(),
        geometry,
    ))
}

/// Which of the three bilinear operations, applied to its two operands `(a, b)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `F(x, w)`.
    Forward,
    /// `D(w, ȳ)`.
    InputGrad,
    /// `V(x, ȳ)`.
    WeightGrad,
}

impl Op {
    fn run<B: ChannelConv>(
        self,
        a: FloatTensor<B>,
        b: FloatTensor<B>,
        geometry: ConvGeometry,
    ) -> FloatTensor<B> {
        match self {
            Op::Forward => B::channel_conv(a, b, geometry),
            Op::InputGrad => B::channel_conv_input_grad(a, b, geometry),
            Op::WeightGrad => B::channel_conv_weight_grad(a, b, geometry),
        }
    }
}

impl ChannelConv for Flex {
    fn channel_conv(x: FlexTensor, w: FlexTensor, geometry: ConvGeometry) -> FlexTensor {
        let plan = Plan::new(x.shape()[0], w.shape()[0], geometry);
        flex_run(Op::Forward, x, w, plan)
    }

    fn channel_conv_input_grad(
        w: FlexTensor,
        grad: FlexTensor,
        geometry: ConvGeometry,
    ) -> FlexTensor {
        let plan = Plan::new(
            w.shape()[1] / (geometry.kernel * geometry.kernel),
            w.shape()[0],
            geometry,
        );
        flex_run(Op::InputGrad, w, grad, plan)
    }

    fn channel_conv_weight_grad(
        x: FlexTensor,
        grad: FlexTensor,
        geometry: ConvGeometry,
    ) -> FlexTensor {
        let plan = Plan::new(x.shape()[0], grad.shape()[0], geometry);
        flex_run(Op::WeightGrad, x, grad, plan)
    }
}

/// Runs `op` in f32 or f64 (other float types through f32).
fn flex_run(op: Op, a: FlexTensor, b: FlexTensor, plan: Plan) -> FlexTensor {
    fn run<T: Scalar>(op: Op, [a, b]: [&[T]; 2], plan: &Plan) -> [(Vec<T>, [usize; 2]); 1] {
        [match op {
            Op::Forward => (plan.forward(a, b), [plan.c_out, plan.out_columns]),
            Op::InputGrad => (plan.input_grad(a, b), [plan.c_in, plan.in_columns]),
            Op::WeightGrad => (plan.weight_grad(a, b), [plan.c_out, plan.patch]),
        }]
    }
    let [out] = float_kernel([a, b], |v| run(op, v, &plan), |v| run(op, v, &plan));
    out
}

/// The element types of the kernels.
trait Scalar: Lane + std::ops::AddAssign + 'static {
    const ZERO: Self;
    const ONE: Self;
}

impl Scalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Scalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// `values` as a matrix operand with strides `row` and `col`.
fn matrix<T>(values: &[T], row: usize, col: usize) -> Strided<T> {
    Strided {
        ptr: values.as_ptr(),
        row,
        col,
    }
}

/// A strided matrix operand: element `(i, j)` at `ptr + i·row + j·col`.
#[derive(Clone, Copy)]
struct Strided<T> {
    ptr: *const T,
    row: usize,
    col: usize,
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`, for `lhs: m × k` and `rhs: k × n`
/// into a row-major `dst` with row stride `dst_row`, with `gemm` on the calling thread.
///
/// # Safety
/// Every element of `lhs`, `rhs` and of `dst`'s `m` rows of `n` is in bounds, and no other thread
/// touches that part of `dst`.
unsafe fn product<T: Scalar>(
    [m, n, k]: [usize; 3],
    dst: *mut T,
    dst_row: usize,
    accumulate: bool,
    lhs: Strided<T>,
    rhs: Strided<T>,
) {
    let alpha = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row as isize,
            accumulate,
            lhs.ptr,
            lhs.col as isize,
            lhs.row as isize,
            rhs.ptr,
            rhs.col as isize,
            rhs.row as isize,
            alpha,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Output pixels per tile: a tile's patch matrix of a 3 × 3 conv with 16 channels is then
/// about 0.6 MB in f32, so that im2col and the GEMM that reads it share the cache.
const TILE_PIXELS: usize = 1024;

/// The sizes of one convolution and its tiling.
#[derive(Debug, Clone, Copy)]
struct Plan {
    c_in: usize,
    c_out: usize,
    geometry: ConvGeometry,
    out_height: usize,
    out_width: usize,
    /// Rows of the patch matrix, `c·k·k`.
    patch: usize,
    in_columns: usize,
    out_columns: usize,
    /// Images per tile.
    tile: usize,
}

impl Plan {
    fn new(c_in: usize, c_out: usize, geometry: ConvGeometry) -> Self {
        let (out_height, out_width) = (geometry.out_height(), geometry.out_width());
        let pixels = out_height * out_width;
        // Whole images per tile, about TILE_PIXELS of them (fewer pixels per tile would
        // repack the filters more often: at 4 × 4 images and 512 channels that cost more than
        // the load balance gained), and at least one tile per thread.
        let by_size = TILE_PIXELS.div_ceil(pixels.max(1));
        let by_threads = geometry.images / rayon::current_num_threads();
        Plan {
            c_in,
            c_out,
            geometry,
            out_height,
            out_width,
            patch: c_in * geometry.kernel * geometry.kernel,
            in_columns: geometry.in_columns(),
            out_columns: geometry.out_columns(),
            tile: by_size.min(by_threads).max(1),
        }
    }

    fn tiles(&self) -> Vec<Range<usize>> {
        let n = self.geometry.images;
        (0..n.div_ceil(self.tile))
            .map(|t| t * self.tile..((t + 1) * self.tile).min(n))
            .collect()
    }

    fn pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    /// `Y = W X̂`, tile by tile.
    fn forward<T: Scalar>(&self, x: &[T], w: &[T]) -> Vec<T> {
        // Not zeroed: the GEMMs (with `read_dst = false`) write every value once.
        let len = self.c_out * self.out_columns;
        let mut y = Vec::<T>::with_capacity(len);
        let out = SharedMut(y.as_mut_ptr());
        self.tiles().into_par_iter().for_each(|images| {
            let width = images.len() * self.pixels();
            with_scratch(self.patch * width, |col: &mut [T]| {
                self.im2col(x, images.clone(), col);
                let (w, col) = (matrix(w, self.patch, 1), matrix(col, width, 1));
                // SAFETY: the tile's columns of every row of y lie in y and no other tile
                // writes them; w and col have the stated shapes.
                unsafe {
                    product(
                        [self.c_out, width, self.patch],
                        out.at(images.start * self.pixels()),
                        self.out_columns,
                        false,
                        w,
                        col,
                    );
                }
            });
        });
        // SAFETY: the tiles cover every column of every row of y (see above).
        unsafe { y.set_len(len) };
        y
    }

    /// `∂X = col2im(Wᵀ Ȳ)`, tile by tile.
    fn input_grad<T: Scalar>(&self, w: &[T], grad: &[T]) -> Vec<T> {
        let mut dx = vec![T::ZERO; self.c_in * self.in_columns];
        let out = SharedMut(dx.as_mut_ptr());
        self.tiles().into_par_iter().for_each(|images| {
            let width = images.len() * self.pixels();
            with_scratch(self.patch * width, |col: &mut [T]| {
                let w_t = matrix(w, 1, self.patch);
                let grad = matrix(&grad[images.start * self.pixels()..], self.out_columns, 1);
                // SAFETY: col is patch × width; wᵀ and the tile's columns of ȳ are in bounds.
                unsafe {
                    product(
                        [self.patch, width, self.c_out],
                        col.as_mut_ptr(),
                        width,
                        false,
                        w_t,
                        grad,
                    );
                }
                // SAFETY: the tile's images are written by this tile only.
                unsafe { self.col2im(col, images, &out) };
            });
        });
        dx
    }

    /// `∂W = Ȳ X̂ᵀ`: one partial sum per task, added up.
    fn weight_grad<T: Scalar>(&self, x: &[T], grad: &[T]) -> Vec<T> {
        let size = self.c_out * self.patch;
        self.tiles()
            .into_par_iter()
            .fold(
                || vec![T::ZERO; size],
                |mut dw, images| {
                    let width = images.len() * self.pixels();
                    with_scratch(2 * self.patch * width, |buffer: &mut [T]| {
                        let (col, pixel_major) = buffer.split_at_mut(self.patch * width);
                        self.im2col(x, images.clone(), col);
                        // X̂ᵀ pixel-major, so that the GEMM reads its packed operand in order
                        // (the reduction runs along pixels in both factors; packing X̂ itself
                        // would gather across rows, which cost a fifth of the step at w = 64).
                        transpose(col, self.patch, width, pixel_major);
                        let grad =
                            matrix(&grad[images.start * self.pixels()..], self.out_columns, 1);
                        let pixel_major = matrix(pixel_major, self.patch, 1);
                        // SAFETY: dw is c_out × patch; the operands are in bounds.
                        unsafe {
                            product(
                                [self.c_out, self.patch, width],
                                dw.as_mut_ptr(),
                                self.patch,
                                true,
                                grad,
                                pixel_major,
                            );
                        }
                    });
                    dw
                },
            )
            .reduce(
                || vec![T::ZERO; size],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    a
                },
            )
    }

    /// For each patch row `(c, a, b)` and output row `(i, u)` of the tile, where output pixel
    /// `(i, u, v)` reads input `(i, s·u + a − p, s·v + b − p)`: `visit(row, tile column of
    /// (i, u, 0), segment)` with the run of `v` that falls inside the image ([`Segment`]).
    fn walk(&self, images: Range<usize>, mut visit: impl FnMut(usize, usize, Segment)) {
        let g = self.geometry;
        let (k, s, p) = (g.kernel, g.stride, g.padding);
        let (pixels, plane) = (self.pixels(), g.height * g.width);
        for c in 0..self.c_in {
            for a in 0..k {
                for b in 0..k {
                    let row = (c * k + a) * k + b;
                    // Valid v: 0 ≤ s·v + b − p < w.
                    let v0 = p.saturating_sub(b).div_ceil(s).min(self.out_width);
                    let v1 = (g.width + p)
                        .saturating_sub(b)
                        .div_ceil(s)
                        .min(self.out_width);
                    for (t, i) in images.clone().enumerate() {
                        for u in 0..self.out_height {
                            let start = t * pixels + u * self.out_width;
                            let y = (s * u + a).checked_sub(p).filter(|&y| y < g.height);
                            let segment = match y {
                                Some(y) if v0 < v1 => Segment::Valid {
                                    v0,
                                    v1,
                                    input: c * self.in_columns
                                        + i * plane
                                        + y * g.width
                                        + (s * v0 + b - p),
                                },
                                _ => Segment::Padding,
                            };
                            visit(row, start, segment);
                        }
                    }
                }
            }
        }
    }

    /// Whether the output has the input's size at stride 1 ("same" padding, `k = 2p + 1`):
    /// then a patch row of an image is the image shifted in its flat index ([`Shift`]).
    fn same_size(&self) -> bool {
        let g = self.geometry;
        g.stride == 1 && self.out_height == g.height && self.out_width == g.width
    }

    /// `visit(row, tile column, input offset, shift)` for each patch row `(c, a, b)` and image of
    /// the tile, in the [`Plan::same_size`] case.
    fn planes(&self, images: Range<usize>, mut visit: impl FnMut(usize, usize, usize, &Shift)) {
        let g = self.geometry;
        let (k, plane) = (g.kernel, g.height * g.width);
        for a in 0..k {
            for b in 0..k {
                let shift = Shift::new(g, a, b);
                for c in 0..self.c_in {
                    let row = (c * k + a) * k + b;
                    for (t, i) in images.clone().enumerate() {
                        visit(row, t * plane, c * self.in_columns + i * plane, &shift);
                    }
                }
            }
        }
    }

    /// The tile's patch matrix `X̂: [patch, width]`.
    fn im2col<T: Scalar>(&self, x: &[T], images: Range<usize>, col: &mut [T]) {
        let width = images.len() * self.pixels();
        if self.same_size() {
            let plane = self.pixels();
            self.planes(images, |row, start, input, shift| {
                let out = &mut col[row * width + start..][..plane];
                let (lo, hi) = shift.range;
                out[..lo].fill(T::ZERO);
                out[hi..].fill(T::ZERO);
                if lo < hi {
                    out[lo..hi].copy_from_slice(&x[shift.source(input, lo)..][..hi - lo]);
                    shift.clear_borders(out);
                }
            });
            return;
        }
        let s = self.geometry.stride;
        self.walk(images, |row, start, segment| {
            let out = &mut col[row * width + start..][..self.out_width];
            match segment {
                Segment::Padding => out.fill(T::ZERO),
                Segment::Valid { v0, v1, input } => {
                    out[..v0].fill(T::ZERO);
                    out[v1..].fill(T::ZERO);
                    let out = &mut out[v0..v1];
                    if s == 1 {
                        out.copy_from_slice(&x[input..][..out.len()]);
                    } else {
                        for (o, &x) in out.iter_mut().zip(x[input..].iter().step_by(s)) {
                            *o = x;
                        }
                    }
                }
            }
        });
    }

    /// Adds the tile's patch-matrix gradient into `∂X` (the adjoint of [`Plan::im2col`]); the
    /// entries of `col` that fall in the padding may be overwritten.
    ///
    /// # Safety
    /// `dx` points to `c_in × in_columns` values, and no other thread touches the tile's images.
    unsafe fn col2im<T: Scalar>(&self, col: &mut [T], images: Range<usize>, dx: &SharedMut<T>) {
        let width = images.len() * self.pixels();
        if self.same_size() {
            let plane = self.pixels();
            self.planes(images, |row, start, input, shift| {
                let grad = &mut col[row * width + start..][..plane];
                // Padding entries become zeros, so that one flat add covers the valid rows.
                shift.clear_borders(grad);
                let (lo, hi) = shift.range;
                if lo == hi {
                    return;
                }
                // SAFETY: [source(lo), source(hi)) lies in this image's plane of channel c.
                let dx = unsafe {
                    std::slice::from_raw_parts_mut(dx.at(shift.source(input, lo)), hi - lo)
                };
                for (d, &g) in dx.iter_mut().zip(&grad[lo..hi]) {
                    *d += g;
                }
            });
            return;
        }
        let s = self.geometry.stride;
        self.walk(images, |row, start, segment| {
            if let Segment::Valid { v0, v1, input } = segment {
                let grad = &col[row * width + start + v0..][..v1 - v0];
                for (j, &g) in grad.iter().enumerate() {
                    // SAFETY: input + s·j is a pixel of this tile's images (see `walk`).
                    unsafe { *dx.at(input + s * j) += g };
                }
            }
        });
    }
}

/// Patch row `(c, a, b)` of a same-size stride-1 conv on one `h × w` image: output pixel `j =
/// u·w + v` reads input pixel `j + offset` with `offset = (a − p)·w + (b − p)`, except in the
/// padding (`u ∉ [u0, u1)` or `v ∉ [v0, v1)`). `range` is where `j + offset` stays inside the
/// image: it covers every valid pixel, and the rest of it are padding columns.
#[derive(Debug, Clone, Copy)]
struct Shift {
    offset: isize,
    width: usize,
    rows: (usize, usize),
    columns: (usize, usize),
    range: (usize, usize),
}

impl Shift {
    fn new(g: ConvGeometry, a: usize, b: usize) -> Self {
        let (h, w, p) = (g.height, g.width, g.padding);
        let offset = (a * w + b) as isize - (p * w + p) as isize;
        let rows = (p.saturating_sub(a).min(h), (h + p).saturating_sub(a).min(h));
        let columns = (p.saturating_sub(b).min(w), (w + p).saturating_sub(b).min(w));
        let plane = (h * w) as isize;
        let lo = ((rows.0 * w) as isize).max(-offset).min(plane);
        let hi = ((rows.1 * w) as isize).min(plane - offset).max(lo);
        Shift {
            offset,
            width: w,
            rows,
            columns,
            range: (lo as usize, hi as usize),
        }
    }

    /// Where output pixel `j` of the image starting at `input` reads.
    fn source(&self, input: usize, j: usize) -> usize {
        (input as isize + j as isize + self.offset) as usize
    }

    /// Zeros the padding columns of the valid rows (a few per row: written column by column,
    /// as strided stores rather than a `memset` call per row).
    fn clear_borders<T: Scalar>(&self, out: &mut [T]) {
        let (v0, v1) = self.columns;
        let (u0, u1) = self.rows;
        for v in (0..v0).chain(v1..self.width) {
            for u in u0..u1 {
                out[u * self.width + v] = T::ZERO;
            }
        }
    }
}

/// `dst = srcᵀ` for row-major `src: [rows, cols]`, in blocks that stay in L1.
fn transpose<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    const BLOCK: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    for r0 in (0..rows).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(rows);
        for c0 in (0..cols).step_by(BLOCK) {
            let c1 = (c0 + BLOCK).min(cols);
            for c in c0..c1 {
                for r in r0..r1 {
                    // SAFETY: r < rows and c < cols, and both slices hold rows·cols values.
                    unsafe {
                        *dst.get_unchecked_mut(c * rows + r) = *src.get_unchecked(r * cols + c)
                    };
                }
            }
        }
    }
}

/// One output row of a patch row: all padding, or valid for `v0 ≤ v < v1` starting at `input`.
#[derive(Debug, Clone, Copy)]
enum Segment {
    Padding,
    Valid { v0: usize, v1: usize, input: usize },
}

/// A pointer to an output buffer that tasks write in disjoint places.
struct SharedMut<T>(*mut T);

// SAFETY: every use writes a region that no other task reads or writes (see the callers).
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// # Safety
    /// `offset` is inside the buffer.
    unsafe fn at(&self, offset: usize) -> *mut T {
        unsafe { self.0.add(offset) }
    }
}

thread_local! {
    /// Each thread's patch-matrix buffer, grown as needed and kept between calls.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` values of this thread's scratch buffer (contents unspecified).
fn with_scratch<T: Scalar, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffer = cell.borrow_mut();
        let words = (len * size_of::<T>()).div_ceil(size_of::<f64>());
        if buffer.len() < words {
            buffer.resize(words, 0.0);
        }
        let values: &mut [T] = bytemuck::cast_slice_mut(&mut buffer[..words]);
        f(&mut values[..len])
    })
}

/// The backward step of the three operations on autodiff: keeps both operands.
#[derive(Debug)]
struct ConvBackward;

impl<B: ChannelConv> Backward<B, 2> for ConvBackward {
    type State = (
        Op,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        ConvGeometry,
    );

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (op, a, b, g) = ops.state;
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| match op {
                Op::Forward => B::channel_conv_input_grad(b, grad, g),
                Op::InputGrad => B::channel_conv_weight_grad(grad, b, g),
                Op::WeightGrad => B::channel_conv_input_grad(grad, b, g),
            },
            |grad| match op {
                Op::Forward => B::channel_conv_weight_grad(a, grad, g),
                Op::InputGrad => B::channel_conv(grad, a, g),
                Op::WeightGrad => B::channel_conv(a, grad, g),
            },
        );
    }
}

/// `op(a, b)` on autodiff, recording [`ConvBackward`] when either operand is tracked.
fn tracked<B: ChannelConv, C: CheckpointStrategy>(
    op: Op,
    a: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
    geometry: ConvGeometry,
) -> FloatTensor<Autodiff<B, C>> {
    let (a, a_node) = a.into_parts();
    let (b, b_node) = b.into_parts();
    match ConvBackward
        .prepare::<C>([a_node, b_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = op.run::<B>(a.clone(), b.clone(), geometry);
            prep.finish((op, a, b, geometry), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(op.run::<B>(a, b, geometry)),
    }
}

impl<B: ChannelConv, C: CheckpointStrategy> ChannelConv for Autodiff<B, C> {
    fn channel_conv(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self> {
        tracked::<B, C>(Op::Forward, x, w, geometry)
    }

    fn channel_conv_input_grad(
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self> {
        tracked::<B, C>(Op::InputGrad, w, grad, geometry)
    }

    fn channel_conv_weight_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self> {
        tracked::<B, C>(Op::WeightGrad, x, grad, geometry)
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelConv;
    use crate::conv::{ConvGeometry, conv2d, conv2d_nchw};
    use crate::{BackendKind, Compute, Precision, to_f64_vec};
    use burn::backend::Dispatch;
    use burn::tensor::Tensor;

    /// Deterministic values in (−1, 1).
    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| {
                (((i + 7 * seed) as f64 * 0.618_033_988_749_895 + 0.1 * seed as f64).fract()) * 2.0
                    - 1.0
            })
            .collect()
    }

    /// (c_in, c_out, geometry): odd and rectangular images, strides 1 and 2, padding 0–2,
    /// 1 × 1, 3 × 3 and 5 × 5 filters (one larger than its image), and batches split into
    /// several tiles.
    fn cases() -> Vec<(usize, usize, ConvGeometry)> {
        let g = |images, height, width, kernel, stride, padding| ConvGeometry {
            images,
            height,
            width,
            kernel,
            stride,
            padding,
        };
        vec![
            (3, 4, g(2, 5, 7, 3, 1, 1)),
            (2, 5, g(3, 6, 6, 3, 2, 1)),
            (4, 3, g(2, 7, 5, 1, 2, 0)),
            (2, 2, g(1, 4, 4, 3, 1, 0)),
            (1, 3, g(5, 3, 3, 3, 1, 2)),
            (3, 2, g(40, 9, 8, 3, 2, 1)),
            (5, 6, g(37, 12, 11, 3, 1, 1)),
            (2, 3, g(3, 6, 5, 5, 1, 2)),
            (3, 2, g(4, 2, 2, 5, 1, 2)),
        ]
    }

    fn max_abs(v: &[f64]) -> f64 {
        v.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = max_abs(want).max(1e-300);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * scale, "{what}[{i}]: {g} vs {w}");
        }
    }

    /// The fused kernels against Burn's own `conv2d` on the `[n, c, h, w]` view: values and
    /// both gradients of `Σ r ⊙ conv(x, w)`, in f64 and f32.
    #[test]
    fn fused_conv_and_its_gradients_match_burns_conv2d() {
        for (precision, tol) in [(Precision::F64, 1e-13), (Precision::F32, 2e-6)] {
            let compute = Compute::new(BackendKind::Flex, precision).expect("flex");
            for (case, (c_in, c_out, g)) in cases().into_iter().enumerate() {
                let x = values(c_in * g.in_columns(), case);
                let w = values(c_out * c_in * g.kernel * g.kernel, case + 11);
                let r = values(c_out * g.out_columns(), case + 23);
                let run = |fused: bool| {
                    let xt = compute
                        .tensor(&x, [c_in, g.in_columns()])
                        .autodiff()
                        .require_grad();
                    let wt = compute
                        .tensor(&w, [c_out, w.len() / c_out])
                        .autodiff()
                        .require_grad();
                    let y = if fused {
                        conv2d(xt.clone(), wt.clone(), g)
                    } else {
                        conv2d_nchw(xt.clone(), wt.clone(), g)
                    };
                    let weights = compute.tensor(&r, [c_out, g.out_columns()]).autodiff();
                    let grads = (y.clone() * weights).sum().backward();
                    [
                        to_f64_vec(y.without_autodiff()),
                        to_f64_vec(xt.grad(&grads).expect("x")),
                        to_f64_vec(wt.grad(&grads).expect("w")),
                    ]
                };
                let (got, want) = (run(true), run(false));
                for (k, what) in ["y", "∂x", "∂w"].iter().enumerate() {
                    assert_close(
                        &got[k],
                        &want[k],
                        tol,
                        &format!("{precision:?} case {case} {what}"),
                    );
                }
            }
        }
    }

    /// `D` and `V` are bilinear, so their recorded gradients must predict exactly how
    /// `Σ G ⊙ D(w, ȳ)` and `Σ G ⊙ V(x, ȳ)` change along any direction (second-order use).
    #[test]
    fn gradient_operations_differentiate_exactly() {
        let compute = Compute::new(BackendKind::Flex, Precision::F64).expect("flex");
        let (c_in, c_out, g) = cases()[1];
        let (xs, ws, ys) = (
            [c_in, g.in_columns()],
            [c_out, c_in * 9],
            [c_out, g.out_columns()],
        );
        let size = |s: [usize; 2]| s[0] * s[1];
        let tensor = |shape: [usize; 2], seed| compute.tensor(&values(size(shape), seed), shape);
        type Bilinear = fn(Tensor<2>, Tensor<2>, ConvGeometry) -> Tensor<2>;
        let input_grad: Bilinear = |w, y, g| {
            Tensor::from_dispatch(<Dispatch as ChannelConv>::channel_conv_input_grad(
                w.into_dispatch(),
                y.into_dispatch(),
                g,
            ))
        };
        let weight_grad: Bilinear = |x, y, g| {
            Tensor::from_dispatch(<Dispatch as ChannelConv>::channel_conv_weight_grad(
                x.into_dispatch(),
                y.into_dispatch(),
                g,
            ))
        };
        for (op, a_shape, out_shape) in [(input_grad, ws, xs), (weight_grad, xs, ws)] {
            let (a, b, weights) = (tensor(a_shape, 1), tensor(ys, 2), tensor(out_shape, 3));
            let loss = |a: Tensor<2>, b: Tensor<2>| (op(a, b, g) * weights.clone()).sum();
            let (al, bl) = (
                a.clone().autodiff().require_grad(),
                b.clone().autodiff().require_grad(),
            );
            let grads = loss(al.clone(), bl.clone()).backward();
            let (ga, gb) = (al.grad(&grads).expect("a"), bl.grad(&grads).expect("b"));
            let (da, db) = (tensor(a_shape, 4), tensor(ys, 5));
            let base = to_f64_vec(loss(a.clone(), b.clone()))[0];
            let along_a = to_f64_vec(loss(a.clone() + da.clone(), b.clone()))[0] - base;
            let along_b = to_f64_vec(loss(a, b + db.clone()))[0] - base;
            let predicted_a = to_f64_vec((ga * da).sum())[0];
            let predicted_b = to_f64_vec((gb * db).sum())[0];
            assert!((along_a - predicted_a).abs() < 1e-11 * along_a.abs().max(1.0));
            assert!((along_b - predicted_b).abs() < 1e-11 * along_b.abs().max(1.0));
        }
    }
}
