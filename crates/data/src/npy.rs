//! The user's own data as NumPy `.npy` files: inputs `(n, d)`, `(n, c, l)` or `(n, c, h, w)`,
//! targets `(n,)` or `(n, k)`; float (f4, f8) or integer values, C or Fortran order.

use crate::{DataError, Dataset, normalize_rows};
use npyz::{NpyFile, Order, TypeChar};
use std::path::Path;

/// A `.npy` array read into row-major (C order) f64 values.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values in C order.
    pub values: Vec<f64>,
}

fn values<T: npyz::Deserialize>(
    file: NpyFile<&[u8]>,
    path: &Path,
    to_f64: impl Fn(T) -> f64,
) -> Result<Vec<f64>, DataError> {
    let values = file
        .into_vec::<T>()
        .map_err(|e| DataError::format(path, format!("reading the array: {e}")))?;
    Ok(values.into_iter().map(to_f64).collect())
}

/// Parses the bytes of a `.npy` file (`path` names it in errors).
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray, DataError> {
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(DataError::format(
            path,
            "not a .npy file (no \\x93NUMPY magic); save arrays with numpy.save",
        ));
    }
    let file = NpyFile::new(bytes).map_err(|e| DataError::format(path, e.to_string()))?;
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    let strides: Vec<usize> = file.strides().iter().map(|&s| s as usize).collect();
    let order = file.order();
    let npyz::DType::Plain(ty) = file.dtype() else {
        return Err(DataError::format(
            path,
            "structured arrays are not supported; save a plain numeric array",
        ));
    };
    let raw = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => values(file, path, |v: f32| f64::from(v))?,
        (TypeChar::Float, 8) => values(file, path, |v: f64| v)?,
        (TypeChar::Int, 1) => values(file, path, |v: i8| f64::from(v))?,
        (TypeChar::Int, 2) => values(file, path, |v: i16| f64::from(v))?,
        (TypeChar::Int, 4) => values(file, path, |v: i32| f64::from(v))?,
        (TypeChar::Int, 8) => values(file, path, |v: i64| v as f64)?,
        (TypeChar::Uint, 1) => values(file, path, |v: u8| f64::from(v))?,
        (TypeChar::Uint, 2) => values(file, path, |v: u16| f64::from(v))?,
        (TypeChar::Uint, 4) => values(file, path, |v: u32| f64::from(v))?,
        (TypeChar::Uint, 8) => values(file, path, |v: u64| v as f64)?,
        _ => {
            return Err(DataError::format(
                path,
                format!("dtype {ty} is not supported; use float32, float64 or an integer type"),
            ));
        }
    };
    let values = match order {
        Order::C => raw,
        // Fortran order: element (i_0, …, i_k) sits at Σ i_j·stride_j; gather it in C order.
        Order::Fortran => {
            let len = raw.len();
            (0..len)
                .map(|flat| {
                    let (mut rest, mut at) = (flat, 0);
                    for (size, stride) in shape.iter().zip(&strides).rev() {
                        at += (rest % size) * stride;
                        rest /= size;
                    }
                    raw[at]
                })
                .collect()
        }
    };
    Ok(NpyArray { shape, values })
}

/// A `.npy` file (format 1.0) of raw `data` with dtype `descr` and `shape`, laid out as
/// numpy.save writes it.
fn npy_bytes(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// A C-order float64 `.npy` file of `values` with `shape` (for tests and small exports).
pub fn encode_npy_f64(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_bytes("<f8", false, shape, &data)
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, DataError> {
    let bytes = DataError::read(path)?;
    parse_npy(&bytes, path)
}

/// The dataset of `inputs` (`(n, d)`, or `(n, c, l)` / `(n, c, h, w)` images, kept as the
/// sample shape) and `targets` (`(n,)` or `(n, k)`; all zeros when `None`, for commands that
/// need inputs only). Each input is scaled to unit norm when `unit_norm` (A–C assume
/// `‖x_i‖ = 1`). Errors name the file: wrong rank, NaN or infinite values, mismatched n.
pub fn npy_dataset(
    inputs: &Path,
    targets: Option<&Path>,
    unit_norm: bool,
) -> Result<Dataset, DataError> {
    let x = read_npy(inputs)?;
    if !(2..=4).contains(&x.shape.len()) || x.shape.contains(&0) {
        return Err(DataError::format(
            inputs,
            format!(
                "inputs must have shape (n, d), (n, c, l) or (n, c, h, w) with no zero size, \
                 not {:?}",
                x.shape
            ),
        ));
    }
    let (n, sample) = (x.shape[0], x.shape[1..].to_vec());
    let d: usize = sample.iter().product();
    let (y, k) = match targets {
        None => (vec![0.0; n], 1),
        Some(path) => {
            let y = read_npy(path)?;
            let k = match y.shape[..] {
                [rows] if rows == n => 1,
                [rows, k] if rows == n && k > 0 => k,
                _ => {
                    return Err(DataError::format(
                        path,
                        format!(
                            "targets must have shape ({n},) or ({n}, k) to match the {n} inputs \
                             of {}, not {:?}",
                            inputs.display(),
                            y.shape
                        ),
                    ));
                }
            };
            (y.values, k)
        }
    };
    let mut x = x.values;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(DataError::format(
            inputs,
            format!("input {} has a non-finite value ({})", i / d, x[i]),
        ));
    }
    if let (Some(path), Some(i)) = (targets, y.iter().position(|v| !v.is_finite())) {
        return Err(DataError::format(
            path,
            format!("target {} has a non-finite value ({})", i / k, y[i]),
        ));
    }
    if unit_norm {
        normalize_rows(&mut x, d)?;
    }
    let data = Dataset::new(x, y, n, d, k)?;
    if sample.len() > 1 {
        data.with_shape(sample)
    } else {
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_bytes(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn float_integer_and_fortran_arrays_read_in_c_order() {
        let path = Path::new("x.npy");
        let c = npy_bytes("<f8", false, &[2, 3], &f64_bytes(&[1., 2., 3., 4., 5., 6.]));
        let a = parse_npy(&c, path).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values, vec![1., 2., 3., 4., 5., 6.]);
        // The same matrix stored column by column.
        let f = npy_bytes("<f8", true, &[2, 3], &f64_bytes(&[1., 4., 2., 5., 3., 6.]));
        assert_eq!(parse_npy(&f, path).unwrap(), a);
        let f32s: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy_bytes("<f4", false, &[2], &f32s), path)
                .unwrap()
                .values,
            vec![1.5, -2.0]
        );
        let ints: Vec<u8> = [3i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            parse_npy(&npy_bytes("<i8", false, &[2], &ints), path)
                .unwrap()
                .values,
            vec![3.0, -1.0]
        );
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let path = Path::new("bad.npy");
        for (bytes, needle) in [
            (b"PK\x03\x04 a zip".to_vec(), "not a .npy file"),
            (npy_bytes("<c16", false, &[1], &[0; 16]), "not supported"),
            (b"\x93NUMPY\x01\x00\xff".to_vec(), "bad.npy"),
            (npy_bytes("<f8", false, &[4], &[0; 8]), "bad.npy"),
        ] {
            let err = parse_npy(&bytes, path).unwrap_err().to_string();
            assert!(err.contains("bad.npy") && err.contains(needle), "{err}");
        }
    }

    #[test]
    fn datasets_check_shapes_values_and_normalize() {
        let dir = std::env::temp_dir().join(format!("overparam-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let x = write(
            "x.npy",
            npy_bytes(
                "<f8",
                false,
                &[2, 1, 2, 2],
                &f64_bytes(&[3., 4., 0., 0., 0., 0., 0., 2.]),
            ),
        );
        let y = write(
            "y.npy",
            npy_bytes("<f8", false, &[2], &f64_bytes(&[1., -1.])),
        );
        let data = npy_dataset(&x, Some(&y), true).unwrap();
        assert_eq!((data.len(), data.input_dim(), data.target_dim()), (2, 4, 1));
        assert_eq!(data.shape(), &[1, 2, 2]);
        assert_eq!(data.inputs(), &[0.6, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(data.targets(), &[1.0, -1.0]);
        assert_eq!(npy_dataset(&x, None, false).unwrap().targets(), &[0.0, 0.0]);

        let three = write(
            "y3.npy",
            npy_bytes("<f8", false, &[3], &f64_bytes(&[1., 2., 3.])),
        );
        let err = npy_dataset(&x, Some(&three), true).unwrap_err().to_string();
        assert!(err.contains("y3.npy") && err.contains("(2,)"), "{err}");
        let nan = write(
            "nan.npy",
            npy_bytes("<f8", false, &[1, 2], &f64_bytes(&[1., f64::NAN])),
        );
        let err = npy_dataset(&nan, None, true).unwrap_err().to_string();
        assert!(
            err.contains("nan.npy") && err.contains("non-finite"),
            "{err}"
        );
        let flat = write(
            "flat.npy",
            npy_bytes("<f8", false, &[2], &f64_bytes(&[1., 2.])),
        );
        let err = npy_dataset(&flat, None, true).unwrap_err().to_string();
        assert!(err.contains("flat.npy") && err.contains("(n, d)"), "{err}");
        let missing = dir.join("missing.npy");
        assert!(
            npy_dataset(&missing, None, true)
                .unwrap_err()
                .to_string()
                .contains("missing.npy")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
