//! Learning-rate schedules and warmups with Model Garden's exact formulas
//! (`official/modeling/optimization/lr_schedule.py`, Keras `PolynomialDecay`).
//!
//! A schedule maps the optimizer's iteration count (the number of updates applied before the
//! current one) to a learning rate. Warmups wrap a schedule `S` and REPLACE its first `W`
//! steps (S is not delayed): at `step >= W` the result is `S(step)`.

mod decays;
mod idle_tail;

pub use idle_tail::zero_learning_rate_from;

use crate::config::optimization::{
    LearningRateConfig, LearningRateType, OptimizationConfig, WarmupType,
};

/// A learning rate as a function of the step.
pub trait LearningRateSchedule: Send + Sync {
    /// The learning rate for the update applied when `step` updates have been applied before.
    fn learning_rate(&self, step: u64) -> f64;
}

/// Linear warmup: for `step < W`, `w0 + step / W * (S(W) - w0)`; afterwards `S(step)`.
pub struct LinearWarmup {
    /// The learning rate at step 0.
    pub warmup_learning_rate: f64,
    /// The number of warmup steps `W`.
    pub warmup_steps: u64,
    /// The schedule `S` used after warmup and evaluated at `W` for the warmup's target.
    pub after_warmup: Box<dyn LearningRateSchedule>,
}

impl LearningRateSchedule for LinearWarmup {
    fn learning_rate(&self, step: u64) -> f64 {
        if step >= self.warmup_steps {
            return self.after_warmup.learning_rate(step);
        }
        let target = self.after_warmup.learning_rate(self.warmup_steps);
        let w0 = self.warmup_learning_rate;
        w0 + step as f64 / self.warmup_steps as f64 * (target - w0)
    }
}

/// Polynomial warmup: for `step < W`, `S(W) * (max(step, 1) / W)^power`; afterwards
/// `S(step)`. `W == 0` means no warmup.
pub struct PolynomialWarmup {
    /// The exponent of the ramp.
    pub power: f64,
    /// The number of warmup steps `W`.
    pub warmup_steps: u64,
    /// The schedule `S` used after warmup and evaluated at `W` for the warmup's target.
    pub after_warmup: Box<dyn LearningRateSchedule>,
}

impl LearningRateSchedule for PolynomialWarmup {
    fn learning_rate(&self, step: u64) -> f64 {
        if step >= self.warmup_steps {
            return self.after_warmup.learning_rate(step);
        }
        let target = self.after_warmup.learning_rate(self.warmup_steps);
        let done = step.max(1) as f64 / self.warmup_steps as f64;
        target * done.powf(self.power)
    }
}

/// Builds the schedule of `cfg.learning_rate`, wrapped in `cfg.warmup` if one is selected.
/// Expects a validated config; a selected warmup without `warmup_steps` is treated as no warmup.
pub fn build_schedule(cfg: &OptimizationConfig) -> Box<dyn LearningRateSchedule> {
    let base = base_schedule(&cfg.learning_rate);
    let warmup = &cfg.warmup;
    match warmup.kind {
        None => base,
        Some(WarmupType::Linear) => {
            let w = warmup.linear();
            match w.warmup_steps {
                Some(warmup_steps) => Box::new(LinearWarmup {
                    warmup_learning_rate: w.warmup_learning_rate,
                    warmup_steps,
                    after_warmup: base,
                }),
                None => base,
            }
        }
        Some(WarmupType::Polynomial) => {
            let w = warmup.polynomial();
            match w.warmup_steps {
                Some(warmup_steps) => Box::new(PolynomialWarmup {
                    power: w.power,
                    warmup_steps,
                    after_warmup: base,
                }),
                None => base,
            }
        }
    }
}

/// The schedule selected by `cfg` (a validated config is its own schedule).
fn base_schedule(cfg: &LearningRateConfig) -> Box<dyn LearningRateSchedule> {
    match cfg.kind {
        LearningRateType::Constant => Box::new(cfg.constant()),
        LearningRateType::Stepwise => Box::new(cfg.stepwise()),
        LearningRateType::Exponential => Box::new(cfg.exponential()),
        LearningRateType::Polynomial => Box::new(cfg.polynomial()),
        LearningRateType::Cosine => Box::new(cfg.cosine()),
        LearningRateType::Power => Box::new(cfg.power()),
        LearningRateType::PowerLinear => Box::new(cfg.power_linear()),
        LearningRateType::PowerWithOffset => Box::new(cfg.power_with_offset()),
        LearningRateType::StepCosineWithOffset => Box::new(cfg.step_cosine_with_offset()),
    }
}

#[cfg(test)]
mod tests;
