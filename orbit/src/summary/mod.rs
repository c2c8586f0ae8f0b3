//! Summaries: scalar logs written where people and tools look for them.
//!
//! A [`SummaryManager`] writes one split (`train`, `validation`, ...) of a run to the
//! [`SummarySink`]s it is given (by default TensorBoard and JSON lines):
//! * a TensorBoard event file in `<model_dir>/<split>/` ([`TensorBoardWriter`]),
//! * one line per write in `<model_dir>/metrics.jsonl` ([`JsonlWriter`]), shared by all splits,
//! * one row per write in `<model_dir>/<split>.csv` ([`CsvWriter`]),
//! * and any writer the run attaches ([`SummaryManager::attach`]), such as an experiment
//!   tracker's (grove-trackers' MLflow writer for [`SummarySink::Mlflow`]).
//!
//! [`hparams`] writes TensorBoard's HParams records (a run's hyperparameters and status, a
//! sweep's experiment). [`read_scalars`] and [`event_files`] read event files back, e.g. in
//! tests.

mod csv;
pub mod hparams;
mod jsonl;
mod tensorboard;

use std::path::{Path, PathBuf};

pub use self::csv::CsvWriter;
pub use jsonl::{read_metric_value, JsonlWriter};
pub use tensorboard::{event_files, read_scalars, TensorBoardWriter};

use serde::{Deserialize, Serialize};

use crate::error::{OrbitError, Result};
use crate::logs::Logs;

/// The name of the JSON-lines file, shared by all splits, inside a model directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Where a run's summaries go (`runtime.loggers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummarySink {
    /// TensorBoard event files, `<model_dir>/<split>/events.out.tfevents.*`.
    Tensorboard,
    /// `<model_dir>/metrics.jsonl`, shared by the splits.
    Jsonl,
    /// `<model_dir>/<split>.csv`.
    Csv,
    /// An MLflow tracking server (`runtime.mlflow`). The manager opens nothing for it: the
    /// run attaches grove-trackers' writer with [`SummaryManager::attach`].
    Mlflow,
}

/// The sinks of a run that names none: TensorBoard and JSON lines.
pub const DEFAULT_SINKS: [SummarySink; 2] = [SummarySink::Tensorboard, SummarySink::Jsonl];

/// A destination for scalar summaries.
pub trait SummaryWriter: Send + std::fmt::Debug {
    /// Writes every value of `logs` as a scalar at `step`.
    fn write_scalars(&mut self, step: u64, logs: &Logs) -> Result<()>;

    /// Pushes everything written so far to the file system.
    fn flush(&mut self) -> Result<()>;
}

/// Writes one split of a run to its sinks, or nothing when disabled.
///
/// Nothing touches the disk until the first [`SummaryManager::write`] with non-empty logs.
#[derive(Debug)]
pub struct SummaryManager {
    destination: Option<Destination>,
    writers: Option<Writers>,
    /// Writers the run attached, written after the files.
    attached: Vec<Box<dyn SummaryWriter>>,
}

/// Where an enabled [`SummaryManager`] writes.
#[derive(Debug)]
struct Destination {
    model_dir: PathBuf,
    split: String,
    sinks: Vec<SummarySink>,
}

/// The open writers of an enabled [`SummaryManager`], one per sink.
#[derive(Debug)]
struct Writers(Vec<Box<dyn SummaryWriter>>);

impl SummaryManager {
    /// A manager for `split` of the run in `model_dir`, writing to the [`DEFAULT_SINKS`].
    /// Fails with [`OrbitError::InvalidSetting`] unless `split` is a plain directory name.
    pub fn new(model_dir: &Path, split: &str) -> Result<Self> {
        Self::with_sinks(model_dir, split, &DEFAULT_SINKS)
    }

    /// A manager for `split` of the run in `model_dir`, writing to each of `sinks` (none: a
    /// manager that writes nothing). A sink listed twice is an [`OrbitError::InvalidSetting`].
    pub fn with_sinks(model_dir: &Path, split: &str, sinks: &[SummarySink]) -> Result<Self> {
        check_split(split)?;
        for (i, sink) in sinks.iter().enumerate() {
            if sinks[..i].contains(sink) {
                return Err(OrbitError::InvalidSetting(format!(
                    "summary sink {sink:?} is listed twice; give each sink once"
                )));
            }
        }
        if sinks.is_empty() {
            return Ok(Self::disabled());
        }
        Ok(SummaryManager {
            destination: Some(Destination {
                model_dir: model_dir.to_path_buf(),
                split: split.to_string(),
                sinks: sinks.to_vec(),
            }),
            writers: None,
            attached: Vec::new(),
        })
    }

    /// A manager that writes nothing.
    pub fn disabled() -> Self {
        SummaryManager {
            destination: None,
            writers: None,
            attached: Vec::new(),
        }
    }

    /// Adds `writer` to the sinks of an enabled manager: it is written and flushed after the
    /// files at every [`SummaryManager::write`]. A disabled manager drops it.
    pub fn attach(&mut self, writer: Box<dyn SummaryWriter>) {
        if self.is_enabled() {
            self.attached.push(writer);
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

    /// Writes `logs` at `step` to every sink and flushes them. Creates the directories
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
        for writer in &mut self.attached {
            writer.write_scalars(step, logs)?;
            writer.flush()?;
        }
        Ok(())
    }
}

impl Writers {
    /// Opens a writer per file sink: creates the event file, opens `metrics.jsonl` for
    /// appending, reads the header of an existing `<split>.csv`.
    fn open(destination: &Destination) -> Result<Self> {
        let Destination {
            model_dir, split, ..
        } = destination;
        let writers = destination
            .sinks
            .iter()
            .map(|sink| -> Result<Option<Box<dyn SummaryWriter>>> {
                Ok(Some(match sink {
                    SummarySink::Tensorboard => {
                        Box::new(TensorBoardWriter::new(&model_dir.join(split))?)
                    }
                    SummarySink::Jsonl => {
                        Box::new(JsonlWriter::new(&model_dir.join(METRICS_FILE), split)?)
                    }
                    SummarySink::Csv => {
                        Box::new(CsvWriter::new(&model_dir.join(format!("{split}.csv")))?)
                    }
                    SummarySink::Mlflow => return Ok(None),
                }))
            })
            .filter_map(Result::transpose)
            .collect::<Result<_>>()?;
        Ok(Writers(writers))
    }

    /// Writes to every writer, then flushes them.
    fn write(&mut self, step: u64, logs: &Logs) -> Result<()> {
        for writer in &mut self.0 {
            writer.write_scalars(step, logs)?;
        }
        self.0.iter_mut().try_for_each(|writer| writer.flush())
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
    use crate::logs::logs_of as logs;

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

    /// A writer that keeps what it is given.
    #[derive(Debug, Default)]
    struct Recording(std::sync::Arc<std::sync::Mutex<Vec<(u64, Logs)>>>);

    impl SummaryWriter for Recording {
        fn write_scalars(&mut self, step: u64, logs: &Logs) -> Result<()> {
            self.0.lock().unwrap().push((step, logs.clone()));
            Ok(())
        }

        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_attached_writer_gets_every_write_and_a_tracker_sink_opens_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join("model");
        let mut manager =
            SummaryManager::with_sinks(&model_dir, "train", &[SummarySink::Mlflow]).unwrap();
        let recording = Recording::default();
        let written = std::sync::Arc::clone(&recording.0);
        manager.attach(Box::new(recording));
        manager.write(10, &logs(&[("loss", 2.0)])).unwrap();
        manager.write(20, &logs(&[("loss", 1.0)])).unwrap();
        assert_eq!(
            *written.lock().unwrap(),
            [(10, logs(&[("loss", 2.0)])), (20, logs(&[("loss", 1.0)]))]
        );
        assert!(!model_dir.exists());

        let mut disabled = SummaryManager::disabled();
        disabled.attach(Box::new(Recording::default()));
        disabled.write(1, &logs(&[("loss", 1.0)])).unwrap();
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
