//! The error type of grove-orbit.

use std::path::PathBuf;

/// A boxed error raised by a runner (the user's trainer or evaluator).
pub type RunnerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while Orbit drives a run.
#[derive(Debug, thiserror::Error)]
pub enum OrbitError {
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot write".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Controller or CheckpointManager was given settings that cannot work together.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A checkpoint on disk cannot be used.
    #[error("checkpoint {path}: {reason}")]
    BadCheckpoint {
        /// The checkpoint directory or index file.
        path: PathBuf,
        /// Why it cannot be used and how to fix it.
        reason: String,
    },
    /// Training diverged (NaN or a loss above `loss_upper_bound`).
    #[error("{0}")]
    Diverged(String),
    /// A stop was requested (SIGTERM / SIGINT); a checkpoint of this step was saved.
    #[error(
        "preempted at step {step}: a checkpoint of this step is saved; run the same command \
         to resume"
    )]
    Preempted {
        /// The global step the run stopped at.
        step: u64,
    },
    /// The trainer or evaluator failed.
    #[error(transparent)]
    Runner(RunnerError),
}

impl OrbitError {
    /// Wraps an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OrbitError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for grove-orbit.
pub type Result<T, E = OrbitError> = std::result::Result<T, E>;
