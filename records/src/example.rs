//! `tf.train.Example`: a map from feature names to lists of bytes, floats or int64s.
//!
//! ```text
//! Example  { 1: Features features }
//! Features { 1: map<string, Feature> feature }      (entries: { 1: key, 2: value })
//! Feature  { oneof: 1: BytesList, 2: FloatList, 3: Int64List }   (each { 1: repeated value })
//! ```
//! Repeated numbers are read packed or unpacked; they are written packed, as TensorFlow does.

use std::collections::BTreeMap;
use std::io;

use super::wire::{
    invalid, put_bytes, put_key, put_varint, take_field, take_u32, take_varint, Field, WIRE_LEN,
};

/// The values of one feature.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValues {
    /// A `BytesList`.
    Bytes(Vec<Vec<u8>>),
    /// A `FloatList`.
    Float(Vec<f32>),
    /// An `Int64List`.
    Int64(Vec<i64>),
}

impl FeatureValues {
    /// The kind's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureValues::Bytes(_) => "bytes_list",
            FeatureValues::Float(_) => "float_list",
            FeatureValues::Int64(_) => "int64_list",
        }
    }
}

/// A decoded `Example`: feature name → values.
pub type Example = BTreeMap<String, FeatureValues>;

/// Decodes a serialized `Example`.
pub fn decode_example(mut bytes: &[u8]) -> io::Result<Example> {
    let mut example = Example::new();
    while !bytes.is_empty() {
        if let (1, Field::Bytes(mut features)) = take_field(&mut bytes)? {
            while !features.is_empty() {
                if let (1, Field::Bytes(entry)) = take_field(&mut features)? {
                    let (name, values) = decode_entry(entry)?;
                    example.insert(name, values);
                }
            }
        }
    }
    Ok(example)
}

fn decode_entry(mut entry: &[u8]) -> io::Result<(String, FeatureValues)> {
    let (mut name, mut values) = (String::new(), None);
    while !entry.is_empty() {
        match take_field(&mut entry)? {
            (1, Field::Bytes(key)) => {
                name = String::from_utf8(key.to_vec())
                    .map_err(|_| invalid("a feature name is not UTF-8"))?
            }
            (2, Field::Bytes(feature)) => values = Some(decode_feature(feature)?),
            _ => {}
        }
    }
    let values = values.ok_or_else(|| invalid(format!("feature `{name}` has no value")))?;
    Ok((name, values))
}

fn decode_feature(mut feature: &[u8]) -> io::Result<FeatureValues> {
    let mut values = FeatureValues::Bytes(Vec::new());
    while !feature.is_empty() {
        let (kind, Field::Bytes(mut list)) = take_field(&mut feature)? else {
            return Err(invalid("a Feature field is not a list"));
        };
        values = match kind {
            1 => FeatureValues::Bytes(decode_list(&mut list, |f| match f {
                Field::Bytes(b) => Ok(vec![b.to_vec()]),
                _ => Err(invalid("a bytes_list value is not bytes")),
            })?),
            2 => FeatureValues::Float(decode_list(&mut list, |f| match f {
                Field::Fixed32(bits) => Ok(vec![f32::from_bits(bits)]),
                Field::Bytes(mut packed) => {
                    let mut out = Vec::with_capacity(packed.len() / 4);
                    while !packed.is_empty() {
                        out.push(f32::from_bits(take_u32(&mut packed, "packed float")?));
                    }
                    Ok(out)
                }
                _ => Err(invalid("a float_list value is not a float")),
            })?),
            3 => FeatureValues::Int64(decode_list(&mut list, |f| match f {
                Field::Varint(v) => Ok(vec![v as i64]),
                Field::Bytes(mut packed) => {
                    let mut out = Vec::new();
                    while !packed.is_empty() {
                        out.push(take_varint(&mut packed)? as i64);
                    }
                    Ok(out)
                }
                _ => Err(invalid("an int64_list value is not an integer")),
            })?),
            other => return Err(invalid(format!("unknown Feature kind {other}"))),
        };
    }
    Ok(values)
}

/// The values of field 1 of a list message, each field decoded by `one`.
fn decode_list<T>(
    list: &mut &[u8],
    one: impl Fn(Field) -> io::Result<Vec<T>>,
) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    while !list.is_empty() {
        if let (1, field) = take_field(list)? {
            out.extend(one(field)?);
        }
    }
    Ok(out)
}

/// Encodes `example` (numbers packed).
pub fn encode_example(example: &Example) -> Vec<u8> {
    let mut features = Vec::new();
    for (name, values) in example {
        let mut list = Vec::new();
        let kind = match values {
            FeatureValues::Bytes(items) => {
                for item in items {
                    put_bytes(&mut list, 1, item);
                }
                1
            }
            FeatureValues::Float(items) => {
                let packed: Vec<u8> = items.iter().flat_map(|v| v.to_le_bytes()).collect();
                put_bytes(&mut list, 1, &packed);
                2
            }
            FeatureValues::Int64(items) => {
                let mut packed = Vec::new();
                for &v in items {
                    put_varint(&mut packed, v as u64);
                }
                put_bytes(&mut list, 1, &packed);
                3
            }
        };
        let mut feature = Vec::new();
        put_bytes(&mut feature, kind, &list);
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, name.as_bytes());
        put_bytes(&mut entry, 2, &feature);
        put_bytes(&mut features, 1, &entry);
    }
    let mut out = Vec::new();
    put_key(&mut out, 1, WIRE_LEN);
    put_varint(&mut out, features.len() as u64);
    out.extend_from_slice(&features);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{WIRE_FIXED32, WIRE_VARINT};

    #[test]
    fn examples_round_trip_with_every_kind() {
        let mut example = Example::new();
        example.insert("ids".into(), FeatureValues::Int64(vec![0, 5, 300, -2]));
        example.insert("weights".into(), FeatureValues::Float(vec![1.0, 0.5]));
        example.insert(
            "text".into(),
            FeatureValues::Bytes(vec![b"a".to_vec(), vec![]]),
        );
        assert_eq!(decode_example(&encode_example(&example)).unwrap(), example);
    }

    #[test]
    fn unpacked_numbers_are_read_too() {
        let (mut ints, mut floats) = (Vec::new(), Vec::new());
        for v in [7u64, 9] {
            put_key(&mut ints, 1, WIRE_VARINT);
            put_varint(&mut ints, v);
        }
        put_key(&mut floats, 1, WIRE_FIXED32);
        floats.extend_from_slice(&2.5f32.to_le_bytes());
        let entry = |name: &str, kind: u32, list: &[u8]| {
            let mut feature = Vec::new();
            put_bytes(&mut feature, kind, list);
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, name.as_bytes());
            put_bytes(&mut entry, 2, &feature);
            entry
        };
        let mut features = Vec::new();
        put_bytes(&mut features, 1, &entry("a", 3, &ints));
        put_bytes(&mut features, 1, &entry("b", 2, &floats));
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 1, &features);
        let example = decode_example(&bytes).unwrap();
        assert_eq!(example["a"], FeatureValues::Int64(vec![7, 9]));
        assert_eq!(example["b"], FeatureValues::Float(vec![2.5]));
    }
}
