//! Step-weighted means of train-loop logs between two written summaries.

use crate::logs::Logs;

/// Keys whose summary is the latest value rather than a mean: the learning rate logged at
/// step N is the schedule at N.
const LATEST_VALUE_KEYS: &[&str] = &["learning_rate"];

/// Accumulates loop logs, each weighted by its number of steps.
#[derive(Debug, Default)]
pub struct LoopMeans {
    sums: Logs,
    latest: Logs,
    steps: u64,
}

impl LoopMeans {
    /// Adds the logs of a loop of `steps` steps.
    pub fn add(&mut self, logs: &Logs, steps: u64) {
        for (name, value) in logs {
            if LATEST_VALUE_KEYS.contains(&name.as_str()) {
                self.latest.insert(name.clone(), *value);
            } else {
                *self.sums.entry(name.clone()).or_default() += value * steps as f64;
            }
        }
        self.steps += steps;
    }

    /// The means since the last call (latest values for [`LATEST_VALUE_KEYS`]), and a reset.
    pub fn take(&mut self) -> Logs {
        let steps = self.steps.max(1) as f64;
        let mut means: Logs = std::mem::take(&mut self.sums)
            .into_iter()
            .map(|(name, sum)| (name, sum / steps))
            .collect();
        means.append(&mut self.latest);
        self.steps = 0;
        means
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_weight_loops_by_steps_and_keep_the_latest_learning_rate() {
        let mut means = LoopMeans::default();
        means.add(
            &Logs::from([("training_loss".into(), 4.0), ("learning_rate".into(), 0.1)]),
            3,
        );
        means.add(
            &Logs::from([("training_loss".into(), 2.0), ("learning_rate".into(), 0.2)]),
            1,
        );
        let logs = means.take();
        assert_eq!(logs["training_loss"], 3.5);
        assert_eq!(logs["learning_rate"], 0.2);
        assert!(means.take().is_empty());
    }
}
