//! The sweep loop: keeps up to `parallel` trial processes running until `n_trials` trials
//! are finished, recording each suggestion, start and end in the ledger before acting on it.
//!
//! Run again on the same directory, it continues: finished trials are kept, trials that were
//! suggested but did not finish run again (resuming from their checkpoints) with the same
//! parameters, and the sampler sees the same history. A lock refuses a second sweep process
//! on the directory, and `sweep.json` refuses a rerun with another search (the budget keys
//! `n_trials`, `parallel` and `max_failures` may change).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use grove_orbit::fault::fault_point;
use grove_orbit::process_lock::{
    lock_for_this_process, wait_until_unlocked, ProcessLock, ProcessLockError,
};
use grove_orbit::{write_atomically, Preemption};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::hparams_experiment::{mark_failed, write_experiment_record};
use crate::launcher::{last_error, Exit, TrialProcess};
use crate::ledger::{now, Event, Ledger, TrialState};
use crate::plan::{BaseLayers, TrialCommand};
use crate::pruner::PrunerSpec;
use crate::results::evaluation_curve;
use crate::sampler::tpe::TpeSettings;
use crate::sampler::Sampler;
use crate::space::{Assignment, ParameterSpec};
use crate::spec::{Method, MetricSpec, Sweep};
use crate::summary::{overrides, trial_dir_name, SweepSummary};
use crate::trial_action::{PrunedAt, TrialContext, CONTEXT_FILE, METRIC_ERROR_FILE};

/// The file recording what a sweep directory searches.
pub const RECORD_FILE: &str = "sweep.json";
/// The file whose lock marks the sweep process that owns a directory.
pub const LOCK_FILE: &str = ".sweep.lock";
/// How often running trials are polled.
const POLL: Duration = Duration::from_millis(50);

/// Everything a sweep needs to run.
pub struct SweepRun<'a> {
    /// The sweep file, read and checked.
    pub sweep: &'a Sweep,
    /// The trials' shared `train` command.
    pub command: &'a TrialCommand,
    /// The `train` program.
    pub program: &'a Path,
    /// The sweep directory (`--model_dir`).
    pub sweep_dir: &'a Path,
    /// Set by SIGTERM / SIGINT: the sweep stops its trials (each saves a checkpoint) and
    /// ends as interrupted.
    pub preemption: Preemption,
}

/// What `sweep.json` holds: the search, which a rerun must repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The experiment and base config layers.
    pub layers: BaseLayers,
    /// The sampling method.
    pub method: Method,
    /// The metric.
    pub metric: MetricSpec,
    /// The parameters.
    pub parameters: BTreeMap<String, ParameterSpec>,
    /// The sampler's seed.
    pub seed: u64,
    /// The pruner.
    pub pruner: PrunerSpec,
    /// TPE's settings.
    pub tpe: TpeSettings,
    /// The number of trials of the latest run (informational; may change).
    pub n_trials: u64,
}

impl SweepRecord {
    /// Reads `sweep.json` from a sweep directory.
    pub fn read(sweep_dir: &Path) -> Result<SweepRecord> {
        let path = sweep_dir.join(RECORD_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SweepError::io("cannot read (is this a sweep directory?)", &path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| SweepError::Ledger(format!("{}: {e}", path.display())))
    }
}

/// Why the sweep stopped starting trials before its budget was used.
enum Stop {
    Interrupted(String),
    TooManyFailures(String),
    MetricMissing(String),
}

/// Runs the sweep to its end (or until it must stop) and returns its summary, also written
/// to `summary.md` and `summary.json`.
pub fn run_sweep(run: SweepRun<'_>) -> Result<SweepSummary> {
    let sweep_dir = std::path::absolute(run.sweep_dir)
        .map_err(|e| SweepError::io("cannot resolve", run.sweep_dir, e))?;
    std::fs::create_dir_all(&sweep_dir)
        .map_err(|e| SweepError::io("cannot create", &sweep_dir, e))?;
    let _lock = lock_sweep_dir(&sweep_dir)?;
    check_record(run.sweep, run.command, &sweep_dir)?;
    if run.command.tensorboard {
        write_experiment_record(run.sweep, &sweep_dir)?;
    }
    let ledger = Ledger::open(&sweep_dir)?;
    let mut sweep = Orchestrator {
        run: &run,
        sweep_dir,
        ledger,
        sampler: Sampler::new(run.sweep)?,
        running: Vec::new(),
        stop: None,
    };
    let outcome = sweep.run_trials();
    let trials = sweep.ledger.trials();
    let summary = SweepSummary::new(&run.sweep.spec.metric, run.sweep.n_trials, trials);
    summary.write(&sweep.sweep_dir)?;
    outcome?;
    match sweep.stop {
        None => Ok(summary),
        Some(Stop::Interrupted(why)) => Err(SweepError::Interrupted(why)),
        Some(Stop::TooManyFailures(why)) => Err(SweepError::TrialsFailed(why)),
        Some(Stop::MetricMissing(why)) => Err(SweepError::Spec(why)),
    }
}

struct Orchestrator<'a> {
    run: &'a SweepRun<'a>,
    sweep_dir: PathBuf,
    ledger: Ledger,
    sampler: Sampler,
    running: Vec<TrialProcess>,
    stop: Option<Stop>,
}

impl Orchestrator<'_> {
    fn run_trials(&mut self) -> Result<()> {
        let mut resumable: VecDeque<u64> = (self.ledger.trials().values())
            .filter(|t| !t.is_finished())
            .map(|t| t.number)
            .collect();
        let mut signal_forwarded = false;
        loop {
            if self.run.preemption.requested() && !signal_forwarded {
                signal_forwarded = true;
                self.running.iter().for_each(TrialProcess::stop);
                self.stop.get_or_insert(Stop::Interrupted(
                    "the sweep was stopped by a signal; its trials saved checkpoints: run the \
                     same command to continue"
                        .to_string(),
                ));
            }
            while self.stop.is_none() && self.running.len() < self.run.sweep.spec.parallel {
                let trial = match resumable.pop_front() {
                    Some(trial) => trial,
                    None if (self.ledger.trials().len() as u64) < self.run.sweep.n_trials => {
                        self.suggest()?
                    }
                    None => break,
                };
                self.start(trial)?;
            }
            if self.running.is_empty() {
                return Ok(());
            }
            std::thread::sleep(POLL);
            let mut index = 0;
            while index < self.running.len() {
                match self.running[index].try_exit()? {
                    Some(exit) => {
                        let process = self.running.swap_remove(index);
                        self.finish(&process, exit)?;
                    }
                    None => index += 1,
                }
            }
        }
    }

    /// Draws the next trial's parameters and records them.
    fn suggest(&mut self) -> Result<u64> {
        let trial = self.ledger.trials().len() as u64;
        let spec = &self.run.sweep.spec;
        let params = self.sampler.suggest(
            &self.run.sweep.space,
            spec.metric.goal,
            spec.seed,
            trial,
            self.ledger.trials(),
        );
        self.ledger.append(Event::Suggested {
            trial,
            params,
            time: now(),
        })?;
        fault("sweep_trial_suggested")?;
        Ok(trial)
    }

    /// Starts (or resumes) trial `trial`'s process, unless it was pruned before the sweep
    /// last stopped.
    fn start(&mut self, trial: u64) -> Result<()> {
        let model_dir = self.sweep_dir.join(trial_dir_name(trial));
        std::fs::create_dir_all(&model_dir)
            .map_err(|e| SweepError::io("cannot create", &model_dir, e))?;
        if let Some(pruned) = PrunedAt::read(&model_dir) {
            return self.record_pruned(trial, &model_dir, pruned);
        }
        let context = TrialContext {
            sweep_dir: self.sweep_dir.clone(),
            trial,
            metric: self.run.sweep.spec.metric.clone(),
            pruner: self.run.sweep.spec.pruner.clone(),
        };
        let json = serde_json::to_vec_pretty(&context).expect("plain data encodes");
        write_atomically(&model_dir.join(CONTEXT_FILE), &json).map_err(|e| {
            SweepError::Ledger(format!("cannot write the trial's {CONTEXT_FILE}: {e}"))
        })?;
        wait_for_previous_process(&model_dir)?;
        let params = self.params(trial);
        let args = self.run.command.args(&model_dir, &params)?;
        let process = TrialProcess::start(self.run.program, &args, trial, &model_dir)?;
        let resumed = self.ledger.trials()[&trial].starts > 0;
        self.ledger.append(Event::Started { trial, time: now() })?;
        tracing::info!(
            "trial {trial}: {} ({})",
            if resumed { "resumed" } else { "started" },
            overrides(&params)
        );
        self.running.push(process);
        Ok(())
    }

    fn params(&self, trial: u64) -> Assignment {
        self.ledger.trials()[&trial].params.clone()
    }

    /// Records how trial `process` ended.
    fn finish(&mut self, process: &TrialProcess, exit: Exit) -> Result<()> {
        fault("sweep_trial_exited")?;
        let (trial, model_dir) = (process.trial, &process.model_dir);
        match exit {
            Exit::Success => match PrunedAt::read(model_dir) {
                Some(pruned) => self.record_pruned(trial, model_dir, pruned)?,
                None => {
                    let curve = evaluation_curve(model_dir, &self.run.sweep.spec.metric.log_key());
                    let Some(&(_, value)) = curve.last() else {
                        return self.record_failed(
                            trial,
                            format!(
                                "the trial ended without an evaluation of `{}`",
                                self.run.sweep.spec.metric.name
                            ),
                        );
                    };
                    self.record(trial, TrialState::Complete, Some(value), curve, None)?;
                }
            },
            Exit::Preempted | Exit::Killed(_) => {
                if !self.run.preemption.requested() {
                    let how = match exit {
                        Exit::Killed(signal) => format!("was killed by signal {signal}"),
                        _ => "was stopped by a signal after saving a checkpoint".to_string(),
                    };
                    tracing::warn!("trial {trial} {how}; no new trial starts");
                    self.stop.get_or_insert(Stop::Interrupted(format!(
                        "trial {trial} {how}; run the same command to resume it from its \
                         checkpoint (see {})",
                        model_dir.join(crate::launcher::LOG_FILE).display()
                    )));
                }
            }
            Exit::Failed { code, .. } => {
                if let Ok(message) = std::fs::read_to_string(model_dir.join(METRIC_ERROR_FILE)) {
                    self.running.iter().for_each(TrialProcess::stop);
                    self.stop = Some(Stop::MetricMissing(format!(
                        "{}: {message}",
                        self.run.sweep.file
                    )));
                    return Ok(());
                }
                let reason = last_error(model_dir)
                    .unwrap_or_else(|| format!("`train` exited with code {code}"));
                self.record_failed(trial, reason)?;
            }
        }
        Ok(())
    }

    fn record_pruned(&mut self, trial: u64, model_dir: &Path, pruned: PrunedAt) -> Result<()> {
        let mut curve = evaluation_curve(model_dir, &self.run.sweep.spec.metric.log_key());
        curve.retain(|&(s, _)| s < pruned.step);
        curve.push((pruned.step, pruned.value));
        self.record(
            trial,
            TrialState::Pruned,
            Some(pruned.value),
            curve,
            Some(pruned.reason),
        )
    }

    fn record_failed(&mut self, trial: u64, reason: String) -> Result<()> {
        tracing::warn!("trial {trial} failed: {reason}");
        if self.run.command.tensorboard {
            mark_failed(&self.sweep_dir.join(trial_dir_name(trial)))?;
        }
        self.record(
            trial,
            TrialState::Failed,
            None,
            Vec::new(),
            Some(reason.clone()),
        )?;
        let failures = (self.ledger.trials().values())
            .filter(|t| t.state == TrialState::Failed)
            .count() as u64;
        let max_failures = self.run.sweep.spec.max_failures;
        if failures >= max_failures {
            self.stop.get_or_insert(Stop::TooManyFailures(format!(
                "{failures} trials failed (max_failures = {max_failures}); the last: trial \
                 {trial}: {reason}; see trial-*/train.log in {}",
                self.sweep_dir.display()
            )));
        }
        Ok(())
    }

    fn record(
        &mut self,
        trial: u64,
        state: TrialState,
        value: Option<f64>,
        intermediate: Vec<(u64, f64)>,
        reason: Option<String>,
    ) -> Result<()> {
        self.ledger.append(Event::Finished {
            trial,
            state,
            value,
            intermediate,
            reason,
            time: now(),
        })?;
        fault("sweep_trial_recorded")?;
        if state != TrialState::Failed {
            let metric = &self.run.sweep.spec.metric;
            let summary = SweepSummary::new(metric, self.run.sweep.n_trials, self.ledger.trials());
            let best = summary.best.map_or("none complete yet".to_string(), |b| {
                format!("trial {} with {:?}", b.trial, b.value.unwrap_or(f64::NAN))
            });
            tracing::info!(
                "trial {trial}: {}, {} = {:?} | best: {best}",
                grove_core::config::keyword(&state),
                metric.name,
                value.unwrap_or(f64::NAN)
            );
        }
        Ok(())
    }
}

fn fault(point: &str) -> Result<()> {
    fault_point(point).map_err(|e| SweepError::io("fault point", point, e))
}

/// Takes the sweep directory's lock, refusing a second sweep process.
fn lock_sweep_dir(sweep_dir: &Path) -> Result<ProcessLock> {
    let path = sweep_dir.join(LOCK_FILE);
    lock_for_this_process(&path).map_err(|e| match e {
        ProcessLockError::Held { holder } => SweepError::Spec(format!(
            "{} is being swept by another process ({holder}); wait for it to finish, or use \
             another --model_dir",
            sweep_dir.display()
        )),
        ProcessLockError::Io { action, source } => SweepError::io(action, &path, source),
    })
}

/// Writes `sweep.json` on the first run; on later runs refuses another search.
fn check_record(sweep: &Sweep, command: &TrialCommand, sweep_dir: &Path) -> Result<()> {
    let spec = &sweep.spec;
    let record = SweepRecord {
        layers: command.layers.clone(),
        method: spec.method,
        metric: spec.metric.clone(),
        parameters: spec.parameters.clone(),
        seed: spec.seed,
        pruner: spec.pruner.clone(),
        tpe: spec.tpe.clone(),
        n_trials: sweep.n_trials,
    };
    let path = sweep_dir.join(RECORD_FILE);
    if path.exists() {
        let previous = SweepRecord::read(sweep_dir)?;
        let (old, new) = (to_json(&previous), to_json(&record));
        let changed: Vec<&String> = (new.iter())
            .filter(|(key, value)| *key != "n_trials" && old.get(*key) != Some(value))
            .map(|(key, _)| key)
            .collect();
        if !changed.is_empty() {
            return Err(SweepError::Spec(format!(
                "{} holds a sweep with another {} (see {}); run the same sweep to continue \
                 it, or use another --model_dir",
                sweep_dir.display(),
                changed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                path.display()
            )));
        }
    }
    let json = serde_json::to_vec_pretty(&record).expect("plain data encodes");
    write_atomically(&path, &json)
        .map_err(|e| SweepError::Ledger(format!("cannot write {}: {e}", path.display())))
}

fn to_json(record: &SweepRecord) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(record) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Waits until no process holds the trial's training lock (a trial of a killed sweep may
/// still be saving its checkpoint).
fn wait_for_previous_process(model_dir: &Path) -> Result<()> {
    let path = model_dir.join(grove_trainers::model_dir_lock::LOCK_FILE);
    if wait_until_unlocked(&path).map_err(|e| SweepError::io("cannot lock", &path, e))? {
        tracing::info!(
            "waited for the previous process of {} to stop",
            model_dir.display()
        );
    }
    Ok(())
}
