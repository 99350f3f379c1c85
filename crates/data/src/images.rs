//! Real image datasets read offline, and their preparation into a [`Dataset`].

use crate::idx::read_idx;
use crate::{DataError, Dataset, draw_rows, normalize_rows};
use overparam_rng::{Purpose, RngExt, stream};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the Debian package `dataset-fashion-mnist` puts Fashion-MNIST.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Labelled images with raw pixel values (0–255 for the byte formats).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `n × (channels·height·width)` values, channels-major per image.
    pub pixels: Vec<f64>,
    /// Class of each image.
    pub labels: Vec<u32>,
    /// `[channels, height, width]`.
    pub shape: Vec<usize>,
    /// Where the images came from (for messages and manifests).
    pub source: PathBuf,
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training files.
    Train,
    /// The test files.
    Test,
}

/// How class labels become targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetEncoding {
    /// Exactly two classes: the first listed class is +1, the second −1 (C's binary task).
    Sign,
    /// One column per selected class (D's multi-class task).
    OneHot,
}

/// The fraction of rows classified right: with one output (the [`TargetEncoding::Sign`]
/// targets ±1) when output and target have the same sign, with `k > 1` outputs (one-hot) when
/// their largest entries are in the same column. `outputs` and `targets` are `n × k`,
/// row-major.
pub fn accuracy(outputs: &[f64], targets: &[f64], k: usize) -> f64 {
    let argmax = |row: &[f64]| {
        row.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)
    };
    let right = outputs
        .chunks(k)
        .zip(targets.chunks(k))
        .filter(|(f, y)| {
            if k == 1 {
                (f[0] >= 0.0) == (y[0] >= 0.0)
            } else {
                argmax(f) == argmax(y)
            }
        })
        .count();
    right as f64 / (outputs.len() / k).max(1) as f64
}

/// How well outputs (`n × k`) fit `targets` (`n × k`, row-major): the mean over rows of
/// `½‖f_i − y_i‖²` and the [`accuracy`].
pub fn scores(outputs: &faer::Mat<f64>, targets: &[f64]) -> (f64, f64) {
    let (n, k) = (outputs.nrows(), outputs.ncols());
    let flat: Vec<f64> = (0..n)
        .flat_map(|i| (0..k).map(move |c| outputs[(i, c)]))
        .collect();
    let loss = flat
        .iter()
        .zip(targets)
        .map(|(f, y)| 0.5 * (f - y).powi(2))
        .sum::<f64>()
        / n.max(1) as f64;
    (loss, accuracy(&flat, targets, k))
}

/// Options turning an [`ImageSet`] into a [`Dataset`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepare {
    /// Keep only these classes, in this order (`None`: all, in increasing order).
    pub classes: Option<Vec<u32>>,
    /// Keep a random subset of this many images (`None`: all).
    pub n: Option<usize>,
    /// Seed of the subsample and of random labels (each from its own stream).
    pub seed: u64,
    /// The stream of the subsample: [`Purpose::Subsample`] for a training set,
    /// [`Purpose::TestSubsample`] for a held-out one, so that the two never share draws.
    pub subsample: Purpose,
    /// Keep `[channels, height, width]` as the sample shape (for conv nets) instead of `[d]`.
    pub keep_channels: bool,
    /// Subtract the mean image of the prepared set.
    pub center: bool,
    /// Divide each input by its Euclidean norm (the papers assume `‖x_i‖ = 1`).
    pub unit_norm: bool,
    /// Replace every label by a uniformly random one among the kept classes (D).
    pub random_labels: bool,
    /// Target encoding.
    pub encoding: TargetEncoding,
}

impl Default for Prepare {
    fn default() -> Self {
        Self {
            classes: None,
            n: None,
            seed: 0,
            subsample: Purpose::Subsample,
            keep_channels: false,
            center: false,
            unit_norm: true,
            random_labels: false,
            encoding: TargetEncoding::OneHot,
        }
    }
}

impl ImageSet {
    /// Checks that pixels, labels and shape agree.
    pub fn new(
        pixels: Vec<f64>,
        labels: Vec<u32>,
        shape: Vec<usize>,
        source: &Path,
    ) -> Result<Self, DataError> {
        let d: usize = shape.iter().product();
        if labels.is_empty() || d == 0 || pixels.len() != labels.len() * d {
            return Err(DataError::format(
                source,
                format!(
                    "{} pixel values do not make {} images of shape {shape:?}",
                    pixels.len(),
                    labels.len()
                ),
            ));
        }
        Ok(Self {
            pixels,
            labels,
            shape,
            source: source.to_path_buf(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images (never true for a valid set).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// This set followed by `other` (same shape).
    pub fn concat(mut self, other: ImageSet) -> ImageSet {
        assert_eq!(self.shape, other.shape, "concatenated sets share a shape");
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
        self
    }

    /// Average pooling over non-overlapping `factor × factor` blocks of each channel (a small
    /// image set for the conv kernels: 28 × 28 Fashion-MNIST with factor 7 gives 4 × 4).
    pub fn pool(&self, factor: usize) -> Result<ImageSet, DataError> {
        let [channels, height, width] = self.shape[..] else {
            return Err(DataError::format(
                &self.source,
                format!(
                    "pooling needs [channels, height, width] images, not {:?}",
                    self.shape
                ),
            ));
        };
        if factor == 0 || !height.is_multiple_of(factor) || !width.is_multiple_of(factor) {
            return Err(DataError::format(
                &self.source,
                format!("cannot pool {height} × {width} images by {factor} × {factor} blocks"),
            ));
        }
        let (h, w) = (height / factor, width / factor);
        let d = channels * height * width;
        let area = (factor * factor) as f64;
        let pixels = self
            .pixels
            .chunks(d)
            .flat_map(|image| {
                (0..channels * h * w).map(move |out| {
                    let (c, y, x) = (out / (h * w), out / w % h, out % w);
                    let block = (0..factor * factor).map(|t| {
                        let (dy, dx) = (t / factor, t % factor);
                        image[c * height * width + (y * factor + dy) * width + x * factor + dx]
                    });
                    block.sum::<f64>() / area
                })
            })
            .collect();
        ImageSet::new(
            pixels,
            self.labels.clone(),
            vec![channels, h, w],
            &self.source,
        )
    }

    /// Selects classes, subsamples, rescales pixels to `[0, 1]` (byte formats), optionally
    /// centers and normalizes, optionally randomizes labels, and encodes targets.
    pub fn prepare(&self, options: &Prepare) -> Result<Dataset, DataError> {
        let d: usize = self.shape.iter().product();
        let classes = match &options.classes {
            Some(c) => c.clone(),
            None => {
                let mut all = self.labels.clone();
                all.sort_unstable();
                all.dedup();
                all
            }
        };
        for &c in &classes {
            if !self.labels.contains(&c) {
                return Err(DataError::format(
                    &self.source,
                    format!("class {c} does not occur in the labels"),
                ));
            }
        }
        if options.encoding == TargetEncoding::Sign && classes.len() != 2 {
            return Err(DataError::Classes { got: classes.len() });
        }
        let mut rows: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        if let Some(n) = options.n {
            if n == 0 || n > rows.len() {
                return Err(DataError::Subsample {
                    n,
                    available: rows.len(),
                });
            }
            rows = draw_rows(rows, n, stream(options.seed, options.subsample));
        }
        let mut inputs: Vec<f64> = rows
            .iter()
            .flat_map(|&r| self.pixels[r * d..(r + 1) * d].iter().map(|v| v / 255.0))
            .collect();
        if options.center {
            let mut mean = vec![0.0; d];
            for row in inputs.chunks(d) {
                mean.iter_mut()
                    .zip(row)
                    .for_each(|(m, v)| *m += v / rows.len() as f64);
            }
            for row in inputs.chunks_mut(d) {
                row.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m);
            }
        }
        if options.unit_norm {
            normalize_rows(&mut inputs, d)?;
        }
        let labels: Vec<u32> = if options.random_labels {
            let mut rng = stream(options.seed, Purpose::Labels);
            rows.iter()
                .map(|_| classes[rng.random_range(0..classes.len())])
                .collect()
        } else {
            rows.iter().map(|&r| self.labels[r]).collect()
        };
        let position = |label: u32| classes.iter().position(|&c| c == label).expect("kept");
        let (targets, k) = match options.encoding {
            TargetEncoding::Sign => (
                labels
                    .iter()
                    .map(|&l| if position(l) == 0 { 1.0 } else { -1.0 })
                    .collect(),
                1,
            ),
            TargetEncoding::OneHot => {
                let k = classes.len();
                let mut t = vec![0.0; labels.len() * k];
                for (i, &l) in labels.iter().enumerate() {
                    t[i * k + position(l)] = 1.0;
                }
                (t, k)
            }
        };
        let shape = if options.keep_channels {
            self.shape.clone()
        } else {
            vec![d]
        };
        let classes_of_rows = labels.iter().map(|&l| position(l) as u32).collect();
        Dataset::new(inputs, targets, rows.len(), d, k)?
            .with_shape(shape)?
            .with_classes(classes_of_rows)
    }
}

/// Reads an IDX image file and its IDX label file (MNIST, Fashion-MNIST, KMNIST).
pub fn read_idx_images(images: &Path, labels: &Path) -> Result<ImageSet, DataError> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(DataError::format(
            images,
            format!(
                "an image file has dimensions [n, rows, cols], found {:?}",
                img.dims
            ),
        ));
    }
    if lab.dims.len() != 1 || lab.dims[0] != img.dims[0] {
        return Err(DataError::format(
            labels,
            format!(
                "a label file has dimensions [n] with n = {} images, found {:?}",
                img.dims[0], lab.dims
            ),
        ));
    }
    let labels_u32 = lab
        .values
        .iter()
        .map(|&v| {
            if v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) {
                Ok(v as u32)
            } else {
                Err(DataError::format(
                    labels,
                    format!("label {v} is not a class index"),
                ))
            }
        })
        .collect::<Result<Vec<u32>, DataError>>()?;
    ImageSet::new(
        img.values,
        labels_u32,
        vec![1, img.dims[1], img.dims[2]],
        images,
    )
}

/// Reads the MNIST-layout files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from `dir`
/// (MNIST, Fashion-MNIST, KMNIST all use it).
pub fn read_mnist_layout(dir: &Path, split: Split) -> Result<ImageSet, DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |stem: String| -> PathBuf {
        let gz = dir.join(format!("{stem}.gz"));
        if gz.exists() { gz } else { dir.join(stem) }
    };
    read_idx_images(
        &find(format!("{prefix}-images-idx3-ubyte")),
        &find(format!("{prefix}-labels-idx1-ubyte")),
    )
}

/// D's "Random" set: pixels uniform in `{0, …, 255}` (data stream of `seed`) and labels uniform
/// on `0..classes` (labels stream).
pub fn random_images(
    n: usize,
    shape: &[usize],
    classes: u32,
    seed: u64,
) -> Result<ImageSet, DataError> {
    if classes == 0 {
        return Err(DataError::Empty {
            what: "number of classes",
        });
    }
    let d: usize = shape.iter().product();
    let mut rng = stream(seed, Purpose::Data);
    let pixels = (0..n * d)
        .map(|_| f64::from(rng.random_range(0..=255u8)))
        .collect();
    let mut rng = stream(seed, Purpose::Labels);
    let labels = (0..n).map(|_| rng.random_range(0..classes)).collect();
    ImageSet::new(pixels, labels, shape.to_vec(), Path::new("<random images>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_mean_half_squared_error_and_accuracy() {
        // Signs: rows (1 vs 1) and (−2 vs 1): ½·0 and ½·9, one of two right.
        let f = faer::Mat::from_fn(2, 1, |i, _| [1.0, -2.0][i]);
        assert_eq!(scores(&f, &[1.0, 1.0]), (2.25, 0.5));
        // One-hot: arg max decides; ½(0.2² + 0.1²) and ½(0.6² + 0.6²) over 2 rows.
        let f = faer::Mat::from_fn(2, 2, |i, c| [[0.8, 0.1], [0.4, 0.6]][i][c]);
        let (loss, right) = scores(&f, &[1.0, 0.0, 1.0, 0.0]);
        assert!((loss - (0.025 + 0.36) / 2.0).abs() < 1e-15, "{loss}");
        assert_eq!(right, 0.5);
    }
}
