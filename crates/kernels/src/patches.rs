//! Positions as the kernel recursions see them. For A's convolutional ResNet (§7) every
//! covariance is an `(n·p) × (n·p)` matrix indexed by (sample, position), row `i·p + l`, and
//! the patch operator φ acts on it by summing over aligned patch offsets; a dense net is the
//! case p = 1 with the identity for φ.

use faer::Mat;
use std::borrow::Cow;

/// The positions of a net and the offsets of its patches.
#[derive(Debug, Clone)]
pub(crate) struct Patches {
    /// p, positions per sample.
    p: usize,
    /// q, offsets per patch.
    q: usize,
    /// `shift[l·q + o]`: the position at offset o of the patch centred at l, `None` in the
    /// zero padding.
    shift: Vec<Option<usize>>,
}

impl Patches {
    /// One position, φ the identity (fc, resnet).
    pub(crate) fn dense() -> Self {
        Self {
            p: 1,
            q: 1,
            shift: vec![Some(0)],
        }
    }

    /// Stride-1 patches of side `kernel` (odd) with zero padding `(kernel − 1)/2` over
    /// positions `spatial` (`[p]` or `[height, width]`, flattened row-major as in the model).
    pub(crate) fn conv(spatial: &[usize], kernel: usize) -> Self {
        let pad = (kernel / 2) as isize;
        let side: Vec<isize> = (-pad..=pad).collect();
        // Offsets per axis, combined row-major; positions likewise.
        let offsets: Vec<Vec<isize>> = spatial.iter().fold(vec![vec![]], |acc, _| {
            acc.iter()
                .flat_map(|o| {
                    side.iter().map(move |&s| {
                        let mut o = o.clone();
                        o.push(s);
                        o
                    })
                })
                .collect()
        });
        let p: usize = spatial.iter().product();
        let coordinates = |mut l: usize| -> Vec<isize> {
            let mut c = vec![0; spatial.len()];
            for (axis, &size) in spatial.iter().enumerate().rev() {
                c[axis] = (l % size) as isize;
                l /= size;
            }
            c
        };
        let shift = (0..p)
            .flat_map(|l| {
                let at = coordinates(l);
                offsets.iter().map(move |o| {
                    at.iter()
                        .zip(o)
                        .zip(spatial)
                        .try_fold(0usize, |index, ((&c, &d), &size)| {
                            let moved = c + d;
                            (0..size as isize)
                                .contains(&moved)
                                .then(|| index * size + moved as usize)
                        })
                })
            })
            .collect();
        Self {
            p,
            q: offsets.len(),
            shift,
        }
    }

    /// p.
    pub(crate) fn positions(&self) -> usize {
        self.p
    }

    /// `Σ_c x_{i,c,l} x_{j,c,l'}` for samples stored channels-major (`x_i[c·p + l]`), the
    /// position Gram of the inputs over `channels = d / p` channels.
    pub(crate) fn position_gram(&self, x: &[f64], d: usize) -> Mat<f64> {
        let (p, channels) = (self.p, d / self.p);
        let rows = Mat::<f64>::from_fn(x.len() / d * p, channels, |row, c| {
            x[(row / p) * d + c * p + row % p]
        });
        &rows * rows.transpose()
    }

    /// The covariance of patches, `(Φ M)_{(i,l),(j,l')} = Σ_o M_{(i,l+o),(j,l'+o)}` over the
    /// offsets o at which both positions lie inside the image: `φ(x_i)_{:,l}ᵀ φ(x_j)_{:,l'}`
    /// when `M` is the position Gram of x (A Def. 7.1, `tr(H_{D_l D_r})`). With symmetric
    /// offsets it is also the adjoint that backpropagation through φ applies.
    pub(crate) fn patch<'a>(&self, m: &'a Mat<f64>) -> Cow<'a, Mat<f64>> {
        if self.is_dense() {
            return Cow::Borrowed(m);
        }
        let (p, q) = (self.p, self.q);
        Cow::Owned(Mat::from_fn(m.nrows(), m.ncols(), |row, col| {
            let (i, l, j, r) = (row / p * p, row % p, col / p * p, col % p);
            (0..q)
                .filter_map(|o| match (self.shift[l * q + o], self.shift[r * q + o]) {
                    (Some(a), Some(b)) => Some(m[(i + a, j + b)]),
                    _ => None,
                })
                .sum()
        }))
    }

    /// Whether there is one position and φ is the identity (fc, resnet).
    pub(crate) fn is_dense(&self) -> bool {
        self.q == 1 && self.p == 1
    }

    /// `Σ_{l,l'} M_{(i,l),(j,l')}`, the `n × n` matrix of block sums.
    pub(crate) fn block_sum(&self, m: Mat<f64>) -> Mat<f64> {
        self.reduce(m, |p| (0..p * p).map(move |t| (t / p, t % p)))
    }

    /// `Σ_l M_{(i,l),(j,l)}`, the `n × n` matrix of block traces.
    pub(crate) fn block_trace(&self, m: Mat<f64>) -> Mat<f64> {
        self.reduce(m, |p| (0..p).map(|l| (l, l)))
    }

    fn reduce<I: Iterator<Item = (usize, usize)>>(
        &self,
        m: Mat<f64>,
        entries: impl Fn(usize) -> I,
    ) -> Mat<f64> {
        let p = self.p;
        if p == 1 {
            return m;
        }
        let n = m.nrows() / p;
        Mat::from_fn(n, n, |i, j| {
            entries(p).map(|(l, r)| m[(i * p + l, j * p + r)]).sum()
        })
    }

    /// `δ_{ll'}` at every pair of samples: the covariance `(1/m) Σ_c a_{c,l} a_{c,l'}` of the
    /// read-out's backprop signal at init.
    pub(crate) fn aligned(&self, n: usize) -> Mat<f64> {
        let p = self.p;
        Mat::from_fn(n * p, n * p, |row, col| {
            f64::from(u8::from(row % p == col % p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_covariance_is_the_inner_product_of_patches() {
        // 2 samples, 2 channels, 3 × 2 images, 3 × 3 patches: compare Φ(position Gram) with
        // the inner products of explicitly cut, zero-padded patches.
        let (h, w, channels, n) = (3usize, 2usize, 2usize, 2usize);
        let p = h * w;
        let d = channels * p;
        let x: Vec<f64> = (0..n * d).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let patches = Patches::conv(&[h, w], 3);
        let gram = patches.position_gram(&x, d);
        let k = patches.patch(&gram);
        let patch = |i: usize, l: usize| -> Vec<f64> {
            let (y, xx) = ((l / w) as isize, (l % w) as isize);
            let mut v = Vec::new();
            for c in 0..channels {
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        let (yy, xq) = (y + dy, xx + dx);
                        let inside = (0..h as isize).contains(&yy) && (0..w as isize).contains(&xq);
                        v.push(if inside {
                            x[i * d + c * p + (yy as usize) * w + xq as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
            v
        };
        for i in 0..n {
            for l in 0..p {
                for j in 0..n {
                    for r in 0..p {
                        let direct: f64 = patch(i, l)
                            .iter()
                            .zip(patch(j, r))
                            .map(|(a, b)| a * b)
                            .sum();
                        assert!((k[(i * p + l, j * p + r)] - direct).abs() < 1e-12);
                    }
                }
            }
        }
        let ones = Mat::<f64>::from_fn(n * p, n * p, |_, _| 1.0);
        assert_eq!(patches.block_sum(ones.clone())[(0, 1)], (p * p) as f64);
        assert_eq!(patches.block_trace(ones)[(1, 0)], p as f64);
    }
}
