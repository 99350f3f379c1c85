//! The CIFAR binary formats: records of label bytes and 3072 pixel bytes (1024 red, 1024
//! green, 1024 blue, each a row-major 32×32 plane). CIFAR-10 has one label byte (0–9),
//! CIFAR-100 two: the coarse class (0–19), then the fine one (0–99).

use crate::DataError;
use crate::images::{ImageSet, Split};
use std::path::Path;

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

/// Which labels of CIFAR-100 to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cifar100Labels {
    /// The 100 fine classes (D's Figure 1).
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// The layout of one CIFAR variant's records.
struct Records {
    name: &'static str,
    /// The largest valid value of each label byte.
    max_labels: &'static [u8],
    /// Which label byte to keep.
    label: usize,
}

fn parse_records(bytes: &[u8], path: &Path, layout: &Records) -> Result<ImageSet, DataError> {
    let label_bytes = layout.max_labels.len();
    let record = label_bytes + PIXELS;
    let name = layout.name;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte {name} records (truncated or not {name})",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        for (b, (&value, &max)) in r.iter().zip(layout.max_labels).enumerate() {
            if value > max {
                return Err(DataError::format(
                    path,
                    format!(
                        "record {i} has label {value} (label byte {b}); {name} allows 0-{max} there"
                    ),
                ));
            }
        }
        labels.push(u32::from(r[layout.label]));
        pixels.extend(r[label_bytes..].iter().map(|&b| f64::from(b)));
    }
    ImageSet::new(pixels, labels, vec![3, SIDE, SIDE], path)
}

/// Parses one CIFAR-10 binary batch; `path` only names the source in errors.
pub fn parse_cifar10(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    parse_records(
        bytes,
        path,
        &Records {
            name: "CIFAR-10",
            max_labels: &[9],
            label: 0,
        },
    )
}

/// Parses a CIFAR-100 binary file (`train.bin`, `test.bin`) keeping the fine or coarse labels.
pub fn parse_cifar100(
    bytes: &[u8],
    path: &Path,
    labels: Cifar100Labels,
) -> Result<ImageSet, DataError> {
    let label = match labels {
        Cifar100Labels::Coarse => 0,
        Cifar100Labels::Fine => 1,
    };
    parse_records(
        bytes,
        path,
        &Records {
            name: "CIFAR-100",
            max_labels: &[19, 99],
            label,
        },
    )
}

/// Reads the CIFAR-100 binary distribution in `dir` (`cifar-100-binary`): `train.bin` for
/// [`Split::Train`], `test.bin` for [`Split::Test`].
pub fn read_cifar100_dir(
    dir: &Path,
    split: Split,
    labels: Cifar100Labels,
) -> Result<ImageSet, DataError> {
    let path = dir.join(match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    });
    let bytes = DataError::read(&path)?;
    parse_cifar100(&bytes, &path, labels)
}

/// Reads CIFAR-10 batch files and concatenates them.
pub fn read_cifar10(paths: &[&Path]) -> Result<ImageSet, DataError> {
    let mut sets = paths.iter().map(|path| {
        let bytes = DataError::read(path)?;
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
