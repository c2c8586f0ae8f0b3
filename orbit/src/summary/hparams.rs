//! TensorBoard's HParams records: a run's hyperparameters at its start (`session_start_info`),
//! its status at its end (`session_end_info`), and, for a sweep, the experiment naming the
//! swept hyperparameters and the metrics (`experiment`). Each is a summary value tagged
//! `_hparams_/<kind>` whose metadata carries the `hparams` plugin's `HParamsPluginData`
//! (version 0), with an empty float tensor as its value, as the plugin's own summary
//! functions write them. The fields encoded (tensorboard/plugins/hparams/*.proto):
//!
//! ```text
//! HParamsPluginData { 1: int32 version, 2: Experiment, 3: SessionStartInfo, 4: SessionEndInfo }
//! SessionStartInfo  { 1: map<string, google.protobuf.Value> hparams, 4: string group_name,
//!                     5: double start_time_secs }
//! SessionEndInfo    { 1: Status status, 2: double end_time_secs }
//! Experiment        { 3: double time_created_secs, 4: repeated HParamInfo, 5: repeated MetricInfo }
//! HParamInfo        { 1: string name, 4: DataType type, 5: ListValue domain_discrete,
//!                     6: Interval domain_interval }
//! MetricInfo        { 1: MetricName { 1: group, 2: tag }, 5: DatasetType dataset_type }
//! Value             { 2: double number_value, 3: string string_value, 4: bool bool_value }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use grove_records::wire::{put_bytes, put_key, put_varint, WIRE_FIXED64, WIRE_VARINT};

use super::tensorboard::{event_files, hparams_event, wall_time, write_single_event};
use crate::error::Result;

/// A hyperparameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamValue {
    /// A number.
    Number(f64),
    /// Text (lists and other structured values are given as their JSON text).
    Text(String),
    /// A flag.
    Bool(bool),
}

/// How a run ended, as the HParams dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Trained to its end (or stopped early on purpose).
    Success = 1,
    /// Failed.
    Failure = 2,
}

/// The values a swept hyperparameter takes.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamDomain {
    /// Numbers in `[min, max]`.
    Interval {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// One of these values.
    Discrete(Vec<HParamValue>),
}

/// A swept hyperparameter, for the experiment record.
#[derive(Debug, Clone, PartialEq)]
pub struct HParamInfo {
    /// Its name, as in the sessions' hparams (a dotted config key).
    pub name: String,
    /// Its values.
    pub domain: HParamDomain,
}

/// A metric of the experiment: the scalar `tag` in each session's `group` sub-run (e.g.
/// `validation`, `accuracy`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    /// The sub-directory of each session's run holding the scalar.
    pub group: String,
    /// The scalar's tag.
    pub tag: String,
}

/// The summary tag of each record kind.
const EXPERIMENT_TAG: &str = "_hparams_/experiment";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";
/// The plugin's `DataType` values.
const DATA_TYPE_STRING: u64 = 1;
const DATA_TYPE_BOOL: u64 = 2;
const DATA_TYPE_FLOAT64: u64 = 3;
/// The plugin's `DatasetType.DATASET_VALIDATION`.
const DATASET_VALIDATION: u64 = 2;

/// Writes a run's `session_start_info` (its hyperparameters) as a new event file in `dir`.
pub fn write_session_start(dir: &Path, hparams: &BTreeMap<String, HParamValue>) -> Result<PathBuf> {
    let mut start = Vec::new();
    for (name, value) in hparams {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, name.as_bytes());
        put_bytes(&mut entry, 2, &protobuf_value(value));
        put_bytes(&mut start, 1, &entry);
    }
    put_double(&mut start, 5, wall_time());
    write_record(dir, SESSION_START_TAG, 3, &start)
}

/// Writes a run's `session_end_info` as a new event file in `dir`.
pub fn write_session_end(dir: &Path, status: SessionStatus) -> Result<PathBuf> {
    let mut end = Vec::new();
    put_key(&mut end, 1, WIRE_VARINT);
    put_varint(&mut end, status as u64);
    put_double(&mut end, 2, wall_time());
    write_record(dir, SESSION_END_TAG, 4, &end)
}

/// Writes the experiment record (the swept hyperparameters and the metrics, all of the
/// validation split) as a new event file in `dir`, the directory above the sessions' runs.
pub fn write_experiment(
    dir: &Path,
    hparams: &[HParamInfo],
    metrics: &[MetricInfo],
) -> Result<PathBuf> {
    let mut experiment = Vec::new();
    put_double(&mut experiment, 3, wall_time());
    for info in hparams {
        put_bytes(&mut experiment, 4, &hparam_info(info));
    }
    for metric in metrics {
        let mut name = Vec::new();
        put_bytes(&mut name, 1, metric.group.as_bytes());
        put_bytes(&mut name, 2, metric.tag.as_bytes());
        let mut info = Vec::new();
        put_bytes(&mut info, 1, &name);
        put_key(&mut info, 5, WIRE_VARINT);
        put_varint(&mut info, DATASET_VALIDATION);
        put_bytes(&mut experiment, 5, &info);
    }
    write_record(dir, EXPERIMENT_TAG, 2, &experiment)
}

/// Whether a run directory holds a `session_start_info` record already.
pub fn session_started(dir: &Path) -> bool {
    holds_record(dir, SESSION_START_TAG)
}

/// Whether a run directory holds a `session_end_info` record already (TensorBoard keeps a
/// run's first one).
pub fn session_ended(dir: &Path) -> bool {
    holds_record(dir, SESSION_END_TAG)
}

/// Whether a directory holds an `experiment` record already.
pub fn experiment_written(dir: &Path) -> bool {
    holds_record(dir, EXPERIMENT_TAG)
}

/// Whether an event file directly in `dir` holds a record tagged `tag` (HParams records are
/// the only events Grove writes there, each a small file of its own).
fn holds_record(dir: &Path, tag: &str) -> bool {
    let Ok(files) = event_files(dir) else {
        return false;
    };
    files.iter().any(|file| {
        std::fs::read(file).is_ok_and(|bytes| bytes.windows(tag.len()).any(|w| w == tag.as_bytes()))
    })
}

/// `HParamsPluginData { version: 0, <field>: message }` in its own event file.
fn write_record(dir: &Path, tag: &str, field: u32, message: &[u8]) -> Result<PathBuf> {
    let mut plugin_data = Vec::new();
    put_key(&mut plugin_data, 1, WIRE_VARINT);
    put_varint(&mut plugin_data, 0);
    put_bytes(&mut plugin_data, field, message);
    write_single_event(dir, &hparams_event(tag, &plugin_data))
}

fn hparam_info(info: &HParamInfo) -> Vec<u8> {
    let mut encoded = Vec::new();
    put_bytes(&mut encoded, 1, info.name.as_bytes());
    let data_type = match &info.domain {
        HParamDomain::Interval { .. } => DATA_TYPE_FLOAT64,
        HParamDomain::Discrete(values) => match values.first() {
            Some(HParamValue::Number(_)) => DATA_TYPE_FLOAT64,
            Some(HParamValue::Bool(_)) => DATA_TYPE_BOOL,
            _ => DATA_TYPE_STRING,
        },
    };
    put_key(&mut encoded, 4, WIRE_VARINT);
    put_varint(&mut encoded, data_type);
    match &info.domain {
        HParamDomain::Discrete(values) => {
            let mut list = Vec::new();
            for value in values {
                put_bytes(&mut list, 1, &protobuf_value(value));
            }
            put_bytes(&mut encoded, 5, &list);
        }
        HParamDomain::Interval { min, max } => {
            let mut interval = Vec::new();
            put_double(&mut interval, 1, *min);
            put_double(&mut interval, 2, *max);
            put_bytes(&mut encoded, 6, &interval);
        }
    }
    encoded
}

/// A `google.protobuf.Value`.
fn protobuf_value(value: &HParamValue) -> Vec<u8> {
    let mut encoded = Vec::new();
    match value {
        HParamValue::Number(number) => put_double(&mut encoded, 2, *number),
        HParamValue::Text(text) => put_bytes(&mut encoded, 3, text.as_bytes()),
        HParamValue::Bool(flag) => {
            put_key(&mut encoded, 4, WIRE_VARINT);
            put_varint(&mut encoded, u64::from(*flag));
        }
    }
    encoded
}

fn put_double(out: &mut Vec<u8>, field: u32, value: f64) {
    put_key(out, field, WIRE_FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_as_google_protobuf_values() {
        assert_eq!(
            protobuf_value(&HParamValue::Number(0.5)),
            [0x11, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f]
        );
        assert_eq!(
            protobuf_value(&HParamValue::Text("a".into())),
            [0x1a, 1, b'a']
        );
        assert_eq!(protobuf_value(&HParamValue::Bool(true)), [0x20, 1]);
    }

    #[test]
    fn each_record_is_one_event_file_with_the_hparams_tag() {
        let dir = tempfile::tempdir().unwrap();
        let hparams = BTreeMap::from([("lr".to_string(), HParamValue::Number(0.1))]);
        let start = write_session_start(dir.path(), &hparams).unwrap();
        let end = write_session_end(dir.path(), SessionStatus::Success).unwrap();
        assert_ne!(start, end);
        let bytes = std::fs::read(&start).unwrap();
        let tag = SESSION_START_TAG.as_bytes();
        assert!(bytes.windows(tag.len()).any(|w| w == tag));
        assert!(bytes.windows(7).any(|w| w == b"hparams"));
        assert!(session_started(dir.path()) && session_ended(dir.path()));
        assert!(!experiment_written(dir.path()));
    }
}
