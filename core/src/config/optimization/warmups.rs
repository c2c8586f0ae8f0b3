//! The optional warmup (`warmup.type`: linear, polynomial or null) that replaces the first
//! `warmup_steps` steps of the schedule.

use super::checks::{finite, learning_rate, required, Branch};
use crate::error::Result;

one_of_config! {
    /// One-of warmup config; `type: null` (the default) means no warmup.
    pub struct WarmupConfig;
    /// Warmup types (the `warmup.type` key).
    pub enum WarmupType;
    key = "warmup";
    default = none;
    /// Linear ramp from `warmup_learning_rate` to the schedule's value at `warmup_steps`.
    Linear => linear: LinearWarmupConfig,
    /// `target * (max(step, 1) / warmup_steps)^power`.
    Polynomial => polynomial: PolynomialWarmupConfig,
}

/// What a selected warmup's `warmup_steps` must be.
const WARMUP_STEPS_NEEDED: &str = "an integer >= 0 (or set warmup.type to null for no warmup)";

defaulted_config! {
    /// Linear warmup settings.
    pub struct LinearWarmupConfig {
        /// The learning rate at step 0.
        pub warmup_learning_rate: f64 = 0.0,
        /// Number of warmup steps `W`; required when this warmup is selected.
        pub warmup_steps: Option<u64> = None,
    }
}

defaulted_config! {
    /// Polynomial warmup settings.
    pub struct PolynomialWarmupConfig {
        /// The exponent of the ramp.
        pub power: f64 = 1.0,
        /// Number of warmup steps `W`; required when this warmup is selected (0 = no warmup).
        pub warmup_steps: Option<u64> = None,
    }
}

impl Branch for LinearWarmupConfig {
    fn validate(&self, key: &str) -> Result<()> {
        learning_rate(
            &format!("{key}.warmup_learning_rate"),
            self.warmup_learning_rate,
        )?;
        let steps_key = format!("{key}.warmup_steps");
        required(&steps_key, self.warmup_steps, WARMUP_STEPS_NEEDED).map(drop)
    }
}

impl Branch for PolynomialWarmupConfig {
    fn validate(&self, key: &str) -> Result<()> {
        finite(&format!("{key}.power"), self.power)?;
        let steps_key = format!("{key}.warmup_steps");
        required(&steps_key, self.warmup_steps, WARMUP_STEPS_NEEDED).map(drop)
    }
}
