//! Blow-up recovery (Model Garden's `RecoveryAction`): after every train loop, a NaN loop-mean
//! loss, or one above the bound, is a blow-up ([`LossGuard`]); the [`Recovery`] action has the
//! Controller restore the latest checkpoint and skip the input span that blew up, up to
//! `max_trials` times over the run (a checkpointed count), then ends the run.

use crate::action::{Action, ActionContext, Directive};
use crate::error::{OrbitError, Result};
use crate::logs::Logs;

/// Checks the loop-mean `training_loss`.
#[derive(Debug, Clone, PartialEq)]
pub struct LossGuard {
    /// A loss above this bound is a blow-up.
    pub loss_upper_bound: f64,
    /// Bound violations before this global step are ignored (NaN never is).
    pub recovery_begin_steps: u64,
    /// Recoveries allowed over the whole run (0: the first blow-up ends it).
    pub max_trials: u64,
}

impl LossGuard {
    /// Fails when `logs` hold a NaN `training_loss`, or one above the bound at or after
    /// `recovery_begin_steps`.
    pub fn check(&self, global_step: u64, logs: &Logs) -> Result<()> {
        let Some(&loss) = logs.get("training_loss") else {
            return Ok(());
        };
        if loss.is_nan() {
            return Err(OrbitError::Diverged(format!(
                "the training loss is NaN in the loop ending at step {global_step}; lower the \
                 learning rate or check the data, then rerun (the run resumes from the last \
                 checkpoint)"
            )));
        }
        if loss > self.loss_upper_bound && global_step >= self.recovery_begin_steps {
            return Err(OrbitError::Diverged(format!(
                "the training loss {loss} exceeds trainer.loss_upper_bound = {} in the loop \
                 ending at step {global_step}",
                self.loss_upper_bound
            )));
        }
        Ok(())
    }
}

/// A train action: [`Directive::Rewind`] after a loop that blew up, while recoveries are left.
#[derive(Debug, Clone)]
pub struct Recovery {
    guard: LossGuard,
    recoveries: u64,
}

impl Recovery {
    /// Recovers from the blow-ups `guard` finds.
    pub fn new(guard: LossGuard) -> Self {
        Recovery {
            guard,
            recoveries: 0,
        }
    }
}

impl Action for Recovery {
    fn name(&self) -> &str {
        "recovery"
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        let Err(blowup) = self.guard.check(context.global_step, context.logs) else {
            return Ok(Directive::Continue);
        };
        let max_trials = self.guard.max_trials;
        if self.recoveries >= max_trials {
            return Err(OrbitError::Diverged(format!(
                "{blowup} (after {} recoveries; trainer.recovery_max_trials = {max_trials})",
                self.recoveries
            )));
        }
        self.recoveries += 1;
        Ok(Directive::Rewind {
            reason: format!("{blowup}; recovery {} of {max_trials}", self.recoveries),
        })
    }

    fn state(&self) -> Option<serde_json::Value> {
        Some(self.recoveries.into())
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.recoveries = state.as_u64().ok_or_else(|| {
            OrbitError::InvalidSetting(format!("recoveries: {state} is not a count"))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(loss: f64) -> Logs {
        Logs::from([("training_loss".to_string(), loss)])
    }

    #[test]
    fn nan_always_fails_and_the_bound_applies_from_begin_steps() {
        let guard = LossGuard {
            loss_upper_bound: 10.0,
            recovery_begin_steps: 5,
            max_trials: 0,
        };
        assert!(guard.check(1, &logs(f64::NAN)).is_err());
        assert!(guard.check(1, &logs(100.0)).is_ok());
        assert!(guard.check(5, &logs(100.0)).is_err());
        assert!(guard.check(5, &logs(9.0)).is_ok());
        assert!(guard.check(5, &Logs::new()).is_ok());
    }
}
