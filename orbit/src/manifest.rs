//! Self-checking checkpoints: `MANIFEST.json`, written last into a checkpoint directory, lists
//! every file with its size and CRC-32C; a checkpoint whose files do not match is damaged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{OrbitError, Result};

/// Name of the manifest inside a checkpoint directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    size: u64,
    crc32c: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    files: Vec<FileEntry>,
}

/// Writes the manifest of every regular file in `dir`.
pub fn write_manifest(dir: &Path) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| OrbitError::io("cannot list", dir, e))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name != MANIFEST_FILE)
        .collect();
    names.sort();
    let files = names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let bytes =
                std::fs::read(&path).map_err(|e| OrbitError::io("cannot read", &path, e))?;
            Ok(FileEntry {
                name,
                size: bytes.len() as u64,
                crc32c: crc32c::crc32c(&bytes),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_vec_pretty(&Manifest { files }).expect("a manifest serializes");
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, json).map_err(|e| OrbitError::io("cannot write", &path, e))
}

/// Checks `dir` against its manifest; the error says what is wrong.
pub fn verify_manifest(dir: &Path) -> std::result::Result<(), String> {
    let bytes = std::fs::read(dir.join(MANIFEST_FILE))
        .map_err(|e| format!("{MANIFEST_FILE} cannot be read ({e})"))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{MANIFEST_FILE} is malformed ({e})"))?;
    for file in manifest.files {
        let bytes = std::fs::read(dir.join(&file.name))
            .map_err(|e| format!("{} cannot be read ({e})", file.name))?;
        if bytes.len() as u64 != file.size {
            return Err(format!(
                "{} has {} bytes, the manifest says {}",
                file.name,
                bytes.len(),
                file.size
            ));
        }
        if crc32c::crc32c(&bytes) != file.crc32c {
            return Err(format!("{} does not match its checksum", file.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_and_corruption_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"0123456789").unwrap();
        std::fs::write(dir.path().join("b.json"), b"{}").unwrap();
        write_manifest(dir.path()).unwrap();
        verify_manifest(dir.path()).unwrap();
        std::fs::write(dir.path().join("a.bin"), b"0123456788").unwrap();
        assert!(verify_manifest(dir.path())
            .unwrap_err()
            .contains("checksum"));
        std::fs::write(dir.path().join("a.bin"), b"01234").unwrap();
        assert!(verify_manifest(dir.path())
            .unwrap_err()
            .contains("has 5 bytes"));
        std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
        assert!(verify_manifest(dir.path())
            .unwrap_err()
            .contains("cannot be read"));
    }
}
