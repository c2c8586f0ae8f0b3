//! The error type of grove-records.

use std::path::PathBuf;

/// What reading a record file can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record is truncated, fails its CRC, or its contents were refused; the message names
    /// the file, the record index and its byte offset.
    #[error("{0}")]
    Corrupt(String),
}

/// Result alias for grove-records.
pub type Result<T, E = Error> = std::result::Result<T, E>;
