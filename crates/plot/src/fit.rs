//! Least-squares fits used to annotate scaling plots.

/// A fitted line `y = slope · x + intercept`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineFit {
    /// The slope.
    pub slope: f64,
    /// The intercept.
    pub intercept: f64,
}

/// Least-squares fit of `ln y = slope · ln x + intercept` over the points with `x, y > 0`;
/// `None` with fewer than two such points or a single distinct x.
pub fn log_log_fit(x: &[f64], y: &[f64]) -> Option<LineFit> {
    let points: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| **a > 0.0 && **b > 0.0 && a.is_finite() && b.is_finite())
        .map(|(a, b)| (a.ln(), b.ln()))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let k = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / k;
    let my = points.iter().map(|p| p.1).sum::<f64>() / k;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some(LineFit {
        slope,
        intercept: my - slope * mx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_power_law_and_skips_non_positive_points() {
        let x = [1.0, 10.0, 100.0, 0.0, 1000.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| 3.0 * v.powf(-0.5)).collect();
        let fit = log_log_fit(&x, &y).unwrap();
        assert!((fit.slope + 0.5).abs() < 1e-12);
        assert!((fit.intercept - 3f64.ln()).abs() < 1e-12);
        assert!(log_log_fit(&[2.0, 2.0], &[1.0, 3.0]).is_none());
    }
}
