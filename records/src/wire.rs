//! The protocol-buffer wire format: varints, field keys and the four wire types the TensorFlow
//! messages Grove reads and writes use. Errors are [`io::ErrorKind::InvalidData`].

use std::io;

/// Wire type of varints (`int64`, `bool`, enums).
pub const WIRE_VARINT: u8 = 0;
/// Wire type of 64-bit fixed-size values (`double`).
pub const WIRE_FIXED64: u8 = 1;
/// Wire type of length-delimited values (strings, bytes, messages, packed repeated fields).
pub const WIRE_LEN: u8 = 2;
/// Wire type of 32-bit fixed-size values (`float`).
pub const WIRE_FIXED32: u8 = 5;

/// An [`io::ErrorKind::InvalidData`] error.
pub fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Appends `value` as a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field key (field number and wire type).
pub fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field (string, bytes or embedded message).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Splits `n` bytes off the front of `buf`, or fails naming what was truncated.
pub fn take<'a>(buf: &mut &'a [u8], n: usize, what: &str) -> io::Result<&'a [u8]> {
    if buf.len() < n {
        return Err(invalid(format!("truncated {what}")));
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// Reads a little-endian `u32` off the front of `buf`.
pub fn take_u32(buf: &mut &[u8], what: &str) -> io::Result<u32> {
    let bytes = take(buf, 4, what)?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Reads a base-128 varint off the front of `buf`.
pub fn take_varint(buf: &mut &[u8]) -> io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(buf, 1, "varint")?[0];
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("varint longer than 10 bytes"))
}

/// The payload of one decoded field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1, as raw bits.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5, as raw bits.
    Fixed32(u32),
}

/// Reads one field (number and payload) off the front of `buf`.
pub fn take_field<'a>(buf: &mut &'a [u8]) -> io::Result<(u64, Field<'a>)> {
    let key = take_varint(buf)?;
    let field = match (key & 7) as u8 {
        WIRE_VARINT => Field::Varint(take_varint(buf)?),
        WIRE_FIXED64 => {
            let bytes = take(buf, 8, "fixed64 field")?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes);
            Field::Fixed64(u64::from_le_bytes(raw))
        }
        WIRE_LEN => {
            let length = usize::try_from(take_varint(buf)?)
                .map_err(|_| invalid("field length does not fit in memory"))?;
            Field::Bytes(take(buf, length, "length-delimited field")?)
        }
        WIRE_FIXED32 => Field::Fixed32(take_u32(buf, "fixed32 field")?),
        other => return Err(invalid(format!("unsupported wire type {other}"))),
    };
    Ok((key >> 3, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut encoded = Vec::new();
            put_varint(&mut encoded, value);
            let mut slice = encoded.as_slice();
            assert_eq!(take_varint(&mut slice).unwrap(), value);
            assert!(slice.is_empty());
        }
    }
}
