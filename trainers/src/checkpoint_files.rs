//! The files of one checkpoint directory (see docs/checkpoint_format.md):
//! `model.safetensors`, `optimizer.safetensors` and `state.json`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use grove_core::init_checkpoint::{read_weights, MODEL_WEIGHTS_FILE};
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Optimizer slots, named `<variable>/<slot>`.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Counters of the run.
pub const STATE_FILE: &str = "state.json";
/// Version of the checkpoint layout written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Checkpoint layout version.
    pub format_version: u32,
    /// Steps trained when the checkpoint was written.
    pub global_step: u64,
    /// Updates the optimizer had applied (drives the learning-rate schedule).
    pub optimizer_iterations: u64,
    /// Training batches skipped by blow-up recoveries: the input stream stands at batch
    /// `global_step + input_offset`.
    #[serde(default)]
    pub input_offset: u64,
    /// The progressive training stage of the model and optimizer (absent outside progressive
    /// training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
}

/// Writes named tensors as a safetensors file (moved to the CPU first).
pub fn write_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let on_cpu: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&on_cpu, path).map_err(|e| {
        Error::Run(format!(
            "cannot write {}: {}",
            path.display(),
            first_line(&e)
        ))
    })
}

/// Writes `state.json`.
pub fn write_state(dir: &Path, state: &TrainState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(state).expect("the state serializes");
    std::fs::write(&path, json).map_err(|e| Error::io("cannot write", path, e))
}

/// Reads `state.json`, reporting a missing or malformed file as a checkpoint error.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::Checkpoint(format!(
            "{}: cannot read ({e}); the checkpoint is incomplete",
            path.display()
        ))
    })?;
    let state: TrainState = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Checkpoint(format!(
            "{}: malformed ({e}); the checkpoint is damaged",
            path.display()
        ))
    })?;
    if state.format_version != FORMAT_VERSION {
        return Err(Error::Checkpoint(format!(
            "{}: format_version {} is not the {FORMAT_VERSION} this build reads",
            path.display(),
            state.format_version
        )));
    }
    Ok(state)
}

/// Reads the model weights of a checkpoint directory.
pub fn read_model(dir: &Path) -> Result<HashMap<String, Tensor>> {
    read_weights(&dir.join(MODEL_WEIGHTS_FILE))
}

/// Reads the optimizer slots of a checkpoint directory.
pub fn read_optimizer(dir: &Path) -> Result<HashMap<String, Tensor>> {
    read_weights(&dir.join(OPTIMIZER_FILE))
}

fn first_line(error: &candle_core::Error) -> String {
    let text = error.to_string();
    text.lines().next().unwrap_or_default().to_string()
}
