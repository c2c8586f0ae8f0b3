//! Learning-rate schedules and warmups with Model Garden's exact formulas
//! (`official/modeling/optimization/lr_schedule.py`, Keras `PolynomialDecay`).
//!
//! A schedule maps the optimizer's iteration count (the number of updates applied before the
//! current one) to a learning rate. Warmups wrap a schedule `S` and REPLACE its first `W`
//! steps (S is not delayed): at `step >= W` the result is `S(step)`.

use crate::config::optimization::{LearningRateType, OptimizationConfig, WarmupType};

/// A learning rate as a function of the step.
pub trait LearningRateSchedule: Send + Sync {
    /// The learning rate for the update applied when `step` updates have been applied before.
    fn learning_rate(&self, step: u64) -> f64;
}

/// A fixed learning rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantLearningRate {
    /// The learning rate returned at every step.
    pub learning_rate: f64,
}

impl LearningRateSchedule for ConstantLearningRate {
    fn learning_rate(&self, _step: u64) -> f64 {
        self.learning_rate
    }
}

/// Keras `PolynomialDecay` evaluated at `step - offset` (Model Garden's
/// `PolynomialDecayWithOffset`): with `s = step - offset` (may be negative, then the formula
/// extrapolates) and `D = decay_steps`,
/// - no cycle: `s' = min(s, D)`; with cycle: `D' = D * max(ceil(s / D), 1)`, `s' = s`;
/// - `lr = (initial - end) * (1 - s' / D')^power + end`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolynomialDecay {
    /// The learning rate at `step == offset`.
    pub initial_learning_rate: f64,
    /// The decay length `D` in steps (> 0).
    pub decay_steps: u64,
    /// The learning rate reached at `s == D`.
    pub end_learning_rate: f64,
    /// The exponent of the decay.
    pub power: f64,
    /// Restart the decay at every multiple of `D`.
    pub cycle: bool,
    /// Steps subtracted from the step before evaluating the formula.
    pub offset: i64,
}

impl LearningRateSchedule for PolynomialDecay {
    fn learning_rate(&self, step: u64) -> f64 {
        let s = step as f64 - self.offset as f64;
        let d = self.decay_steps as f64;
        let (s, d) = if self.cycle {
            // Keras uses multiplier 1 at s == 0; never let D' drop below D.
            (s, d * (s / d).ceil().max(1.0))
        } else {
            (s.min(d), d)
        };
        let p = s / d;
        (self.initial_learning_rate - self.end_learning_rate) * (1.0 - p).powf(self.power)
            + self.end_learning_rate
    }
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
    let lr = &cfg.learning_rate;
    let base: Box<dyn LearningRateSchedule> = match lr.kind {
        LearningRateType::Constant => Box::new(ConstantLearningRate {
            learning_rate: lr.constant().learning_rate,
        }),
        LearningRateType::Polynomial => {
            let p = lr.polynomial();
            Box::new(PolynomialDecay {
                initial_learning_rate: p.initial_learning_rate,
                decay_steps: p.decay_steps.max(1),
                end_learning_rate: p.end_learning_rate,
                power: p.power,
                cycle: p.cycle,
                offset: p.offset,
            })
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::optimization::{
        LearningRateConfig, LinearWarmupConfig, PolynomialLrConfig, PolynomialWarmupConfig,
        WarmupConfig,
    };

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn constant(lr: f64) -> Box<dyn LearningRateSchedule> {
        Box::new(ConstantLearningRate { learning_rate: lr })
    }

    fn poly(cycle: bool, offset: i64) -> PolynomialDecay {
        PolynomialDecay {
            initial_learning_rate: 0.1,
            decay_steps: 1000,
            end_learning_rate: 0.001,
            power: 1.0,
            cycle,
            offset,
        }
    }

    #[test]
    fn polynomial_decay_matches_model_garden() {
        let s = poly(false, 0);
        close(s.learning_rate(0), 0.1);
        close(s.learning_rate(500), 0.0505);
        close(s.learning_rate(1000), 0.001);
        close(s.learning_rate(5000), 0.001);
    }

    #[test]
    fn polynomial_decay_power_cycle_and_offset() {
        let mut s = poly(false, 0);
        s.power = 2.0;
        close(s.learning_rate(500), 0.099 * 0.25 + 0.001);
        let s = poly(true, 0);
        close(s.learning_rate(0), 0.1);
        close(s.learning_rate(1000), 0.001);
        // D' = 2000 at step 1500: p = 0.75.
        close(s.learning_rate(1500), 0.099 * 0.25 + 0.001);
        let s = poly(false, 100);
        close(s.learning_rate(600), 0.0505);
        // step - offset = -100 extrapolates above the initial rate: p = -0.1.
        close(s.learning_rate(0), 0.099 * 1.1 + 0.001);
        let s = poly(true, 100);
        close(s.learning_rate(0), 0.099 * 1.1 + 0.001);
    }

    #[test]
    fn linear_warmup_matches_model_garden() {
        let s = LinearWarmup {
            warmup_learning_rate: 0.01,
            warmup_steps: 500,
            after_warmup: constant(0.1),
        };
        close(s.learning_rate(0), 0.01);
        close(s.learning_rate(250), 0.055);
        close(s.learning_rate(500), 0.1);
        close(s.learning_rate(900), 0.1);
    }

    #[test]
    fn polynomial_warmup_matches_model_garden() {
        let s = PolynomialWarmup {
            power: 2.0,
            warmup_steps: 500,
            after_warmup: constant(0.1),
        };
        close(s.learning_rate(0), 0.1 * (1.0f64 / 500.0).powi(2));
        close(s.learning_rate(250), 0.025);
        close(s.learning_rate(500), 0.1);
    }

    #[test]
    fn warmup_replaces_first_steps_and_targets_schedule_at_w() {
        let s = LinearWarmup {
            warmup_learning_rate: 0.0,
            warmup_steps: 500,
            after_warmup: Box::new(poly(false, 0)),
        };
        close(s.learning_rate(250), 0.0505 / 2.0);
        close(s.learning_rate(500), 0.0505);
        close(s.learning_rate(750), poly(false, 0).learning_rate(750));
        let s = PolynomialWarmup {
            power: 1.0,
            warmup_steps: 0,
            after_warmup: constant(0.1),
        };
        close(s.learning_rate(0), 0.1);
    }

    #[test]
    fn build_schedule_follows_config() {
        let mut cfg = OptimizationConfig::default();
        close(build_schedule(&cfg).learning_rate(7), 0.1);
        cfg.learning_rate = LearningRateConfig {
            kind: LearningRateType::Polynomial,
            constant: None,
            polynomial: Some(PolynomialLrConfig {
                initial_learning_rate: 0.1,
                decay_steps: 1000,
                end_learning_rate: 0.001,
                ..Default::default()
            }),
        };
        close(build_schedule(&cfg).learning_rate(500), 0.0505);
        cfg.warmup = WarmupConfig {
            kind: Some(WarmupType::Linear),
            linear: Some(LinearWarmupConfig {
                warmup_learning_rate: 0.0,
                warmup_steps: Some(500),
            }),
            polynomial: None,
        };
        close(build_schedule(&cfg).learning_rate(250), 0.0505 / 2.0);
        cfg.warmup = WarmupConfig {
            kind: Some(WarmupType::Polynomial),
            linear: None,
            polynomial: Some(PolynomialWarmupConfig {
                power: 2.0,
                warmup_steps: Some(500),
            }),
        };
        close(build_schedule(&cfg).learning_rate(250), 0.0505 / 4.0);
        close(build_schedule(&cfg).learning_rate(600), 0.1 - 0.099 * 0.6);
    }
}
