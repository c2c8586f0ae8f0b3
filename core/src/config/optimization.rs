//! Typed optimization configs (`trainer.optimizer_config`), mirroring Model Garden's
//! `official/modeling/optimization/configs`: an optimizer, a learning-rate schedule and an
//! optional warmup, each a "one-of" selected by its `type` key:
//!
//! ```yaml
//! optimizer: {type: adamw, adamw: {weight_decay_rate: 0.01}}
//! learning_rate: {type: polynomial, polynomial: {initial_learning_rate: 1.0e-4, decay_steps: 1000}}
//! warmup: {type: polynomial, polynomial: {warmup_steps: 100}}
//! ```
//!
//! A branch that is absent takes its defaults when selected, so overriding only `type` works.
//! [`OptimizationConfig::normalized`] keeps only the selected branches (for `params.yaml`) and
//! [`OptimizationConfig::validate`] checks value ranges.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The dotted path of this config inside an experiment config, used in error messages.
pub const CONFIG_PATH: &str = "trainer.optimizer_config";

/// The optimizer, learning-rate schedule and warmup of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizationConfig {
    /// Which optimizer to use and its settings.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule (evaluated at the optimizer's iteration count).
    pub learning_rate: LearningRateConfig,
    /// An optional warmup that replaces the first `warmup_steps` steps of the schedule.
    pub warmup: WarmupConfig,
}

impl OptimizationConfig {
    /// Keeps only the selected branch of each one-of (filled with defaults if it was absent)
    /// and drops the others, so a written config shows exactly what is used.
    pub fn normalized(self) -> Self {
        OptimizationConfig {
            optimizer: self.optimizer.normalized(),
            learning_rate: self.learning_rate.normalized(),
            warmup: self.warmup.normalized(),
        }
    }

    /// Checks the value ranges of the selected branches. Errors are [`Error::Config`] naming
    /// the dotted key under `trainer.optimizer_config`, the bad value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        self.learning_rate.validate()?;
        self.warmup.validate()
    }
}

/// Optimizer types (the `optimizer.type` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerType {
    /// Keras SGD with optional (Nesterov) momentum.
    #[default]
    Sgd,
    /// Model Garden's `AdamWeightDecay` (BERT's AdamW).
    Adamw,
}

/// One-of optimizer config: `{type: adamw, adamw: {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// The selected optimizer.
    #[serde(rename = "type")]
    pub kind: OptimizerType,
    /// Settings used when `type: sgd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sgd: Option<SgdConfig>,
    /// Settings used when `type: adamw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adamw: Option<AdamWConfig>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerType::Sgd,
            sgd: Some(SgdConfig::default()),
            adamw: None,
        }
    }
}

impl OptimizerConfig {
    /// The `sgd` branch, or its defaults when absent.
    pub fn sgd(&self) -> SgdConfig {
        self.sgd.clone().unwrap_or_default()
    }

    /// The `adamw` branch, or its defaults when absent.
    pub fn adamw(&self) -> AdamWConfig {
        self.adamw.clone().unwrap_or_default()
    }

    /// Keeps only the selected branch (filled with defaults if absent).
    pub fn normalized(self) -> Self {
        let kind = self.kind;
        OptimizerConfig {
            kind,
            sgd: (kind == OptimizerType::Sgd).then(|| self.sgd()),
            adamw: (kind == OptimizerType::Adamw).then(|| self.adamw()),
        }
    }

    /// Checks the selected branch.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            OptimizerType::Sgd => self.sgd().validate(),
            OptimizerType::Adamw => self.adamw().validate(),
        }
    }
}

/// Keras SGD settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Momentum factor; 0 means plain SGD with no slot.
    pub momentum: f64,
    /// Use Nesterov momentum.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            momentum: 0.0,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    fn validate(&self) -> Result<()> {
        let key = "optimizer.sgd.momentum";
        if !(self.momentum.is_finite() && self.momentum >= 0.0) {
            return Err(bad(key, self.momentum, "a finite number >= 0"));
        }
        Ok(())
    }
}

/// Model Garden's `AdamWeightDecay` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Decay rate of the first moment, in [0, 1).
    pub beta_1: f64,
    /// Decay rate of the second moment, in [0, 1).
    pub beta_2: f64,
    /// Added to the square root of the second moment; > 0.
    pub epsilon: f64,
    /// Decoupled weight-decay rate (`w -= lr * rate * w`); 0 disables decay.
    pub weight_decay_rate: f64,
    /// Regexes (searched anywhere in the variable name); a match forces decay.
    pub include_in_weight_decay: Option<Vec<String>>,
    /// Regexes (searched anywhere in the variable name); a match (and no include match)
    /// exempts the variable from decay.
    pub exclude_from_weight_decay: Option<Vec<String>>,
    /// Gradients are clipped by this global norm before the update; 0 disables clipping.
    pub gradient_clip_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            weight_decay_rate: 0.0,
            include_in_weight_decay: None,
            exclude_from_weight_decay: Some(
                ["LayerNorm", "layer_norm", "bias"]
                    .map(String::from)
                    .to_vec(),
            ),
            gradient_clip_norm: 1.0,
        }
    }
}

impl AdamWConfig {
    fn validate(&self) -> Result<()> {
        for (name, beta) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(bad(&format!("optimizer.adamw.{name}"), beta, "[0, 1)"));
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            let key = "optimizer.adamw.epsilon";
            return Err(bad(key, self.epsilon, "a finite number > 0"));
        }
        if !(self.weight_decay_rate.is_finite() && self.weight_decay_rate >= 0.0) {
            let key = "optimizer.adamw.weight_decay_rate";
            return Err(bad(key, self.weight_decay_rate, "a finite number >= 0"));
        }
        if !(self.gradient_clip_norm.is_finite() && self.gradient_clip_norm >= 0.0) {
            let key = "optimizer.adamw.gradient_clip_norm";
            let allowed = "a finite number >= 0 (0 disables clipping)";
            return Err(bad(key, self.gradient_clip_norm, allowed));
        }
        let lists = [
            ("include_in_weight_decay", &self.include_in_weight_decay),
            ("exclude_from_weight_decay", &self.exclude_from_weight_decay),
        ];
        for (name, list) in lists {
            for (i, pattern) in list.iter().flatten().enumerate() {
                compile_pattern(&format!("optimizer.adamw.{name}[{i}]"), pattern)?;
            }
        }
        Ok(())
    }
}

/// Compiles a weight-decay regex; an invalid one is an [`Error::Config`] naming `key`
/// (relative to `trainer.optimizer_config`).
pub fn compile_pattern(key: &str, pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| {
        Error::Config(format!(
            "{CONFIG_PATH}.{key}: {pattern:?} is not a valid regular expression ({e})"
        ))
    })
}

/// Learning-rate schedule types (the `learning_rate.type` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LearningRateType {
    /// A fixed learning rate.
    #[default]
    Constant,
    /// Keras `PolynomialDecay` with Model Garden's offset.
    Polynomial,
}

/// One-of learning-rate config: `{type: polynomial, polynomial: {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningRateConfig {
    /// The selected schedule.
    #[serde(rename = "type")]
    pub kind: LearningRateType,
    /// Settings used when `type: constant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constant: Option<ConstantLrConfig>,
    /// Settings used when `type: polynomial`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polynomial: Option<PolynomialLrConfig>,
}

impl Default for LearningRateConfig {
    fn default() -> Self {
        LearningRateConfig {
            kind: LearningRateType::Constant,
            constant: Some(ConstantLrConfig::default()),
            polynomial: None,
        }
    }
}

impl LearningRateConfig {
    /// The `constant` branch, or its defaults when absent.
    pub fn constant(&self) -> ConstantLrConfig {
        self.constant.clone().unwrap_or_default()
    }

    /// The `polynomial` branch, or its defaults when absent.
    pub fn polynomial(&self) -> PolynomialLrConfig {
        self.polynomial.clone().unwrap_or_default()
    }

    /// Keeps only the selected branch (filled with defaults if absent).
    pub fn normalized(self) -> Self {
        let kind = self.kind;
        LearningRateConfig {
            kind,
            constant: (kind == LearningRateType::Constant).then(|| self.constant()),
            polynomial: (kind == LearningRateType::Polynomial).then(|| self.polynomial()),
        }
    }

    /// Checks the selected branch.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            LearningRateType::Constant => {
                let lr = self.constant().learning_rate;
                check_lr("learning_rate.constant.learning_rate", lr)
            }
            LearningRateType::Polynomial => self.polynomial().validate(),
        }
    }
}

/// A constant learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstantLrConfig {
    /// The learning rate.
    pub learning_rate: f64,
}

impl Default for ConstantLrConfig {
    fn default() -> Self {
        ConstantLrConfig { learning_rate: 0.1 }
    }
}

/// Polynomial decay: `(initial - end) * (1 - min(s, D) / D)^power + end`, `s = step - offset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolynomialLrConfig {
    /// The learning rate at step `offset`.
    pub initial_learning_rate: f64,
    /// Number of steps `D` over which to decay; > 0.
    pub decay_steps: u64,
    /// The learning rate reached after `decay_steps`.
    pub end_learning_rate: f64,
    /// The exponent of the decay.
    pub power: f64,
    /// Restart the decay every time `decay_steps` is reached (D is scaled by ceil(s / D)).
    pub cycle: bool,
    /// The schedule is evaluated at `step - offset` (not clamped at 0).
    pub offset: i64,
}

impl Default for PolynomialLrConfig {
    fn default() -> Self {
        PolynomialLrConfig {
            initial_learning_rate: 1e-4,
            decay_steps: 1,
            end_learning_rate: 1e-4,
            power: 1.0,
            cycle: false,
            offset: 0,
        }
    }
}

impl PolynomialLrConfig {
    fn validate(&self) -> Result<()> {
        let prefix = "learning_rate.polynomial";
        check_lr(
            &format!("{prefix}.initial_learning_rate"),
            self.initial_learning_rate,
        )?;
        check_lr(
            &format!("{prefix}.end_learning_rate"),
            self.end_learning_rate,
        )?;
        if self.decay_steps == 0 {
            let key = format!("{prefix}.decay_steps");
            return Err(bad(&key, self.decay_steps, "an integer >= 1"));
        }
        check_finite(&format!("{prefix}.power"), self.power)
    }
}

/// Warmup types (the `warmup.type` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupType {
    /// Linear ramp from `warmup_learning_rate` to the schedule's value at `warmup_steps`.
    Linear,
    /// `target * (max(step, 1) / warmup_steps)^power`.
    Polynomial,
}

/// One-of warmup config; `type: null` (the default) means no warmup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupConfig {
    /// The selected warmup, or `None` for none.
    #[serde(rename = "type")]
    pub kind: Option<WarmupType>,
    /// Settings used when `type: linear`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear: Option<LinearWarmupConfig>,
    /// Settings used when `type: polynomial`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polynomial: Option<PolynomialWarmupConfig>,
}

impl WarmupConfig {
    /// The `linear` branch, or its defaults when absent.
    pub fn linear(&self) -> LinearWarmupConfig {
        self.linear.clone().unwrap_or_default()
    }

    /// The `polynomial` branch, or its defaults when absent.
    pub fn polynomial(&self) -> PolynomialWarmupConfig {
        self.polynomial.clone().unwrap_or_default()
    }

    /// Keeps only the selected branch (filled with defaults if absent); none if no warmup.
    pub fn normalized(self) -> Self {
        let kind = self.kind;
        WarmupConfig {
            kind,
            linear: (kind == Some(WarmupType::Linear)).then(|| self.linear()),
            polynomial: (kind == Some(WarmupType::Polynomial)).then(|| self.polynomial()),
        }
    }

    /// Checks the selected branch; a selected warmup needs `warmup_steps`.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            None => Ok(()),
            Some(WarmupType::Linear) => {
                let cfg = self.linear();
                check_lr(
                    "warmup.linear.warmup_learning_rate",
                    cfg.warmup_learning_rate,
                )?;
                check_steps("warmup.linear.warmup_steps", cfg.warmup_steps)
            }
            Some(WarmupType::Polynomial) => {
                let cfg = self.polynomial();
                check_finite("warmup.polynomial.power", cfg.power)?;
                check_steps("warmup.polynomial.warmup_steps", cfg.warmup_steps)
            }
        }
    }
}

/// Linear warmup settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearWarmupConfig {
    /// The learning rate at step 0.
    pub warmup_learning_rate: f64,
    /// Number of warmup steps `W`; required when this warmup is selected.
    pub warmup_steps: Option<u64>,
}

impl Default for LinearWarmupConfig {
    fn default() -> Self {
        LinearWarmupConfig {
            warmup_learning_rate: 0.0,
            warmup_steps: None,
        }
    }
}

/// Polynomial warmup settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolynomialWarmupConfig {
    /// The exponent of the ramp.
    pub power: f64,
    /// Number of warmup steps `W`; required when this warmup is selected (0 = no warmup).
    pub warmup_steps: Option<u64>,
}

impl Default for PolynomialWarmupConfig {
    fn default() -> Self {
        PolynomialWarmupConfig {
            power: 1.0,
            warmup_steps: None,
        }
    }
}

/// An [`Error::Config`] for `key` (relative to `trainer.optimizer_config`).
fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> Error {
    Error::Config(format!(
        "{CONFIG_PATH}.{key}: got {value}, expected {allowed}"
    ))
}

fn check_lr(key: &str, lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(bad(key, lr, "a finite learning rate >= 0"))
    }
}

fn check_finite(key: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(bad(key, value, "a finite number"))
    }
}

fn check_steps(key: &str, steps: Option<u64>) -> Result<()> {
    match steps {
        Some(_) => Ok(()),
        None => Err(Error::Config(format!(
            "{CONFIG_PATH}.{key}: got null, expected an integer >= 0 when this warmup is \
             selected (or set {CONFIG_PATH}.warmup.type to null for no warmup)"
        ))),
    }
}

#[cfg(test)]
mod tests;
