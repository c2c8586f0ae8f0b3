//! An evaluation cadence in time (`trainer.validation_interval: "10 minutes"`): after each
//! train loop it adds the loop's training time, and once the time since the last requested
//! evaluation reaches the interval it asks for one ([`Directive::Evaluate`]) at that loop
//! end. Evaluation and checkpointing do not count. The time since the last evaluation is the
//! action's state, saved in every checkpoint, so a resumed run keeps the cadence. Time is not
//! reproducible: two runs evaluate at different steps.

use std::time::Duration;

use crate::action::{Action, ActionContext, Directive};
use crate::error::Result;
use crate::training_time;

/// Asks for an evaluation after every `interval` of training time.
#[derive(Debug)]
pub struct EvalTimer {
    interval: Duration,
    since: Duration,
}

impl EvalTimer {
    /// A timer of `interval`, starting now.
    pub fn new(interval: Duration) -> Self {
        EvalTimer {
            interval,
            since: Duration::ZERO,
        }
    }
}

impl Action for EvalTimer {
    fn name(&self) -> &str {
        "validation_interval"
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        self.since += context.train_time;
        if self.since < self.interval {
            return Ok(Directive::Continue);
        }
        self.since = Duration::ZERO;
        Ok(Directive::Evaluate)
    }

    fn state(&self) -> Option<serde_json::Value> {
        training_time::to_state(self.since)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.since = training_time::from_state(self.name(), state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_time::run_after_loop;

    #[test]
    fn asks_for_an_evaluation_each_time_the_interval_of_training_has_passed() {
        let mut timer = EvalTimer::new(Duration::from_secs(10));
        let asked: Vec<bool> = [4, 4, 4, 9, 1, 20]
            .into_iter()
            .map(|s| run_after_loop(&mut timer, 0, s) == Directive::Evaluate)
            .collect();
        assert_eq!(asked, [false, false, true, false, true, true]);
        run_after_loop(&mut timer, 0, 6);
        let mut resumed = EvalTimer::new(Duration::from_secs(10));
        resumed.restore(timer.state().unwrap()).unwrap();
        assert_eq!(run_after_loop(&mut resumed, 0, 4), Directive::Evaluate);
    }
}
