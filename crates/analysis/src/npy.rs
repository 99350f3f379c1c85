//! Writing f64 matrices as NumPy `.npy` files (format version 1.0, little-endian `<f8`,
//! C order), readable with `numpy.load`.

use faer::Mat;
use std::io::Write;
use std::path::Path;

/// The header of a 2-D `.npy` array of `rows × cols` f64 values (magic, version, length and
/// a dictionary padded so that the data start at a multiple of 64 bytes).
fn header(rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// Writes `m` to `path` as a 2-D `.npy` array.
pub fn write_npy(path: &Path, m: &Mat<f64>) -> std::io::Result<()> {
    let mut bytes = header(m.nrows(), m.ncols());
    bytes.reserve(8 * m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            bytes.extend_from_slice(&m[(i, j)].to_le_bytes());
        }
    }
    std::fs::File::create(path)?.write_all(&bytes)
}

/// A 2-D `.npy` array on disk written in pieces, so that it may exceed memory: the file is
/// created at its full size and row segments are written where they belong.
pub struct NpyWriter {
    file: std::fs::File,
    data_start: u64,
    cols: usize,
}

impl NpyWriter {
    /// Creates `path` for a `rows × cols` array (zeros until written).
    pub fn create(path: &Path, rows: usize, cols: usize) -> std::io::Result<Self> {
        let header = header(rows, cols);
        let mut file = std::fs::File::create(path)?;
        file.write_all(&header)?;
        let data_start = header.len() as u64;
        file.set_len(data_start + 8 * (rows as u64) * (cols as u64))?;
        Ok(Self {
            file,
            data_start,
            cols,
        })
    }

    /// Writes `values` at row `row`, columns `col..col + values.len()`.
    pub fn write_row(&mut self, row: usize, col: usize, values: &[f64]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = self.data_start + 8 * (row as u64 * self.cols as u64 + col as u64);
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_data_follows() {
        let path = std::env::temp_dir().join(format!("overparam-npy-{}.npy", std::process::id()));
        let m = Mat::<f64>::from_fn(2, 3, |i, j| (i * 3 + j) as f64);
        write_npy(&path, &m).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        let data = &bytes[10 + header_len..];
        assert_eq!(data.len(), 48);
        assert_eq!(f64::from_le_bytes(data[40..48].try_into().unwrap()), 5.0);
        std::fs::remove_file(&path).ok();
    }
}
