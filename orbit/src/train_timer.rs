//! Cadences in time (`trainer.validation_interval: "10 minutes"`, `summary_interval: "30s"`,
//! `checkpoint_interval: "1h"`): after each train loop a [`TrainTimer`] adds the loop's
//! training time, and once the time since its last request reaches the interval it asks for
//! an evaluation, a summary or a checkpoint at that loop end ([`Directive::Evaluate`],
//! [`Directive::Summarize`], [`Directive::Checkpoint`]). Evaluation and checkpointing do not
//! count. The time since the last request is the action's state, saved in every checkpoint,
//! so a resumed run keeps the cadence. Time is not reproducible: two runs act at different
//! steps.

use std::time::Duration;

use crate::action::{Action, ActionContext, Directive};
use crate::error::Result;
use crate::training_time;

/// Asks for `request` after every `interval` of training time.
#[derive(Debug)]
pub struct TrainTimer {
    name: &'static str,
    request: Directive,
    interval: Duration,
    since: Duration,
}

impl TrainTimer {
    /// Evaluations every `interval` (the action `validation_interval`).
    pub fn evaluations(interval: Duration) -> Self {
        Self::new("validation_interval", Directive::Evaluate, interval)
    }

    /// Train summaries every `interval` (the action `summary_interval`).
    pub fn summaries(interval: Duration) -> Self {
        Self::new("summary_interval", Directive::Summarize, interval)
    }

    /// Checkpoints every `interval` (the action `checkpoint_interval`).
    pub fn checkpoints(interval: Duration) -> Self {
        Self::new("checkpoint_interval", Directive::Checkpoint, interval)
    }

    fn new(name: &'static str, request: Directive, interval: Duration) -> Self {
        TrainTimer {
            name,
            request,
            interval,
            since: Duration::ZERO,
        }
    }
}

impl Action for TrainTimer {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        self.since += context.train_time;
        if self.since < self.interval {
            return Ok(Directive::Continue);
        }
        self.since = Duration::ZERO;
        Ok(self.request.clone())
    }

    fn state(&self) -> Option<serde_json::Value> {
        training_time::to_state(self.since)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.since = training_time::from_state(self.name, state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_time::run_after_loop;

    #[test]
    fn asks_each_time_the_interval_of_training_has_passed() {
        for (mut timer, request) in [
            (
                TrainTimer::evaluations(Duration::from_secs(10)),
                Directive::Evaluate,
            ),
            (
                TrainTimer::summaries(Duration::from_secs(10)),
                Directive::Summarize,
            ),
            (
                TrainTimer::checkpoints(Duration::from_secs(10)),
                Directive::Checkpoint,
            ),
        ] {
            let asked: Vec<bool> = [4, 4, 4, 9, 1, 20]
                .into_iter()
                .map(|s| run_after_loop(&mut timer, 0, s) == request)
                .collect();
            assert_eq!(asked, [false, false, true, false, true, true]);
            run_after_loop(&mut timer, 0, 6);
            let mut resumed = TrainTimer::new(timer.name, request.clone(), timer.interval);
            resumed.restore(timer.state().unwrap()).unwrap();
            assert_eq!(run_after_loop(&mut resumed, 0, 4), request);
        }
    }
}
