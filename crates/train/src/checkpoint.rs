//! Checkpoints of a training run: everything the loop needs to continue exactly where it
//! stopped (parameters, momentum buffers, the position of the batch-order stream and the
//! current permutation, the history), written atomically so that a run killed at any moment
//! leaves the previous checkpoint intact.

use crate::trainer::History;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where and how often a run writes its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpointing {
    /// The checkpoint file (`.safetensors`; written to a temporary file, then renamed).
    pub path: PathBuf,
    /// Write after every this many updates (and after the last).
    pub every: usize,
    /// Continue from the file when it exists (otherwise start afresh).
    pub resume: bool,
}

/// Errors reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint of this run.
    #[error("checkpoint {path}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// The loop's state after `step` updates.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Updates done.
    pub step: usize,
    /// Parameters per layer (row-major), exactly (f32 values are exact in f64).
    pub values: Vec<Vec<f64>>,
    /// Momentum buffers per layer (empty without momentum).
    pub velocity: Vec<Vec<f64>>,
    /// The batch-order stream's word position, the current permutation and the next index
    /// in it (SGD only).
    pub batches: Option<(u128, Vec<usize>, usize)>,
    /// What was recorded so far.
    pub history: History,
}

/// What the metadata holds besides the tensors.
#[derive(Serialize, Deserialize)]
struct Meta {
    step: usize,
    /// The run's identity: model and training configs as JSON, checked on resume.
    run: String,
    /// u128 as a decimal string (JSON numbers stop at 2⁵³).
    batch_word_pos: Option<String>,
    batch_order: Option<Vec<usize>>,
    batch_next: Option<usize>,
    /// The history's steps; its losses travel as tensors (JSON would not round-trip every f64).
    observed_steps: Vec<usize>,
}

const META: &str = "overparam_checkpoint";

/// Writes `state` of the run identified by `run` to `path`, atomically.
pub fn save(path: &Path, run: &str, state: &State) -> Result<(), CheckpointError> {
    let bytes = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let named: Vec<(String, Vec<u8>, usize)> = state
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("value{i}"), bytes(v), v.len()))
        .chain(
            state
                .velocity
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("velocity{i}"), bytes(v), v.len())),
        )
        .chain([
            (
                "loss0".to_string(),
                bytes(&state.history.loss),
                state.history.loss.len(),
            ),
            (
                "observed_loss0".to_string(),
                bytes(&state.history.observed_loss),
                state.history.observed_loss.len(),
            ),
        ])
        .collect();
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(name, data, len)| {
            let view =
                TensorView::new(Dtype::F64, vec![*len], data).expect("the byte length matches");
            (name.clone(), view)
        })
        .collect();
    let meta = Meta {
        step: state.step,
        run: run.to_string(),
        batch_word_pos: state.batches.as_ref().map(|b| b.0.to_string()),
        batch_order: state.batches.as_ref().map(|b| b.1.clone()),
        batch_next: state.batches.as_ref().map(|b| b.2),
        observed_steps: state.history.observed_steps.clone(),
    };
    let metadata = HashMap::from([(
        META.to_string(),
        serde_json::to_string(&meta).expect("a checkpoint serializes"),
    )]);
    let format = |problem: String| CheckpointError::Format {
        path: path.to_path_buf(),
        problem,
    };
    let buffer =
        safetensors::serialize(views, Some(metadata)).map_err(|e| format(e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    let file = |source| CheckpointError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(file)?;
    }
    std::fs::write(&tmp, buffer).map_err(file)?;
    std::fs::rename(&tmp, path).map_err(file)
}

/// Reads the state of the run identified by `run` from `path`; a checkpoint of another run
/// (different model or training options) is refused.
pub fn load(path: &Path, run: &str) -> Result<State, CheckpointError> {
    let format = |problem: String| CheckpointError::Format {
        path: path.to_path_buf(),
        problem,
    };
    let buffer = std::fs::read(path).map_err(|source| CheckpointError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let tensors = SafeTensors::deserialize(&buffer).map_err(|e| format(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&buffer).map_err(|e| format(e.to_string()))?;
    let meta: Meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META))
        .ok_or_else(|| format("not an overparam checkpoint".into()))
        .and_then(|json| serde_json::from_str(json).map_err(|e| format(e.to_string())))?;
    if meta.run != run {
        return Err(format(
            "written by another run (model, data or training options differ); delete it or \
             drop --resume to start afresh"
                .into(),
        ));
    }
    let read = |prefix: &str| -> Result<Vec<Vec<f64>>, CheckpointError> {
        let mut out = Vec::new();
        while let Ok(view) = tensors.tensor(&format!("{prefix}{}", out.len())) {
            if view.dtype() != Dtype::F64 {
                return Err(format(format!("{prefix} is not f64")));
            }
            out.push(
                view.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            );
        }
        Ok(out)
    };
    let batches = match (meta.batch_word_pos, meta.batch_order, meta.batch_next) {
        (Some(pos), Some(order), Some(next)) => Some((
            pos.parse()
                .map_err(|_| format(format!("bad batch stream position {pos}")))?,
            order,
            next,
        )),
        _ => None,
    };
    Ok(State {
        step: meta.step,
        values: read("value")?,
        velocity: read("velocity")?,
        batches,
        history: History {
            loss: read("loss")?.pop().unwrap_or_default(),
            observed_steps: meta.observed_steps,
            observed_loss: read("observed_loss")?.pop().unwrap_or_default(),
        },
    })
}
