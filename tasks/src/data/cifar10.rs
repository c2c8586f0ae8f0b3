//! The CIFAR-10 binary format (`data_batch_1.bin` ... `test_batch.bin`): records of one label
//! byte and 3072 pixel bytes, the red, green and blue 32×32 planes in turn; a file may be
//! gzip-compressed.

use std::path::Path;

use grove_core::{Error, Result};

use super::gzip::read_maybe_gzip;
use super::image_set::ImageSet;

/// Side of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Bytes of one record: a label and three 32×32 planes.
pub const RECORD_LEN: usize = 1 + 3 * SIDE * SIDE;

/// Reads the records of `files` in order into one set (channels last).
pub fn read_cifar10(files: &[impl AsRef<Path>]) -> Result<ImageSet> {
    let mut set = ImageSet {
        height: SIDE,
        width: SIDE,
        channels: 3,
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for file in files {
        let file = file.as_ref();
        let bytes = read_maybe_gzip(file)?;
        if bytes.is_empty() || bytes.len() % RECORD_LEN != 0 {
            return Err(Error::Data(format!(
                "{}: {} bytes is not a whole number of {RECORD_LEN}-byte CIFAR-10 records \
                 (truncated, or not a CIFAR-10 binary file)",
                file.display(),
                bytes.len()
            )));
        }
        for (index, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
            let label = record[0];
            if label > 9 {
                return Err(Error::Data(format!(
                    "{}: record {index} has label {label}; CIFAR-10 labels are 0 to 9",
                    file.display()
                )));
            }
            set.labels.push(u32::from(label));
            let planes = &record[1..];
            let plane = SIDE * SIDE;
            for pixel in 0..plane {
                set.pixels
                    .extend([0, 1, 2].map(|c| planes[c * plane + pixel]));
            }
        }
    }
    Ok(set)
}
