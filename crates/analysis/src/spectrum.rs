//! Eigenvalues of symmetric matrices in f64 with faer.

use crate::extremes::{Extremes, extremes, symmetric_norm};
use faer::{Mat, Side};
use serde::Serialize;

/// Which eigenvalues of a Gram or kernel matrix to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpectrumMode {
    /// [`SpectrumMode::Full`] up to [`SpectrumMode::AUTO_LIMIT`] samples, extremes above.
    #[default]
    Auto,
    /// λ_min and λ_max only, by Lanczos ([`extremes`]).
    Extremes,
    /// Every eigenvalue (a full symmetric eigendecomposition, O(n³) with a large constant).
    Full,
    /// No spectra.
    None,
}

impl SpectrumMode {
    /// Above this many samples [`SpectrumMode::Auto`] computes extremes only.
    pub const AUTO_LIMIT: usize = 2000;

    /// The mode for an n × n matrix: `Auto` resolved, the others as they are.
    pub fn resolve(self, n: usize) -> SpectrumMode {
        match self {
            SpectrumMode::Auto if n > Self::AUTO_LIMIT => SpectrumMode::Extremes,
            SpectrumMode::Auto => SpectrumMode::Full,
            other => other,
        }
    }

    /// λ_min of a symmetric PSD matrix in this mode (NaN for `None`).
    pub fn lambda_min(self, g: &Mat<f64>) -> f64 {
        match self.resolve(g.nrows()) {
            SpectrumMode::Extremes => extremes(g).lambda_min,
            SpectrumMode::None => f64::NAN,
            _ => lambda_min(g),
        }
    }

    /// `‖g‖₂` of a symmetric (possibly indefinite) matrix in this mode (NaN for `None`).
    pub fn operator_norm(self, g: &Mat<f64>) -> f64 {
        match self.resolve(g.nrows()) {
            SpectrumMode::Extremes => symmetric_norm(g),
            SpectrumMode::None => f64::NAN,
            _ => operator_norm(g),
        }
    }

    /// The extremes and, in full mode, every eigenvalue (`None` in mode `None`).
    pub fn spectrum(self, g: &Mat<f64>) -> Option<(Extremes, Option<Vec<f64>>)> {
        match self.resolve(g.nrows()) {
            SpectrumMode::Extremes => Some((extremes(g), None)),
            SpectrumMode::None => None,
            _ => {
                let values = eigenvalues(g);
                Some((Extremes::from_eigenvalues(&values), Some(values)))
            }
        }
    }
}

/// The eigendecomposition of a symmetric matrix, eigenvalues in increasing order.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// Eigenvalues, increasing.
    pub eigenvalues: Vec<f64>,
    vectors: Mat<f64>,
}

impl Spectrum {
    /// Decomposes the symmetric matrix `g` (only its lower triangle is read).
    ///
    /// # Panics
    /// If `g` is not square or the eigen-solver does not converge (not seen for Gram matrices).
    pub fn of(g: &Mat<f64>) -> Self {
        assert_eq!(g.nrows(), g.ncols(), "a Gram matrix is square");
        let eig = g
            .self_adjoint_eigen(Side::Lower)
            .expect("the symmetric eigen-solver converges");
        let eigenvalues = (0..g.nrows()).map(|i| eig.S().column_vector()[i]).collect();
        Self {
            eigenvalues,
            vectors: eig.U().to_owned(),
        }
    }

    /// λ_min.
    pub fn lambda_min(&self) -> f64 {
        self.eigenvalues[0]
    }

    /// λ_max.
    pub fn lambda_max(&self) -> f64 {
        *self.eigenvalues.last().expect("non-empty")
    }

    /// `λ_max / λ_min` (infinite when λ_min ≤ 0).
    pub fn condition_number(&self) -> f64 {
        if self.lambda_min() <= 0.0 {
            f64::INFINITY
        } else {
            self.lambda_max() / self.lambda_min()
        }
    }

    /// The unit eigenvectors of the `k` largest eigenvalues, largest first.
    pub fn top_eigenvectors(&self, k: usize) -> Vec<Vec<f64>> {
        let n = self.eigenvalues.len();
        (0..k.min(n))
            .map(|j| {
                let col = n - 1 - j;
                (0..n).map(|i| self.vectors[(i, col)]).collect()
            })
            .collect()
    }
}

/// The eigenvalues of a symmetric matrix, increasing (no eigenvectors: several times cheaper
/// than [`Spectrum::of`]).
pub fn eigenvalues(g: &Mat<f64>) -> Vec<f64> {
    g.self_adjoint_eigenvalues(Side::Lower)
        .expect("the symmetric eigen-solver converges")
}

/// `‖g‖₂` of a symmetric matrix: the largest absolute eigenvalue.
pub fn operator_norm(g: &Mat<f64>) -> f64 {
    let values = eigenvalues(g);
    values[0].abs().max(values[values.len() - 1].abs())
}

/// `‖m‖₂` of any matrix: its largest singular value (C's layer-wise movement
/// `‖W_l(k) − W_l(0)‖₂`, C Thm 5.3).
pub fn spectral_norm(m: &Mat<f64>) -> f64 {
    m.singular_values()
        .expect("the SVD converges")
        .into_iter()
        .fold(0.0, f64::max)
}

/// λ_min of a symmetric matrix (eigenvalues only, cheaper than [`Spectrum::of`]).
pub fn lambda_min(g: &Mat<f64>) -> f64 {
    eigenvalues(g)[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spectrum_is_exact() {
        // Q diag(1..6) Qᵀ with Q a Householder reflection I − 2vvᵀ/vᵀv.
        let n = 6;
        let v: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sqrt()).collect();
        let vv: f64 = v.iter().map(|x| x * x).sum();
        let q = Mat::<f64>::from_fn(n, n, |i, j| {
            f64::from(u8::from(i == j)) - 2.0 * v[i] * v[j] / vv
        });
        let d = Mat::<f64>::from_fn(
            n,
            n,
            |i, j| if i == j { (i + 1) as f64 * 1e-3 } else { 0.0 },
        );
        let g = &q * &d * q.transpose();
        let s = Spectrum::of(&g);
        for (i, e) in s.eigenvalues.iter().enumerate() {
            assert!((e - (i + 1) as f64 * 1e-3).abs() < 1e-10, "{i}: {e}");
        }
        assert!((s.condition_number() - 6.0).abs() < 1e-8);
        assert!((lambda_min(&g) - 1e-3).abs() < 1e-10);
        assert!((operator_norm(&g) - 6e-3).abs() < 1e-10);
        // Non-symmetric: [[0, 3], [0, 4]] has singular values 5 and 0.
        let m = Mat::<f64>::from_fn(2, 2, |_, j| [0.0, 1.0][j] * if j == 1 { 1.0 } else { 0.0 });
        let m = Mat::<f64>::from_fn(2, 2, |i, j| m[(i, j)] * [3.0, 4.0][i]);
        assert!((spectral_norm(&m) - 5.0).abs() < 1e-12);
        // The top eigenvector is column 5 of Q (up to sign).
        let top = &s.top_eigenvectors(1)[0];
        let dot: f64 = (0..n).map(|i| top[i] * q[(i, 5)]).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-10);
    }
}
