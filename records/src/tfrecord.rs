//! TFRecord files: each record is `u64` LE length, masked CRC-32C of the length bytes, the
//! data, masked CRC-32C of the data.

use std::io::{self, Read};

use super::wire::{invalid, take, take_u32};

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

/// Why the next record of a stream cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// The stream ends inside the record.
    Truncated,
    /// The length's CRC does not match: the length cannot be trusted, so no later record of
    /// the stream can be found.
    LengthCrc,
    /// The data's CRC does not match; the next record starts right after this one.
    DataCrc,
}

impl FrameFault {
    /// Whether reading can go on with the next record.
    pub fn is_recoverable(self) -> bool {
        self == FrameFault::DataCrc
    }
}

impl std::fmt::Display for FrameFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameFault::Truncated => "truncated record (the file ends inside it)",
            FrameFault::LengthCrc => "record length CRC mismatch",
            FrameFault::DataCrc => "record data CRC mismatch",
        })
    }
}

/// What [`RecordReader::read_next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A record, now in the caller's buffer.
    Record,
    /// The stream ended cleanly, between records.
    End,
    /// The record at the offset the reader stood at is damaged.
    Fault(FrameFault),
}

/// Reads TFRecords one at a time off a byte stream, keeping the byte offset and index of the
/// next record, so memory holds one record, not the file.
pub struct RecordReader<R> {
    inner: R,
    offset: u64,
    index: u64,
}

impl<R: Read> RecordReader<R> {
    /// A reader over `inner`, which stands at record `index`, `offset` bytes into its file.
    pub fn new(inner: R, offset: u64, index: u64) -> Self {
        RecordReader {
            inner,
            offset,
            index,
        }
    }

    /// Byte offset of the next record in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Index of the next record in the file.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The underlying stream, e.g. to move it to another record (then call
    /// [`RecordReader::reposition`]).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Declares that the underlying stream now stands at record `index`, `offset` bytes in.
    pub fn reposition(&mut self, offset: u64, index: u64) {
        self.offset = offset;
        self.index = index;
    }

    /// Reads the next record's data into `data` (replacing its contents), checking both
    /// CRCs. After [`Next::Record`] or a [`FrameFault::DataCrc`] fault the reader stands at
    /// the following record; after another fault it must not be used again.
    pub fn read_next(&mut self, data: &mut Vec<u8>) -> io::Result<Next> {
        let mut header = [0u8; 12];
        match read_full(&mut self.inner, &mut header)? {
            0 => return Ok(Next::End),
            12 => {}
            _ => return Ok(Next::Fault(FrameFault::Truncated)),
        }
        let (length_bytes, length_crc) = header.split_at(8);
        if masked_crc(length_bytes) != u32::from_le_bytes(length_crc.try_into().expect("4 bytes")) {
            return Ok(Next::Fault(FrameFault::LengthCrc));
        }
        let length = u64::from_le_bytes(length_bytes.try_into().expect("8 bytes"));
        data.clear();
        (&mut self.inner).take(length).read_to_end(data)?;
        let mut data_crc = [0u8; 4];
        if (data.len() as u64) < length || read_full(&mut self.inner, &mut data_crc)? < 4 {
            return Ok(Next::Fault(FrameFault::Truncated));
        }
        self.offset += 16 + length;
        self.index += 1;
        if masked_crc(data) != u32::from_le_bytes(data_crc) {
            return Ok(Next::Fault(FrameFault::DataCrc));
        }
        Ok(Next::Record)
    }
}

/// Fills `buf` from `reader` as far as the stream allows; the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

    /// Every record of `bytes`, or the first fault with its offset and index.
    fn records(bytes: &[u8]) -> Result<Vec<Vec<u8>>, (FrameFault, u64, u64)> {
        let mut reader = RecordReader::new(bytes, 0, 0);
        let mut out = Vec::new();
        let mut data = Vec::new();
        loop {
            let (offset, index) = (reader.offset(), reader.index());
            match reader.read_next(&mut data).unwrap() {
                Next::Record => out.push(data.clone()),
                Next::End => return Ok(out),
                Next::Fault(fault) => return Err((fault, offset, index)),
            }
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_located() {
        let bytes = [
            frame_record(b"first"),
            frame_record(b""),
            frame_record(b"third"),
        ]
        .concat();
        assert_eq!(
            records(&bytes).unwrap(),
            [b"first".to_vec(), vec![], b"third".to_vec()]
        );
        let third = 5 + 16 + 16;
        let cases = [
            (third + 2, FrameFault::LengthCrc),
            (third + 13, FrameFault::DataCrc),
        ];
        for (flipped, fault) in cases {
            let mut damaged = bytes.clone();
            damaged[flipped] ^= 0x40;
            assert_eq!(records(&damaged), Err((fault, third as u64, 2)));
        }
        let truncated = &bytes[..bytes.len() - 3];
        assert_eq!(
            records(truncated),
            Err((FrameFault::Truncated, third as u64, 2))
        );
        assert_eq!(
            records(&bytes[..third + 5]),
            Err((FrameFault::Truncated, third as u64, 2))
        );
    }

    #[test]
    fn a_data_crc_fault_leaves_the_reader_at_the_next_record() {
        let mut bytes = [frame_record(b"bad"), frame_record(b"good")].concat();
        bytes[13] ^= 1;
        let mut reader = RecordReader::new(bytes.as_slice(), 0, 0);
        let mut data = Vec::new();
        let fault = reader.read_next(&mut data).unwrap();
        assert_eq!(fault, Next::Fault(FrameFault::DataCrc));
        assert!(FrameFault::DataCrc.is_recoverable());
        assert_eq!((reader.offset(), reader.index()), (19, 1));
        assert_eq!(reader.read_next(&mut data).unwrap(), Next::Record);
        assert_eq!(data, b"good");
        assert_eq!(reader.read_next(&mut data).unwrap(), Next::End);
    }
}
