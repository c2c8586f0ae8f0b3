//! Errors of a run, and which of them the user caused.

use grove_orbit::OrbitError;

/// Everything that can end a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From grove-core: config, data, checkpoint, tensor errors.
    #[error(transparent)]
    Core(#[from] grove_core::Error),
    /// From grove-orbit: controller settings, checkpoints on disk, divergence, runner failures.
    #[error(transparent)]
    Orbit(#[from] OrbitError),
}

/// Result alias for grove-trainers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when `error` (or any error in its source chain) is one the user caused and can fix
/// (config, flags, data, checkpoint files, registry names).
pub fn is_user_error(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(core) = error.downcast_ref::<grove_core::Error>() {
        return core.is_user_error();
    }
    if let Some(run) = error.downcast_ref::<Error>() {
        return match run {
            Error::Core(core) => core.is_user_error(),
            Error::Orbit(orbit) => is_user_error(orbit),
        };
    }
    if let Some(orbit) = error.downcast_ref::<OrbitError>() {
        return match orbit {
            OrbitError::BadCheckpoint { .. } | OrbitError::InvalidSetting(_) => true,
            OrbitError::Runner(inner) => is_user_error(inner.as_ref()),
            _ => false,
        };
    }
    error.source().is_some_and(is_user_error)
}

/// True when `error` (or an error it wraps) is a preemption: the run stopped on request after
/// saving a checkpoint.
pub fn is_preemption(error: &(dyn std::error::Error + 'static)) -> bool {
    match error.downcast_ref::<Error>() {
        Some(Error::Orbit(orbit)) => is_preemption(orbit),
        Some(Error::Core(_)) => false,
        None => matches!(
            error.downcast_ref::<OrbitError>(),
            Some(OrbitError::Preempted { .. })
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_user_errors_are_recognised() {
        let config = || grove_core::Error::Config("bad".to_string());
        assert!(is_user_error(&config()));
        assert!(is_user_error(&Error::Core(config())));
        assert!(is_user_error(&Error::Orbit(OrbitError::Runner(Box::new(
            config()
        )))));
        assert!(!is_user_error(&Error::Core(grove_core::Error::Run(
            "nan".to_string()
        ))));
        assert!(!is_user_error(&OrbitError::Diverged("nan".to_string())));
        let preempted = || OrbitError::Preempted { step: 3 };
        assert!(is_preemption(&Error::Orbit(preempted())));
        assert!(!is_user_error(&Error::Orbit(preempted())));
    }
}
