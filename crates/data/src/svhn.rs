//! SVHN's cropped digits (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`): level-5
//! MAT files with `X`, uint8 of dimensions 32 × 32 × 3 × N (row, column, channel, image;
//! column-major), and `y`, N labels 1–10 where 10 stands for the digit 0.

use crate::DataError;
use crate::images::{ImageSet, Split};
use crate::mat::{MatArray, parse_mat};
use std::path::Path;

const SIDE: usize = 32;

/// The images and labels (0–9) of one SVHN file's contents; `path` only names it in errors.
pub fn parse_svhn(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    let arrays = parse_mat(bytes, path)?;
    let find = |name: &str| -> Result<&MatArray, DataError> {
        arrays.iter().find(|a| a.name == name).ok_or_else(|| {
            DataError::format(
                path,
                format!(
                    "no variable '{name}' (found: {}); not an SVHN cropped-digits file",
                    arrays
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    };
    let (x, y) = (find("X")?, find("y")?);
    let n = match x.dims[..] {
        [SIDE, SIDE, 3, n] => n,
        [SIDE, SIDE, 3] => 1,
        _ => {
            return Err(DataError::format(
                path,
                format!("X has dimensions {:?}, SVHN's are 32 × 32 × 3 × N", x.dims),
            ));
        }
    };
    if y.values.len() != n {
        return Err(DataError::format(
            path,
            format!("{} labels in y for {n} images in X", y.values.len()),
        ));
    }
    let labels = y
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            10.0 => Ok(0),
            v if v.fract() == 0.0 && (1.0..=9.0).contains(&v) => Ok(v as u32),
            v => Err(DataError::format(
                path,
                format!("label {i} is {v}; SVHN's labels are 1-10"),
            )),
        })
        .collect::<Result<Vec<u32>, DataError>>()?;
    if let Some(bad) = x.values.iter().find(|v| !(0.0..=255.0).contains(*v)) {
        return Err(DataError::format(
            path,
            format!("pixel value {bad} outside 0-255"),
        ));
    }
    // Channels-major, row-major planes per image, from MATLAB's (row, column, channel, image).
    let plane = SIDE * SIDE;
    let mut pixels = vec![0.0; n * 3 * plane];
    for (image, out) in pixels.chunks_mut(3 * plane).enumerate() {
        for c in 0..3 {
            for row in 0..SIDE {
                for col in 0..SIDE {
                    out[c * plane + row * SIDE + col] =
                        x.values[row + SIDE * col + plane * c + 3 * plane * image];
                }
            }
        }
    }
    ImageSet::new(pixels, labels, vec![3, SIDE, SIDE], path)
}

/// Reads SVHN's `train_32x32.mat` ([`Split::Train`]) or `test_32x32.mat` ([`Split::Test`])
/// in `dir`.
pub fn read_svhn_dir(dir: &Path, split: Split) -> Result<ImageSet, DataError> {
    let path = dir.join(match split {
        Split::Train => "train_32x32.mat",
        Split::Test => "test_32x32.mat",
    });
    let bytes = DataError::read(&path)?;
    parse_svhn(&bytes, &path)
}
