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
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(core) = e.downcast_ref::<grove_core::Error>() {
            if core.is_user_error() {
                return true;
            }
        }
        if let Some(orbit) = e.downcast_ref::<OrbitError>() {
            match orbit {
                OrbitError::BadCheckpoint { .. } | OrbitError::InvalidSetting(_) => return true,
                OrbitError::Runner(inner) => {
                    current = Some(inner.as_ref());
                    continue;
                }
                _ => {}
            }
        }
        current = e.source();
    }
    false
}
