//! Durable file-system steps: write-then-rename with fsync, so a crash leaves either the old or
//! the new version, never a torn one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{OrbitError, Result};

/// Writes `bytes` to `path` atomically: a temporary sibling is written and fsynced, renamed over
/// `path`, and the directory is fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| OrbitError::io("cannot create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| OrbitError::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| OrbitError::io("cannot rename into", path, e))?;
    sync_parent(path)
}

/// Fsyncs every regular file directly inside `dir`, then `dir` itself.
pub fn sync_tree(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| OrbitError::io("cannot list", dir, e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| OrbitError::io("cannot list", dir, e))?
            .path();
        if path.is_file() {
            sync_path(&path)?;
        }
    }
    sync_path(dir)
}

/// Fsyncs the directory holding `path`, making a rename or removal in it durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_path(parent),
        _ => sync_path(Path::new(".")),
    }
}

fn sync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| OrbitError::io("cannot fsync", path, e))
}
