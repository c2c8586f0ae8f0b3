//! Reading data files that may be gzip-compressed, recognised by their magic bytes rather than
//! their names.

use std::io::Read;
use std::path::Path;

use grove_core::{Error, Result};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the whole file, un-gzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::Data(format!(
                "{}: the file starts like gzip but does not decompress ({e}); is it truncated?",
                path.display()
            ))
        })?;
    Ok(out)
}
