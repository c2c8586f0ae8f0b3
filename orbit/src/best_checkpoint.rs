//! Best-checkpoint export (Model Garden's `BestCheckpointExporter`, keeping the top k): after
//! each evaluation, a checkpoint whose metric beats the retained ones is saved to
//! `<export dir>/ckpt-<step>`, the worst beyond `max_to_keep` is removed, and `info.json` records
//! the retained checkpoints and their values. The best value is reloaded from `info.json` when
//! a run restarts, and the export directory is apart from the regular checkpoints, so their
//! retention never removes a best checkpoint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionContext, Directive};
use crate::checkpoint::checkpoint_name;
use crate::error::{OrbitError, Result};
use crate::fs_atomic::{remove_dir_if_present, save_checkpoint_dir, write_atomically};
use crate::logs::{metric_value, Logs};
use crate::runner::Checkpointable;

/// File in the export directory listing the retained best checkpoints.
pub const INFO_FILE: &str = "info.json";

/// Whether a larger or a smaller metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Larger is better.
    Higher,
    /// Smaller is better.
    Lower,
}

impl Comparison {
    /// True when `candidate` is strictly better than `incumbent`.
    pub fn better(self, candidate: f64, incumbent: f64) -> bool {
        match self {
            Comparison::Higher => candidate > incumbent,
            Comparison::Lower => candidate < incumbent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    step: u64,
    value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Info {
    metric: String,
    /// Retained checkpoints, best first.
    checkpoints: Vec<Entry>,
    /// The full evaluation logs of the best checkpoint.
    best_logs: Logs,
}

/// Exports the best checkpoints by one evaluation metric.
#[derive(Debug)]
pub struct BestCheckpointExporter {
    directory: PathBuf,
    metric: String,
    comparison: Comparison,
    max_to_keep: usize,
    info: Info,
}

impl BestCheckpointExporter {
    /// An exporter into `directory` by `metric` (nested names are written `a|b` and looked up as
    /// `a/b` in the logs), keeping the `max_to_keep` best. Reads an existing `info.json`.
    pub fn new(
        directory: &Path,
        metric: &str,
        comparison: Comparison,
        max_to_keep: usize,
    ) -> Result<Self> {
        if max_to_keep == 0 {
            return Err(OrbitError::InvalidSetting(
                "best_checkpoint_max_to_keep must be at least 1".to_string(),
            ));
        }
        let info_path = directory.join(INFO_FILE);
        let info = match std::fs::read(&info_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| OrbitError::BadCheckpoint {
                path: info_path.clone(),
                reason: format!("not valid JSON ({e}); restore it or remove the directory"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Info {
                metric: metric.to_string(),
                checkpoints: Vec::new(),
                best_logs: Logs::new(),
            },
            Err(e) => return Err(OrbitError::io("cannot read", &info_path, e)),
        };
        Ok(BestCheckpointExporter {
            directory: directory.to_path_buf(),
            metric: metric.to_string(),
            comparison,
            max_to_keep,
            info,
        })
    }

    /// The best value so far, if any.
    pub fn best(&self) -> Option<f64> {
        self.info.checkpoints.first().map(|e| e.value)
    }

    /// Steps of the retained best checkpoints, best first.
    pub fn retained_steps(&self) -> Vec<u64> {
        self.info.checkpoints.iter().map(|e| e.step).collect()
    }

    /// After an evaluation at `step`: exports `state` if its metric makes the top
    /// `max_to_keep`, and adds `best_<metric>` to `logs`.
    pub fn update<S: Checkpointable + ?Sized>(
        &mut self,
        step: u64,
        logs: &mut Logs,
        state: &S,
    ) -> Result<()> {
        let value = metric_value(logs, &self.metric, "best_checkpoint_eval_metric")?;
        let makes_the_cut = self.info.checkpoints.len() < self.max_to_keep
            || self
                .info
                .checkpoints
                .last()
                .is_some_and(|worst| self.comparison.better(value, worst.value));
        let retained_here = self.info.checkpoints.iter().any(|e| e.step == step);
        if makes_the_cut && !value.is_nan() && !retained_here {
            self.export(step, value, logs, state)?;
        }
        if let Some(best) = self.best() {
            logs.insert(format!("best_{}", self.metric.replace('|', "/")), best);
        }
        Ok(())
    }

    fn export<S: Checkpointable + ?Sized>(
        &mut self,
        step: u64,
        value: f64,
        logs: &Logs,
        state: &S,
    ) -> Result<()> {
        let name = checkpoint_name(step);
        let final_dir = save_checkpoint_dir(&self.directory, &name, |dir| state.save_export(dir))?;
        let position = self
            .info
            .checkpoints
            .iter()
            .position(|e| self.comparison.better(value, e.value))
            .unwrap_or(self.info.checkpoints.len());
        self.info
            .checkpoints
            .insert(position, Entry { step, value });
        if position == 0 {
            self.info.best_logs = logs.clone();
        }
        let removed: Vec<Entry> = self
            .info
            .checkpoints
            .drain(self.max_to_keep.min(self.info.checkpoints.len())..)
            .collect();
        self.write_info()?;
        for entry in removed {
            remove_dir_if_present(&self.directory.join(checkpoint_name(entry.step)))?;
        }
        tracing::info!(
            "exported best checkpoint {} ({} = {value})",
            final_dir.display(),
            self.metric
        );
        Ok(())
    }

    fn write_info(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.info).expect("info serializes");
        write_atomically(&self.directory.join(INFO_FILE), &json)
    }
}

/// An eval action: exports the runner's state after each evaluation whose metric makes the
/// top `max_to_keep`, and adds `best_<metric>` to the evaluation's logs.
impl Action for BestCheckpointExporter {
    fn name(&self) -> &str {
        "best_checkpoint_export"
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        self.update(context.global_step, context.logs, context.state)?;
        Ok(Directive::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RunnerError;

    /// State that writes its step.
    struct Step(u64);

    impl Checkpointable for Step {
        fn save(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
            std::fs::write(dir.join("step"), self.0.to_string())?;
            Ok(())
        }
        fn restore(&mut self, _: &Path) -> std::result::Result<(), RunnerError> {
            Ok(())
        }
    }

    fn evaluate(exporter: &mut BestCheckpointExporter, step: u64, key: &str, value: f64) -> Logs {
        let mut logs = Logs::from([(key.to_string(), value)]);
        exporter.update(step, &mut logs, &Step(step)).unwrap();
        logs
    }

    #[test]
    fn higher_is_better_exports_improvements_and_reports_the_best() {
        let dir = tempfile::tempdir().unwrap();
        let mut exporter =
            BestCheckpointExporter::new(dir.path(), "acc", Comparison::Higher, 1).unwrap();
        evaluate(&mut exporter, 1, "acc", 0.5);
        let logs = evaluate(&mut exporter, 2, "acc", 0.7);
        assert_eq!(logs["best_acc"], 0.7);
        let logs = evaluate(&mut exporter, 3, "acc", 0.6);
        assert_eq!(logs["best_acc"], 0.7);
        assert_eq!(exporter.retained_steps(), vec![2]);
        assert!(dir.path().join("ckpt-2/step").is_file());
        assert!(!dir.path().join("ckpt-1").exists() && !dir.path().join("ckpt-3").exists());

        // A restart reloads the bar from info.json.
        let mut again =
            BestCheckpointExporter::new(dir.path(), "acc", Comparison::Higher, 1).unwrap();
        assert_eq!(again.best(), Some(0.7));
        evaluate(&mut again, 4, "acc", 0.65);
        assert_eq!(again.retained_steps(), vec![2]);
    }

    #[test]
    fn lower_is_better_keeps_the_top_k_of_a_nested_metric() {
        let dir = tempfile::tempdir().unwrap();
        let mut exporter =
            BestCheckpointExporter::new(dir.path(), "valid|loss", Comparison::Lower, 2).unwrap();
        for (step, loss) in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5), (5, 0.5)] {
            evaluate(&mut exporter, step, "valid/loss", loss);
        }
        assert_eq!(exporter.retained_steps(), vec![5, 2]);
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(INFO_FILE)).unwrap()).unwrap();
        assert_eq!(info["checkpoints"][0]["value"], 0.5);
        assert!(!dir.path().join("ckpt-3").exists());
    }

    #[test]
    fn a_missing_metric_names_the_metrics_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let mut exporter =
            BestCheckpointExporter::new(dir.path(), "f1", Comparison::Higher, 1).unwrap();
        let mut logs = Logs::from([("accuracy".to_string(), 1.0)]);
        let err = exporter
            .update(1, &mut logs, &Step(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`f1` is not among the evaluation metrics: accuracy"),
            "{err}"
        );
    }
}
