//! B's infinite-width Gram matrix.

use faer::Mat;
use std::f64::consts::PI;

/// `X Xᵀ` of the rows of `x` (`n × d`, row-major), by faer's matrix product.
pub fn input_gram(x: &[f64], d: usize) -> Mat<f64> {
    let n = x.len() / d;
    let m = Mat::<f64>::from_fn(n, d, |i, c| x[i * d + c]);
    &m * m.transpose()
}

/// The rows of `x` (`n × d`, row-major) scaled to unit norm.
fn unit_rows(x: &[f64], d: usize) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(move |v| v / norm)
        })
        .collect()
}

/// The cosines `x_iᵀx_j / (‖x_i‖ ‖x_j‖)` of the rows of `x` (`n × d`, row-major).
pub fn cosine_gram(x: &[f64], d: usize) -> Mat<f64> {
    input_gram(&unit_rows(x, d), d)
}

/// `H^∞_ij = E_{w~N(0,I)}[x_iᵀx_j 1{wᵀx_i ≥ 0, wᵀx_j ≥ 0}]` (B Assumption 3.1) in closed form
/// for unit-norm inputs: `x_iᵀx_j (π − arccos(x_iᵀx_j)) / (2π)` (papers.md §2.2, §7.1).
/// Rows of `x` (`n × d`, row-major) are normalized first.
pub fn h_infinity(x: &[f64], d: usize) -> Mat<f64> {
    of_cosines(cosine_gram(x, d))
}

/// `H^∞` between the rows of `a` (`n_a × d`) and of `b` (`n_b × d`): `n_a × n_b`.
pub fn h_infinity_cross(a: &[f64], b: &[f64], d: usize) -> Mat<f64> {
    let unit = |x: &[f64]| {
        let rows = unit_rows(x, d);
        Mat::<f64>::from_fn(x.len() / d, d, |i, c| rows[i * d + c])
    };
    of_cosines(unit(a) * unit(b).transpose())
}

fn of_cosines(cos: Mat<f64>) -> Mat<f64> {
    Mat::from_fn(cos.nrows(), cos.ncols(), |i, j| {
        let c = cos[(i, j)].clamp(-1.0, 1.0);
        c * (PI - c.acos()) / (2.0 * PI)
    })
}
