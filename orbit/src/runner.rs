//! What the Controller drives: a trainer, an evaluator, and state it can checkpoint.

use std::path::Path;

use crate::error::RunnerError;
use crate::logs::Logs;

/// Runs training steps (Orbit's `AbstractTrainer`).
pub trait Trainer {
    /// Runs `num_steps` steps, advancing [`Trainer::global_step`] by `num_steps`, and returns
    /// the loop's logs (means over the loop, e.g. `training_loss`; `learning_rate` at the new
    /// global step). A trainer sharing the Controller's [`crate::Preemption`] stops after its
    /// current step once a stop is requested, returning the logs of the steps it ran.
    fn train(&mut self, num_steps: u64) -> Result<Logs, RunnerError>;
    /// Steps trained so far over the whole run, restored from checkpoints.
    fn global_step(&self) -> u64;
    /// After a blow-up recovery restored an earlier checkpoint: moves the training input
    /// `batches` ahead, past the span that blew up, so the retried steps see other data. The
    /// offset must be part of the checkpointed state. The default does nothing.
    fn skip_inputs(&mut self, batches: u64) -> Result<(), RunnerError> {
        let _ = batches;
        Ok(())
    }
}

/// Runs evaluation (Orbit's `AbstractEvaluator`).
pub trait Evaluator {
    /// Evaluates `num_steps` batches, or the whole evaluation set when `num_steps` is -1, from
    /// the start of the set, and returns the metrics.
    fn evaluate(&mut self, num_steps: i64) -> Result<Logs, RunnerError>;
}

/// State that a [`crate::CheckpointManager`] saves and restores.
pub trait Checkpointable {
    /// Writes the complete state into `dir`, an existing empty directory.
    fn save(&self, dir: &Path) -> Result<(), RunnerError>;
    /// Writes the state an export keeps (e.g. the best checkpoint) into `dir`: by default the
    /// same as [`Checkpointable::save`]; with a moving average of the weights, the averaged
    /// weights in place of the raw ones.
    fn save_export(&self, dir: &Path) -> Result<(), RunnerError> {
        self.save(dir)
    }
    /// Replaces the current state with the one saved in `dir`.
    fn restore(&mut self, dir: &Path) -> Result<(), RunnerError>;
}
