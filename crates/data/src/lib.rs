//! Datasets: inputs and targets as plain row-major f64 matrices, the papers' synthetic sets,
//! real image data read offline (IDX, CIFAR-10 binary), and the input checks the theorems
//! depend on.

pub mod checks;
pub mod cifar;
pub mod idx;
pub mod images;
pub mod mat;
pub mod npy;
pub mod svhn;
pub mod synthetic;

pub use checks::{Degeneracy, InputReport, check_inputs};
pub use cifar::{
    Cifar100Labels, parse_cifar10, parse_cifar100, read_cifar10, read_cifar10_dir,
    read_cifar100_dir,
};
pub use idx::{IdxArray, encode_idx_u8, parse_idx, read_idx};
pub use images::{
    FASHION_MNIST_DIR, ImageSet, Prepare, Split, TargetEncoding, accuracy, random_images,
    read_idx_images, read_mnist_layout, scores,
};
pub use mat::{MatArray, encode_mat, parse_mat};
pub use npy::{NpyArray, encode_npy_f64, npy_dataset, parse_npy, read_npy};
pub use overparam_rng::Purpose;
pub use svhn::{parse_svhn, read_svhn_dir};

use overparam_rng::{ChaCha8Rng, SliceRandom, stream};
pub use synthetic::{Labels, SeparatedBinary, separated_binary, sphere};

use std::path::{Path, PathBuf};

/// Errors building or reading a dataset, naming the offending value or file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file's contents are not what its format says.
    #[error("{path}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A binary (±1) task needs exactly two classes.
    #[error("the sign encoding needs exactly two classes, got {got}")]
    Classes {
        /// Number of classes selected.
        got: usize,
    },
    /// The subsample size is zero or larger than what is available.
    #[error("cannot subsample n = {n} from {available} samples")]
    Subsample {
        /// Requested n.
        n: usize,
        /// Available samples.
        available: usize,
    },
    /// An input is all zeros and cannot be normalized.
    #[error("input {row} is all zeros and cannot be normalized to unit norm")]
    ZeroNorm {
        /// The row.
        row: usize,
    },
    /// Two inputs are parallel (or equal), so λ0 = 0 (B Thm 3.1, A Prop. F.1).
    #[error(
        "inputs {i} and {j} are {kind} (angle {angle:.3e} rad between their lines): then λ0 = λmin(H^inf) = 0 and the theorems do not apply; remove one or allow it with a warning"
    )]
    Degenerate {
        /// First input.
        i: usize,
        /// Second input.
        j: usize,
        /// "duplicated", "parallel" or "antiparallel".
        kind: &'static str,
        /// The angle between the lines through them.
        angle: f64,
    },
    /// C's separated binary data could not be drawn.
    #[error("{0}")]
    Synthetic(String),
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

impl DataError {
    /// The bytes of the file at `path`, or a [`DataError::File`] naming it.
    pub(crate) fn read(path: &Path) -> Result<Vec<u8>, DataError> {
        std::fs::read(path).map_err(|source| DataError::File {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A [`DataError::Format`] for `path`.
    pub fn format(path: &Path, problem: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// A supervised dataset: `n` inputs in `R^d` and `n` targets in `R^k`, row-major, with the
/// shape of one input (`[d]`, or `[channels, height, width]` for images kept for conv nets)
/// and, for classification data, the class index of each sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    inputs: Vec<f64>,
    targets: Vec<f64>,
    n: usize,
    d: usize,
    k: usize,
    shape: Vec<usize>,
    classes: Option<Vec<u32>>,
}

/// Scales every row of the row-major `inputs` (rows of length `d`) to unit Euclidean norm
/// (A–C assume `‖x_i‖ = 1`); an all-zero row is an error.
pub(crate) fn normalize_rows(inputs: &mut [f64], d: usize) -> Result<(), DataError> {
    for (i, row) in inputs.chunks_mut(d).enumerate() {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(DataError::ZeroNorm { row: i });
        }
        row.iter_mut().for_each(|v| *v /= norm);
    }
    Ok(())
}

/// `n` of `rows` drawn without replacement by shuffling them with `rng`, returned in
/// increasing order (the one way every subsample and split picks its rows).
pub(crate) fn draw_rows(mut rows: Vec<usize>, n: usize, mut rng: ChaCha8Rng) -> Vec<usize> {
    rows.shuffle(&mut rng);
    rows.truncate(n);
    rows.sort_unstable();
    rows
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
            shape: vec![d],
            classes: None,
        })
    }

    /// Sets the shape of one input (its product must be d).
    pub fn with_shape(mut self, shape: Vec<usize>) -> Result<Self, DataError> {
        if shape.iter().product::<usize>() != self.d {
            return Err(DataError::Shape {
                what: "input shape",
                got: shape.iter().product(),
                expected: self.d,
                rows: 1,
                cols: self.d,
            });
        }
        self.shape = shape;
        Ok(self)
    }

    /// Attaches the class index of each sample.
    pub fn with_classes(mut self, classes: Vec<u32>) -> Result<Self, DataError> {
        if classes.len() != self.n {
            return Err(DataError::Shape {
                what: "class labels",
                got: classes.len(),
                expected: self.n,
                rows: self.n,
                cols: 1,
            });
        }
        self.classes = Some(classes);
        Ok(self)
    }

    /// Shape of one input.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Class index of each sample, for classification data.
    pub fn classes(&self) -> Option<&[u32]> {
        self.classes.as_deref()
    }

    /// `n` of the samples, drawn without replacement from the subsample stream of `seed` (in
    /// their original order).
    pub fn subsample(&self, n: usize, seed: u64) -> Result<Dataset, DataError> {
        if n == 0 || n > self.n {
            return Err(DataError::Subsample {
                n,
                available: self.n,
            });
        }
        let rows = draw_rows((0..self.n).collect(), n, stream(seed, Purpose::Subsample));
        Ok(self.select(&rows))
    }

    /// A seeded random split into `(train, test)` with `test_size` test samples (split stream
    /// of `seed`).
    pub fn split(&self, test_size: usize, seed: u64) -> Result<(Dataset, Dataset), DataError> {
        if test_size == 0 || test_size >= self.n {
            return Err(DataError::Subsample {
                n: test_size,
                available: self.n - 1,
            });
        }
        let test = draw_rows(
            (0..self.n).collect(),
            test_size,
            stream(seed, Purpose::Split),
        );
        let train: Vec<usize> = (0..self.n)
            .filter(|i| test.binary_search(i).is_err())
            .collect();
        Ok((self.select(&train), self.select(&test)))
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

    /// Targets as an `n × k` matrix.
    pub fn target_matrix(&self) -> faer::Mat<f64> {
        let k = self.target_dim();
        faer::Mat::from_fn(self.len(), k, |i, c| self.targets[i * k + c])
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
            shape: self.shape.clone(),
            classes: self
                .classes
                .as_ref()
                .map(|c| rows.iter().map(|&r| c[r]).collect()),
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
