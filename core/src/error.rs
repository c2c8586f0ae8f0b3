//! The error type of grove-core, and how each kind maps to the user.

use std::path::PathBuf;

use grove_orbit::{ErrorKind, RunnerError};

/// Everything grove-core can report. The variants split along one line that matters to a user:
/// input they can fix (config, data, checkpoint, registry names) versus a run that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config key, type, value or cross-field rule is wrong. The message names the dotted key
    /// path, where the value came from and how to fix it.
    #[error("{0}")]
    Config(String),
    /// An input data source cannot be opened or read.
    #[error("{0}")]
    Data(String),
    /// A checkpoint given by the user (e.g. `task.init_checkpoint`) cannot be used.
    #[error("{0}")]
    Checkpoint(String),
    /// A registry lookup or registration failed (unknown experiment, duplicate name).
    #[error("{0}")]
    Registry(String),
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot read".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The run itself failed (e.g. a NaN loss); not caused by bad input.
    #[error("{0}")]
    Run(String),
}

impl Error {
    /// Wraps an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The kind of failure: config, data, checkpoint and registry errors are the user's to
    /// fix (the binary exits with code 2 for them); the others are failures of the run.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::Data(_) | Error::Checkpoint(_) | Error::Registry(_) => {
                ErrorKind::UserInput
            }
            Error::Io { .. } | Error::Candle(_) | Error::Run(_) => ErrorKind::Run,
        }
    }
}

impl From<Error> for RunnerError {
    fn from(error: Error) -> Self {
        RunnerError::new(error.kind(), error)
    }
}

/// Result alias for grove-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
