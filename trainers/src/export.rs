//! `--mode=export`: a checkpoint's model written for another tool, in
//! `model_dir/export/<step>/`:
//! - `huggingface`: `model.safetensors` under Hugging Face's tensor names (with the
//!   `format: pt` metadata `transformers` asks for), `config.json` and the vocabulary, as the
//!   task's [`ExportPlan`] says; the task refuses a model the format cannot express.
//! - `grove`: `model.safetensors` as the checkpoint holds it and `params.yaml`, loadable by
//!   `task.init_checkpoint`.
//!
//! The weights are the latest checkpoint's (or `--eval_checkpoint`'s), the moving averages of
//! that step when `trainer.optimizer_config.ema` is set. The export directory is written
//! whole under a temporary name and renamed, so it is complete or absent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use grove_core::config::ExperimentConfig;
use grove_core::export::{ExportFormat, ExportPlan};
use grove_core::init_checkpoint::MODEL_WEIGHTS_FILE;
use grove_core::registry::get_task;
use grove_core::Error;
use grove_orbit::checkpoint::{latest_checkpoint_in, verify_checkpoint};
use grove_orbit::ema_checkpointing::AVERAGE_WEIGHTS_PREFIX;
use grove_orbit::remove_dir_if_present;
use serde::{Deserialize, Serialize};

use crate::checkpoint_files::read_state;
use crate::error::Result;
use crate::train_lib::{EvalCheckpoint, EMA_CHECKPOINTS_SUBDIR, PARAMS_FILE};

/// The subdirectory of model_dir holding exports, one directory per step.
pub const EXPORT_SUBDIR: &str = "export";

/// `--export_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportTarget {
    /// Hugging Face `transformers` (the default).
    #[default]
    Huggingface,
    /// Grove's own weights and resolved config.
    Grove,
}

/// Writes the export of `config`'s run in `model_dir` from `checkpoint` (the latest, or a
/// checkpoint directory) as `target`, and returns the export directory.
pub fn export_model(
    config: &ExperimentConfig,
    model_dir: &Path,
    checkpoint: &EvalCheckpoint,
    target: ExportTarget,
) -> Result<PathBuf> {
    config.validate()?;
    let checkpoint = checkpoint_dir(model_dir, checkpoint)?;
    verify_checkpoint(&checkpoint)
        .map_err(|why| Error::Checkpoint(format!("{}: {why}", checkpoint.display())))?;
    let step = read_state(&checkpoint)?.global_step;
    let weights = weights_file(config, model_dir, &checkpoint, step)?;
    let bytes = std::fs::read(&weights).map_err(|e| Error::io("cannot read", &weights, e))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::Checkpoint(format!(
            "{}: not a readable safetensors file ({e})",
            weights.display()
        ))
    })?;
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_string).collect();
    names.sort();

    let export_dir = model_dir.join(EXPORT_SUBDIR).join(step.to_string());
    let staging = model_dir.join(EXPORT_SUBDIR).join(format!(".{step}.tmp"));
    remove_dir_if_present(&staging)?;
    std::fs::create_dir_all(&staging).map_err(|e| Error::io("cannot create", &staging, e))?;
    match target {
        ExportTarget::Huggingface => {
            let task = get_task(config.task.as_ref())?;
            let plan = task.export(ExportFormat::Huggingface, &names)?;
            write_renamed(&tensors, &plan, &staging.join(MODEL_WEIGHTS_FILE))?;
            for (name, contents) in &plan.files {
                write_file(&staging.join(name), contents)?;
            }
        }
        ExportTarget::Grove => {
            write_file(&staging.join(MODEL_WEIGHTS_FILE), &bytes)?;
            write_file(
                &staging.join(PARAMS_FILE),
                config.to_yaml_string().as_bytes(),
            )?;
        }
    }
    remove_dir_if_present(&export_dir)?;
    std::fs::rename(&staging, &export_dir).map_err(|e| Error::io("cannot rename", &staging, e))?;
    tracing::info!(
        "exported {} ({} tensors, step {step}) as {target:?} to {}",
        weights.display(),
        names.len(),
        export_dir.display()
    );
    Ok(export_dir)
}

/// The checkpoint directory to export.
fn checkpoint_dir(model_dir: &Path, checkpoint: &EvalCheckpoint) -> Result<PathBuf> {
    match checkpoint {
        EvalCheckpoint::Path(path) => Ok(path.clone()),
        EvalCheckpoint::All => Err(Error::Config(
            "--mode=export writes one checkpoint: give --eval_checkpoint=latest or a checkpoint \
             directory"
                .to_string(),
        )
        .into()),
        EvalCheckpoint::Latest => latest_checkpoint_in(model_dir)?.ok_or_else(|| {
            Error::Checkpoint(format!(
                "--mode=export needs a checkpoint, and {} has none; train first or give \
                 --eval_checkpoint=PATH",
                model_dir.display()
            ))
            .into()
        }),
    }
}

/// The weights to export: the checkpoint's, or with EMA the moving averages of its step.
fn weights_file(
    config: &ExperimentConfig,
    model_dir: &Path,
    checkpoint: &Path,
    step: u64,
) -> Result<PathBuf> {
    if config.trainer.optimizer_config.ema.is_none() {
        return Ok(checkpoint.join(MODEL_WEIGHTS_FILE));
    }
    let averages = model_dir
        .join(EMA_CHECKPOINTS_SUBDIR)
        .join(format!("{AVERAGE_WEIGHTS_PREFIX}-{step}"));
    let file = averages.join(MODEL_WEIGHTS_FILE);
    if !file.is_file() {
        return Err(Error::Checkpoint(format!(
            "the run uses EMA and its moving averages of step {step} are not in {} (they are \
             saved at evaluations); export a step that was evaluated with --eval_checkpoint",
            averages.display()
        ))
        .into());
    }
    Ok(file)
}

/// Writes `tensors` under the plan's names, with the `format: pt` metadata.
fn write_renamed(
    tensors: &safetensors::SafeTensors<'_>,
    plan: &ExportPlan,
    path: &Path,
) -> Result<()> {
    let mut views = Vec::with_capacity(plan.tensors.len());
    for (grove, exported) in &plan.tensors {
        let view = tensors
            .tensor(grove)
            .map_err(|e| Error::Checkpoint(format!("the checkpoint has no tensor {grove}: {e}")))?;
        views.push((exported.clone(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| Error::Run(format!("cannot write {}: {e}", path.display())).into())
}

fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io("cannot write", path, e).into())
}
