//! The decay schedules: a validated learning-rate config is its own schedule. Formulas are
//! Model Garden's (`lr_schedule.py` and the Keras schedules it wraps); `s = step − offset`
//! is not clamped at 0, so polynomial and cosine extrapolate before the offset as there.

use std::f64::consts::PI;

use super::LearningRateSchedule;
use crate::config::optimization::{
    ConstantLrConfig, CosineLrConfig, ExponentialLrConfig, PolynomialLrConfig, PowerLinearLrConfig,
    PowerLrConfig, PowerWithOffsetLrConfig, StepCosineLrConfig, StepwiseLrConfig,
};

/// `step − offset` as a float.
fn shifted(step: u64, offset: i64) -> f64 {
    step as f64 - offset as f64
}

/// A required value of a validated config (validation guarantees it is set).
fn set<T: Default>(value: Option<T>) -> T {
    value.unwrap_or_default()
}

impl LearningRateSchedule for ConstantLrConfig {
    fn learning_rate(&self, _step: u64) -> f64 {
        self.learning_rate
    }
}

impl LearningRateSchedule for StepwiseLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let s = shifted(step, self.offset);
        // The first boundary at or above s; a boundary step keeps the earlier value.
        let index = self
            .boundaries
            .iter()
            .take_while(|&&b| s > b as f64)
            .count();
        self.values[index]
    }
}

impl LearningRateSchedule for ExponentialLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let mut exponent = shifted(step, self.offset) / set(self.decay_steps) as f64;
        if self.staircase {
            exponent = exponent.floor();
        }
        set(self.initial_learning_rate) * set(self.decay_rate).powf(exponent)
    }
}

/// Keras `PolynomialDecay` at `s`: no cycle: `s' = min(s, D)`; with cycle:
/// `D' = D·max(ceil(s/D), 1)`; `(initial − end)·(1 − s'/D')^power + end`.
impl LearningRateSchedule for PolynomialLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let s = shifted(step, self.offset);
        let d = self.decay_steps as f64;
        let (s, d) = if self.cycle {
            (s, d * (s / d).ceil().max(1.0))
        } else {
            (s.min(d), d)
        };
        (self.initial_learning_rate - self.end_learning_rate) * (1.0 - s / d).powf(self.power)
            + self.end_learning_rate
    }
}

impl LearningRateSchedule for CosineLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let d = set(self.decay_steps) as f64;
        let s = shifted(step, self.offset).min(d);
        let cosine = 0.5 * (1.0 + (PI * s / d).cos());
        set(self.initial_learning_rate) * ((1.0 - self.alpha) * cosine + self.alpha)
    }
}

impl LearningRateSchedule for PowerLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        set(self.initial_learning_rate) * (step.max(1) as f64).powf(self.power)
    }
}

impl LearningRateSchedule for PowerLinearLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let s = shifted(step, self.offset);
        let mut lr = set(self.initial_learning_rate) * s.max(1.0).powf(self.power);
        let total = set(self.total_decay_steps) as f64;
        let ramp = total * self.linear_decay_fraction;
        if ramp > 0.0 {
            lr *= ((total - s) / ramp).min(1.0);
        }
        lr.max(0.0)
    }
}

impl LearningRateSchedule for PowerWithOffsetLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let s = shifted(step, self.offset);
        let lr = if s > 0.0 {
            set(self.initial_learning_rate) * s.max(1.0).powf(self.power)
        } else {
            self.pre_offset_learning_rate
        };
        lr.min(self.pre_offset_learning_rate)
    }
}

impl LearningRateSchedule for StepCosineLrConfig {
    fn learning_rate(&self, step: u64) -> f64 {
        let s = shifted(step, self.offset);
        let last = self.boundaries.len() - 1;
        // Segment 0 also covers steps before the first boundary, as in Model Garden.
        let segment = self.boundaries[1..]
            .iter()
            .take_while(|&&b| s >= b as f64)
            .count();
        if segment == last {
            return self.values[last];
        }
        let (start, end) = (
            self.boundaries[segment] as f64,
            self.boundaries[segment + 1] as f64,
        );
        let (from, to) = (self.values[segment], self.values[segment + 1]);
        let progress = (s - start) / (end - start);
        to + 0.5 * (from - to) * (1.0 + (PI * progress).cos())
    }
}
