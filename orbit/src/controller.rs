//! The Controller: the outer loop of a run (Orbit's `controller.py`).
//!
//! Every step count given to the Controller is an absolute global step, and every cadence is
//! aligned to absolute steps, so a resumed run logs, evaluates and saves at the same steps as an
//! uninterrupted one:
//! - inner train loops end at multiples of `steps_per_loop` (and at the target);
//! - train summaries are written at loop ends where `global_step % summary_interval == 0`
//!   (0: no step cadence), where a train action asks ([`Directive::Summarize`], a cadence in
//!   time) and at the end of training, each holding the step-weighted means since the
//!   previous one;
//! - checkpoints are saved at loop ends where `global_step % checkpoint_interval == 0` or a
//!   train action asks ([`Directive::Checkpoint`]) (in `train_and_evaluate`, after the
//!   evaluation at that step, so they hold its effect on early stopping), and when training
//!   completes;
//! - `train_and_evaluate` evaluates where `global_step % eval_interval == 0` and at the end;
//! - train actions run after every train loop and eval actions after every evaluation, in
//!   order, before the log line and summaries ([`crate::action`]); their directives stop
//!   training with a checkpoint (early stopping), stop it as preempted (a checkpoint of the
//!   step the trainer stopped at), or rewind to the latest checkpoint (blow-up recovery).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::action::{Action, ActionContext, Directive};
use crate::checkpoint::{verify_checkpoint, CheckpointManager};
use crate::controller_state::{ControllerState, WithControllerState};
use crate::error::{OrbitError, Result, RunnerError};
use crate::logs::Logs;
use crate::loop_means::LoopMeans;
use crate::progress::Progress;
use crate::runner::{Checkpointable, Evaluator, Trainer};
use crate::summary::SummaryManager;

/// How a [`Controller`] runs.
pub struct ControllerOptions {
    /// Steps per inner train loop; must be positive.
    pub steps_per_loop: u64,
    /// Train summary cadence in steps, a multiple of `steps_per_loop`; 0 writes them only
    /// where a train action asks ([`Directive::Summarize`]) and at the end of training.
    pub summary_interval: u64,
    /// Saves and restores checkpoints; `None` never checkpoints.
    pub checkpoint_manager: Option<CheckpointManager>,
    /// Where train summaries go.
    pub train_summaries: SummaryManager,
    /// Where evaluation summaries go.
    pub eval_summaries: SummaryManager,
    /// Run after every train loop, in order (e.g. blow-up recovery, preemption).
    pub train_actions: Vec<Box<dyn Action>>,
    /// Run after every evaluation, in order (e.g. best-checkpoint export, early stopping).
    pub eval_actions: Vec<Box<dyn Action>>,
}

/// The directive that counts after a round of actions, and the action that gave it.
struct Verdict {
    /// `Continue` or a stop (`StopTraining`, `Preempt`, `Rewind`).
    directive: Directive,
    /// The action that gave `directive`.
    action: String,
    /// What train actions asked to be done at this loop end.
    requests: Requests,
}

/// The acts train actions may ask for at a loop end, besides stopping; they combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Requests {
    evaluate: bool,
    summarize: bool,
    checkpoint: bool,
}

/// Which of a Controller's action lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Train,
    Eval,
}

/// Drives a runner that trains, evaluates and checkpoints.
pub struct Controller<R> {
    runner: R,
    options: ControllerOptions,
    pending: LoopMeans,
    progress: Option<Progress>,
    /// A train action asked for a checkpoint: the next save at a loop end saves whatever the
    /// step.
    checkpoint_requested: bool,
}

impl<R: Trainer + Evaluator + Checkpointable> Controller<R> {
    /// A controller of `runner`. Fails if `steps_per_loop` is 0, `summary_interval` or the
    /// checkpoint interval is not a multiple of `steps_per_loop` (cadences act at loop ends;
    /// 0 is no step cadence), or two actions share a name (their states would share a key).
    pub fn new(runner: R, options: ControllerOptions) -> Result<Self> {
        let spl = options.steps_per_loop;
        if spl == 0 {
            return Err(OrbitError::InvalidSetting(
                "steps_per_loop must be positive".to_string(),
            ));
        }
        if !options.summary_interval.is_multiple_of(spl) {
            return Err(OrbitError::InvalidSetting(format!(
                "summary_interval = {} must be a multiple of steps_per_loop = {spl}",
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
        let mut names: Vec<&str> = (options.train_actions.iter())
            .chain(&options.eval_actions)
            .map(|action| action.name())
            .collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(OrbitError::InvalidSetting(format!(
                "two actions are named `{}`; give each action its own name",
                pair[0]
            )));
        }
        Ok(Controller {
            runner,
            options,
            pending: LoopMeans::default(),
            progress: None,
            checkpoint_requested: false,
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

    /// The train and evaluation summary managers, e.g. to attach a tracker's writers once the
    /// run has started.
    pub fn summary_managers_mut(&mut self) -> (&mut SummaryManager, &mut SummaryManager) {
        (
            &mut self.options.train_summaries,
            &mut self.options.eval_summaries,
        )
    }

    /// The checkpoint manager, to install a checkpoint received from another worker.
    pub fn checkpoint_manager_mut(&mut self) -> Option<&mut CheckpointManager> {
        self.options.checkpoint_manager.as_mut()
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
        if let Some(dir) = &restored {
            self.apply_state(state, dir, None)?;
        }
        Ok(restored)
    }

    /// Trains until the global step reaches `steps` (absolute), then saves a checkpoint. Does
    /// nothing, and saves nothing, when the global step is there already. A train action's
    /// [`Directive::StopTraining`] ends it early with a checkpoint; its [`Directive::Preempt`]
    /// (the [`crate::Preemption`] action once a stop is requested) with a checkpoint and
    /// [`OrbitError::Preempted`].
    pub fn train(&mut self, steps: u64) -> Result<()> {
        if self.runner.global_step() >= steps {
            tracing::info!(
                "global step {} has reached the target {steps}: nothing to train",
                self.runner.global_step()
            );
            return Ok(());
        }
        self.start_progress(steps);
        self.train_to(steps, steps, true, false)?;
        self.finish_progress();
        self.save_checkpoint().map(|_| ())
    }

    /// Evaluates `steps` batches (-1: the whole evaluation set), logs and writes the results at
    /// the current global step, and returns them. `steps_per_second` is added when `steps > 0`.
    pub fn evaluate(&mut self, steps: i64) -> Result<Logs> {
        self.evaluate_with_directive(steps).map(|(logs, _)| logs)
    }

    /// [`Controller::evaluate`], with what the eval actions asked for.
    fn evaluate_with_directive(&mut self, steps: i64) -> Result<(Logs, Directive)> {
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
        let verdict = self.run_actions(Phase::Eval, step, Duration::ZERO, &mut logs)?;
        self.log_line("eval", step, &logs);
        self.options.eval_summaries.write(step, &logs)?;
        Ok((logs, verdict.directive))
    }

    /// Trains to `train_steps`, evaluating `eval_steps` batches wherever the global step is a
    /// multiple of `eval_interval` (`None`: no step cadence), at a loop end where a train
    /// action asks for it ([`Directive::Evaluate`], a cadence in time) and at `train_steps` (or
    /// until an action stops training), then saves a checkpoint. Returns the last evaluation,
    /// or `None` (no evaluation, no checkpoint) if training was complete.
    pub fn train_and_evaluate(
        &mut self,
        train_steps: u64,
        eval_steps: i64,
        eval_interval: Option<u64>,
    ) -> Result<Option<Logs>> {
        if let Some(interval) = eval_interval {
            if interval == 0 || !interval.is_multiple_of(self.options.steps_per_loop) {
                return Err(OrbitError::InvalidSetting(format!(
                    "eval_interval = {interval} must be a positive multiple of steps_per_loop \
                     = {}",
                    self.options.steps_per_loop
                )));
            }
        }
        if self.runner.global_step() >= train_steps {
            return Ok(None);
        }
        self.start_progress(train_steps);
        let mut last = None;
        while self.runner.global_step() < train_steps {
            let step = self.runner.global_step();
            let next_eval = eval_interval
                .map_or(train_steps, |interval| (step / interval + 1) * interval)
                .min(train_steps);
            if self.train_to(next_eval, train_steps, false, true)? == LoopEnd::Stopped {
                break;
            }
            let (logs, directive) =
                self.with_progress_suspended(|c| c.evaluate_with_directive(eval_steps))?;
            last = Some(logs);
            self.save(true)?;
            if self.obey_stop(directive)? {
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
        self.restore_checkpoint_keeping(dir, None)
    }

    /// [`Controller::restore_checkpoint`], leaving the state of the action named `keep` as
    /// it is.
    fn restore_checkpoint_keeping(&mut self, dir: &Path, keep: Option<&str>) -> Result<()> {
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
        self.apply_state(state, dir, keep)?;
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
        let check_interval = check_interval && !std::mem::take(&mut self.checkpoint_requested);
        let step = self.runner.global_step();
        let state: ControllerState = self
            .actions()
            .filter_map(|action| Some((action.name().to_string(), action.state()?)))
            .collect();
        let Some(manager) = self.options.checkpoint_manager.as_mut() else {
            return Ok(None);
        };
        let both = WithControllerState {
            runner: &mut self.runner,
            state,
        };
        manager.save(step, &both, check_interval)
    }

    /// Every action, train actions first.
    fn actions(&self) -> impl Iterator<Item = &dyn Action> {
        let actions = self.options.train_actions.iter();
        actions
            .chain(&self.options.eval_actions)
            .map(|a| a.as_ref())
    }

    /// Hands each action the state a checkpoint (`dir`) saved under its name; `keep` names an
    /// action whose current state stays (the one that asked for a rewind).
    fn apply_state(
        &mut self,
        mut state: ControllerState,
        dir: &Path,
        keep: Option<&str>,
    ) -> Result<()> {
        let actions = self.options.train_actions.iter_mut();
        for action in actions.chain(&mut self.options.eval_actions) {
            if keep == Some(action.name()) {
                continue;
            }
            let Some(saved) = state.remove(action.name()) else {
                continue;
            };
            let name = action.name().to_string();
            action
                .restore(saved)
                .map_err(|e| OrbitError::BadCheckpoint {
                    path: dir.to_path_buf(),
                    reason: format!("the state of action `{name}` cannot be restored: {e}"),
                })?;
        }
        Ok(())
    }

    /// Runs the actions of `phase` at `step` in order and returns the directive that counts
    /// with the action that gave it: the first rewind at once (the actions after it do not
    /// run), else preemption over a stop, else the first stop.
    fn run_actions(
        &mut self,
        phase: Phase,
        step: u64,
        train_time: Duration,
        logs: &mut Logs,
    ) -> Result<Verdict> {
        let actions = match phase {
            Phase::Train => &mut self.options.train_actions,
            Phase::Eval => &mut self.options.eval_actions,
        };
        let mut verdict = Verdict {
            directive: Directive::Continue,
            action: String::new(),
            requests: Requests::default(),
        };
        for action in actions.iter_mut() {
            let context = ActionContext {
                global_step: step,
                logs: &mut *logs,
                state: &self.runner,
                train_time,
            };
            let directive = action.run(context)?;
            let counts = match &directive {
                Directive::Continue => false,
                Directive::Rewind { .. }
                | Directive::Evaluate
                | Directive::Summarize
                | Directive::Checkpoint
                    if phase == Phase::Eval =>
                {
                    return Err(OrbitError::InvalidSetting(format!(
                        "eval action `{}` asked for {directive:?}; only a train action can",
                        action.name()
                    )));
                }
                Directive::Evaluate => {
                    verdict.requests.evaluate = true;
                    false
                }
                Directive::Summarize => {
                    verdict.requests.summarize = true;
                    false
                }
                Directive::Checkpoint => {
                    verdict.requests.checkpoint = true;
                    false
                }
                Directive::Rewind { .. } => true,
                Directive::Preempt => verdict.directive != Directive::Preempt,
                Directive::StopTraining { .. } => verdict.directive == Directive::Continue,
            };
            if counts {
                let rewind = matches!(directive, Directive::Rewind { .. });
                verdict.directive = directive;
                verdict.action = action.name().to_string();
                if rewind {
                    break;
                }
            }
        }
        Ok(verdict)
    }

    /// Acts on a stop directive: preemption saves a checkpoint and fails with
    /// [`OrbitError::Preempted`]; a stop is logged. True when training should end.
    fn obey_stop(&mut self, directive: Directive) -> Result<bool> {
        match directive {
            Directive::Preempt => {
                let step = self.runner.global_step();
                self.save_checkpoint()?;
                Err(OrbitError::Preempted { step })
            }
            Directive::StopTraining { reason } => {
                tracing::info!("{reason}");
                Ok(true)
            }
            Directive::Continue
            | Directive::Rewind { .. }
            | Directive::Evaluate
            | Directive::Summarize
            | Directive::Checkpoint => Ok(false),
        }
    }

    /// Trains to `target` in aligned loops, saving interval checkpoints at loop ends; the one at
    /// `target` itself only with `save_at_target` (`train_and_evaluate` saves it after the
    /// evaluation, so the checkpoint holds the evaluation's effect on the Controller's state).
    /// With `until_evaluation`, a train action's [`Directive::Evaluate`] ends it early too.
    fn train_to(
        &mut self,
        target: u64,
        final_step: u64,
        save_at_target: bool,
        until_evaluation: bool,
    ) -> Result<LoopEnd> {
        let spl = self.options.steps_per_loop;
        while self.runner.global_step() < target {
            let step = self.runner.global_step();
            let steps = (target - step).min(spl - step % spl);
            let (directive, requests) = self.train_loop(steps, final_step)?;
            if self.obey_stop(directive)? {
                self.save_checkpoint()?;
                return Ok(LoopEnd::Stopped);
            }
            let step = self.runner.global_step();
            if requests.evaluate && until_evaluation {
                return Ok(LoopEnd::EvaluationDue);
            }
            if step < target || save_at_target {
                self.save(true)?;
            }
        }
        Ok(LoopEnd::Reached)
    }

    /// One train loop of `steps` steps, its train actions, log line and summaries; returns
    /// the actions' stop directive, if any (a rewind is carried out here), and their requests
    /// (a checkpoint request is kept for the loop end's save).
    fn train_loop(&mut self, steps: u64, final_step: u64) -> Result<(Directive, Requests)> {
        let before = self.runner.global_step();
        let started = Instant::now();
        let mut logs = self.runner.train(steps).map_err(OrbitError::Runner)?;
        let train_time = started.elapsed();
        let step = self.runner.global_step();
        if step > before + steps {
            tracing::warn!(
                "the trainer advanced the global step from {before} to {step}, not by {steps}"
            );
        }
        let steps = step - before;
        if steps > 0 {
            logs.insert(
                "steps_per_second".to_string(),
                steps as f64 / train_time.as_secs_f64().max(1e-9),
            );
        }
        let Verdict {
            directive,
            action,
            requests,
        } = self.run_actions(Phase::Train, step, train_time, &mut logs)?;
        if let Directive::Rewind { reason } = &directive {
            self.rewind(step, &action, reason)?;
            return Ok((Directive::Continue, Requests::default()));
        }
        self.checkpoint_requested |= requests.checkpoint;
        if steps == 0 {
            return Ok((directive, requests));
        }
        self.log_line("train", step, &logs);
        self.pending.add(&logs, steps);
        let interval = self.options.summary_interval;
        let on_step = interval > 0 && step.is_multiple_of(interval);
        if on_step || requests.summarize || step >= final_step {
            let means = self.pending.take();
            self.options.train_summaries.write(step, &means)?;
        }
        if let Some(progress) = &self.progress {
            progress.update(step, &logs);
        }
        Ok((directive, requests))
    }

    /// Carries out action `name`'s rewind after the loop ending at `step`: restores the latest
    /// checkpoint (keeping that action's own state) and moves the input past the span just
    /// trained.
    fn rewind(&mut self, step: u64, name: &str, reason: &str) -> Result<()> {
        let latest = self
            .options
            .checkpoint_manager
            .as_ref()
            .and_then(CheckpointManager::latest_checkpoint)
            .ok_or_else(|| {
                OrbitError::Diverged(format!(
                    "{reason}, and there is no checkpoint to recover from"
                ))
            })?;
        tracing::warn!("{reason}: restoring {}", latest.display());
        self.restore_checkpoint_keeping(&latest, Some(name))?;
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
/// Why [`Controller::train_to`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoopEnd {
    /// The target step was reached.
    Reached,
    /// A train action stopped training (a checkpoint of that step is saved).
    Stopped,
    /// A train action asked for an evaluation at this loop end.
    EvaluationDue,
}

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
