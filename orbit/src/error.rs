//! The error type of grove-orbit.

use std::path::PathBuf;

/// What kind of failure ended a run: the line between what the user can fix and what failed
/// on its own, which decides the `train` binary's exit code. Every Grove error type reports
/// its kind through a `kind()` method; a runner's error carries it across the Controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Input the user can fix: flags, config, data files, checkpoint files, registry names.
    UserInput,
    /// The run failed on its own: a NaN loss, a full disk, a tensor error.
    Run,
    /// The run stopped on request after saving a checkpoint; running again resumes it.
    Preempted,
}

/// An error raised by a runner (the user's trainer or evaluator), with its [`ErrorKind`].
/// It displays as the error it wraps and has that error's sources, so a report reads the same
/// as the original error's.
pub struct RunnerError {
    kind: ErrorKind,
    error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl RunnerError {
    /// Wraps `error` as a failure of `kind`.
    pub fn new(
        kind: ErrorKind,
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        RunnerError {
            kind,
            error: error.into(),
        }
    }

    /// Wraps `error` (an error or a message) as a failure of the run itself.
    pub fn run(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::new(ErrorKind::Run, error)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.error.as_ref()
    }
}

impl std::fmt::Debug for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunnerError({:?}, {:?})", self.kind, self.error)
    }
}

impl std::fmt::Display for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for RunnerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl From<std::io::Error> for RunnerError {
    fn from(error: std::io::Error) -> Self {
        RunnerError::run(error)
    }
}

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
    /// The kind of failure: bad settings and unusable checkpoints are the user's to fix, a
    /// runner's error keeps its own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            OrbitError::InvalidSetting(_) | OrbitError::BadCheckpoint { .. } => {
                ErrorKind::UserInput
            }
            OrbitError::Preempted { .. } => ErrorKind::Preempted,
            OrbitError::Runner(runner) => runner.kind(),
            OrbitError::Io { .. } | OrbitError::Diverged(_) => ErrorKind::Run,
        }
    }

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
