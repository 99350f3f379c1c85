//! Checks on the inputs that the convergence theorems depend on.
//!
//! λ0 = λmin(H^inf) > 0 (B Thm 3.1) and λmin(K^(H)) > 0 (A Prop. F.1/F.2) need that no two
//! inputs are parallel; duplicated inputs make the Gram matrix singular. The theorems also
//! assume `‖x_i‖ = 1`.

use crate::{DataError, Dataset};
use faer::Mat;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What to do when two inputs are parallel or duplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Degeneracy {
    /// Return [`DataError::Degenerate`].
    Refuse,
    /// Report it in [`InputReport::warnings`] and go on.
    Warn,
}

/// Below this angle (radians) between the lines through two inputs they count as parallel.
pub const PARALLEL_ANGLE: f64 = 1e-6;

/// What [`check_inputs`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputReport {
    /// The smallest angle between the lines through two inputs, in radians (π/2 for n = 1).
    pub min_angle: f64,
    /// The pair attaining it.
    pub closest_pair: Option<(usize, usize)>,
    /// `max_i |‖x_i‖ − 1|`.
    pub max_norm_deviation: f64,
    /// Human-readable warnings (degenerate pairs under [`Degeneracy::Warn`], non-unit norms).
    pub warnings: Vec<String>,
}

fn rows(data: &Dataset) -> impl Iterator<Item = &[f64]> {
    data.inputs().chunks(data.input_dim())
}

/// Angle between the lines through unit vectors `u` and `v`: `2 asin(‖u − s v‖/2)` with
/// `s = sign(uᵀv)`, accurate also for tiny angles (unlike `acos`).
fn line_angle(u: &[f64], v: &[f64]) -> f64 {
    let dot: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
    let s = if dot >= 0.0 { 1.0 } else { -1.0 };
    let dist = u
        .iter()
        .zip(v)
        .map(|(a, b)| (a - s * b).powi(2))
        .sum::<f64>()
        .sqrt();
    2.0 * (dist / 2.0).min(1.0).asin()
}

/// Finds exact duplicates, the smallest angle between inputs and the largest deviation from
/// unit norm. Parallel, antiparallel or duplicated pairs are refused or reported as `policy`
/// says; non-unit norms are reported when `expect_unit_norm`.
///
/// The pairwise cosines come from a Gram matrix computed with faer in blocks of 1024 rows, so
/// memory stays `O(1024 n)`.
pub fn check_inputs(
    data: &Dataset,
    policy: Degeneracy,
    expect_unit_norm: bool,
) -> Result<InputReport, DataError> {
    let (n, d) = (data.len(), data.input_dim());
    let mut warnings = Vec::new();
    let flag = |warnings: &mut Vec<String>, i: usize, j: usize, kind: &'static str, angle: f64| {
        match policy {
            Degeneracy::Refuse => Err(DataError::Degenerate { i, j, kind, angle }),
            Degeneracy::Warn => {
                warnings.push(format!(
                    "inputs {i} and {j} are {kind}: λ0 = 0, the convergence theorems do not apply"
                ));
                Ok(())
            }
        }
    };

    let mut seen: HashMap<Vec<u64>, usize> = HashMap::new();
    for (j, row) in rows(data).enumerate() {
        let key: Vec<u64> = row.iter().map(|v| v.to_bits()).collect();
        if let Some(&i) = seen.get(&key) {
            flag(&mut warnings, i, j, "duplicated", 0.0)?;
        } else {
            seen.insert(key, j);
        }
    }

    let norms: Vec<f64> = rows(data)
        .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    let max_norm_deviation = norms.iter().map(|r| (r - 1.0).abs()).fold(0.0, f64::max);
    if expect_unit_norm && max_norm_deviation > 1e-6 {
        warnings.push(format!(
            "inputs are not unit norm (max |‖x‖ − 1| = {max_norm_deviation:.3e}); the theorems assume ‖x_i‖ = 1"
        ));
    }
    if let Some(i) = norms.iter().position(|&r| r == 0.0) {
        return Err(DataError::ZeroNorm { row: i });
    }
    let unit = Mat::<f64>::from_fn(n, d, |i, c| data.inputs()[i * d + c] / norms[i]);
    let mut best = (0.0f64, None);
    const BLOCK: usize = 1024;
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let gram = unit.subrows(start, end - start) * unit.transpose();
        for i in start..end {
            for j in i + 1..n {
                let c = gram[(i - start, j)].abs();
                if c > best.0 || best.1.is_none() {
                    best = (c, Some((i, j)));
                }
            }
        }
    }
    let unit_row = |i: usize| -> Vec<f64> { (0..d).map(|c| unit[(i, c)]).collect() };
    let (min_angle, closest_pair) = match best.1 {
        None => (std::f64::consts::FRAC_PI_2, None),
        Some((i, j)) => (line_angle(&unit_row(i), &unit_row(j)), Some((i, j))),
    };
    if let Some((i, j)) = closest_pair
        && min_angle < PARALLEL_ANGLE
        && data.inputs()[i * d..(i + 1) * d] != data.inputs()[j * d..(j + 1) * d]
    {
        let dot: f64 = (0..d).map(|c| unit[(i, c)] * unit[(j, c)]).sum();
        let kind = if dot > 0.0 {
            "parallel"
        } else {
            "antiparallel"
        };
        flag(&mut warnings, i, j, kind, min_angle)?;
    }
    Ok(InputReport {
        min_angle,
        closest_pair,
        max_norm_deviation,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: &[[f64; 2]]) -> Dataset {
        let inputs = rows.iter().flatten().copied().collect();
        Dataset::new(inputs, vec![0.0; rows.len()], rows.len(), 2, 1).unwrap()
    }

    #[test]
    fn smallest_angle_is_found() {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let report = check_inputs(
            &data(&[[1.0, 0.0], [s, s], [0.0, 1.0]]),
            Degeneracy::Refuse,
            true,
        )
        .unwrap();
        assert!((report.min_angle - std::f64::consts::FRAC_PI_4).abs() < 1e-12);
        assert!(report.warnings.is_empty());
        let tiny = 1e-9f64;
        let report = check_inputs(
            &data(&[[1.0, 0.0], [tiny.cos(), tiny.sin()]]),
            Degeneracy::Warn,
            true,
        )
        .unwrap();
        assert!(
            (report.min_angle - tiny).abs() < 1e-15,
            "{}",
            report.min_angle
        );
    }

    #[test]
    fn duplicates_and_parallel_pairs_are_refused_or_warned() {
        let dup = data(&[[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]]);
        let err = check_inputs(&dup, Degeneracy::Refuse, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("inputs 0 and 2 are duplicated"), "{err}");
        let report = check_inputs(&dup, Degeneracy::Warn, true).unwrap();
        assert_eq!(report.warnings.len(), 1);
        let anti = data(&[[0.6, 0.8], [-0.6, -0.8]]);
        let err = check_inputs(&anti, Degeneracy::Refuse, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("antiparallel"), "{err}");
        let scaled = data(&[[0.6, 0.8], [1.2, 1.6]]);
        let report = check_inputs(&scaled, Degeneracy::Warn, true).unwrap();
        assert!(report.warnings.iter().any(|w| w.contains("parallel")));
        assert!(report.warnings.iter().any(|w| w.contains("unit norm")));
    }
}
