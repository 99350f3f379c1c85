//! Positions as the kernel recursions see them. For A's convolutional ResNet (§7) a layer's
//! pre-activation at position l reads the patch `φ(x)_l = (x_{l+o})_o` over the offsets o of a
//! `k × k` (or length-k) window with zero padding; a dense net is the case of one position
//! and one offset.
//!
//! Why the recursions only need one position at a time (papers.md §1.4, Def. 7.1): the
//! read-out `a_{c,l}` has an independent weight per channel and position, so the covariance
//! of the backprop signal at the last layer is `δ_{ll'}`; backpropagation through φ sums
//! `W_o^T δ_{l−o}` over offsets whose weights `W_o` are independent, so a signal covariance
//! that is diagonal in position stays diagonal at every layer. Every layer's Gram limit
//! `Σ_{l,l'} C_{ll'} Ė_{ll'} Γ_{ll'}` then reads only the same-position entries of C and Ė,
//! and the forward recursion `C^(h)_{ll} = Σ_o Σ^(h−1)_{l+o,l+o}` closes on them too. So for
//! a pair of samples the whole recursion runs on vectors over the p positions:
//! `O(p·q)` per layer instead of `O(p²)` entries, and no `(n·p) × (n·p)` matrix is formed.

/// The positions of a net and the window of its patches.
#[derive(Debug, Clone)]
pub(crate) struct Patches {
    /// Sizes of the spatial axes (`[]` for a dense net), flattened row-major.
    spatial: Vec<usize>,
    /// Zero padding `(k − 1)/2` on every axis.
    pad: usize,
}

impl Patches {
    /// One position, φ the identity (fc, resnet).
    pub(crate) fn dense() -> Self {
        Self {
            spatial: Vec::new(),
            pad: 0,
        }
    }

    /// Stride-1 patches of side `kernel` (odd) with zero padding `(kernel − 1)/2` over
    /// positions `spatial` (`[p]` or `[height, width]`, flattened row-major as in the model).
    pub(crate) fn conv(spatial: &[usize], kernel: usize) -> Self {
        Self {
            spatial: spatial.to_vec(),
            pad: kernel / 2,
        }
    }

    /// p.
    pub(crate) fn positions(&self) -> usize {
        self.spatial.iter().product()
    }

    /// `dst_l = Σ_o src_{l+o}` over the window offsets o that stay inside the image: the
    /// same-position covariance of patches, `(Φ M)_{(i,l),(j,l)}` for M diagonal in position
    /// (A Def. 7.1), and, offsets being symmetric, what backpropagation through φ does to a
    /// position-diagonal covariance. The window is a box, so the sum runs axis by axis
    /// (`2·pad` additions per axis and position instead of `k^dims`). `dst` and `scratch`
    /// have p entries.
    pub(crate) fn window_sum(&self, src: &[f64], dst: &mut [f64], scratch: &mut [f64]) {
        dst.copy_from_slice(src);
        let mut stride = 1;
        for &size in self.spatial.iter().rev() {
            if self.pad > 0 && size > 1 {
                scratch.copy_from_slice(dst);
                let block = size * stride;
                for o in 1..=self.pad.min(size - 1) {
                    let shift = o * stride;
                    for (d, s) in dst.chunks_mut(block).zip(scratch.chunks(block)) {
                        // Positions t < size − o read t + o; positions t ≥ o read t − o.
                        d[..block - shift]
                            .iter_mut()
                            .zip(&s[shift..])
                            .for_each(|(d, s)| *d += s);
                        d[shift..]
                            .iter_mut()
                            .zip(&s[..block - shift])
                            .for_each(|(d, s)| *d += s);
                    }
                }
            }
            stride *= size;
        }
    }

    /// `Σ^(0)_{(i,l),(j,l)} = Σ_c x_{i,c,l} x_{j,c,l}` for two samples stored channels-major
    /// (`x[c·p + l]`): the input covariance at every position.
    pub(crate) fn input_products(&self, xi: &[f64], xj: &[f64], out: &mut [f64]) {
        let p = out.len();
        out.fill(0.0);
        for (ci, cj) in xi.chunks(p).zip(xj.chunks(p)) {
            out.iter_mut()
                .zip(ci.iter().zip(cj))
                .for_each(|(o, (a, b))| *o += a * b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sums_match_explicit_patches() {
        // A 3 × 4 image and a 5-long line, windows 3 and 5: the sum over the explicitly
        // enumerated offsets inside the image.
        for (spatial, kernel) in [(vec![3usize, 4], 3usize), (vec![5], 5), (vec![4, 5], 5)] {
            let patches = Patches::conv(&spatial, kernel);
            let p = patches.positions();
            let src: Vec<f64> = (0..p).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
            let (mut dst, mut scratch) = (vec![0.0; p], vec![0.0; p]);
            patches.window_sum(&src, &mut dst, &mut scratch);
            let pad = (kernel / 2) as isize;
            let width = *spatial.last().unwrap() as isize;
            let height = if spatial.len() == 2 {
                spatial[0] as isize
            } else {
                1
            };
            let dy_range = if spatial.len() == 2 {
                -pad..=pad
            } else {
                0..=0
            };
            for l in 0..p as isize {
                let (y, x) = (l / width, l % width);
                let mut direct = 0.0;
                for dy in dy_range.clone() {
                    for dx in -pad..=pad {
                        let (yy, xx) = (y + dy, x + dx);
                        if (0..height).contains(&yy) && (0..width).contains(&xx) {
                            direct += src[(yy * width + xx) as usize];
                        }
                    }
                }
                assert_eq!(dst[l as usize], direct, "{spatial:?} k={kernel} at {l}");
            }
        }
    }
}
