//! A hand-written TensorBoard event-file writer and reader.
//!
//! An event file is a sequence of TFRecords (`u64` LE length, masked CRC-32C of the length,
//! data, masked CRC-32C of the data); each record's data is a serialized `tensorflow.Event`
//! protocol buffer. Only the few fields scalar summaries need are encoded:
//!
//! ```text
//! Event   { 1: double wall_time, 2: int64 step, 3: string file_version, 5: Summary summary }
//! Summary { 1: repeated Value value }
//! Value   { 1: string tag, 2: float simple_value }
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use grove_records::tfrecord::{frame_record, take_record};
use grove_records::wire::{
    invalid, put_bytes, put_key, put_varint, take_field, Field, WIRE_FIXED32, WIRE_FIXED64,
    WIRE_VARINT,
};

use super::SummaryWriter;
use crate::error::{OrbitError, Result};
use crate::logs::Logs;

/// The prefix of every event file name; TensorBoard only reads files whose name contains it.
const EVENT_FILE_PREFIX: &str = "events.out.tfevents.";
/// The `file_version` of the first event of every file.
const FILE_VERSION: &str = "brain.Event:2";

/// Distinguishes event files created by one process within the same second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes scalar summaries to a new TensorBoard event file.
#[derive(Debug)]
pub struct TensorBoardWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl TensorBoardWriter {
    /// Creates `dir` if needed and a new event file
    /// `events.out.tfevents.{unix_secs}.{hostname}.{pid}.{counter}` in it, starting with the
    /// `file_version` event TensorBoard expects.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| OrbitError::io("cannot create directory", dir, e))?;
        let path = dir.join(event_file_name());
        let file = File::create_new(&path)
            .map_err(|e| OrbitError::io("cannot create event file", &path, e))?;
        let mut writer = TensorBoardWriter {
            path,
            file: BufWriter::new(file),
        };
        writer.write_event(&file_version_event(wall_time()))?;
        Ok(writer)
    }

    /// The path of the event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames one serialized event as a TFRecord and appends it to the buffered file.
    fn write_event(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&frame_record(event))
            .map_err(|e| OrbitError::io("cannot write event file", &self.path, e))
    }
}

impl SummaryWriter for TensorBoardWriter {
    /// Writes all of `logs` as one event (one `Summary` holding a value per name); values are
    /// stored as `f32`, as TensorBoard's `simple_value` is. Empty logs write nothing.
    fn write_scalars(&mut self, step: u64, logs: &Logs) -> Result<()> {
        if logs.is_empty() {
            return Ok(());
        }
        self.write_event(&scalars_event(wall_time(), step, logs))
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| OrbitError::io("cannot write event file", &self.path, e))
    }
}

/// Writes one serialized event as a new event file in `dir` (after its `file_version`
/// event), flushed; returns the file's path.
pub(super) fn write_single_event(dir: &Path, event: &[u8]) -> Result<PathBuf> {
    let mut writer = TensorBoardWriter::new(dir)?;
    writer.write_event(event)?;
    writer.flush()?;
    Ok(writer.path)
}

/// Reads every scalar of an event file as `(step, tag, value)`, in file order.
///
/// Both CRCs of every record are verified; a corrupt or truncated file is an
/// [`OrbitError::Io`] whose source has kind [`io::ErrorKind::InvalidData`].
pub fn read_scalars(path: &Path) -> Result<Vec<(u64, String, f32)>> {
    let bytes = std::fs::read(path).map_err(|e| OrbitError::io("cannot read", path, e))?;
    decode_file(&bytes).map_err(|e| OrbitError::io("cannot read event file", path, e))
}

/// Lists the `events.out.tfevents.*` files directly inside `dir`, sorted by path.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let list_error = |e| OrbitError::io("cannot list directory", dir, e);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        if is_event_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `path` is a regular file whose name starts with the event-file prefix.
fn is_event_file(path: &Path) -> bool {
    let named = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(EVENT_FILE_PREFIX));
    named && path.is_file()
}

/// The name of a new event file for this process.
fn event_file_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let counter = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{EVENT_FILE_PREFIX}{secs:010}.{}.{}.{counter}",
        hostname(),
        std::process::id()
    )
}

/// The host name from `/etc/hostname` or `$HOSTNAME`, else `localhost`, keeping only
/// characters that are safe in a file name.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

/// Seconds since the Unix epoch, as the event's `wall_time`.
pub(super) fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Decodes every record of an event file into its scalars.
fn decode_file(mut bytes: &[u8]) -> io::Result<Vec<(u64, String, f32)>> {
    let mut scalars = Vec::new();
    while !bytes.is_empty() {
        scalars.extend(decode_event(take_record(&mut bytes)?)?);
    }
    Ok(scalars)
}

// ---------------------------------------------------------------------------------------------
// Protocol-buffer encoding

/// The `wall_time` and `step` fields every event starts with.
fn event_header(wall_time: f64, step: u64) -> Vec<u8> {
    let mut event = Vec::new();
    put_key(&mut event, 1, WIRE_FIXED64);
    event.extend_from_slice(&wall_time.to_le_bytes());
    put_key(&mut event, 2, WIRE_VARINT);
    put_varint(&mut event, step);
    event
}

/// The first event of a file: `Event { wall_time, step: 0, file_version }`.
fn file_version_event(wall_time: f64) -> Vec<u8> {
    let mut event = event_header(wall_time, 0);
    put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
    event
}

/// `Event { wall_time, step, summary: Summary { value: [Value { tag, simple_value }, ...] } }`.
fn scalars_event(wall_time: f64, step: u64, logs: &Logs) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, &value) in logs {
        put_bytes(&mut summary, 1, &scalar_value(tag, value as f32));
    }
    let mut event = event_header(wall_time, step);
    put_bytes(&mut event, 5, &summary);
    event
}

/// The `hparams` plugin's summary: `Event { wall_time, step: 0, summary: Summary { value:
/// [Value { tag, metadata: SummaryMetadata { plugin_data: { plugin_name: "hparams", content },
/// data_class: TENSOR }, tensor: <empty float vector> }] } }`.
pub(super) fn hparams_event(tag: &str, content: &[u8]) -> Vec<u8> {
    /// `TensorProto { dtype: DT_FLOAT, tensor_shape: { dim: [{ size: 0 }] } }`.
    const EMPTY_FLOAT_TENSOR: [u8; 6] = [0x08, 0x01, 0x12, 0x02, 0x12, 0x00];
    const DATA_CLASS_TENSOR: u64 = 2;
    let mut plugin_data = Vec::new();
    put_bytes(&mut plugin_data, 1, b"hparams");
    put_bytes(&mut plugin_data, 2, content);
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &plugin_data);
    put_key(&mut metadata, 4, WIRE_VARINT);
    put_varint(&mut metadata, DATA_CLASS_TENSOR);
    let mut value = Vec::new();
    put_bytes(&mut value, 1, tag.as_bytes());
    put_bytes(&mut value, 8, &EMPTY_FLOAT_TENSOR);
    put_bytes(&mut value, 9, &metadata);
    let mut summary = Vec::new();
    put_bytes(&mut summary, 1, &value);
    let mut event = event_header(wall_time(), 0);
    put_bytes(&mut event, 5, &summary);
    event
}

/// `Value { tag, simple_value }`.
fn scalar_value(tag: &str, value: f32) -> Vec<u8> {
    let mut encoded = Vec::new();
    put_bytes(&mut encoded, 1, tag.as_bytes());
    put_key(&mut encoded, 2, WIRE_FIXED32);
    encoded.extend_from_slice(&value.to_le_bytes());
    encoded
}

// ---------------------------------------------------------------------------------------------
// Protocol-buffer decoding

/// Decodes one `Event` into its scalars; events without a summary yield none.
fn decode_event(mut event: &[u8]) -> io::Result<Vec<(u64, String, f32)>> {
    let mut step = 0;
    let mut values = Vec::new();
    while !event.is_empty() {
        match take_field(&mut event)? {
            (2, Field::Varint(value)) => step = value,
            (5, Field::Bytes(summary)) => values.extend(decode_summary(summary)?),
            _ => {}
        }
    }
    Ok(values
        .into_iter()
        .map(|(tag, value)| (step, tag, value))
        .collect())
}

/// Decodes a `Summary` into its `(tag, simple_value)` pairs, skipping non-scalar values.
fn decode_summary(mut summary: &[u8]) -> io::Result<Vec<(String, f32)>> {
    let mut values = Vec::new();
    while !summary.is_empty() {
        if let (1, Field::Bytes(value)) = take_field(&mut summary)? {
            values.extend(decode_value(value)?);
        }
    }
    Ok(values)
}

/// Decodes a `Value`; `None` unless it holds a `simple_value`.
fn decode_value(mut value: &[u8]) -> io::Result<Option<(String, f32)>> {
    let mut tag = String::new();
    let mut simple_value = None;
    while !value.is_empty() {
        match take_field(&mut value)? {
            (1, Field::Bytes(bytes)) => {
                tag = String::from_utf8(bytes.to_vec()).map_err(|_| invalid("tag is not UTF-8"))?
            }
            (2, Field::Fixed32(bits)) => simple_value = Some(f32::from_bits(bits)),
            _ => {}
        }
    }
    Ok(simple_value.map(|v| (tag, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::logs_of as logs;

    #[test]
    fn encodes_the_file_version_event_exactly() {
        let event = file_version_event(1.5);
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0x00, 0x1a, 13]);
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(event, expected);
    }

    #[test]
    fn encodes_a_scalar_value_exactly() {
        let mut expected = vec![0x0a, 4];
        expected.extend_from_slice(b"loss");
        expected.push(0x15);
        expected.extend_from_slice(&2.5f32.to_le_bytes());
        assert_eq!(scalar_value("loss", 2.5), expected);
    }

    #[test]
    fn round_trips_scalars_through_an_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = TensorBoardWriter::new(dir.path()).unwrap();
        writer
            .write_scalars(1, &logs(&[("loss", 2.5), ("lr", 1e-4)]))
            .unwrap();
        writer.write_scalars(2, &logs(&[])).unwrap();
        writer.write_scalars(300, &logs(&[("loss", 0.25)])).unwrap();
        writer.flush().unwrap();

        let files = event_files(dir.path()).unwrap();
        assert_eq!(files, vec![writer.path().to_path_buf()]);
        let scalars = read_scalars(writer.path()).unwrap();
        assert_eq!(
            scalars,
            vec![
                (1, "loss".to_string(), 2.5),
                (1, "lr".to_string(), 1e-4f64 as f32),
                (300, "loss".to_string(), 0.25),
            ]
        );
    }

    #[test]
    fn two_writers_in_one_directory_use_distinct_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = TensorBoardWriter::new(dir.path()).unwrap();
        let second = TensorBoardWriter::new(dir.path()).unwrap();
        assert_ne!(first.path(), second.path());
        assert_eq!(event_files(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn detects_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = TensorBoardWriter::new(dir.path()).unwrap();
        writer.write_scalars(7, &logs(&[("loss", 1.0)])).unwrap();
        writer.flush().unwrap();
        let path = writer.path().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();

        let error = read_scalars(&path).unwrap_err();
        match error {
            OrbitError::Io { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::InvalidData)
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn detects_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = TensorBoardWriter::new(dir.path()).unwrap();
        writer.write_scalars(7, &logs(&[("loss", 1.0)])).unwrap();
        writer.flush().unwrap();
        let path = writer.path().to_path_buf();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_scalars(&path).is_err());
    }
}
