//! The CIFAR-10 binary format: records of one label byte (0–9) and 3072 pixel bytes
//! (1024 red, 1024 green, 1024 blue, each a row-major 32×32 plane).

use crate::DataError;
use crate::images::{ImageSet, Split};
use std::path::Path;

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;

/// Parses one CIFAR-10 binary batch; `path` only names the source in errors.
pub fn parse_cifar10(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated or not CIFAR-10)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(DataError::format(
                path,
                format!(
                    "record {i} has label {}, CIFAR-10 labels are 0-9",
                    record[0]
                ),
            ));
        }
        labels.push(u32::from(record[0]));
        pixels.extend(record[1..].iter().map(|&b| f64::from(b)));
    }
    ImageSet::new(pixels, labels, vec![3, SIDE, SIDE], path)
}

/// Reads CIFAR-10 batch files and concatenates them.
pub fn read_cifar10(paths: &[&Path]) -> Result<ImageSet, DataError> {
    let mut sets = paths.iter().map(|path| {
        let bytes = std::fs::read(path).map_err(|source| DataError::File {
            path: path.to_path_buf(),
            source,
        })?;
        parse_cifar10(&bytes, path)
    });
    let first = sets.next().ok_or(DataError::Empty {
        what: "list of CIFAR-10 files",
    })??;
    sets.try_fold(first, |acc, next| Ok(acc.concat(next?)))
}

/// Reads the CIFAR-10 binary distribution in `dir` (`cifar-10-batches-bin`): the five
/// `data_batch_{1..5}.bin` files for [`Split::Train`], `test_batch.bin` for [`Split::Test`].
pub fn read_cifar10_dir(dir: &Path, split: Split) -> Result<ImageSet, DataError> {
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let paths: Vec<std::path::PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    read_cifar10(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>())
}
