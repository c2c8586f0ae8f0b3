//! Errors of a sweep, each with the [`ErrorKind`] that decides the exit code.

use std::path::PathBuf;

use grove_orbit::ErrorKind;

/// Everything that can end a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file or the flags are wrong; the message names the key and how to fix it.
    #[error("{0}")]
    Spec(String),
    /// The experiment's config refused the sweep's base layers or a parameter.
    #[error(transparent)]
    Config(#[from] grove_core::Error),
    /// A file-system operation on the sweep directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot append to".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger cannot be read back: the message names the file and line.
    #[error("{0}")]
    Ledger(String),
    /// Too many trials failed (`max_failures`).
    #[error("{0}")]
    TrialsFailed(String),
    /// A signal stopped the sweep, or a trial was killed; running the same command resumes.
    #[error("{0}")]
    Interrupted(String),
}

impl SweepError {
    /// Wraps an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SweepError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The kind of failure: input the user can fix, a failed sweep, or an interruption.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SweepError::Spec(_) | SweepError::Ledger(_) => ErrorKind::UserInput,
            SweepError::Config(core) => core.kind(),
            SweepError::Io { .. } | SweepError::TrialsFailed(_) => ErrorKind::Run,
            SweepError::Interrupted(_) => ErrorKind::Preempted,
        }
    }
}

/// Result alias for grove-sweep.
pub type Result<T, E = SweepError> = std::result::Result<T, E>;
