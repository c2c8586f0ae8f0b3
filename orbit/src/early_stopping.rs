//! Early stopping: training ends when an evaluation metric has not improved by more than
//! `min_delta` for `patience` evaluations in a row. Its counters are checkpoint state, so a
//! resumed run stops where an uninterrupted one would.

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionContext, Directive};
use crate::best_checkpoint::Comparison;
use crate::error::{OrbitError, Result};
use crate::logs::{metric_value, Logs};

/// The counters early stopping keeps between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingState {
    /// The best value seen.
    pub best: Option<f64>,
    /// Evaluations since the last improvement.
    pub evaluations_without_improvement: u64,
}

/// Decides after each evaluation whether training should stop.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    metric: String,
    comparison: Comparison,
    patience: u64,
    min_delta: f64,
    state: EarlyStoppingState,
}

impl EarlyStopping {
    /// Stops after `patience` evaluations without `metric` (nested `a|b` looked up as `a/b`)
    /// improving by more than `min_delta`.
    pub fn new(
        metric: &str,
        comparison: Comparison,
        patience: u64,
        min_delta: f64,
    ) -> Result<Self> {
        if patience == 0 || min_delta.is_nan() || min_delta < 0.0 {
            return Err(OrbitError::InvalidSetting(format!(
                "early stopping needs patience >= 1 and min_delta >= 0, got {patience} and \
                 {min_delta}"
            )));
        }
        Ok(EarlyStopping {
            metric: metric.to_string(),
            comparison,
            patience,
            min_delta,
            state: EarlyStoppingState::default(),
        })
    }

    /// The counters so far (checkpointed through [`Action::state`]).
    pub fn counters(&self) -> &EarlyStoppingState {
        &self.state
    }

    /// Folds in one evaluation; true when training should stop.
    pub fn should_stop(&mut self, logs: &Logs) -> Result<bool> {
        let value = metric_value(logs, &self.metric, "trainer.early_stopping.metric")?;
        let improved = match self.state.best {
            None => !value.is_nan(),
            Some(best) => {
                let shifted = match self.comparison {
                    Comparison::Higher => best + self.min_delta,
                    Comparison::Lower => best - self.min_delta,
                };
                self.comparison.better(value, shifted)
            }
        };
        if improved {
            self.state.best = Some(value);
            self.state.evaluations_without_improvement = 0;
        } else {
            self.state.evaluations_without_improvement += 1;
        }
        Ok(self.state.evaluations_without_improvement >= self.patience)
    }
}

/// An eval action: after each evaluation, [`Directive::StopTraining`] once `patience`
/// evaluations went without improvement; the counters are checkpointed.
impl Action for EarlyStopping {
    fn name(&self) -> &str {
        "early_stopping"
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        if !self.should_stop(context.logs)? {
            return Ok(Directive::Continue);
        }
        Ok(Directive::StopTraining {
            reason: format!(
                "early stopping at step {}: `{}` did not improve by more than {} for the last \
                 {} evaluations (trainer.early_stopping)",
                context.global_step, self.metric, self.min_delta, self.patience
            ),
        })
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.state).ok()
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| OrbitError::InvalidSetting(format!("early stopping counters: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(stopping: &mut EarlyStopping, value: f64) -> bool {
        stopping
            .should_stop(&Logs::from([("loss".to_string(), value)]))
            .unwrap()
    }

    #[test]
    fn stops_after_patience_evaluations_without_a_large_enough_improvement() {
        let mut stopping = EarlyStopping::new("loss", Comparison::Lower, 2, 0.1).unwrap();
        assert!(!eval(&mut stopping, 1.0));
        assert!(!eval(&mut stopping, 0.95)); // better, but by less than min_delta
        assert!(!eval(&mut stopping, 0.5)); // an improvement resets the count
        assert!(!eval(&mut stopping, 0.45));
        assert!(eval(&mut stopping, 0.6));
        assert_eq!(stopping.counters().best, Some(0.5));
    }

    #[test]
    fn restored_counters_continue_the_count() {
        let mut first = EarlyStopping::new("loss", Comparison::Higher, 2, 0.0).unwrap();
        assert!(!eval(&mut first, 1.0));
        assert!(!eval(&mut first, 1.0));
        let mut resumed = EarlyStopping::new("loss", Comparison::Higher, 2, 0.0).unwrap();
        Action::restore(&mut resumed, Action::state(&first).unwrap()).unwrap();
        assert!(eval(&mut resumed, 0.9));
    }
}
