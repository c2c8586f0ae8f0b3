//! Errors of a run, each with the [`ErrorKind`] that decides how the user is told.

use grove_orbit::{ErrorKind, OrbitError, RunnerError};

/// Everything that can end a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From grove-core: config, data, checkpoint, tensor errors.
    #[error(transparent)]
    Core(#[from] grove_core::Error),
    /// From grove-orbit: controller settings, checkpoints on disk, divergence, runner failures.
    #[error(transparent)]
    Orbit(#[from] OrbitError),
    /// From grove-trackers: a tracking server that cannot be reached or refuses the run
    /// (boxed: it carries the server's answer).
    #[error(transparent)]
    Tracker(Box<grove_trackers::TrackerError>),
}

impl From<grove_trackers::TrackerError> for Error {
    fn from(error: grove_trackers::TrackerError) -> Self {
        Error::Tracker(Box::new(error))
    }
}

impl Error {
    /// The kind of failure: input the user can fix, a failed run, or a preemption.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Core(core) => core.kind(),
            Error::Orbit(orbit) => orbit.kind(),
            Error::Tracker(tracker) => tracker.kind(),
        }
    }
}

impl From<Error> for RunnerError {
    fn from(error: Error) -> Self {
        RunnerError::new(error.kind(), error)
    }
}

/// Result alias for grove-trainers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_runner_boundary() {
        let config = || grove_core::Error::Config("bad".to_string());
        assert_eq!(Error::Core(config()).kind(), ErrorKind::UserInput);
        let through_runner = OrbitError::Runner(RunnerError::from(config()));
        assert_eq!(Error::Orbit(through_runner).kind(), ErrorKind::UserInput);
        let nested = OrbitError::Runner(RunnerError::from(Error::Orbit(OrbitError::Runner(
            RunnerError::from(config()),
        ))));
        assert_eq!(nested.kind(), ErrorKind::UserInput);
        let nan = grove_core::Error::Run("nan".to_string());
        assert_eq!(Error::Core(nan).kind(), ErrorKind::Run);
        assert_eq!(
            OrbitError::Diverged("nan".to_string()).kind(),
            ErrorKind::Run
        );
        let preempted = OrbitError::Preempted { step: 3 };
        assert_eq!(Error::Orbit(preempted).kind(), ErrorKind::Preempted);
    }
}
