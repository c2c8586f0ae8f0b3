//! TFRecord files: each record is `u64` LE length, masked CRC-32C of the length bytes, the
//! data, masked CRC-32C of the data.

use std::io;
use std::path::Path;

use super::wire::{invalid, take, take_u32};
use crate::error::{Error, Result};

/// Added to the rotated CRC by TFRecord's CRC masking.
const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masked CRC-32C of `data`.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Frames `data` as one TFRecord.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&length);
    record.extend_from_slice(&masked_crc(&length).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc(data).to_le_bytes());
    record
}

/// Fails unless the masked CRC of `data` is `expected`.
fn check_crc(data: &[u8], expected: u32, what: &str) -> io::Result<()> {
    if masked_crc(data) == expected {
        Ok(())
    } else {
        Err(invalid(format!("{what} CRC mismatch")))
    }
}

/// Reads one record off the front of `buf`, verifying both CRCs, and returns its data.
pub fn take_record<'a>(buf: &mut &'a [u8]) -> io::Result<&'a [u8]> {
    let length_bytes = take(buf, 8, "record length")?;
    check_crc(
        length_bytes,
        take_u32(buf, "record length CRC")?,
        "record length",
    )?;
    let mut length = [0u8; 8];
    length.copy_from_slice(length_bytes);
    let length = usize::try_from(u64::from_le_bytes(length))
        .map_err(|_| invalid("record length does not fit in memory"))?;
    let data = take(buf, length, "record data")?;
    check_crc(data, take_u32(buf, "record data CRC")?, "record data")?;
    Ok(data)
}

/// Calls `each(index, data)` for every record of the file at `path`, in order. A truncated
/// record or a CRC mismatch is an [`Error::Corrupt`] naming the file, the record index and its
/// byte offset; so is an error `each` returns (as text).
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(usize, &[u8]) -> std::result::Result<(), String>,
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rest = bytes.as_slice();
    let mut index = 0;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let located = |why: String| {
            Error::Corrupt(format!(
                "{}: record {index} (byte offset {offset}): {why}",
                path.display()
            ))
        };
        let data = take_record(&mut rest).map_err(|e| located(e.to_string()))?;
        each(index, data).map_err(located)?;
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // ((c >> 15) | (c << 17)) + 0xa282ead8, computed independently.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    fn records(path: &Path) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for_each_record(path, |_, data| {
            out.push(data.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn records_round_trip_and_damage_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.tfrecord");
        let bytes = [
            frame_record(b"first"),
            frame_record(b""),
            frame_record(b"third"),
        ]
        .concat();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            records(&path).unwrap(),
            [b"first".to_vec(), vec![], b"third".to_vec()]
        );

        let second = 5 + 16;
        let third = second + 16;
        let cases = [
            (
                third + 2,
                "record 2 (byte offset 37): record length CRC mismatch",
            ),
            (
                third + 13,
                "record 2 (byte offset 37): record data CRC mismatch",
            ),
        ];
        for (flipped, expected) in cases {
            let mut damaged = bytes.clone();
            damaged[flipped] ^= 0x40;
            std::fs::write(&path, &damaged).unwrap();
            let message = records(&path).unwrap_err().to_string();
            assert!(
                message.contains("data.tfrecord") && message.contains(expected),
                "{message}"
            );
        }
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let message = records(&path).unwrap_err().to_string();
        assert!(
            message.contains("record 2") && message.contains("truncated"),
            "{message}"
        );
    }
}
