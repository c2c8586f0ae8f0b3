//! The files of one checkpoint directory (see docs/checkpoint_format.md):
//! `model.safetensors`, `optimizer.safetensors` and `state.json`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use grove_core::data::InputPosition;
use grove_core::init_checkpoint::{read_weights, MODEL_WEIGHTS_FILE};
use grove_core::optimization::StateView;
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Optimizer slots, named `<variable>/<slot>`.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Counters of the run.
pub const STATE_FILE: &str = "state.json";
/// Version of the checkpoint layout written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// Every worker's training stream position, in rank order.
pub type WorkerInputPositions = Vec<Option<InputPosition>>;

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
    /// Where a streaming training input stood after the last batch trained on (absent for
    /// inputs repositioned by `global_step + input_offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_position: Option<InputPosition>,
    /// The progressive training stage of the model and optimizer (absent outside progressive
    /// training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// The workers of the multi-worker job that wrote it (absent for one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Where each worker's training stream stood, in rank order, when every worker read its
    /// own shard of the data (then `input_position` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_input_positions: Option<WorkerInputPositions>,
}

/// Writes named tensors as a safetensors file (moved to the CPU first). Contiguous f32
/// tensors are written straight from their storage; others are converted by candle.
pub fn write_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let on_cpu = tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_device(&Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    let written = if on_cpu
        .iter()
        .all(|(_, t)| t.dtype() == DType::F32 && t.is_contiguous())
    {
        write_borrowed(path, &on_cpu)
    } else {
        let map: HashMap<String, Tensor> = on_cpu.into_iter().collect();
        candle_core::safetensors::save(&map, path)
    };
    written.map_err(|e| write_error(path, &e))
}

/// Writes contiguous f32 CPU tensors through views of their storage (no copy of the data).
fn write_borrowed(path: &Path, tensors: &[(String, Tensor)]) -> candle_core::Result<()> {
    let guards: Vec<_> = tensors
        .iter()
        .map(|(_, t)| t.storage_and_layout())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, t), (storage, layout)) in tensors.iter().zip(&guards) {
        let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) =
            (&**storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("`{name}` is not a contiguous f32 CPU tensor");
        };
        views.push(StateView {
            name: name.clone(),
            shape: t.dims().to_vec(),
            values: &values[start..end],
        });
    }
    serialize_views(path, &views)
}

/// Writes an optimizer's state buffers (named `<variable>/<slot>`) as a safetensors file,
/// straight from the optimizer's memory.
pub fn write_state_views(path: &Path, views: &[StateView]) -> Result<()> {
    serialize_views(path, views).map_err(|e| write_error(path, &e))
}

fn write_error(path: &Path, error: &candle_core::Error) -> Error {
    Error::Run(format!(
        "cannot write {}: {}",
        path.display(),
        first_line(error)
    ))
}

fn serialize_views(path: &Path, views: &[StateView]) -> candle_core::Result<()> {
    let views = views.iter().map(|view| {
        let data = F32View {
            shape: view.shape.clone(),
            bytes: bytemuck::cast_slice(view.values),
        };
        (view.name.as_str(), data)
    });
    Ok(safetensors::serialize_to_file(views, None, path)?)
}

/// A safetensors view of f32 data borrowed from a tensor's storage.
struct F32View<'a> {
    shape: Vec<usize>,
    bytes: &'a [u8],
}

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
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
