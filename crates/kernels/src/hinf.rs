//! B's infinite-width Gram matrix.

use faer::Mat;
use std::f64::consts::PI;

/// `X Xᵀ` of the rows of `x` (`n × d`, row-major), by faer's matrix product.
pub fn input_gram(x: &[f64], d: usize) -> Mat<f64> {
    let n = x.len() / d;
    let m = Mat::<f64>::from_fn(n, d, |i, c| x[i * d + c]);
    &m * m.transpose()
}

/// The cosines `x_iᵀx_j / (‖x_i‖ ‖x_j‖)` of the rows of `x` (`n × d`, row-major).
pub fn cosine_gram(x: &[f64], d: usize) -> Mat<f64> {
    let unit: Vec<f64> = x
        .chunks(d)
        .flat_map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(move |v| v / norm)
        })
        .collect();
    input_gram(&unit, d)
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
