//! One training process per model_dir: an exclusive lock on `model_dir/.lock`, held for the
//! whole run. Evaluation processes take no lock and may read the same model_dir.

use std::path::Path;

use grove_core::{Error, Result};
use grove_orbit::process_lock::{lock_for_this_process, ProcessLock, ProcessLockError};

/// File in model_dir whose lock marks the training process that owns it.
pub const LOCK_FILE: &str = ".lock";

/// Held while a training process owns a model_dir; dropping it releases the lock.
pub type ModelDirLock = ProcessLock;

/// Takes the training lock of `model_dir` (which must exist); fails with an input error naming
/// the process that holds it.
pub fn lock_model_dir(model_dir: &Path) -> Result<ModelDirLock> {
    let path = model_dir.join(LOCK_FILE);
    lock_for_this_process(&path).map_err(|e| match e {
        ProcessLockError::Held { holder } => Error::Config(format!(
            "{} is being trained by another process ({holder}); wait for it to finish, or use \
             another --model_dir",
            model_dir.display()
        )),
        ProcessLockError::Io { action, source } => Error::io(action, &path, source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_model_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_model_dir(dir.path()).unwrap();
        let err = lock_model_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("being trained by another process (pid"),
            "{err}"
        );
        drop(first);
        lock_model_dir(dir.path()).unwrap();
    }
}
