//! Actions: the Controller's extension point (Orbit's `train_actions` / `eval_actions`).
//!
//! An [`Action`] runs after every train loop (a train action) or after every evaluation (an
//! eval action), in the order the Controller was given them, before the loop's or the
//! evaluation's log line and summaries are written. It sees the global step and the logs, may
//! add entries to the logs (the log line and summaries then show them), may save the runner's
//! state (an export), and tells the Controller what to do next with a [`Directive`]: go on,
//! stop training (early stopping), stop as preempted, rewind to the latest checkpoint
//! (blow-up recovery), or evaluate, write summaries or save a checkpoint now (cadences in
//! time). The requests to act now combine (several actions may ask at one loop end); of the
//! stops, a preemption outranks the others. An action that keeps counters across restarts saves them through
//! [`Action::state`]: they go into every checkpoint, under the action's name.
//!
//! Grove's own best-checkpoint export, early stopping, blow-up recovery and preemption are
//! actions; a user's crate registers its own by name (grove-trainers' `actions` registry) and
//! switches it on from the config.

use std::time::Duration;

use crate::error::Result;
use crate::logs::Logs;
use crate::runner::Checkpointable;

/// What an action is handed after a train loop or an evaluation.
pub struct ActionContext<'a> {
    /// The global step at the end of the loop or at which the evaluation ran.
    pub global_step: u64,
    /// A train loop's logs (its means, with `steps_per_second`; empty when a stop request
    /// cut the loop to no step) or the evaluation's metrics. Entries an action adds are
    /// logged and written to the summaries with the others.
    pub logs: &'a mut Logs,
    /// The runner's state, for an action that exports it (e.g. the best checkpoint).
    pub state: &'a dyn Checkpointable,
    /// How long the train loop's training took (the runner's `train` call alone; zero for
    /// an evaluation).
    pub train_time: Duration,
}

/// What the Controller does once an action has run.
#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    /// Go on.
    Continue,
    /// End training after this loop or evaluation with a checkpoint of this step (early
    /// stopping); `reason` is logged.
    StopTraining {
        /// Why training ends, for the log.
        reason: String,
    },
    /// End training with a checkpoint of this step and [`crate::OrbitError::Preempted`].
    Preempt,
    /// Only from a train action: evaluate at the end of this loop (a cadence in time rather
    /// than steps). Acted on by `train_and_evaluate`; training without evaluation ignores it.
    Evaluate,
    /// Only from a train action: write the train summaries at the end of this loop.
    Summarize,
    /// Only from a train action: save a checkpoint at the end of this loop.
    Checkpoint,
    /// Only from a train action: discard the loop, restore the latest checkpoint and move
    /// the training input past the span just trained (blow-up recovery). The asking action's
    /// own state survives the restore; every other state is the checkpoint's.
    Rewind {
        /// What went wrong, for the log.
        reason: String,
    },
}

/// Something to run after every train loop or evaluation.
pub trait Action: Send {
    /// The action's name: unique among a Controller's actions, and the key of its state in
    /// checkpoints.
    fn name(&self) -> &str;

    /// Runs after a train loop or an evaluation. An error ends the run.
    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive>;

    /// The state to save in every checkpoint, if the action keeps any.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes back the state [`Action::state`] saved, from a checkpoint being restored. Not
    /// called for a checkpoint that holds no state for this action.
    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        let _ = state;
        Ok(())
    }
}
