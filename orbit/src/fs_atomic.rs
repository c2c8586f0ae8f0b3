//! Durable file-system steps: write-then-rename with fsync, so a crash leaves either the old or
//! the new version, never a torn one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::RunnerError;
use crate::error::{OrbitError, Result};
use crate::fault::fault_point;
use crate::manifest::write_manifest;

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

/// Saves a checkpoint as `<parent>/<name>/`, complete or not at all: `write_files` writes it into
/// `<name>.tmp/` with its manifest last, fsynced and renamed (replacing a leftover `<name>/` that no index names).
pub fn save_checkpoint_dir(
    parent: &Path,
    name: &str,
    write_files: impl FnOnce(&Path) -> std::result::Result<(), RunnerError>,
) -> Result<PathBuf> {
    let final_dir = parent.join(name);
    let tmp_dir = parent.join(format!("{name}.tmp"));
    std::fs::create_dir_all(parent).map_err(|e| OrbitError::io("cannot create", parent, e))?;
    remove_dir_if_present(&tmp_dir)?;
    std::fs::create_dir(&tmp_dir).map_err(|e| OrbitError::io("cannot create", &tmp_dir, e))?;
    write_files(&tmp_dir).map_err(OrbitError::Runner)?;
    fault_point("checkpoint_files_written")
        .map_err(|e| OrbitError::io("cannot write", &tmp_dir, e))?;
    write_manifest(&tmp_dir)?;
    sync_tree(&tmp_dir)?;
    fault_point("checkpoint_manifest_written")
        .map_err(|e| OrbitError::io("cannot write", &tmp_dir, e))?;
    remove_dir_if_present(&final_dir)?;
    std::fs::rename(&tmp_dir, &final_dir)
        .map_err(|e| OrbitError::io("cannot rename into", &final_dir, e))?;
    sync_parent(&final_dir)?;
    fault_point("checkpoint_renamed").map_err(|e| OrbitError::io("cannot write", parent, e))?;
    Ok(final_dir)
}

/// Removes `dir` and its contents; a missing `dir` is fine.
pub fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OrbitError::io("cannot remove", dir, e)),
    }
}
