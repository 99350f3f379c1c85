//! 2-D convolution of images stored channel-major: one row per channel.
//!
//! A batch of `n` images with `c` channels of `h × w` pixels is the matrix `x: [c, n·h·w]`
//! (row `c`, column `(i·h + y)·w + x`); a `c_out × c × k × k` filter bank is the matrix
//! `w: [c_out, c·k·k]` (PyTorch's `weight.reshape(c_out, -1)`). The convolution with stride `s`
//! and zero padding `p` is then one matrix product per tile of images,
//!
//! `y[o, (i, u, v)] = Σ_{c, a, b} w[o, (c, a, b)] · x[c, (i, s·u + a − p, s·v + b − p)]`,
//!
//! i.e. `Y = W · X̂` with the patch matrix `X̂: [c·k·k, n·h_out·w_out]` (im2col). Its gradients
//! are `∂L/∂W = Ȳ · X̂ᵀ` and `∂L/∂X = col2im(Wᵀ · Ȳ)`. In this layout BatchNorm statistics are row
//! reductions and no layout changes are needed between layers. On flex, [`conv2d`] runs the
//! three products tile by tile over rayon's threads ([`crate::fused_conv`]); elsewhere it is
//! Burn's `conv2d` on the `[n, c, h, w]` view.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;

/// The shape of a square 2-D convolution over a batch of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Images in the batch, `n`.
    pub images: usize,
    /// Input rows per image, `h`.
    pub height: usize,
    /// Input columns per image, `w`.
    pub width: usize,
    /// Filter side, `k`.
    pub kernel: usize,
    /// Stride, `s`.
    pub stride: usize,
    /// Zero padding on every side, `p`.
    pub padding: usize,
}

impl ConvGeometry {
    /// Output rows `⌊(h + 2p − k)/s⌋ + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output columns `⌊(w + 2p − k)/s⌋ + 1`.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Columns of the input matrix, `n·h·w`.
    pub fn in_columns(&self) -> usize {
        self.images * self.height * self.width
    }

    /// Columns of the output matrix, `n·h_out·w_out`.
    pub fn out_columns(&self) -> usize {
        self.images * self.out_height() * self.out_width()
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1)
    }

    /// Checks the operands' shapes against the geometry.
    ///
    /// # Panics
    /// When they disagree (a programming error: the models build both from one config).
    fn check(&self, x: [usize; 2], w: [usize; 2]) {
        assert!(
            self.kernel >= 1
                && self.stride >= 1
                && self.height + 2 * self.padding >= self.kernel
                && self.width + 2 * self.padding >= self.kernel,
            "conv geometry {self:?} has no output"
        );
        assert_eq!(
            x[1],
            self.in_columns(),
            "conv input has {} columns, geometry {self:?} needs n·h·w",
            x[1]
        );
        assert_eq!(
            w[1],
            x[0] * self.kernel * self.kernel,
            "conv weight [{}, {}] does not match {} input channels and k = {}",
            w[0],
            w[1],
            x[0],
            self.kernel
        );
    }
}

/// `conv(x, w)` for channel-major `x: [c, n·h·w]` and `w: [c_out, c·k·k]`, giving
/// `[c_out, n·h_out·w_out]`; differentiable in both.
pub fn conv2d(x: Tensor<2>, w: Tensor<2>, geometry: ConvGeometry) -> Tensor<2> {
    geometry.check(x.dims(), w.dims());
    #[cfg(feature = "flex")]
    if crate::is_flex(&x.device()) {
        return crate::fused_conv::conv2d(x, w, geometry);
    }
    conv2d_nchw(x, w, geometry)
}

/// [`conv2d`] through Burn's `conv2d` on the `[n, c, h, w]` view (other backends, and the
/// reference the flex kernels are tested against).
pub(crate) fn conv2d_nchw(x: Tensor<2>, w: Tensor<2>, g: ConvGeometry) -> Tensor<2> {
    let ([c, _], [c_out, _]) = (x.dims(), w.dims());
    let images = x.reshape([c, g.images, g.height, g.width]).swap_dims(0, 1);
    let filters = w.reshape([c_out, c, g.kernel, g.kernel]);
    burn_conv2d(images, filters, None, g.options())
        .swap_dims(0, 1)
        .reshape([c_out, g.out_columns()])
}
