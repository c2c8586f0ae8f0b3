//! Finding where a schedule has decayed to zero before training ends: the steps after it
//! apply no update, which is nearly always a mistake (e.g. `train_steps` raised past a
//! schedule's `decay_steps`).

use super::LearningRateSchedule;

/// Points sampled over the run to find where the learning rate reaches zero for good.
const SAMPLES: u64 = 1000;

/// The first step from which `schedule` gives a learning rate of 0 through the last of
/// `train_steps` steps, or `None` when the last step still trains. Sampled at 1000 points, then
/// narrowed between the last non-zero sample and the first zero one (a schedule that
/// returns to zero and rises again within one sample spacing may be missed).
pub fn zero_learning_rate_from(
    schedule: &dyn LearningRateSchedule,
    train_steps: u64,
) -> Option<u64> {
    let last = train_steps.checked_sub(1)?;
    if schedule.learning_rate(last) != 0.0 {
        return None;
    }
    let spacing = (train_steps / SAMPLES).max(1);
    // Walk back over the samples while they stay at zero.
    let mut probe = last;
    while probe >= spacing && schedule.learning_rate(probe - spacing) == 0.0 {
        probe -= spacing;
    }
    // The first zero step lies in (probe - spacing, probe]: narrow it down.
    let mut low = probe.saturating_sub(spacing);
    if schedule.learning_rate(low) == 0.0 {
        return Some(low);
    }
    let mut high = probe;
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if schedule.learning_rate(middle) == 0.0 {
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 until `end`, then 0.
    struct StepDown {
        end: u64,
    }

    impl LearningRateSchedule for StepDown {
        fn learning_rate(&self, step: u64) -> f64 {
            if step < self.end {
                1.0
            } else {
                0.0
            }
        }
    }

    #[test]
    fn finds_the_first_step_of_a_zero_tail() {
        for (end, train_steps) in [
            (400, 4000),
            (1, 4000),
            (3999, 4000),
            (7, 10),
            (123_457, 2_000_000),
        ] {
            let found = zero_learning_rate_from(&StepDown { end }, train_steps);
            assert_eq!(found, Some(end), "end {end}, train_steps {train_steps}");
        }
        assert_eq!(zero_learning_rate_from(&StepDown { end: 0 }, 50), Some(0));
    }

    #[test]
    fn a_schedule_that_trains_to_the_end_has_none() {
        assert_eq!(zero_learning_rate_from(&StepDown { end: 4000 }, 4000), None);
        assert_eq!(zero_learning_rate_from(&StepDown { end: 10 }, 0), None);
    }
}
