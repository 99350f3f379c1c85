//! The IDX format of MNIST, Fashion-MNIST and KMNIST (raw or gzip-compressed).
//!
//! Layout: two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
//! 0x0E f64), the number of dimensions, each dimension as a big-endian u32, then the values
//! big-endian in row-major order. A file that starts with the gzip magic `1f 8b` is inflated
//! first, whatever its name.

use crate::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// An IDX array: its dimensions and its values converted to f64.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Dimensions, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f64>,
}

fn element_size(type_byte: u8) -> Option<usize> {
    match type_byte {
        0x08 | 0x09 => Some(1),
        0x0B => Some(2),
        0x0C | 0x0D => Some(4),
        0x0E => Some(8),
        _ => None,
    }
}

/// Reads a file's bytes, inflating gzip when the file starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = DataError::read(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes; `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::format(
            path,
            format!(
                "wrong magic number {:02x}{:02x}{:02x}{:02x}: an IDX file starts with two zero bytes",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let type_byte = bytes[2];
    let size = element_size(type_byte).ok_or_else(|| {
        DataError::format(path, format!("unknown IDX element type 0x{type_byte:02x}"))
    })?;
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        return Err(DataError::format(
            path,
            "an IDX array needs at least one dimension",
        ));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::format(
            path,
            format!(
                "truncated header: {ndims} dimensions need {header} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::format(path, format!("dimensions {dims:?} overflow")))?;
    let expected = count
        .checked_mul(size)
        .ok_or_else(|| DataError::format(path, format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() < expected {
        return Err(DataError::format(
            path,
            format!(
                "truncated: dimensions {dims:?} need {expected} bytes of data, the file has {}",
                body.len()
            ),
        ));
    }
    if body.len() > expected {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes after the data of dimensions {dims:?}: wrong dimensions in the header",
                body.len() - expected
            ),
        ));
    }
    let values = body
        .chunks_exact(size)
        .map(|b| match type_byte {
            0x08 => f64::from(b[0]),
            0x09 => f64::from(b[0] as i8),
            0x0B => f64::from(i16::from_be_bytes([b[0], b[1]])),
            0x0C => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            0x0D => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => f64::from_be_bytes(b.try_into().expect("8 bytes")),
        })
        .collect();
    Ok(IdxArray { dims, values })
}

/// Reads an IDX file (raw or gzip).
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    parse_idx(&read_maybe_gz(path)?, path)
}

/// Encodes unsigned bytes as an IDX array (type 0x08), e.g. to write test fixtures.
///
/// # Panics
/// If `values.len()` is not the product of `dims` or a dimension exceeds `u32`.
pub fn encode_idx_u8(dims: &[usize], values: &[u8]) -> Vec<u8> {
    assert_eq!(
        dims.iter().product::<usize>(),
        values.len(),
        "values match dims"
    );
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&u32::try_from(d).expect("dimension fits u32").to_be_bytes());
    }
    out.extend_from_slice(values);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_element_type() {
        let p = Path::new("mem");
        let mut f32_file = vec![0, 0, 0x0D, 1, 0, 0, 0, 2];
        f32_file.extend_from_slice(&1.5f32.to_be_bytes());
        f32_file.extend_from_slice(&(-2.0f32).to_be_bytes());
        assert_eq!(parse_idx(&f32_file, p).unwrap().values, vec![1.5, -2.0]);
        let i16_file = [0, 0, 0x0B, 1, 0, 0, 0, 1, 0xFF, 0xFE];
        assert_eq!(parse_idx(&i16_file, p).unwrap().values, vec![-2.0]);
        let u8_file = encode_idx_u8(&[2, 2], &[1, 2, 3, 255]);
        let arr = parse_idx(&u8_file, p).unwrap();
        assert_eq!(arr.dims, vec![2, 2]);
        assert_eq!(arr.values, vec![1.0, 2.0, 3.0, 255.0]);
    }

    #[test]
    fn huge_dimensions_are_an_error_not_an_allocation() {
        let bytes = [
            0, 0, 0x0E, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let err = parse_idx(&bytes, Path::new("big.idx"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("big.idx"), "{err}");
    }
}
