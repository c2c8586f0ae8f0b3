//! Summaries: scalar logs written where people and tools look for them.
//!
//! A [`SummaryManager`] writes one split (`train`, `validation`, ...) of a run to
//! * a TensorBoard event file in `<model_dir>/<split>/` ([`TensorBoardWriter`]), and
//! * one line per write in `<model_dir>/metrics.jsonl` ([`JsonlWriter`]), shared by all splits.
//!
//! [`read_scalars`] and [`event_files`] read event files back, e.g. in tests.

mod jsonl;
mod tensorboard;

use std::path::{Path, PathBuf};

pub use jsonl::JsonlWriter;
pub use tensorboard::{event_files, read_scalars, TensorBoardWriter};

use crate::error::{OrbitError, Result};
use crate::logs::Logs;

/// The name of the JSON-lines file, shared by all splits, inside a model directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// A destination for scalar summaries.
pub trait SummaryWriter: Send {
    /// Writes every value of `logs` as a scalar at `step`.
    fn write_scalars(&mut self, step: u64, logs: &Logs) -> Result<()>;

    /// Pushes everything written so far to the file system.
    fn flush(&mut self) -> Result<()>;
}

/// Writes one split of a run to TensorBoard and to `metrics.jsonl`, or nothing when disabled.
///
/// Nothing touches the disk until the first [`SummaryManager::write`] with non-empty logs.
#[derive(Debug)]
pub struct SummaryManager {
    destination: Option<Destination>,
    writers: Option<Writers>,
}

/// Where an enabled [`SummaryManager`] writes.
#[derive(Debug)]
struct Destination {
    model_dir: PathBuf,
    split: String,
}

/// The open writers of an enabled [`SummaryManager`].
#[derive(Debug)]
struct Writers {
    tensorboard: TensorBoardWriter,
    jsonl: JsonlWriter,
}

impl SummaryManager {
    /// A manager for `split` of the run in `model_dir`. Fails with
    /// [`OrbitError::InvalidSetting`] unless `split` is a plain directory name.
    pub fn new(model_dir: &Path, split: &str) -> Result<Self> {
        check_split(split)?;
        Ok(SummaryManager {
            destination: Some(Destination {
                model_dir: model_dir.to_path_buf(),
                split: split.to_string(),
            }),
            writers: None,
        })
    }

    /// A manager that writes nothing.
    pub fn disabled() -> Self {
        SummaryManager {
            destination: None,
            writers: None,
        }
    }

    /// Whether this manager writes anything.
    pub fn is_enabled(&self) -> bool {
        self.destination.is_some()
    }

    /// The directory of the TensorBoard event files (`<model_dir>/<split>`), if enabled.
    pub fn log_dir(&self) -> Option<PathBuf> {
        self.destination
            .as_ref()
            .map(|d| d.model_dir.join(&d.split))
    }

    /// Writes `logs` at `step` to both destinations and flushes them. Creates the directories
    /// and files on the first call; empty logs and disabled managers write nothing.
    pub fn write(&mut self, step: u64, logs: &Logs) -> Result<()> {
        let Some(destination) = &self.destination else {
            return Ok(());
        };
        if logs.is_empty() {
            return Ok(());
        }
        if self.writers.is_none() {
            self.writers = Some(Writers::open(destination)?);
        }
        if let Some(writers) = self.writers.as_mut() {
            writers.write(step, logs)?;
        }
        Ok(())
    }
}

impl Writers {
    /// Creates the event file and opens `metrics.jsonl` for appending.
    fn open(destination: &Destination) -> Result<Self> {
        let event_dir = destination.model_dir.join(&destination.split);
        let metrics = destination.model_dir.join(METRICS_FILE);
        Ok(Writers {
            tensorboard: TensorBoardWriter::new(&event_dir)?,
            jsonl: JsonlWriter::new(&metrics, &destination.split)?,
        })
    }

    /// Writes to and flushes both writers.
    fn write(&mut self, step: u64, logs: &Logs) -> Result<()> {
        self.tensorboard.write_scalars(step, logs)?;
        self.jsonl.write_scalars(step, logs)?;
        self.tensorboard.flush()?;
        self.jsonl.flush()
    }
}

/// Fails unless `split` can name a directory inside the model directory.
fn check_split(split: &str) -> Result<()> {
    let plain = !split.is_empty() && split != "." && split != ".." && !split.contains(['/', '\\']);
    if plain {
        Ok(())
    } else {
        Err(OrbitError::InvalidSetting(format!(
            "summary split {split:?} must be a plain directory name such as \"train\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(pairs: &[(&str, f64)]) -> Logs {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn construction_does_not_touch_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join("model");
        let mut manager = SummaryManager::new(&model_dir, "train").unwrap();
        assert!(!model_dir.exists());
        manager.write(1, &Logs::new()).unwrap();
        assert!(!model_dir.exists());
        assert_eq!(manager.log_dir(), Some(model_dir.join("train")));
    }

    #[test]
    fn writes_both_splits_to_tensorboard_and_one_metrics_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut train = SummaryManager::new(dir.path(), "train").unwrap();
        let mut validation = SummaryManager::new(dir.path(), "validation").unwrap();
        train.write(10, &logs(&[("training_loss", 2.0)])).unwrap();
        validation.write(10, &logs(&[("accuracy", 0.5)])).unwrap();
        train.write(20, &logs(&[("training_loss", 1.0)])).unwrap();

        let train_files = event_files(&dir.path().join("train")).unwrap();
        assert_eq!(train_files.len(), 1);
        assert_eq!(
            read_scalars(&train_files[0]).unwrap(),
            vec![
                (10, "training_loss".to_string(), 2.0),
                (20, "training_loss".to_string(), 1.0),
            ]
        );
        let validation_files = event_files(&dir.path().join("validation")).unwrap();
        assert_eq!(
            read_scalars(&validation_files[0]).unwrap(),
            vec![(10, "accuracy".to_string(), 0.5)]
        );

        let metrics = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        let splits: Vec<_> = metrics
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["split"].clone())
            .collect();
        assert_eq!(splits, ["train", "validation", "train"]);
    }

    #[test]
    fn disabled_manager_writes_nothing() {
        let mut manager = SummaryManager::disabled();
        assert!(!manager.is_enabled());
        assert_eq!(manager.log_dir(), None);
        manager.write(1, &logs(&[("loss", 1.0)])).unwrap();
    }

    #[test]
    fn rejects_splits_that_are_not_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["", ".", "..", "a/b", "a\\b"] {
            assert!(SummaryManager::new(dir.path(), split).is_err(), "{split:?}");
        }
    }
}
