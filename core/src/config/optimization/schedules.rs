//! The learning-rate one-of (`learning_rate.type`) and each schedule's settings, with Model
//! Garden's names and defaults. Keys Model Garden leaves without a default (e.g.
//! `initial_learning_rate`) are required when their schedule is selected.

use super::checks::{at_least_one, bad, finite, learning_rate, required, Branch};
use crate::error::Result;

one_of_config! {
    /// One-of learning-rate config: `{type: polynomial, polynomial: {...}}`.
    pub struct LearningRateConfig;
    /// Learning-rate schedule types (the `learning_rate.type` key).
    pub enum LearningRateType;
    key = "learning_rate";
    default = Constant;
    /// A fixed learning rate.
    Constant => constant: ConstantLrConfig,
    /// Piecewise constant values between step boundaries.
    Stepwise => stepwise: StepwiseLrConfig,
    /// Exponential decay, optionally in stairs.
    Exponential => exponential: ExponentialLrConfig,
    /// Keras `PolynomialDecay` with Model Garden's offset.
    Polynomial => polynomial: PolynomialLrConfig,
    /// Cosine decay to `alpha * initial_learning_rate`.
    Cosine => cosine: CosineLrConfig,
    /// `initial * step^power`.
    Power => power: PowerLrConfig,
    /// Power decay with a linear ramp to 0 over the last steps.
    PowerLinear => power_linear: PowerLinearLrConfig,
    /// Power decay after an offset, a fixed rate before it.
    PowerWithOffset => power_with_offset: PowerWithOffsetLrConfig,
    /// Cosine segments between step boundaries.
    StepCosineWithOffset => step_cosine_with_offset: StepCosineLrConfig,
}

defaulted_config! {
    /// A constant learning rate.
    pub struct ConstantLrConfig {
        /// The learning rate.
        pub learning_rate: f64 = 0.1,
    }
}

/// The required `initial_learning_rate` of the schedule at `key`.
fn initial_learning_rate(key: &str, value: Option<f64>) -> Result<()> {
    let key = format!("{key}.initial_learning_rate");
    learning_rate(&key, required(&key, value, "a learning rate")?)
}

impl Branch for ConstantLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        learning_rate(&format!("{key}.learning_rate"), self.learning_rate)
    }
}

defaulted_config! {
    /// Piecewise constant: `values[0]` up to and including `boundaries[0]`, `values[i]` for
    /// `boundaries[i-1] < s <= boundaries[i]`, the last value after the last boundary
    /// (`s = step - offset`).
    pub struct StepwiseLrConfig {
        /// Strictly increasing step boundaries.
        pub boundaries: Vec<i64> = Vec::new(),
        /// One more value than boundaries.
        pub values: Vec<f64> = Vec::new(),
        /// Subtracted from the step first.
        pub offset: i64 = 0,
    }
}

/// Checks that `boundaries` strictly increase and that `values` are learning rates.
fn check_steps_and_values(key: &str, boundaries: &[i64], values: &[f64]) -> Result<()> {
    for (i, pair) in boundaries.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            let allowed = format!(
                "boundaries in strictly increasing order (boundaries[{}] = {} is not above \
                 boundaries[{i}] = {})",
                i + 1,
                pair[1],
                pair[0]
            );
            return Err(bad(
                &format!("{key}.boundaries"),
                format_list(boundaries),
                &allowed,
            ));
        }
    }
    for (i, value) in values.iter().enumerate() {
        learning_rate(&format!("{key}.values[{i}]"), *value)?;
    }
    Ok(())
}

fn format_list<T: std::fmt::Debug>(list: &[T]) -> String {
    format!("{list:?}")
}

impl Branch for StepwiseLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        if self.values.len() != self.boundaries.len() + 1 {
            let allowed = format!(
                "one more value than boundaries ({} boundaries, so {} values)",
                self.boundaries.len(),
                self.boundaries.len() + 1
            );
            return Err(bad(
                &format!("{key}.values"),
                format_list(&self.values),
                &allowed,
            ));
        }
        check_steps_and_values(key, &self.boundaries, &self.values)
    }
}

defaulted_config! {
    /// Exponential decay: `initial * rate^(s / decay_steps)` (the exponent floored when
    /// `staircase`), `s = step - offset`.
    pub struct ExponentialLrConfig {
        /// The learning rate at `s = 0` (required).
        pub initial_learning_rate: Option<f64> = None,
        /// Steps per factor of `decay_rate` (required, >= 1).
        pub decay_steps: Option<u64> = None,
        /// The factor per `decay_steps` (required, > 0).
        pub decay_rate: Option<f64> = None,
        /// Decay in whole stairs of `decay_steps`.
        pub staircase: bool = false,
        /// Subtracted from the step first.
        pub offset: i64 = 0,
    }
}

impl Branch for ExponentialLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        initial_learning_rate(key, self.initial_learning_rate)?;
        let steps = format!("{key}.decay_steps");
        at_least_one(
            &steps,
            required(&steps, self.decay_steps, "an integer >= 1")?,
        )?;
        let rate_key = format!("{key}.decay_rate");
        let rate = required(&rate_key, self.decay_rate, "a number > 0")?;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(bad(&rate_key, rate, "a finite number > 0"));
        }
        Ok(())
    }
}

defaulted_config! {
    /// Polynomial decay: `(initial - end) * (1 - min(s, D) / D)^power + end`,
    /// `s = step - offset`.
    pub struct PolynomialLrConfig {
        /// The learning rate at step `offset`.
        pub initial_learning_rate: f64 = 1e-4,
        /// Number of steps `D` over which to decay; > 0.
        pub decay_steps: u64 = 1,
        /// The learning rate reached after `decay_steps`.
        pub end_learning_rate: f64 = 1e-4,
        /// The exponent of the decay.
        pub power: f64 = 1.0,
        /// Restart the decay every time `decay_steps` is reached (D is scaled by ceil(s / D)).
        pub cycle: bool = false,
        /// The schedule is evaluated at `step - offset` (not clamped at 0).
        pub offset: i64 = 0,
    }
}

impl Branch for PolynomialLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        learning_rate(
            &format!("{key}.initial_learning_rate"),
            self.initial_learning_rate,
        )?;
        learning_rate(&format!("{key}.end_learning_rate"), self.end_learning_rate)?;
        at_least_one(&format!("{key}.decay_steps"), self.decay_steps)?;
        finite(&format!("{key}.power"), self.power)
    }
}

defaulted_config! {
    /// Cosine decay: `initial * ((1 - alpha) * (1 + cos(pi * min(s, D) / D)) / 2 + alpha)`,
    /// `s = step - offset`.
    pub struct CosineLrConfig {
        /// The learning rate at `s = 0` (required).
        pub initial_learning_rate: Option<f64> = None,
        /// The decay length `D` (required, >= 1).
        pub decay_steps: Option<u64> = None,
        /// The final learning rate as a fraction of the initial one.
        pub alpha: f64 = 0.0,
        /// Subtracted from the step first.
        pub offset: i64 = 0,
    }
}

impl Branch for CosineLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        initial_learning_rate(key, self.initial_learning_rate)?;
        let steps = format!("{key}.decay_steps");
        at_least_one(
            &steps,
            required(&steps, self.decay_steps, "an integer >= 1")?,
        )?;
        learning_rate(&format!("{key}.alpha"), self.alpha)
    }
}

defaulted_config! {
    /// Power decay: `initial * max(step, 1)^power`.
    pub struct PowerLrConfig {
        /// The learning rate at steps 0 and 1 (required).
        pub initial_learning_rate: Option<f64> = None,
        /// The exponent.
        pub power: f64 = -0.5,
    }
}

impl Branch for PowerLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        initial_learning_rate(key, self.initial_learning_rate)?;
        finite(&format!("{key}.power"), self.power)
    }
}

defaulted_config! {
    /// Power decay times a linear ramp to 0 over the last `linear_decay_fraction` of
    /// `total_decay_steps`: `initial * max(s, 1)^power * min(1, (T - s) / (T * f))`, at least
    /// 0, `s = step - offset`.
    pub struct PowerLinearLrConfig {
        /// The learning rate at steps 0 and 1 (required).
        pub initial_learning_rate: Option<f64> = None,
        /// The step `T` where the rate reaches 0 (required).
        pub total_decay_steps: Option<u64> = None,
        /// The exponent.
        pub power: f64 = -0.5,
        /// The fraction `f` of `T` over which the linear ramp runs (0: no ramp).
        pub linear_decay_fraction: f64 = 0.1,
        /// Subtracted from the step first.
        pub offset: i64 = 0,
    }
}

impl Branch for PowerLinearLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        initial_learning_rate(key, self.initial_learning_rate)?;
        let total = format!("{key}.total_decay_steps");
        required(&total, self.total_decay_steps, "an integer >= 0")?;
        finite(&format!("{key}.power"), self.power)?;
        let fraction_key = format!("{key}.linear_decay_fraction");
        if !(0.0..=1.0).contains(&self.linear_decay_fraction) {
            return Err(bad(
                &fraction_key,
                self.linear_decay_fraction,
                "a number in [0, 1]",
            ));
        }
        Ok(())
    }
}

defaulted_config! {
    /// `pre_offset_learning_rate` up to step `offset`, then
    /// `min(initial * max(step - offset, 1)^power, pre_offset_learning_rate)`.
    pub struct PowerWithOffsetLrConfig {
        /// The factor of the power decay (required).
        pub initial_learning_rate: Option<f64> = None,
        /// The exponent.
        pub power: f64 = -0.5,
        /// The step where the power decay starts.
        pub offset: i64 = 0,
        /// The rate before the offset, and an upper bound after it.
        pub pre_offset_learning_rate: f64 = 1.0e6,
    }
}

impl Branch for PowerWithOffsetLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        initial_learning_rate(key, self.initial_learning_rate)?;
        finite(&format!("{key}.power"), self.power)?;
        learning_rate(
            &format!("{key}.pre_offset_learning_rate"),
            self.pre_offset_learning_rate,
        )
    }
}

defaulted_config! {
    /// Cosine segments: between `boundaries[i]` and `boundaries[i+1]` the rate falls along a
    /// half cosine from `values[i]` to `values[i+1]`; from the last boundary on it stays at the
    /// last value (Model Garden gives NaN there). `s = step - offset`.
    pub struct StepCosineLrConfig {
        /// Strictly increasing segment starts; the first must be 0.
        pub boundaries: Vec<i64> = Vec::new(),
        /// The rate at each boundary (as many as boundaries).
        pub values: Vec<f64> = Vec::new(),
        /// Subtracted from the step first.
        pub offset: i64 = 0,
    }
}

impl Branch for StepCosineLrConfig {
    fn validate(&self, key: &str) -> Result<()> {
        let boundaries_key = format!("{key}.boundaries");
        if self.boundaries.is_empty() {
            return Err(bad(
                &boundaries_key,
                "[]",
                "at least one boundary, the first 0",
            ));
        }
        if self.values.len() != self.boundaries.len() {
            let allowed = format!(
                "as many values as boundaries ({}; Model Garden's docs say one more, but its \
                 code needs equal lengths)",
                self.boundaries.len()
            );
            return Err(bad(
                &format!("{key}.values"),
                format_list(&self.values),
                &allowed,
            ));
        }
        if self.boundaries[0] != 0 {
            let allowed = "a first boundary of 0 (shift the schedule with `offset` instead)";
            return Err(bad(&boundaries_key, format_list(&self.boundaries), allowed));
        }
        check_steps_and_values(key, &self.boundaries, &self.values)
    }
}
