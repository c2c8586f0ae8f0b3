//! An exclusive lock on a file, held by one process for as long as it runs (released by the
//! operating system if the process dies): one training process per model_dir, one sweep
//! process per sweep directory. The file holds the holder's pid, for the message of a refused
//! second process.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

/// Held while this process owns the locked file; dropping it releases the lock.
#[derive(Debug)]
pub struct ProcessLock {
    _file: File,
}

/// Why [`lock_for_this_process`] failed.
#[derive(Debug)]
pub enum ProcessLockError {
    /// Another process holds the lock; `holder` is what it wrote (`pid N`).
    Held {
        /// The holder's note.
        holder: String,
    },
    /// The file could not be opened, locked or written.
    Io {
        /// What was being done, e.g. "cannot lock".
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Takes the exclusive lock on `path` (created if missing) and writes this process's pid in it.
pub fn lock_for_this_process(path: &Path) -> Result<ProcessLock, ProcessLockError> {
    let io = |action| move |source| ProcessLockError::Io { action, source };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("cannot open"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            return Err(ProcessLockError::Held {
                holder: holder.trim().to_string(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io("cannot lock")(e)),
    }
    file.set_len(0)
        .and_then(|()| write!(file, "pid {}", std::process::id()))
        .map_err(io("cannot write"))?;
    Ok(ProcessLock { _file: file })
}

/// Waits until no process holds the lock on `path`, if the file exists (e.g. a process being
/// stopped that still saves its state). Returns whether it had to wait.
pub fn wait_until_unlocked(path: &Path) -> std::io::Result<bool> {
    let Ok(file) = File::open(path) else {
        return Ok(false);
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => file.lock().map(|()| true),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = lock_for_this_process(&path).unwrap();
        match lock_for_this_process(&path) {
            Err(ProcessLockError::Held { holder }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()))
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(!wait_until_unlocked(&path).unwrap());
        lock_for_this_process(&path).unwrap();
    }
}
