//! Inside a trial: the `sweep_trial` eval action, which the sweep adds to every trial's
//! `trainer.eval_actions`. After each evaluation it checks that the sweep's metric is among
//! the evaluation's, keeps the trial's intermediate values (checkpoint state, so a resumed
//! trial remembers them), and asks the pruner whether to stop: a pruned trial ends training
//! with a checkpoint of this step, as early stopping does, and leaves `pruned.json` for the
//! sweep.
//!
//! The sweep tells the trial what it needs in `sweep_trial.json`, written in the trial's
//! model_dir before the trial starts.

use std::path::{Path, PathBuf};

use grove_orbit::{write_atomically, Action, ActionContext, Directive, OrbitError};
use grove_trainers::actions::ActionSetup;
use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, TrialState};
use crate::pruner::PrunerSpec;
use crate::spec::MetricSpec;

/// The action's registered name.
pub const ACTION_NAME: &str = "sweep_trial";
/// The sweep's instructions to a trial, in its model_dir.
pub const CONTEXT_FILE: &str = "sweep_trial.json";
/// Left in a pruned trial's model_dir: the step, value and reason.
pub const PRUNED_FILE: &str = "pruned.json";
/// Left in a trial's model_dir when its evaluation lacks the sweep's metric.
pub const METRIC_ERROR_FILE: &str = "sweep_metric_error.txt";

/// What the sweep tells a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialContext {
    /// The sweep directory (its ledger holds the other trials' values).
    pub sweep_dir: PathBuf,
    /// This trial's number.
    pub trial: u64,
    /// The metric trials are ranked by.
    pub metric: MetricSpec,
    /// The pruner.
    pub pruner: PrunerSpec,
}

/// Why and where a trial was pruned (`pruned.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedAt {
    /// The step of the evaluation that pruned it.
    pub step: u64,
    /// The metric's value there.
    pub value: f64,
    /// The pruner's reason.
    pub reason: String,
}

impl PrunedAt {
    /// Reads `pruned.json` from a trial's model_dir, if the trial was pruned.
    pub fn read(model_dir: &Path) -> Option<PrunedAt> {
        let text = std::fs::read_to_string(model_dir.join(PRUNED_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The `sweep_trial` action.
#[derive(Debug)]
pub struct SweepTrialAction {
    context: TrialContext,
    model_dir: PathBuf,
    curve: Vec<(u64, f64)>,
}

/// The action factory registered as `sweep_trial`.
pub fn sweep_trial_action(setup: &ActionSetup<'_>) -> grove_core::Result<Box<dyn Action>> {
    let path = setup.model_dir.join(CONTEXT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        grove_core::Error::Config(format!(
            "`trainer.eval_actions` lists `{ACTION_NAME}`, which runs only in the trials that \
             `train --sweep` starts (there is no {}); remove it from the list",
            path.display()
        ))
    })?;
    let context = serde_json::from_str(&text).map_err(|e| {
        grove_core::Error::Config(format!(
            "{}: {e}; the sweep writes this file, rerun the sweep to rewrite it",
            path.display()
        ))
    })?;
    Ok(Box::new(SweepTrialAction {
        context,
        model_dir: setup.model_dir.to_path_buf(),
        curve: Vec::new(),
    }))
}

impl SweepTrialAction {
    fn prune_reason(&self) -> grove_orbit::Result<Option<String>> {
        if self.context.pruner == PrunerSpec::None {
            return Ok(None);
        }
        let trials = Ledger::read(&self.context.sweep_dir)
            .map_err(|e| OrbitError::InvalidSetting(format!("the sweep's ledger: {e}")))?;
        let others = trials
            .values()
            .filter(|t| t.number != self.context.trial && !t.intermediate.is_empty());
        let complete: Vec<&[(u64, f64)]> = (others.clone())
            .filter(|t| t.state == TrialState::Complete)
            .map(|t| t.intermediate.as_slice())
            .collect();
        let finished: Vec<&[(u64, f64)]> = others
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
            .map(|t| t.intermediate.as_slice())
            .collect();
        Ok(self.context.pruner.should_prune(
            self.context.metric.goal,
            &self.curve,
            &complete,
            &finished,
        ))
    }
}

impl Action for SweepTrialAction {
    fn name(&self) -> &str {
        ACTION_NAME
    }

    fn run(&mut self, context: ActionContext<'_>) -> grove_orbit::Result<Directive> {
        let key = self.context.metric.log_key();
        let Some(&value) = context.logs.get(&key) else {
            let message = format!(
                "the sweep's `metric.name` `{}` is not among this evaluation's metrics: {}; \
                 name one of them in the sweep file",
                self.context.metric.name,
                context.logs.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            write_atomically(&self.model_dir.join(METRIC_ERROR_FILE), message.as_bytes())?;
            return Err(OrbitError::InvalidSetting(message));
        };
        let step = context.global_step;
        self.curve.retain(|&(s, _)| s < step);
        self.curve.push((step, value));
        let Some(reason) = self.prune_reason()? else {
            return Ok(Directive::Continue);
        };
        let pruned = PrunedAt {
            step,
            value,
            reason: reason.clone(),
        };
        let json = serde_json::to_vec_pretty(&pruned).expect("plain data encodes");
        write_atomically(&self.model_dir.join(PRUNED_FILE), &json)?;
        Ok(Directive::StopTraining {
            reason: format!(
                "sweep trial {} pruned at step {step}: {reason}",
                self.context.trial
            ),
        })
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.curve).ok()
    }

    fn restore(&mut self, state: serde_json::Value) -> grove_orbit::Result<()> {
        self.curve = serde_json::from_value(state)
            .map_err(|e| OrbitError::InvalidSetting(format!("sweep trial values: {e}")))?;
        Ok(())
    }
}
