//! Network parameters in safetensors files: one named 2-D tensor per layer (`W1`, …, `a`),
//! in the network's precision, with the model config as JSON in the header metadata under
//! `overparam.model`. numpy/PyTorch read them with `safetensors.numpy.load_file`.

use crate::config::{ConfigError, ModelConfig};
use crate::network::Network;
use overparam_device::{Compute, Precision, to_f64_vec};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key holding the model config as JSON.
pub const CONFIG_KEY: &str = "overparam.model";

/// Errors reading or writing parameter files, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The file lacks the model config and none was given.
    #[error(
        "{path}: the file has no '{CONFIG_KEY}' metadata; it was not written by overparam, so give the model options too"
    )]
    NoConfig {
        /// The file.
        path: PathBuf,
    },
    /// A tensor is missing, has the wrong shape or an unsupported dtype.
    #[error("{path}: tensor '{name}': {problem}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The embedded config is invalid.
    #[error("{path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The config problem.
        source: ConfigError,
    },
}

/// Writes every parameter of `net` to `path` (in the network's precision).
pub fn save_safetensors(net: &Network, precision: Precision, path: &Path) -> Result<(), IoError> {
    let bytes: Vec<Vec<u8>> = net
        .values()
        .into_iter()
        .map(|t| {
            let values = to_f64_vec(t);
            match precision {
                Precision::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                Precision::F32 => values
                    .iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect(),
            }
        })
        .collect();
    let dtype = match precision {
        Precision::F64 => Dtype::F64,
        Precision::F32 => Dtype::F32,
    };
    let views: Vec<(String, TensorView<'_>)> = net
        .specs()
        .iter()
        .zip(&bytes)
        .map(|(spec, data)| {
            let view = TensorView::new(dtype, spec.shape.to_vec(), data)
                .expect("the byte length matches the layer shape");
            (spec.name.clone(), view)
        })
        .collect();
    let config = serde_json::to_string(net.config()).expect("a config serializes");
    let metadata = HashMap::from([(CONFIG_KEY.to_string(), config)]);
    let buffer = safetensors::serialize(views, Some(metadata)).map_err(|e| IoError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, buffer).map_err(|source| IoError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a network from `path`. The config comes from the file's metadata, or from `config`
/// when the file has none (a file written by numpy/PyTorch); every layer must be present with
/// its exact shape. f32 and f64 files load into either precision.
pub fn load_safetensors(
    path: &Path,
    compute: &Compute,
    config: Option<&ModelConfig>,
) -> Result<Network, IoError> {
    let file_err = |source| IoError::File {
        path: path.to_path_buf(),
        source,
    };
    let format_err = |e: safetensors::SafeTensorError| IoError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let buffer = std::fs::read(path).map_err(file_err)?;
    let tensors = SafeTensors::deserialize(&buffer).map_err(format_err)?;
    let (_, metadata) = SafeTensors::read_metadata(&buffer).map_err(format_err)?;
    let embedded = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .map(|json| {
            serde_json::from_str::<ModelConfig>(json).map_err(|e| IoError::Format {
                path: path.to_path_buf(),
                message: format!("bad '{CONFIG_KEY}' metadata: {e}"),
            })
        })
        .transpose()?;
    let config = match (embedded, config) {
        (Some(c), _) => c,
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(IoError::NoConfig {
                path: path.to_path_buf(),
            });
        }
    };
    config.validate().map_err(|source| IoError::Config {
        path: path.to_path_buf(),
        source,
    })?;
    let values = config
        .layers()
        .iter()
        .map(|spec| {
            let problem = |problem: String| IoError::Tensor {
                path: path.to_path_buf(),
                name: spec.name.clone(),
                problem,
            };
            let view = tensors
                .tensor(&spec.name)
                .map_err(|_| problem("missing".to_string()))?;
            if view.shape() != spec.shape {
                return Err(problem(format!(
                    "shape {:?}, the model needs {:?}",
                    view.shape(),
                    spec.shape
                )));
            }
            match view.dtype() {
                Dtype::F64 => Ok(view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect()),
                Dtype::F32 => Ok(view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes"))))
                    .collect()),
                other => Err(problem(format!("dtype {other:?}, expected F32 or F64"))),
            }
        })
        .collect::<Result<Vec<Vec<f64>>, IoError>>()?;
    Network::from_values(&config, compute, &values).map_err(|source| IoError::Config {
        path: path.to_path_buf(),
        source,
    })
}
