//! Where the workers of a multi-worker job write, and how they start from the same state.
//!
//! As with Model Garden's non-chief workers, only the chief (worker 0) writes under
//! model_dir; every other worker writes its checkpoints, summaries and exports into a scratch
//! directory of its own that is removed when it ends. The chief restores model_dir's latest
//! checkpoint (or initializes) and sends that checkpoint to the others, so model_dir need not
//! be shared between machines; then the workers compare a checksum of their weights and step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use grove_collective::Collective;
use grove_core::config::{DistributionStrategy, ExperimentConfig};
use grove_core::Error;
use grove_orbit::{CheckpointFiles, Controller, Trainer};
use tempfile::TempDir;

use crate::error::Result;
use crate::strategy::{collective_error, weights_checksum};
use crate::train_lib::{Mode, Runner};

/// This process's place in the run: alone, the chief of a job, or another worker.
pub(crate) struct WorkerPlacement {
    workers: Option<Arc<dyn Collective>>,
    write_dir: PathBuf,
    /// A non-chief worker's scratch model_dir, removed on drop.
    scratch: Option<TempDir>,
}

impl WorkerPlacement {
    /// The placement of a run of `config` in `mode` on `model_dir`: a job's worker when the
    /// config asks for `multi_worker_mirrored` and the process joined one.
    pub(crate) fn of(config: &ExperimentConfig, mode: Mode, model_dir: &Path) -> Result<Self> {
        let alone = WorkerPlacement {
            workers: None,
            write_dir: model_dir.to_path_buf(),
            scratch: None,
        };
        if config.runtime.distribution_strategy != DistributionStrategy::MultiWorkerMirrored {
            return Ok(alone);
        }
        let Some(workers) = grove_collective::joined() else {
            // build_strategy reports it with the fix.
            return Ok(alone);
        };
        if !mode.roles().train {
            return Err(Error::Config(format!(
                "--mode={mode:?} runs in one process: evaluate without mpirun, with \
                 runtime.distribution_strategy=mirrored (multi_worker_mirrored splits the \
                 evaluations of the training modes over the workers)"
            ))
            .into());
        }
        if workers.is_chief() {
            return Ok(WorkerPlacement {
                workers: Some(workers),
                ..alone
            });
        }
        let scratch = tempfile::Builder::new()
            .prefix(&format!("grove-worker-{}-", workers.rank()))
            .tempdir()
            .map_err(|e| Error::io("cannot create", std::env::temp_dir(), e))?;
        tracing::info!(
            "worker {} of {}: the chief writes model_dir; this worker writes into {} (removed \
             at exit)",
            workers.rank(),
            workers.size(),
            scratch.path().display()
        );
        Ok(WorkerPlacement {
            workers: Some(workers),
            write_dir: scratch.path().to_path_buf(),
            scratch: Some(scratch),
        })
    }

    /// Where this process writes: model_dir, or a non-chief worker's scratch directory.
    pub(crate) fn write_dir(&self) -> &Path {
        &self.write_dir
    }

    /// Whether this process writes model_dir: it runs alone or is the chief.
    pub(crate) fn writes_model_dir(&self) -> bool {
        self.scratch.is_none()
    }

    /// Whether this process runs without other workers.
    pub(crate) fn alone(&self) -> bool {
        self.workers.is_none()
    }
}

/// Restores the latest checkpoint or initializes; with workers, the chief does so from
/// model_dir and sends the checkpoint it restored to the others, which restore it too, and
/// every worker checks that all hold the same weights at the same step.
pub(crate) fn restore_or_initialize_everywhere<R: Runner>(
    controller: &mut Controller<R>,
) -> Result<()> {
    let init = |t: &mut R| t.initialize().map_err(Into::into);
    let joined = controller.runner().current().workers().is_some();
    let Some(workers) = joined.then(grove_collective::joined).flatten() else {
        controller.restore_or_initialize(init)?;
        return Ok(());
    };
    let mut checkpoint = Vec::new();
    if workers.is_chief() {
        controller.restore_or_initialize(init)?;
        if let Some(manager) = controller.checkpoint_manager() {
            if let Some(files) = manager.latest_files()? {
                checkpoint = files.to_bytes();
            }
        }
    }
    workers
        .broadcast(&mut checkpoint)
        .map_err(collective_error)?;
    if !workers.is_chief() {
        if !checkpoint.is_empty() {
            let files = CheckpointFiles::from_bytes(&checkpoint)?;
            if let Some(manager) = controller.checkpoint_manager_mut() {
                manager.install(&files)?;
            }
        }
        controller.restore_or_initialize(init)?;
    }
    let trainer = controller.runner().current();
    let checksum = weights_checksum(trainer.vars(), trainer.global_step())?;
    workers
        .check_agreement("the weights and global step at the start", checksum)
        .map_err(collective_error)?;
    tracing::info!(
        "worker {} of {}: weights and step agree with every worker's",
        workers.rank(),
        workers.size()
    );
    Ok(())
}
