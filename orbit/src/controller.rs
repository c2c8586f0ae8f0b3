//! The Controller: the outer loop of a run (Orbit's `controller.py`).
//!
//! Every step count given to the Controller is an absolute global step, and every cadence is
//! aligned to absolute steps, so a resumed run logs, evaluates and saves at the same steps as an
//! uninterrupted one:
//! - inner train loops end at multiples of `steps_per_loop` (and at the target);
//! - train summaries are written at loop ends where `global_step % summary_interval == 0` and at
//!   the end of training, each holding the step-weighted means since the previous one;
//! - checkpoints are saved at loop ends where `global_step % checkpoint_interval == 0` (in
//!   `train_and_evaluate`, after the evaluation at that step, so they hold its effect on
//!   early stopping), and when training completes;
//! - `train_and_evaluate` evaluates where `global_step % eval_interval == 0` and at the end;
//! - a preemption request stops training after the trainer's current step with a checkpoint of
//!   that step.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::best_checkpoint::BestCheckpointExporter;
use crate::checkpoint::{verify_checkpoint, CheckpointManager};
use crate::controller_state::{ControllerState, WithControllerState};
use crate::early_stopping::EarlyStopping;
use crate::error::{OrbitError, Result, RunnerError};
use crate::logs::Logs;
use crate::loop_means::LoopMeans;
use crate::loss_guard::LossGuard;
use crate::preemption::Preemption;
use crate::progress::Progress;
use crate::runner::{Checkpointable, Evaluator, Trainer};
use crate::summary::SummaryManager;

/// How a [`Controller`] runs.
#[derive(Debug)]
pub struct ControllerOptions {
    /// Steps per inner train loop; must be positive.
    pub steps_per_loop: u64,
    /// Train summary cadence in steps; a positive multiple of `steps_per_loop`.
    pub summary_interval: u64,
    /// Saves and restores checkpoints; `None` never checkpoints.
    pub checkpoint_manager: Option<CheckpointManager>,
    /// Where train summaries go.
    pub train_summaries: SummaryManager,
    /// Where evaluation summaries go.
    pub eval_summaries: SummaryManager,
    /// Checked after every train loop; `None` checks nothing.
    pub loss_guard: Option<LossGuard>,
    /// Exports the best checkpoints by an evaluation metric after each evaluation.
    pub best_checkpoint: Option<BestCheckpointExporter>,
    /// Ends `train_and_evaluate` when an evaluation metric stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// A stop request, checked after every train loop: when set, a checkpoint is saved and
    /// training ends with [`OrbitError::Preempted`]. The trainer should share it and stop its
    /// loop early.
    pub preemption: Preemption,
}

/// Drives a runner that trains, evaluates and checkpoints.
pub struct Controller<R> {
    runner: R,
    options: ControllerOptions,
    recoveries: u64,
    pending: LoopMeans,
    progress: Option<Progress>,
}

impl<R: Trainer + Evaluator + Checkpointable> Controller<R> {
    /// A controller of `runner`. Fails if `steps_per_loop` is 0, or `summary_interval` or the
    /// checkpoint interval is not a multiple of `steps_per_loop` (cadences act at loop ends).
    pub fn new(runner: R, options: ControllerOptions) -> Result<Self> {
        let spl = options.steps_per_loop;
        if spl == 0 {
            return Err(OrbitError::InvalidSetting(
                "steps_per_loop must be positive".to_string(),
            ));
        }
        if options.summary_interval == 0 || !options.summary_interval.is_multiple_of(spl) {
            return Err(OrbitError::InvalidSetting(format!(
                "summary_interval = {} must be a positive multiple of steps_per_loop = {spl}",
                options.summary_interval
            )));
        }
        if let Some(manager) = &options.checkpoint_manager {
            if manager.checkpoint_interval() % spl != 0 {
                return Err(OrbitError::InvalidSetting(format!(
                    "checkpoint_interval = {} must be a multiple of steps_per_loop = {spl}",
                    manager.checkpoint_interval()
                )));
            }
        }
        Ok(Controller {
            runner,
            options,
            recoveries: 0,
            pending: LoopMeans::default(),
            progress: None,
        })
    }

    /// The runner.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// The runner, mutably.
    pub fn runner_mut(&mut self) -> &mut R {
        &mut self.runner
    }

    /// The checkpoint manager, if any.
    pub fn checkpoint_manager(&self) -> Option<&CheckpointManager> {
        self.options.checkpoint_manager.as_ref()
    }

    /// Restores the latest checkpoint, or runs `init_fn` when there is none (never both).
    /// Returns the restored path.
    pub fn restore_or_initialize(
        &mut self,
        init_fn: impl FnOnce(&mut R) -> std::result::Result<(), RunnerError>,
    ) -> Result<Option<PathBuf>> {
        let Some(manager) = self.options.checkpoint_manager.as_mut() else {
            return init_fn(&mut self.runner)
                .map(|()| None)
                .map_err(OrbitError::Runner);
        };
        let mut both = WithControllerState {
            runner: &mut self.runner,
            state: ControllerState::default(),
        };
        let restored = manager.restore_or_initialize(&mut both, |b| init_fn(b.runner))?;
        let state = both.state;
        self.apply_state(state);
        Ok(restored)
    }

    /// Trains until the global step reaches `steps` (absolute), then saves a checkpoint. Does
    /// nothing, and saves nothing, when the global step is there already. A preemption request
    /// ends it early with a checkpoint and [`OrbitError::Preempted`].
    pub fn train(&mut self, steps: u64) -> Result<()> {
        if self.runner.global_step() >= steps {
            tracing::info!(
                "global step {} has reached the target {steps}: nothing to train",
                self.runner.global_step()
            );
            return Ok(());
        }
        self.start_progress(steps);
        self.train_to(steps, steps, true)?;
        self.finish_progress();
        self.save_checkpoint().map(|_| ())
    }

    /// Evaluates `steps` batches (-1: the whole evaluation set), logs and writes the results at
    /// the current global step, and returns them. `steps_per_second` is added when `steps > 0`.
    pub fn evaluate(&mut self, steps: i64) -> Result<Logs> {
        if steps == 0 || steps < -1 {
            return Err(OrbitError::InvalidSetting(format!(
                "evaluation steps = {steps}: use a positive number, or -1 for the whole set"
            )));
        }
        let started = Instant::now();
        let mut logs = self.runner.evaluate(steps).map_err(OrbitError::Runner)?;
        if steps > 0 {
            logs.insert(
                "steps_per_second".to_string(),
                steps as f64 / started.elapsed().as_secs_f64().max(1e-9),
            );
        }
        let step = self.runner.global_step();
        if let Some(exporter) = self.options.best_checkpoint.as_mut() {
            exporter.update(step, &mut logs, &self.runner)?;
        }
        self.log_line("eval", step, &logs);
        self.options.eval_summaries.write(step, &logs)?;
        Ok(logs)
    }

    /// Trains to `train_steps`, evaluating `eval_steps` batches wherever the global step is a
    /// multiple of `eval_interval` and at `train_steps` (or until early stopping ends it), then
    /// saves a checkpoint. Returns the
    /// last evaluation, or `None` (no evaluation, no checkpoint) if training was complete.
    pub fn train_and_evaluate(
        &mut self,
        train_steps: u64,
        eval_steps: i64,
        eval_interval: u64,
    ) -> Result<Option<Logs>> {
        if eval_interval == 0 || !eval_interval.is_multiple_of(self.options.steps_per_loop) {
            return Err(OrbitError::InvalidSetting(format!(
                "eval_interval = {eval_interval} must be a positive multiple of steps_per_loop \
                 = {}",
                self.options.steps_per_loop
            )));
        }
        if self.runner.global_step() >= train_steps {
            return Ok(None);
        }
        self.start_progress(train_steps);
        let mut last = None;
        while self.runner.global_step() < train_steps {
            let step = self.runner.global_step();
            let next_eval = ((step / eval_interval + 1) * eval_interval).min(train_steps);
            self.train_to(next_eval, train_steps, false)?;
            let logs = self.with_progress_suspended(|c| c.evaluate(eval_steps))?;
            let stop = match self.options.early_stopping.as_mut() {
                Some(stopping) => stopping.should_stop(&logs)?,
                None => false,
            };
            last = Some(logs);
            self.save(true)?;
            if stop {
                tracing::info!(
                    "early stopping at step {}: the metric did not improve for the last \
                     evaluations (trainer.early_stopping)",
                    self.runner.global_step()
                );
                break;
            }
        }
        self.finish_progress();
        self.save_checkpoint()?;
        Ok(last)
    }

    /// Replaces the runner's state with the checkpoint in `dir`; a directory that is not a
    /// checkpoint is reported as such.
    pub fn restore_checkpoint(&mut self, dir: &Path) -> Result<()> {
        verify_checkpoint(dir).map_err(|reason| OrbitError::BadCheckpoint {
            path: dir.to_path_buf(),
            reason: format!("not a complete checkpoint: {reason}"),
        })?;
        let mut both = WithControllerState {
            runner: &mut self.runner,
            state: ControllerState::default(),
        };
        both.restore(dir).map_err(OrbitError::Runner)?;
        let state = both.state;
        self.apply_state(state);
        tracing::info!("restored from checkpoint: {}", dir.display());
        Ok(())
    }

    /// Evaluates every checkpoint of the checkpoint directory in step order, including those a
    /// concurrent trainer writes while this runs: each one not evaluated yet that is still on
    /// disk, none skipped. Returns after evaluating a checkpoint at or beyond `final_step`, or
    /// when no new checkpoint appeared for `timeout` (checking every `poll`). Returns the last
    /// evaluation, if any.
    pub fn evaluate_continuously(
        &mut self,
        steps: i64,
        final_step: u64,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Option<Logs>> {
        let mut last = None;
        let mut evaluated: Option<u64> = None;
        let mut idle_since = Instant::now();
        loop {
            let manager = self.options.checkpoint_manager.as_mut().ok_or_else(|| {
                OrbitError::InvalidSetting(
                    "continuous evaluation needs a checkpoint manager".into(),
                )
            })?;
            manager.refresh()?;
            let pending: Vec<(u64, PathBuf)> = manager
                .checkpoint_steps()
                .into_iter()
                .filter(|step| evaluated.is_none_or(|done| *step > done))
                .map(|step| (step, manager.checkpoint_path(step)))
                .collect();
            if pending.is_empty() {
                if idle_since.elapsed() >= timeout {
                    tracing::info!("no new checkpoint for {timeout:?}: continuous evaluation ends");
                    return Ok(last);
                }
                std::thread::sleep(poll);
                continue;
            }
            for (step, path) in pending {
                match self.restore_checkpoint(&path) {
                    // The trainer's retention removed it meanwhile: nothing left to evaluate.
                    Err(_) if !path.is_dir() => {
                        tracing::warn!("{} was removed before it was evaluated", path.display());
                        continue;
                    }
                    result => result?,
                }
                last = Some(self.evaluate(steps)?);
                evaluated = Some(step);
                idle_since = Instant::now();
                if step >= final_step {
                    return Ok(last);
                }
            }
        }
    }

    /// Saves a checkpoint at the current global step (unless one exists for it or
    /// checkpointing is disabled) and returns its path.
    pub fn save_checkpoint(&mut self) -> Result<Option<PathBuf>> {
        self.save(false)
    }

    /// Saves runner and Controller state through the checkpoint manager.
    fn save(&mut self, check_interval: bool) -> Result<Option<PathBuf>> {
        let step = self.runner.global_step();
        let state = ControllerState {
            early_stopping: self
                .options
                .early_stopping
                .as_ref()
                .map(|e| e.state().clone()),
            recoveries: self.recoveries,
        };
        let Some(manager) = self.options.checkpoint_manager.as_mut() else {
            return Ok(None);
        };
        let both = WithControllerState {
            runner: &mut self.runner,
            state,
        };
        manager.save(step, &both, check_interval)
    }

    fn apply_state(&mut self, state: ControllerState) {
        self.recoveries = state.recoveries;
        if let (Some(stopping), Some(saved)) =
            (self.options.early_stopping.as_mut(), state.early_stopping)
        {
            stopping.restore(saved);
        }
    }

    /// Trains to `target` in aligned loops, saving interval checkpoints at loop ends; the one at
    /// `target` itself only with `save_at_target` (`train_and_evaluate` saves it after the
    /// evaluation, so the checkpoint holds the evaluation's effect on the Controller's state).
    fn train_to(&mut self, target: u64, final_step: u64, save_at_target: bool) -> Result<()> {
        let spl = self.options.steps_per_loop;
        while self.runner.global_step() < target {
            let step = self.runner.global_step();
            let steps = (target - step).min(spl - step % spl);
            self.train_loop(steps, final_step)?;
            let step = self.runner.global_step();
            if self.options.preemption.requested() {
                self.save_checkpoint()?;
                return Err(OrbitError::Preempted { step });
            }
            if step < target || save_at_target {
                self.save(true)?;
            }
        }
        Ok(())
    }

    fn train_loop(&mut self, steps: u64, final_step: u64) -> Result<()> {
        let before = self.runner.global_step();
        let started = Instant::now();
        let mut logs = self.runner.train(steps).map_err(OrbitError::Runner)?;
        let step = self.runner.global_step();
        if step != before + steps && !self.options.preemption.requested() {
            tracing::warn!(
                "the trainer advanced the global step from {before} to {step}, not by {steps}"
            );
        }
        let steps = step - before;
        if steps == 0 {
            return Ok(());
        }
        logs.insert(
            "steps_per_second".to_string(),
            steps as f64 / started.elapsed().as_secs_f64().max(1e-9),
        );
        if let Some(guard) = &self.options.loss_guard {
            if let Err(blowup) = guard.check(step, &logs) {
                return self.recover(step, blowup, guard.max_trials);
            }
        }
        self.log_line("train", step, &logs);
        self.pending.add(&logs, steps);
        if step.is_multiple_of(self.options.summary_interval) || step >= final_step {
            let means = self.pending.take();
            self.options.train_summaries.write(step, &means)?;
        }
        if let Some(progress) = &self.progress {
            progress.update(step, &logs);
        }
        Ok(())
    }

    /// After a blow-up in the loop ending at `step`: restores the latest checkpoint and moves
    /// the input past the span that blew up, or fails once `max_trials` recoveries are spent.
    fn recover(&mut self, step: u64, blowup: OrbitError, max_trials: u64) -> Result<()> {
        if self.recoveries >= max_trials {
            return Err(OrbitError::Diverged(format!(
                "{blowup} (after {} recoveries; trainer.recovery_max_trials = {max_trials})",
                self.recoveries
            )));
        }
        let latest = self
            .options
            .checkpoint_manager
            .as_ref()
            .and_then(CheckpointManager::latest_checkpoint)
            .ok_or_else(|| {
                OrbitError::Diverged(format!(
                    "{blowup}, and there is no checkpoint to recover from"
                ))
            })?;
        let recoveries = self.recoveries + 1;
        tracing::warn!(
            "{blowup}; recovery {recoveries} of {max_trials}: restoring {}",
            latest.display()
        );
        self.restore_checkpoint(&latest)?;
        self.recoveries = recoveries;
        let restored = self.runner.global_step();
        self.runner
            .skip_inputs(step.saturating_sub(restored))
            .map_err(OrbitError::Runner)?;
        self.pending.take();
        Ok(())
    }

    fn log_line(&self, split: &str, step: u64, logs: &Logs) {
        let line = format_logs(split, step, logs);
        match &self.progress {
            Some(progress) => progress.suspend(|| tracing::info!("{line}")),
            None => tracing::info!("{line}"),
        }
    }

    fn start_progress(&mut self, target: u64) {
        self.progress = Some(Progress::new(target, self.runner.global_step()));
    }

    fn finish_progress(&mut self) {
        if let Some(progress) = self.progress.take() {
            progress.finish();
        }
    }

    fn with_progress_suspended<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        match self.progress.take() {
            Some(progress) => {
                let result = progress.suspend(|| f(self));
                self.progress = Some(progress);
                result
            }
            None => f(self),
        }
    }
}

/// `train | step: 120 | steps/sec: 25.3 | training_loss: 1.23456 | ...`
fn format_logs(split: &str, step: u64, logs: &Logs) -> String {
    let mut line = format!("{split} | step: {step}");
    if let Some(rate) = logs.get("steps_per_second") {
        line.push_str(&format!(" | steps/sec: {rate:.1}"));
    }
    for (name, value) in logs.iter().filter(|(name, _)| *name != "steps_per_second") {
        line.push_str(&format!(" | {name}: {}", format_value(*value)));
    }
    line
}

/// Six decimals, or scientific notation for magnitudes below 0.001 (learning rates in warmup).
fn format_value(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-3 {
        format!("{value:.4e}")
    } else {
        format!("{value:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_like_orbits() {
        let logs = Logs::from([
            ("training_loss".to_string(), 2.5),
            ("learning_rate".to_string(), 1e-8),
            ("steps_per_second".to_string(), 12.345),
        ]);
        assert_eq!(
            format_logs("train", 20, &logs),
            "train | step: 20 | steps/sec: 12.3 | learning_rate: 1.0000e-8 | training_loss: 2.500000"
        );
    }
}
