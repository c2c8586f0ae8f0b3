//! `input_path` as Model Garden accepts it: a comma-separated list of file paths and glob
//! patterns (`data/train-*.tfrecord`), expanded in order.

use std::path::PathBuf;

use grove_core::{Error, Result};

/// Refuses an `input_path` on a split whose `file_type: synthetic` generates its data, so a
/// path meant to be read is never silently ignored. In every task `file_type` alone selects
/// generated data; `key` is the split's config key.
pub fn refuse_input_path_for_synthetic(key: &str, input_path: &str) -> Result<()> {
    if input_path.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{key}.input_path = {input_path:?}, but {key}.file_type = synthetic generates the data; \
         set {key}.file_type to the format of the files to read them, or remove input_path"
    )))
}

/// The files `input_path` names, in the order given (each pattern's matches sorted). A path
/// that does not exist, a pattern that matches nothing or a malformed pattern is an
/// [`Error::Data`] naming `key` and the entry.
pub fn expand_input_path(input_path: &str, key: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in input_path
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if !entry.contains(['*', '?', '[']) {
            let path = PathBuf::from(entry);
            if !path.is_file() {
                return Err(Error::Data(format!(
                    "{key}.input_path: {entry:?} is not a file"
                )));
            }
            files.push(path);
            continue;
        }
        let matches = glob::glob(entry).map_err(|e| {
            Error::Config(format!(
                "{key}.input_path: {entry:?} is not a valid pattern ({e})"
            ))
        })?;
        let mut found: Vec<PathBuf> = matches
            .filter_map(|m| m.ok())
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            return Err(Error::Data(format!(
                "{key}.input_path: the pattern {entry:?} matches no file"
            )));
        }
        found.sort();
        files.append(&mut found);
    }
    Ok(files)
}
