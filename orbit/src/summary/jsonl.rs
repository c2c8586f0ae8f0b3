//! A JSON-lines summary writer: one JSON object per write, appended to a shared file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::SummaryWriter;
use crate::error::{OrbitError, Result};
use crate::logs::Logs;

/// Appends `{"step": N, "split": "<split>", "<name>": value, ...}` lines to a file.
///
/// The file is opened in append mode and each line is written with a single write call, so
/// several writers (e.g. the train and validation splits) can share one file. Non-finite values
/// are written as the JSON strings `"NaN"`, `"inf"` and `"-inf"`.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    split: String,
    file: File,
}

impl JsonlWriter {
    /// Creates the parent directory of `path` if needed and opens `path` for appending lines
    /// tagged with `split`.
    pub fn new(path: &Path, split: &str) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| OrbitError::io("cannot create directory", parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| OrbitError::io("cannot open", path, e))?;
        Ok(JsonlWriter {
            path: path.to_path_buf(),
            split: split.to_string(),
            file,
        })
    }

    /// The path of the JSON-lines file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SummaryWriter for JsonlWriter {
    /// Appends one line; fails with [`OrbitError::InvalidSetting`] if a name is `step` or
    /// `split`, which would clash with the line's own keys. Empty logs still write a line.
    fn write_scalars(&mut self, step: u64, logs: &Logs) -> Result<()> {
        let line = json_line(step, &self.split, logs)?;
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| OrbitError::io("cannot write", &self.path, e))
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| OrbitError::io("cannot write", &self.path, e))
    }
}

/// Formats one newline-terminated JSON object, keys in the order step, split, then `logs`.
fn json_line(step: u64, split: &str, logs: &Logs) -> Result<String> {
    let mut line = format!("{{\"step\": {step}, \"split\": {}", json_string(split));
    for (name, &value) in logs {
        if name == "step" || name == "split" {
            return Err(OrbitError::InvalidSetting(format!(
                "log name {name:?} clashes with a key of metrics.jsonl; rename the metric"
            )));
        }
        line.push_str(&format!(", {}: {}", json_string(name), json_number(value)));
    }
    line.push_str("}\n");
    Ok(line)
}

/// `text` as a quoted, escaped JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `value` as a JSON number, or as a JSON string for NaN and infinities.
fn json_number(value: f64) -> String {
    match serde_json::Number::from_f64(value) {
        Some(number) => number.to_string(),
        None if value.is_nan() => json_string("NaN"),
        None if value > 0.0 => json_string("inf"),
        None => json_string("-inf"),
    }
}

/// A value of a `metrics.jsonl` line read back: a JSON number, or one of the strings
/// [`JsonlWriter`] writes for NaN and infinities; `None` for anything else.
pub fn read_metric_value(value: &serde_json::Value) -> Option<f64> {
    match value.as_str() {
        Some("NaN") => Some(f64::NAN),
        Some("inf") => Some(f64::INFINITY),
        Some("-inf") => Some(f64::NEG_INFINITY),
        Some(_) => None,
        None => value.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::logs_of as logs;
    use serde_json::{json, Value};

    fn read_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn appends_one_object_per_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("metrics.jsonl");
        let mut writer = JsonlWriter::new(&path, "train").unwrap();
        writer
            .write_scalars(
                10,
                &logs(&[("training_loss", 2.5), ("learning_rate", 1e-4)]),
            )
            .unwrap();
        writer
            .write_scalars(20, &logs(&[("training_loss", 1.0)]))
            .unwrap();
        writer.flush().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "{\"step\": 10, \"split\": \"train\", \"learning_rate\": 0.0001, \"training_loss\": 2.5}\n"
        ));
        assert_eq!(
            read_lines(&path),
            vec![
                json!({"step": 10, "split": "train", "learning_rate": 1e-4, "training_loss": 2.5}),
                json!({"step": 20, "split": "train", "training_loss": 1.0}),
            ]
        );
    }

    #[test]
    fn writes_non_finite_values_as_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut writer = JsonlWriter::new(&path, "validation").unwrap();
        let values = logs(&[
            ("a", f64::NAN),
            ("b", f64::INFINITY),
            ("c", f64::NEG_INFINITY),
        ]);
        writer.write_scalars(1, &values).unwrap();
        assert_eq!(
            read_lines(&path),
            vec![json!({"step": 1, "split": "validation", "a": "NaN", "b": "inf", "c": "-inf"})]
        );
        let line = &read_lines(&path)[0];
        assert!(read_metric_value(&line["a"]).unwrap().is_nan());
        assert_eq!(read_metric_value(&line["b"]), Some(f64::INFINITY));
        assert_eq!(read_metric_value(&line["c"]), Some(f64::NEG_INFINITY));
        assert_eq!(read_metric_value(&json!(0.5)), Some(0.5));
        assert_eq!(read_metric_value(&line["split"]), None);
    }

    #[test]
    fn two_writers_interleave_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut train = JsonlWriter::new(&path, "train").unwrap();
        let mut validation = JsonlWriter::new(&path, "validation").unwrap();
        train.write_scalars(1, &logs(&[("x", 1.0)])).unwrap();
        validation.write_scalars(1, &logs(&[("y", 2.0)])).unwrap();
        train.write_scalars(2, &logs(&[("x", 3.0)])).unwrap();
        let splits: Vec<_> = read_lines(&path)
            .iter()
            .map(|line| line["split"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(splits, ["train", "validation", "train"]);
    }

    #[test]
    fn rejects_clashing_names_and_escapes_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut writer = JsonlWriter::new(&path, "a \"quoted\" split").unwrap();
        assert!(writer.write_scalars(1, &logs(&[("step", 1.0)])).is_err());
        writer.write_scalars(1, &logs(&[("m\n", 1.0)])).unwrap();
        assert_eq!(
            read_lines(&path),
            vec![json!({"step": 1, "split": "a \"quoted\" split", "m\n": 1.0})]
        );
    }
}
