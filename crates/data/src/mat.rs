//! MATLAB level-5 MAT files (the format of `save -v7`, e.g. SVHN's `train_32x32.mat`): the
//! numeric arrays of a file, with their names and column-major dimensions. Compressed
//! elements (zlib) are read; cell, struct, character and sparse arrays are skipped;
//! big-endian files and HDF5-based v7.3 files are refused with a message.

use crate::DataError;
use flate2::read::ZlibDecoder;
use std::io::Read;
use std::path::Path;

/// One numeric array of a MAT file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    /// The variable's name.
    pub name: String,
    /// Its dimensions, as MATLAB gives them (column-major: the first index varies fastest).
    pub dims: Vec<usize>,
    /// The real part, converted to f64, in column-major order.
    pub values: Vec<f64>,
}

const HEADER: usize = 128;
const MI_INT8: u32 = 1;
const MI_UINT32: u32 = 6;
const MI_INT32: u32 = 5;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
/// mxCELL, mxSTRUCT, mxOBJECT, mxCHAR, mxSPARSE: not numeric.
const NON_NUMERIC_CLASSES: [u8; 5] = [1, 2, 3, 4, 5];

/// One data element: its type, its bytes, and the offset of the next one.
struct Element<'a> {
    kind: u32,
    data: &'a [u8],
    next: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The element at `at` (tag, then data padded to 8 bytes; a small element packs its size and
/// type into one word and its ≤ 4 data bytes into the next).
fn element(bytes: &[u8], at: usize) -> Option<Element<'_>> {
    let first = u32_at(bytes, at)?;
    if first >> 16 != 0 {
        let size = (first >> 16) as usize;
        return Some(Element {
            kind: first & 0xFFFF,
            data: bytes.get(at + 4..at + 4 + size.min(4))?,
            next: at + 8,
        });
    }
    let size = u32_at(bytes, at + 4)? as usize;
    let data = bytes.get(at + 8..(at + 8).checked_add(size)?)?;
    let end = at + 8 + size;
    let next = if first == MI_COMPRESSED {
        end
    } else {
        end.div_ceil(8) * 8
    };
    Some(Element {
        kind: first,
        data,
        next,
    })
}

/// The numbers of an element's data, by its stored type.
fn numbers(kind: u32, data: &[u8]) -> Option<Vec<f64>> {
    macro_rules! each {
        ($t:ty) => {
            data.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("exact chunks")) as f64)
                .collect()
        };
    }
    Some(match kind {
        1 => data.iter().map(|&b| f64::from(b as i8)).collect(),
        2 => data.iter().map(|&b| f64::from(b)).collect(),
        3 => each!(i16),
        4 => each!(u16),
        5 => each!(i32),
        6 => each!(u32),
        7 => each!(f32),
        9 => each!(f64),
        12 => each!(i64),
        13 => each!(u64),
        _ => return None,
    })
}

/// A miMATRIX element's array, `None` for a non-numeric one.
fn matrix(data: &[u8], path: &Path) -> Result<Option<MatArray>, DataError> {
    let bad = |what: &str| DataError::format(path, format!("malformed MAT array: {what}"));
    let flags = element(data, 0).ok_or_else(|| bad("no array flags"))?;
    if flags.kind != MI_UINT32 || flags.data.len() < 8 {
        return Err(bad("array flags are not two 32-bit words"));
    }
    let class = flags.data[0];
    let dims = element(data, flags.next).ok_or_else(|| bad("no dimensions"))?;
    if dims.kind != MI_INT32 {
        return Err(bad("dimensions are not 32-bit integers"));
    }
    let name = element(data, dims.next).ok_or_else(|| bad("no name"))?;
    if name.kind != MI_INT8 {
        return Err(bad("the name is not text"));
    }
    let real_at = name.next;
    let dims: Vec<usize> = dims
        .data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("exact chunks")).max(0) as usize)
        .collect();
    let name = String::from_utf8_lossy(name.data).into_owned();
    if NON_NUMERIC_CLASSES.contains(&class) {
        return Ok(None);
    }
    let real = element(data, real_at).ok_or_else(|| bad(&format!("no data for '{name}'")))?;
    let values = numbers(real.kind, real.data)
        .ok_or_else(|| bad(&format!("'{name}' has data of unknown type {}", real.kind)))?;
    let count: usize = dims.iter().product();
    if values.len() != count {
        return Err(bad(&format!(
            "'{name}' has {} values for dimensions {dims:?}",
            values.len()
        )));
    }
    Ok(Some(MatArray { name, dims, values }))
}

/// The numeric arrays of the elements in `bytes` from `at` on.
fn arrays(
    bytes: &[u8],
    mut at: usize,
    path: &Path,
    out: &mut Vec<MatArray>,
) -> Result<(), DataError> {
    while at < bytes.len() {
        let e = element(bytes, at).ok_or_else(|| {
            DataError::format(path, format!("truncated MAT data element at byte {at}"))
        })?;
        match e.kind {
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                ZlibDecoder::new(e.data)
                    .read_to_end(&mut inflated)
                    .map_err(|err| {
                        DataError::format(path, format!("compressed element at byte {at}: {err}"))
                    })?;
                arrays(&inflated, 0, path, out)?;
            }
            MI_MATRIX => out.extend(matrix(e.data, path)?),
            _ => {}
        }
        at = e.next;
    }
    Ok(())
}

/// Parses a level-5 MAT file; `path` only names the source in errors.
pub fn parse_mat(bytes: &[u8], path: &Path) -> Result<Vec<MatArray>, DataError> {
    if bytes.len() < HEADER || !bytes.starts_with(b"MATLAB") {
        return Err(DataError::format(
            path,
            "not a MAT file (no 'MATLAB' header of 128 bytes)",
        ));
    }
    if bytes.starts_with(b"MATLAB 7.3") {
        return Err(DataError::format(
            path,
            "a MATLAB v7.3 (HDF5) file; save it with -v7 or convert it to .npy",
        ));
    }
    if &bytes[126..128] != b"IM" {
        return Err(DataError::format(
            path,
            "a big-endian MAT file is not supported",
        ));
    }
    let mut out = Vec::new();
    arrays(bytes, HEADER, path, &mut out)?;
    Ok(out)
}

/// Writes numeric arrays (`name`, column-major `dims`, values stored as uint8 when `bytes`,
/// else double) as a level-5 MAT file, each array zlib-compressed when `compress`: the
/// inverse of [`parse_mat`], for tests and for handing data to MATLAB.
pub fn encode_mat(arrays: &[(&str, &[usize], &[f64])], bytes: bool, compress: bool) -> Vec<u8> {
    let tagged = |kind: u32, data: &[u8]| -> Vec<u8> {
        let mut out = kind.to_le_bytes().to_vec();
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
        out
    };
    let mut file = format!("{:<116}", "MATLAB 5.0 MAT-file, written by overparam").into_bytes();
    file.extend([0u8; 8]);
    file.extend(0x0100u16.to_le_bytes());
    file.extend(b"IM");
    for (name, dims, values) in arrays {
        let class: u8 = if bytes { 9 } else { 6 };
        let mut body = tagged(MI_UINT32, &[class, 0, 0, 0, 0, 0, 0, 0]);
        let dims: Vec<u8> = dims
            .iter()
            .flat_map(|&d| (d as i32).to_le_bytes())
            .collect();
        body.extend(tagged(MI_INT32, &dims));
        body.extend(tagged(MI_INT8, name.as_bytes()));
        body.extend(if bytes {
            tagged(2, &values.iter().map(|&v| v as u8).collect::<Vec<u8>>())
        } else {
            tagged(
                9,
                &values
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        });
        let matrix = tagged(MI_MATRIX, &body);
        if compress {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, &matrix).expect("writing to memory");
            let packed = z.finish().expect("writing to memory");
            file.extend(MI_COMPRESSED.to_le_bytes());
            file.extend((packed.len() as u32).to_le_bytes());
            file.extend(packed);
        } else {
            file.extend(matrix);
        }
    }
    file
}
