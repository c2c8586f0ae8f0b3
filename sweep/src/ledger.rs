//! The ledger, `SWEEP_DIR/trials.jsonl`: one JSON event per line (a trial suggested, started,
//! finished), appended and fsynced before the sweep acts on it, so a sweep killed at any
//! point is rebuilt from it: finished trials are kept, a suggested trial that did not finish
//! runs again with the same parameters, and no trial is counted twice. A line cut short by a
//! crash (the last one, without its newline) is dropped when the ledger is opened.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::space::Assignment;

/// The ledger's file name in the sweep directory.
pub const LEDGER_FILE: &str = "trials.jsonl";

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Suggested and not finished yet (or interrupted).
    Running,
    /// Trained to its end; its value is its final evaluation's.
    Complete,
    /// Stopped early by the pruner; its value is its last evaluation's.
    Pruned,
    /// Its run failed.
    Failed,
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The sampler chose a trial's parameters.
    Suggested {
        /// The trial's number (0, 1, ...).
        trial: u64,
        /// Its config values.
        params: Assignment,
        /// When, RFC 3339.
        time: String,
    },
    /// A `train` process started (again, for a resumed trial).
    Started {
        /// The trial's number.
        trial: u64,
        /// When, RFC 3339.
        time: String,
    },
    /// The trial ended.
    Finished {
        /// The trial's number.
        trial: u64,
        /// Complete, pruned or failed.
        state: TrialState,
        /// The metric's final value (last evaluation), if any evaluation ran.
        value: Option<f64>,
        /// The `(step, value)` of every evaluation.
        intermediate: Vec<(u64, f64)>,
        /// Why it failed or was pruned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When, RFC 3339.
        time: String,
    },
}

/// What the ledger says of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// The trial's number.
    pub number: u64,
    /// Its config values.
    pub params: Assignment,
    /// Where it stands.
    pub state: TrialState,
    /// The metric's final value.
    pub value: Option<f64>,
    /// Every evaluation's `(step, value)`.
    pub intermediate: Vec<(u64, f64)>,
    /// Why it failed or was pruned.
    pub reason: Option<String>,
    /// How many `train` processes it took.
    pub starts: u64,
}

impl TrialRecord {
    /// Whether the trial has ended (complete, pruned or failed).
    pub fn is_finished(&self) -> bool {
        self.state != TrialState::Running
    }
}

/// The ledger of one sweep directory, open for appending.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    trials: BTreeMap<u64, TrialRecord>,
}

impl Ledger {
    /// Opens (or creates) the ledger in `sweep_dir`, dropping a cut-short last line.
    pub fn open(sweep_dir: &Path) -> Result<Ledger> {
        let path = sweep_dir.join(LEDGER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(SweepError::io("cannot read", &path, e)),
        };
        let complete_len = text.rfind('\n').map_or(0, |i| i + 1);
        let trials = fold(&text[..complete_len], &path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| SweepError::io("cannot open", &path, e))?;
        if complete_len < text.len() {
            tracing::warn!(
                "{}: dropping a last line cut short by a crash",
                path.display()
            );
            file.set_len(complete_len as u64)
                .map_err(|e| SweepError::io("cannot truncate", &path, e))?;
        }
        Ok(Ledger { path, file, trials })
    }

    /// Reads the ledger in `sweep_dir` without opening it for writing (for
    /// `--sweep_status` and the pruner inside a trial, while the sweep writes it).
    pub fn read(sweep_dir: &Path) -> Result<BTreeMap<u64, TrialRecord>> {
        let path = sweep_dir.join(LEDGER_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| SweepError::io("cannot read", &path, e))?;
        let complete_len = text.rfind('\n').map_or(0, |i| i + 1);
        fold(&text[..complete_len], &path)
    }

    /// Appends `event`, fsyncs it, and folds it into the trials.
    pub fn append(&mut self, event: Event) -> Result<()> {
        let mut line = serde_json::to_string(&event)
            .map_err(|e| SweepError::Ledger(format!("cannot encode a ledger event: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| SweepError::io("cannot append to", &self.path, e))?;
        apply(&mut self.trials, event, &self.path, 0)
    }

    /// Every trial, by number.
    pub fn trials(&self) -> &BTreeMap<u64, TrialRecord> {
        &self.trials
    }
}

/// The current time as the ledger writes it.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn fold(text: &str, path: &Path) -> Result<BTreeMap<u64, TrialRecord>> {
    let mut trials = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| {
            SweepError::Ledger(format!(
                "{}:{}: not a ledger event ({e}); the ledger is written only by `train \
                 --sweep`: restore it, or start the sweep in a new --model_dir",
                path.display(),
                index + 1
            ))
        })?;
        apply(&mut trials, event, path, index + 1)?;
    }
    Ok(trials)
}

fn apply(
    trials: &mut BTreeMap<u64, TrialRecord>,
    event: Event,
    path: &Path,
    line: usize,
) -> Result<()> {
    let unknown = |trial: u64| {
        SweepError::Ledger(format!(
            "{}:{line}: an event for trial {trial}, which was never suggested",
            path.display()
        ))
    };
    match event {
        Event::Suggested { trial, params, .. } => {
            trials.entry(trial).or_insert(TrialRecord {
                number: trial,
                params,
                state: TrialState::Running,
                value: None,
                intermediate: Vec::new(),
                reason: None,
                starts: 0,
            });
        }
        Event::Started { trial, .. } => {
            trials.get_mut(&trial).ok_or_else(|| unknown(trial))?.starts += 1;
        }
        Event::Finished {
            trial,
            state,
            value,
            intermediate,
            reason,
            ..
        } => {
            let record = trials.get_mut(&trial).ok_or_else(|| unknown(trial))?;
            record.state = state;
            record.value = value;
            record.intermediate = intermediate;
            record.reason = reason;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggested(trial: u64) -> Event {
        Event::Suggested {
            trial,
            params: Assignment::from([("a".to_string(), serde_json::Value::from(trial))]),
            time: now(),
        }
    }

    fn finished(trial: u64, value: f64) -> Event {
        Event::Finished {
            trial,
            state: TrialState::Complete,
            value: Some(value),
            intermediate: vec![(10, value)],
            reason: None,
            time: now(),
        }
    }

    #[test]
    fn a_reopened_ledger_has_every_trial_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.append(suggested(0)).unwrap();
        ledger.append(finished(0, 0.5)).unwrap();
        ledger.append(suggested(1)).unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"event\": \"finished\", \"tri");
        std::fs::write(&path, &text).unwrap();

        let mut reopened = Ledger::open(dir.path()).unwrap();
        assert_eq!(reopened.trials().len(), 2);
        assert_eq!(reopened.trials()[&0].state, TrialState::Complete);
        assert_eq!(reopened.trials()[&1].state, TrialState::Running);
        reopened.append(finished(1, 0.7)).unwrap();
        let read = Ledger::read(dir.path()).unwrap();
        assert_eq!(read[&1].value, Some(0.7));
        assert_eq!(read[&0].intermediate, [(10, 0.5)]);
    }

    #[test]
    fn a_corrupt_line_is_refused_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEDGER_FILE), "not json\n").unwrap();
        let message = Ledger::open(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("trials.jsonl:1: not a ledger event"),
            "{message}"
        );
        let mut ledger_text = serde_json::to_string(&finished(3, 1.0)).unwrap();
        ledger_text.push('\n');
        std::fs::write(dir.path().join(LEDGER_FILE), ledger_text).unwrap();
        let message = Ledger::open(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("trial 3, which was never suggested"),
            "{message}"
        );
    }
}
