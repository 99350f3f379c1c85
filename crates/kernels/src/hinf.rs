//! B's infinite-width Gram matrix.

use faer::Mat;
use std::f64::consts::PI;

/// The cosines `x_iᵀx_j / (‖x_i‖ ‖x_j‖)` of the rows of `x` (`n × d`, row-major).
pub fn cosine_gram(x: &[f64], d: usize) -> Mat<f64> {
    let rows: Vec<Vec<f64>> = x
        .chunks(d)
        .map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(|v| v / norm).collect()
        })
        .collect();
    let n = rows.len();
    Mat::from_fn(n, n, |i, j| {
        rows[i]
            .iter()
            .zip(&rows[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
    })
}

/// `H^∞_ij = E_{w~N(0,I)}[x_iᵀx_j 1{wᵀx_i ≥ 0, wᵀx_j ≥ 0}]` (B Assumption 3.1) in closed form
/// for unit-norm inputs: `x_iᵀx_j (π − arccos(x_iᵀx_j)) / (2π)` (papers.md §2.2, §7.1).
/// Rows of `x` (`n × d`, row-major) are normalized first.
pub fn h_infinity(x: &[f64], d: usize) -> Mat<f64> {
    let cos = cosine_gram(x, d);
    Mat::from_fn(cos.nrows(), cos.ncols(), |i, j| {
        let c = cos[(i, j)].clamp(-1.0, 1.0);
        c * (PI - c.acos()) / (2.0 * PI)
    })
}
