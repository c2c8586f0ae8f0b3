//! One training process per model_dir: an exclusive lock on `model_dir/.lock`, held for the
//! whole run. Evaluation processes take no lock and may read the same model_dir.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use grove_core::{Error, Result};

/// File in model_dir whose lock marks the training process that owns it.
pub const LOCK_FILE: &str = ".lock";

/// Held while a training process owns a model_dir; dropping it releases the lock.
#[derive(Debug)]
pub struct ModelDirLock {
    _file: File,
}

/// Takes the training lock of `model_dir` (which must exist); fails with an input error naming
/// the process that holds it.
pub fn lock_model_dir(model_dir: &Path) -> Result<ModelDirLock> {
    let path = model_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("cannot open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::Config(format!(
                "{} is being trained by another process ({}); wait for it to finish, or use \
                 another --model_dir",
                model_dir.display(),
                holder.trim()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(Error::io("cannot lock", &path, e)),
    }
    file.set_len(0)
        .and_then(|()| write!(file, "pid {}", std::process::id()))
        .map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(ModelDirLock { _file: file })
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
