//! Datasets: inputs and targets as plain row-major f64 matrices, and the papers' synthetic sets.

pub mod synthetic;

pub use synthetic::{Labels, sphere};

/// Errors building or reading a dataset, naming the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DataError {
    /// A size that must be positive is zero.
    #[error("{what} must be at least 1, got 0")]
    Empty {
        /// Which size.
        what: &'static str,
    },
    /// The buffers do not match the declared shape.
    #[error("{what} has {got} values, expected {expected} ({rows} x {cols})")]
    Shape {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        got: usize,
        /// `rows * cols`.
        expected: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A value is NaN or infinite.
    #[error("{what} value at row {row} is not finite ({value})")]
    NotFinite {
        /// Which buffer.
        what: &'static str,
        /// The row.
        row: usize,
        /// The value.
        value: f64,
    },
}

/// A supervised dataset: `n` inputs in `R^d` and `n` targets in `R^k`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    inputs: Vec<f64>,
    targets: Vec<f64>,
    n: usize,
    d: usize,
    k: usize,
}

impl Dataset {
    /// Checks the shapes and that every value is finite.
    pub fn new(
        inputs: Vec<f64>,
        targets: Vec<f64>,
        n: usize,
        d: usize,
        k: usize,
    ) -> Result<Self, DataError> {
        for (what, size) in [
            ("sample count n", n),
            ("input dimension d", d),
            ("target dimension k", k),
        ] {
            if size == 0 {
                return Err(DataError::Empty { what });
            }
        }
        for (what, buf, cols) in [("inputs", &inputs, d), ("targets", &targets, k)] {
            if buf.len() != n * cols {
                return Err(DataError::Shape {
                    what,
                    got: buf.len(),
                    expected: n * cols,
                    rows: n,
                    cols,
                });
            }
            if let Some(i) = buf.iter().position(|v| !v.is_finite()) {
                return Err(DataError::NotFinite {
                    what,
                    row: i / cols,
                    value: buf[i],
                });
            }
        }
        Ok(Self {
            inputs,
            targets,
            n,
            d,
            k,
        })
    }

    /// Number of samples n.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no samples (never true for a valid dataset).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Input dimension d.
    pub fn input_dim(&self) -> usize {
        self.d
    }

    /// Target dimension k.
    pub fn target_dim(&self) -> usize {
        self.k
    }

    /// Inputs, `n × d` row-major.
    pub fn inputs(&self) -> &[f64] {
        &self.inputs
    }

    /// Targets, `n × k` row-major.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// The samples at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Dataset {
        let pick = |buf: &[f64], cols: usize| -> Vec<f64> {
            rows.iter()
                .flat_map(|&r| buf[r * cols..(r + 1) * cols].iter().copied())
                .collect()
        };
        Dataset {
            inputs: pick(&self.inputs, self.d),
            targets: pick(&self.targets, self.k),
            n: rows.len(),
            d: self.d,
            k: self.k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes_and_values() {
        let err = Dataset::new(vec![1.0; 5], vec![0.0; 2], 2, 3, 1).unwrap_err();
        assert_eq!(err.to_string(), "inputs has 5 values, expected 6 (2 x 3)");
        let err = Dataset::new(vec![1.0, f64::NAN], vec![0.0], 1, 2, 1).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
        assert!(Dataset::new(vec![], vec![], 0, 2, 1).is_err());
    }

    #[test]
    fn select_keeps_rows_together() {
        let data = Dataset::new(vec![1.0, 2.0, 3.0, 4.0], vec![10.0, 20.0], 2, 2, 1).unwrap();
        let picked = data.select(&[1, 0]);
        assert_eq!(picked.inputs(), &[3.0, 4.0, 1.0, 2.0]);
        assert_eq!(picked.targets(), &[20.0, 10.0]);
    }
}
