//! The Controller's overhead, measured directly: the Orbit `Controller` drives the
//! `DefaultTrainer` of bert/local (the README's run: 20-step loops, summaries every loop)
//! through a wrapper that times every call into the trainer's inner loop; the overhead is the
//! rest of the Controller's wall time (loop bookkeeping, logs, summaries, progress bar and,
//! in the second figure, checkpoints).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use grove_orbit::summary::SummaryManager;
use grove_orbit::{
    CheckpointManager, Checkpointable, Controller, ControllerOptions, Evaluator, Logs, RunnerError,
    Trainer,
};
use serde_json::json;

/// A runner that adds up the time spent inside `train`.
struct Timed<R> {
    inner: R,
    inside: Duration,
}

impl<R: Trainer> Trainer for Timed<R> {
    fn train(&mut self, num_steps: u64) -> Result<Logs, RunnerError> {
        let start = Instant::now();
        let logs = self.inner.train(num_steps);
        self.inside += start.elapsed();
        logs
    }

    fn global_step(&self) -> u64 {
        self.inner.global_step()
    }

    fn skip_inputs(&mut self, batches: u64) -> Result<(), RunnerError> {
        self.inner.skip_inputs(batches)
    }
}

impl<R: Evaluator> Evaluator for Timed<R> {
    fn evaluate(&mut self, num_steps: i64) -> Result<Logs, RunnerError> {
        self.inner.evaluate(num_steps)
    }
}

impl<R: Checkpointable> Checkpointable for Timed<R> {
    fn save(&self, dir: &Path) -> Result<(), RunnerError> {
        self.inner.save(dir)
    }

    fn restore(&mut self, dir: &Path) -> Result<(), RunnerError> {
        self.inner.restore(dir)
    }
}

/// Trains bert/local for `steps` steps under the Controller in a temporary model_dir, with
/// or without its checkpoints; returns (overhead %, total seconds).
fn run(steps: u64, checkpoints: bool) -> anyhow::Result<(f64, f64)> {
    grove_experiments::register()?;
    let config = grove_experiments::bert::bert_local();
    let trainer = crate::grove_step::trainer_of(&config)?;
    let model_dir = tempfile::tempdir()?;
    let t = &config.trainer;
    let options = ControllerOptions {
        steps_per_loop: t.steps_per_loop,
        summary_interval: t.summary_interval.steps().unwrap_or_default(),
        checkpoint_manager: checkpoints
            .then(|| {
                let interval = t.checkpoint_interval.steps().unwrap_or_default();
                CheckpointManager::new(model_dir.path(), 3, interval)
            })
            .transpose()?,
        train_summaries: SummaryManager::new(model_dir.path(), "train")?,
        eval_summaries: SummaryManager::disabled(),
        train_actions: Vec::new(),
        eval_actions: Vec::new(),
    };
    let timed = Timed {
        inner: trainer,
        inside: Duration::ZERO,
    };
    let mut controller = Controller::new(timed, options)?;
    let start = Instant::now();
    controller
        .train(steps)
        .map_err(|e| anyhow!("training failed: {e}"))?;
    let total = start.elapsed().as_secs_f64();
    let inside = controller.runner().inside.as_secs_f64();
    Ok((100.0 * (total - inside) / total, total))
}

/// The JSON report: overhead without and with checkpoints.
pub fn measure(steps: u64) -> anyhow::Result<serde_json::Value> {
    let (overhead, seconds) = run(steps, false)?;
    let (with_checkpoints, seconds_with) = run(steps, true)?;
    Ok(json!({
        "experiment": "bert/local",
        "steps": steps,
        "overhead_pct": overhead,
        "seconds": seconds,
        "overhead_with_checkpoints_pct": with_checkpoints,
        "seconds_with_checkpoints": seconds_with,
    }))
}
