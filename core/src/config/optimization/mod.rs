//! Typed optimization configs (`trainer.optimizer_config`), mirroring Model Garden's
//! `official/modeling/optimization/configs`: an optimizer, a learning-rate schedule and an
//! optional warmup, each a "one-of" selected by its `type` key, and an optional moving
//! average of the weights:
//!
//! ```yaml
//! optimizer: {type: adamw, adamw: {weight_decay_rate: 0.01}}
//! learning_rate: {type: polynomial, polynomial: {initial_learning_rate: 1.0e-4, decay_steps: 1000}}
//! warmup: {type: polynomial, polynomial: {warmup_steps: 100}}
//! ema: {average_decay: 0.99}
//! ```
//!
//! A branch that is absent takes its defaults when selected, so overriding only `type` works.
//! [`OptimizationConfig::normalized`] keeps only the selected branches (for `params.yaml`) and
//! [`OptimizationConfig::validate`] checks value ranges.

mod checks;
mod optimizers;
mod schedules;
mod warmups;

use crate::error::Result;

pub use checks::{compile_pattern, compile_patterns, Branch};
pub use optimizers::{
    AdagradConfig, AdamConfig, AdamWConfig, GradientClipping, HasClipping, LambConfig, LarsConfig,
    OptimizerConfig, OptimizerType, RmspropConfig, SgdConfig,
};
pub use schedules::{
    ConstantLrConfig, CosineLrConfig, ExponentialLrConfig, LearningRateConfig, LearningRateType,
    PolynomialLrConfig, PowerLinearLrConfig, PowerLrConfig, PowerWithOffsetLrConfig,
    StepCosineLrConfig, StepwiseLrConfig,
};
pub use warmups::{LinearWarmupConfig, PolynomialWarmupConfig, WarmupConfig, WarmupType};

/// The dotted path of this config inside an experiment config, used in error messages.
pub const CONFIG_PATH: &str = "trainer.optimizer_config";

defaulted_config! {
    /// The optimizer, learning-rate schedule, warmup and weight averaging of a training run.
    pub struct OptimizationConfig {
        /// Which optimizer to use and its settings.
        pub optimizer: OptimizerConfig = OptimizerConfig::default(),
        /// An exponential moving average of the weights, used for evaluation (null: none).
        pub ema: Option<EmaConfig> = None,
        /// The learning-rate schedule (evaluated at the optimizer's iteration count).
        pub learning_rate: LearningRateConfig = LearningRateConfig::default(),
        /// An optional warmup that replaces the first `warmup_steps` steps of the schedule.
        pub warmup: WarmupConfig = WarmupConfig::default(),
    }
}

impl OptimizationConfig {
    /// Keeps only the selected branch of each one-of (filled with defaults if it was absent)
    /// and drops the others, so a written config shows exactly what is used.
    pub fn normalized(self) -> Self {
        OptimizationConfig {
            optimizer: self.optimizer.normalized(),
            ema: self.ema,
            learning_rate: self.learning_rate.normalized(),
            warmup: self.warmup.normalized(),
        }
    }

    /// Checks the value ranges of the selected branches. Errors are `Error::Config` naming
    /// the dotted key under `trainer.optimizer_config`, the bad value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        if let Some(ema) = &self.ema {
            ema.validate("ema")?;
        }
        self.learning_rate.validate()?;
        self.warmup.validate()
    }
}

defaulted_config! {
    /// Model Garden's `EMAConfig`: after every update, `average -= (1 - decay) * (average -
    /// weight)`, with `decay = 0` before `start_step` and, when `dynamic_decay`,
    /// `min(average_decay, (1 + n) / (10 + n))` where `n = iterations - start_step`. Averages
    /// start at zero. Evaluation and best-checkpoint export use the averaged weights.
    pub struct EmaConfig {
        /// The decay of the average (the longest memory).
        pub average_decay: f64 = 0.99,
        /// Updates before this optimizer iteration copy the weights (decay 0).
        pub start_step: u64 = 0,
        /// Ramp the decay up as `(1 + n) / (10 + n)` while that is below `average_decay`.
        pub dynamic_decay: bool = true,
        /// Average only trainable variables (every Grove model variable is trainable, so
        /// only `true` is accepted).
        pub trainable_weights_only: bool = true,
    }
}

impl Branch for EmaConfig {
    fn validate(&self, key: &str) -> Result<()> {
        if !(0.0..=1.0).contains(&self.average_decay) {
            let allowed = "a number in [0, 1]";
            return Err(checks::bad(
                &format!("{key}.average_decay"),
                self.average_decay,
                allowed,
            ));
        }
        if !self.trainable_weights_only {
            let allowed = "true (Grove's models hold only trainable variables, so averaging \
                           non-trainable ones is not supported)";
            return Err(checks::bad(
                &format!("{key}.trainable_weights_only"),
                false,
                allowed,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
