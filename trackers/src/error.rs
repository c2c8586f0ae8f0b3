//! Errors of the tracker sinks, each with the [`ErrorKind`] that decides how the user is told.

use std::path::{Path, PathBuf};

use grove_orbit::ErrorKind;

/// What can go wrong between Grove and a tracking server.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// A setting that cannot work (a tracking URI of a scheme Grove does not speak, ...).
    #[error("{0}")]
    InvalidSetting(String),
    /// No answer: the address is wrong, the server is not started, or the network is down.
    #[error(
        "cannot reach the MLflow tracking server at {uri}: {reason}; start it (e.g. `mlflow \
         server --host 127.0.0.1 --port 5000`) or fix runtime.mlflow.tracking_uri"
    )]
    Unreachable {
        /// The tracking URI asked.
        uri: String,
        /// What the transport reported.
        reason: String,
    },
    /// The server answered with an error.
    #[error("the MLflow tracking server at {uri} refused {endpoint}: HTTP {status} {code}: {message}{hint}")]
    Refused {
        /// The tracking URI asked.
        uri: String,
        /// The REST endpoint called (`runs/create`, ...).
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// MLflow's `error_code` (empty when the body had none).
        code: String,
        /// MLflow's `message`, or the body as given.
        message: String,
        /// How to fix it, where the status says (authentication).
        hint: &'static str,
    },
    /// The server answered with something that is not MLflow's REST API.
    #[error("the MLflow tracking server at {uri} answered {endpoint} with {detail}; is it an MLflow server?")]
    BadResponse {
        /// The tracking URI asked.
        uri: String,
        /// The REST endpoint called.
        endpoint: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// `mlflow_run.json` in model_dir cannot be read or written.
    #[error("{action} {path}: {reason}")]
    RunFile {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// `mlflow_run.json` in model_dir is not what Grove writes there.
    #[error(
        "cannot parse {path}: {reason}; delete the file to start a new MLflow run for this \
         model_dir"
    )]
    CorruptRunFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

impl TrackerError {
    /// The kind of failure: a setting, address or credential the user fixes, or a server
    /// that failed on its own (HTTP 5xx) or a file that cannot be written.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrackerError::InvalidSetting(_) | TrackerError::Unreachable { .. } => {
                ErrorKind::UserInput
            }
            TrackerError::BadResponse { .. } => ErrorKind::UserInput,
            TrackerError::Refused { status, .. } if *status < 500 => ErrorKind::UserInput,
            TrackerError::Refused { .. } => ErrorKind::Run,
            TrackerError::CorruptRunFile { .. } => ErrorKind::UserInput,
            TrackerError::RunFile { .. } => ErrorKind::Run,
        }
    }

    /// An error about the run file at `path`.
    pub(crate) fn run_file(action: &'static str, path: &Path, reason: impl ToString) -> Self {
        TrackerError::RunFile {
            action,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Result alias for grove-trackers.
pub type Result<T, E = TrackerError> = std::result::Result<T, E>;
