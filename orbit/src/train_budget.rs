//! A budget of training time (`trainer.max_duration`): training ends with a checkpoint at the
//! first train-loop end after the loops together trained for the budget. Only the runner's
//! training counts (the Controller's [`ActionContext::train_time`]), not evaluation or
//! checkpointing; the time trained so far is the action's state, saved in every checkpoint,
//! so a resumed run spends only what is left. Time is not reproducible: the same budget
//! ends two runs at different steps.

use std::time::Duration;

use crate::action::{Action, ActionContext, Directive};
use crate::error::Result;
use crate::training_time;

/// Stops training once it has used its time.
#[derive(Debug)]
pub struct TrainBudget {
    budget: Duration,
    trained: Duration,
}

impl TrainBudget {
    /// A budget of `budget` training time, none of it spent yet.
    pub fn new(budget: Duration) -> Self {
        TrainBudget {
            budget,
            trained: Duration::ZERO,
        }
    }

    /// The training time spent so far (restored ones included).
    pub fn trained(&self) -> Duration {
        self.trained
    }
}

impl Action for TrainBudget {
    fn name(&self) -> &str {
        "max_duration"
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        self.trained += context.train_time;
        if self.trained < self.budget {
            return Ok(Directive::Continue);
        }
        Ok(Directive::StopTraining {
            reason: format!(
                "trainer.max_duration = {} s of training is spent ({:.1} s trained) at step {}",
                self.budget.as_secs_f64(),
                self.trained.as_secs_f64(),
                context.global_step
            ),
        })
    }

    fn state(&self) -> Option<serde_json::Value> {
        training_time::to_state(self.trained)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.trained = training_time::from_state(self.name(), state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_time::run_after_loop;

    #[test]
    fn training_stops_once_the_loops_used_the_budget_and_a_restart_goes_on_from_there() {
        let mut budget = TrainBudget::new(Duration::from_secs(10));
        assert_eq!(run_after_loop(&mut budget, 5, 4), Directive::Continue);
        assert_eq!(run_after_loop(&mut budget, 10, 4), Directive::Continue);
        let saved = budget.state().unwrap();
        assert_eq!(saved, serde_json::json!({"trained_seconds": 8.0}));

        let mut resumed = TrainBudget::new(Duration::from_secs(10));
        resumed.restore(saved).unwrap();
        assert_eq!(resumed.trained(), Duration::from_secs(8));
        let Directive::StopTraining { reason } = run_after_loop(&mut resumed, 15, 3) else {
            panic!("the budget is spent");
        };
        assert!(
            reason.contains("max_duration = 10 s") && reason.contains("step 15"),
            "{reason}"
        );
    }

    #[test]
    fn a_malformed_state_is_refused() {
        let mut budget = TrainBudget::new(Duration::from_secs(1));
        assert!(budget.restore(serde_json::json!({"trained": 1})).is_err());
        assert!(budget
            .restore(serde_json::json!({"trained_seconds": -1.0}))
            .is_err());
    }
}
