//! Writing f64 matrices as NumPy `.npy` files (format version 1.0, little-endian `<f8`,
//! C order), readable with `numpy.load`.

use faer::Mat;
use std::io::Write;
use std::path::Path;

/// Writes `m` to `path` as a 2-D `.npy` array.
pub fn write_npy(path: &Path, m: &Mat<f64>) -> std::io::Result<()> {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.nrows(),
        m.ncols()
    );
    // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 8 * m.nrows() * m.ncols());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            bytes.extend_from_slice(&m[(i, j)].to_le_bytes());
        }
    }
    std::fs::File::create(path)?.write_all(&bytes)
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
