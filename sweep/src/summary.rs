//! The sweep's results: a table of trials, best first, with the best trial's parameters and
//! model_dir, printed at the end and by `--sweep_status`, and written as
//! `SWEEP_DIR/summary.md` and `summary.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use grove_orbit::write_atomically;
use serde::Serialize;

use crate::error::{Result, SweepError};
use crate::ledger::{TrialRecord, TrialState};
use crate::space::Assignment;
use crate::spec::MetricSpec;

/// The summary's Markdown file in the sweep directory.
pub const SUMMARY_MD: &str = "summary.md";
/// The summary's JSON file in the sweep directory.
pub const SUMMARY_JSON: &str = "summary.json";

/// One trial's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialRow {
    /// The trial's number.
    pub trial: u64,
    /// Where it stands.
    pub state: TrialState,
    /// The metric's final value.
    pub value: Option<f64>,
    /// The step of its last evaluation.
    pub step: Option<u64>,
    /// Its parameters.
    pub params: Assignment,
    /// Its model_dir, relative to the sweep directory.
    pub model_dir: String,
    /// Why it failed or was pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole sweep's standing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSummary {
    /// The metric and its goal.
    pub metric: MetricSpec,
    /// The trials planned.
    pub n_trials: u64,
    /// How many trials are in each state.
    pub counts: BTreeMap<String, usize>,
    /// The best complete trial.
    pub best: Option<TrialRow>,
    /// Every trial: complete ones best first, then pruned ones best first, then running and
    /// failed ones.
    pub trials: Vec<TrialRow>,
}

/// The name of trial `n`'s model_dir in the sweep directory.
pub fn trial_dir_name(trial: u64) -> String {
    format!("trial-{trial}")
}

impl SweepSummary {
    /// The summary of `trials`.
    pub fn new(metric: &MetricSpec, n_trials: u64, trials: &BTreeMap<u64, TrialRecord>) -> Self {
        let goal = metric.goal;
        let mut rows: Vec<TrialRow> = trials.values().map(row).collect();
        let group = |state: TrialState| match state {
            TrialState::Complete => 0,
            TrialState::Pruned => 1,
            TrialState::Running => 2,
            TrialState::Failed => 3,
        };
        rows.sort_by(|a, b| {
            let loss = |r: &TrialRow| r.value.map_or(f64::INFINITY, |v| goal.loss(v));
            group(a.state)
                .cmp(&group(b.state))
                .then(loss(a).total_cmp(&loss(b)))
                .then(a.trial.cmp(&b.trial))
        });
        let best = rows
            .first()
            .filter(|r| r.state == TrialState::Complete && r.value.is_some())
            .cloned();
        let mut counts = BTreeMap::new();
        for row in &rows {
            *counts
                .entry(grove_core::config::keyword(&row.state))
                .or_insert(0) += 1;
        }
        SweepSummary {
            metric: metric.clone(),
            n_trials,
            counts,
            best,
            trials: rows,
        }
    }

    /// The summary as Markdown: a line of counts, the best trial, and the table.
    pub fn markdown(&self) -> String {
        let mut text = String::new();
        let counts: Vec<String> = (self.counts.iter())
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let _ = writeln!(
            text,
            "# Sweep: {} ({})\n\n{} of {} trials: {}\n",
            self.metric.name,
            grove_core::config::keyword(&self.metric.goal),
            self.trials.len(),
            self.n_trials,
            counts.join(", ")
        );
        match &self.best {
            Some(best) => {
                let _ = writeln!(
                    text,
                    "Best: trial {} with {} = {} (model_dir {}), overrides: {}\n",
                    best.trial,
                    self.metric.name,
                    format_value(best.value),
                    best.model_dir,
                    overrides(&best.params)
                );
            }
            None => text.push_str("No trial is complete yet.\n\n"),
        }
        let keys: Vec<&String> = self
            .trials
            .first()
            .map_or(Vec::new(), |r| r.params.keys().collect());
        let _ = write!(text, "| trial | state | {} | step |", self.metric.name);
        for key in &keys {
            let _ = write!(text, " {key} |");
        }
        text.push_str("\n|---|---|---|---|");
        text.push_str(&"---|".repeat(keys.len()));
        text.push('\n');
        for row in &self.trials {
            let _ = write!(
                text,
                "| {} | {} | {} | {} |",
                row.trial,
                grove_core::config::keyword(&row.state),
                format_value(row.value),
                row.step.map_or("-".to_string(), |s| s.to_string())
            );
            for key in &keys {
                let value = row
                    .params
                    .get(*key)
                    .map_or("-".to_string(), |v| v.to_string());
                let _ = write!(text, " {value} |");
            }
            text.push('\n');
        }
        text
    }

    /// Writes `summary.md` and `summary.json` into `sweep_dir`, each atomically.
    pub fn write(&self, sweep_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| SweepError::Ledger(format!("cannot encode the summary: {e}")))?;
        for (name, bytes) in [
            (SUMMARY_MD, self.markdown().into_bytes()),
            (SUMMARY_JSON, json),
        ] {
            write_atomically(&sweep_dir.join(name), &bytes).map_err(|e| {
                SweepError::Ledger(format!(
                    "cannot write {}: {e}",
                    sweep_dir.join(name).display()
                ))
            })?;
        }
        Ok(())
    }
}

fn row(trial: &TrialRecord) -> TrialRow {
    TrialRow {
        trial: trial.number,
        state: trial.state,
        value: trial.value,
        step: trial.intermediate.last().map(|&(s, _)| s),
        params: trial.params.clone(),
        model_dir: trial_dir_name(trial.number),
        reason: trial.reason.clone(),
    }
}

fn format_value(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.6}"))
}

/// The parameters as `train`'s trailing overrides.
pub fn overrides(params: &Assignment) -> String {
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Goal;

    fn trial(number: u64, state: TrialState, value: Option<f64>) -> TrialRecord {
        TrialRecord {
            number,
            params: Assignment::from([("lr".to_string(), serde_json::Value::from(number))]),
            state,
            value,
            intermediate: value.map(|v| vec![(100, v)]).unwrap_or_default(),
            reason: None,
            starts: 1,
        }
    }

    #[test]
    fn trials_rank_by_state_then_metric_and_the_best_is_complete() {
        let trials: BTreeMap<u64, TrialRecord> = [
            trial(0, TrialState::Complete, Some(0.8)),
            trial(1, TrialState::Pruned, Some(0.99)),
            trial(2, TrialState::Complete, Some(0.9)),
            trial(3, TrialState::Failed, None),
            trial(4, TrialState::Running, None),
        ]
        .into_iter()
        .map(|t| (t.number, t))
        .collect();
        let metric = MetricSpec {
            name: "validation/accuracy".to_string(),
            goal: Goal::Maximize,
        };
        let summary = SweepSummary::new(&metric, 6, &trials);
        let order: Vec<u64> = summary.trials.iter().map(|r| r.trial).collect();
        assert_eq!(order, [2, 0, 1, 4, 3]);
        assert_eq!(summary.best.as_ref().unwrap().trial, 2);
        let text = summary.markdown();
        assert!(
            text.contains("5 of 6 trials: 2 complete, 1 failed, 1 pruned, 1 running"),
            "{text}"
        );
        assert!(text.contains("Best: trial 2 with validation/accuracy = 0.900000 (model_dir trial-2), overrides: lr=2"), "{text}");
        assert!(
            text.contains("| 2 | complete | 0.900000 | 100 | 2 |"),
            "{text}"
        );
    }
}
