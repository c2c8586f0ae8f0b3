//! The IDX format of MNIST files (`train-images-idx3-ubyte`, ...), raw or gzip-compressed:
//! two zero bytes, a type byte (0x08: unsigned bytes, the only type image sets use), the
//! number of dimensions, each dimension as a big-endian u32, then the data.

use std::path::Path;

use grove_core::{Error, Result};

use super::gzip::read_maybe_gzip;

/// An unsigned-byte IDX array.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions, outermost first (images: count, rows, columns).
    pub dims: Vec<usize>,
    /// The elements in row-major order.
    pub data: Vec<u8>,
}

/// Reads an unsigned-byte IDX file with `expected_dims` dimensions.
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<IdxArray> {
    let bytes = read_maybe_gzip(path)?;
    parse_idx(&bytes, expected_dims)
        .map_err(|why| Error::Data(format!("{}: not a valid IDX file: {why}", path.display())))
}

fn parse_idx(bytes: &[u8], expected_dims: usize) -> std::result::Result<IdxArray, String> {
    let Some(header) = bytes.get(..4) else {
        return Err(format!(
            "it has {} bytes, fewer than the 4-byte magic number",
            bytes.len()
        ));
    };
    if header[0] != 0 || header[1] != 0 {
        return Err(format!(
            "wrong magic number {:02x}{:02x}{:02x}{:02x} (IDX files start with 0000)",
            header[0], header[1], header[2], header[3]
        ));
    }
    if header[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x} is not 0x08 (unsigned byte)",
            header[2]
        ));
    }
    let ndims = header[3] as usize;
    if ndims != expected_dims {
        return Err(format!(
            "it has {ndims} dimensions where {expected_dims} were expected (images have 3, \
             labels 1)"
        ));
    }
    let dims_end = 4 + 4 * ndims;
    let dim_bytes = bytes
        .get(4..dims_end)
        .ok_or_else(|| format!("it ends inside its header ({} bytes)", bytes.len()))?;
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected_len: usize = dims.iter().product();
    let data = &bytes[dims_end..];
    if data.len() != expected_len {
        return Err(format!(
            "its header announces {dims:?} = {expected_len} bytes of data but it holds {} \
             (truncated or corrupt)",
            data.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Writes `array` as a raw IDX file (test data and conversions).
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, array.dims.len() as u8];
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data);
    out
}
