//! The optimizer one-of (`optimizer.type`) and each optimizer's settings, with Model
//! Garden's names and defaults (Keras conventions: see docs/optimization.md).

use super::checks::{compile_patterns, non_negative, positive, unit_interval, Branch};
use crate::error::{Error, Result};

/// Keras' gradient clipping keys, common to every optimizer config. Applied before the
/// update in Keras' order: per-variable `clipnorm`, then `global_clipnorm`, then `clipvalue`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GradientClipping {
    /// Per-variable L2 norm limit.
    pub clipnorm: Option<f64>,
    /// Elementwise absolute limit.
    pub clipvalue: Option<f64>,
    /// Limit of the L2 norm over all gradients together.
    pub global_clipnorm: Option<f64>,
}

impl GradientClipping {
    fn validate(&self, key: &str) -> Result<()> {
        let limits = [
            ("clipnorm", self.clipnorm),
            ("clipvalue", self.clipvalue),
            ("global_clipnorm", self.global_clipnorm),
        ];
        for (name, limit) in limits {
            if let Some(limit) = limit {
                positive(&format!("{key}.{name}"), limit)?;
            }
        }
        if self.clipnorm.is_some() && self.global_clipnorm.is_some() {
            return Err(Error::Config(format!(
                "{}.{key}: `clipnorm` and `global_clipnorm` are both set; Keras accepts only \
                 one of them: set the other to null",
                super::CONFIG_PATH
            )));
        }
        Ok(())
    }
}

/// An optimizer config carrying Keras' clipping keys.
pub trait HasClipping {
    /// The clipping this config asks for.
    fn clipping(&self) -> GradientClipping;
}

one_of_config! {
    /// One-of optimizer config: `{type: adamw, adamw: {...}}`.
    pub struct OptimizerConfig;
    /// Optimizer types (the `optimizer.type` key).
    pub enum OptimizerType;
    key = "optimizer";
    default = Sgd;
    /// Keras SGD with optional (Nesterov) momentum.
    Sgd => sgd: SgdConfig,
    /// Keras Adam (optionally AMSGrad).
    Adam => adam: AdamConfig,
    /// Model Garden's `AdamWeightDecay` (BERT's AdamW).
    Adamw => adamw: AdamWConfig,
    /// LAMB: Adam with a per-layer trust ratio.
    Lamb => lamb: LambConfig,
    /// LARS: momentum SGD with a per-layer trust ratio.
    Lars => lars: LarsConfig,
    /// Keras RMSprop (optionally centered, with momentum).
    Rmsprop => rmsprop: RmspropConfig,
    /// Keras Adagrad.
    Adagrad => adagrad: AdagradConfig,
}

impl OptimizerConfig {
    /// The clipping keys of the selected branch.
    pub fn clipping(&self) -> GradientClipping {
        match self.kind {
            OptimizerType::Sgd => self.sgd().clipping(),
            OptimizerType::Adam => self.adam().clipping(),
            OptimizerType::Adamw => self.adamw().clipping(),
            OptimizerType::Lamb => self.lamb().clipping(),
            OptimizerType::Lars => self.lars().clipping(),
            OptimizerType::Rmsprop => self.rmsprop().clipping(),
            OptimizerType::Adagrad => self.adagrad().clipping(),
        }
    }
}

optimizer_config! {
    /// Keras SGD settings.
    pub struct SgdConfig {
        /// Momentum factor; 0 means plain SGD with no slot.
        pub momentum: f64 = 0.0,
        /// Use Nesterov momentum.
        pub nesterov: bool = false,
    }
}

impl Branch for SgdConfig {
    fn validate(&self, key: &str) -> Result<()> {
        non_negative(&format!("{key}.momentum"), self.momentum)?;
        self.clipping().validate(key)
    }
}

optimizer_config! {
    /// Keras Adam settings.
    pub struct AdamConfig {
        /// Decay rate of the first moment, in [0, 1).
        pub beta_1: f64 = 0.9,
        /// Decay rate of the second moment, in [0, 1).
        pub beta_2: f64 = 0.999,
        /// Added to the square root of the second moment (Keras' "epsilon hat"); > 0.
        pub epsilon: f64 = 1e-7,
        /// Divide by the running maximum of the second moment (AMSGrad).
        pub amsgrad: bool = false,
    }
}

/// Checks Adam-style moment settings under `key`.
fn check_moments(key: &str, beta_1: f64, beta_2: f64, epsilon: f64) -> Result<()> {
    unit_interval(&format!("{key}.beta_1"), beta_1)?;
    unit_interval(&format!("{key}.beta_2"), beta_2)?;
    positive(&format!("{key}.epsilon"), epsilon)
}

impl Branch for AdamConfig {
    fn validate(&self, key: &str) -> Result<()> {
        check_moments(key, self.beta_1, self.beta_2, self.epsilon)?;
        self.clipping().validate(key)
    }
}

optimizer_config! {
    /// Model Garden's `AdamWeightDecay` settings.
    pub struct AdamWConfig {
        /// Decay rate of the first moment, in [0, 1).
        pub beta_1: f64 = 0.9,
        /// Decay rate of the second moment, in [0, 1).
        pub beta_2: f64 = 0.999,
        /// Added to the square root of the second moment; > 0.
        pub epsilon: f64 = 1e-7,
        /// Decoupled weight-decay rate (`w -= lr * rate * w`); 0 disables decay.
        pub weight_decay_rate: f64 = 0.0,
        /// Regexes (searched anywhere in the variable name); a match forces decay.
        pub include_in_weight_decay: Option<Vec<String>> = None,
        /// Regexes (searched anywhere in the variable name); a match (and no include match)
        /// exempts the variable from decay.
        pub exclude_from_weight_decay: Option<Vec<String>> = Some(
            ["LayerNorm", "layer_norm", "bias"].map(String::from).to_vec(),
        ),
        /// Gradients are clipped by this global norm before the update; 0 disables clipping.
        pub gradient_clip_norm: f64 = 1.0,
    }
}

impl Branch for AdamWConfig {
    fn validate(&self, key: &str) -> Result<()> {
        check_moments(key, self.beta_1, self.beta_2, self.epsilon)?;
        non_negative(&format!("{key}.weight_decay_rate"), self.weight_decay_rate)?;
        non_negative(
            &format!("{key}.gradient_clip_norm"),
            self.gradient_clip_norm,
        )?;
        compile_patterns(
            &format!("{key}.include_in_weight_decay"),
            &self.include_in_weight_decay,
        )?;
        compile_patterns(
            &format!("{key}.exclude_from_weight_decay"),
            &self.exclude_from_weight_decay,
        )?;
        self.clipping().validate(key)
    }
}

optimizer_config! {
    /// LAMB settings (Model Garden's `LAMBConfig`).
    pub struct LambConfig {
        /// Decay rate of the first moment, in [0, 1).
        pub beta_1: f64 = 0.9,
        /// Decay rate of the second moment, in [0, 1).
        pub beta_2: f64 = 0.999,
        /// Added to the square root of the bias-corrected second moment; > 0.
        pub epsilon: f64 = 1e-6,
        /// Weight decay added to the update (`u += rate * w`); 0 disables decay.
        pub weight_decay_rate: f64 = 0.0,
        /// Regexes; a matching variable gets no weight decay.
        pub exclude_from_weight_decay: Option<Vec<String>> = None,
        /// Regexes; a matching variable gets no trust ratio (null: the decay exclusions).
        pub exclude_from_layer_adaptation: Option<Vec<String>> = None,
    }
}

/// Checks the regex lists of a layer-adaptive optimizer under `key`.
fn check_exclusions(
    key: &str,
    weight_decay: &Option<Vec<String>>,
    layer_adaptation: &Option<Vec<String>>,
) -> Result<()> {
    compile_patterns(&format!("{key}.exclude_from_weight_decay"), weight_decay)?;
    compile_patterns(
        &format!("{key}.exclude_from_layer_adaptation"),
        layer_adaptation,
    )?;
    Ok(())
}

impl Branch for LambConfig {
    fn validate(&self, key: &str) -> Result<()> {
        check_moments(key, self.beta_1, self.beta_2, self.epsilon)?;
        non_negative(&format!("{key}.weight_decay_rate"), self.weight_decay_rate)?;
        check_exclusions(
            key,
            &self.exclude_from_weight_decay,
            &self.exclude_from_layer_adaptation,
        )?;
        self.clipping().validate(key)
    }
}

optimizer_config! {
    /// LARS settings (Model Garden's `LARSConfig`).
    pub struct LarsConfig {
        /// Momentum factor, >= 0.
        pub momentum: f64 = 0.9,
        /// The trust coefficient `eeta` of the layer-wise learning rate.
        pub eeta: f64 = 0.001,
        /// Weight decay added to the gradient (`g += rate * w`); 0 disables decay.
        pub weight_decay_rate: f64 = 0.0,
        /// Use Nesterov momentum.
        pub nesterov: bool = false,
        /// Classic momentum (the learning rate is applied inside the momentum).
        pub classic_momentum: bool = true,
        /// Regexes; a matching variable gets no weight decay.
        pub exclude_from_weight_decay: Option<Vec<String>> = None,
        /// Regexes; a matching variable gets no trust ratio (null: the decay exclusions).
        pub exclude_from_layer_adaptation: Option<Vec<String>> = None,
    }
}

impl Branch for LarsConfig {
    fn validate(&self, key: &str) -> Result<()> {
        non_negative(&format!("{key}.momentum"), self.momentum)?;
        non_negative(&format!("{key}.eeta"), self.eeta)?;
        non_negative(&format!("{key}.weight_decay_rate"), self.weight_decay_rate)?;
        check_exclusions(
            key,
            &self.exclude_from_weight_decay,
            &self.exclude_from_layer_adaptation,
        )?;
        self.clipping().validate(key)
    }
}

optimizer_config! {
    /// Keras RMSprop settings.
    pub struct RmspropConfig {
        /// Decay rate of the mean square, in [0, 1).
        pub rho: f64 = 0.9,
        /// Momentum factor, >= 0; 0 keeps no momentum slot.
        pub momentum: f64 = 0.0,
        /// Numerical stability term; > 0.
        pub epsilon: f64 = 1e-7,
        /// Normalize by the variance (mean square minus squared mean) instead of the mean square.
        pub centered: bool = false,
    }
}

impl Branch for RmspropConfig {
    fn validate(&self, key: &str) -> Result<()> {
        unit_interval(&format!("{key}.rho"), self.rho)?;
        non_negative(&format!("{key}.momentum"), self.momentum)?;
        positive(&format!("{key}.epsilon"), self.epsilon)?;
        self.clipping().validate(key)
    }
}

optimizer_config! {
    /// Keras Adagrad settings.
    pub struct AdagradConfig {
        /// The value every accumulator starts at, >= 0.
        pub initial_accumulator_value: f64 = 0.1,
        /// Added to the square root of the accumulator; > 0.
        pub epsilon: f64 = 1e-7,
    }
}

impl Branch for AdagradConfig {
    fn validate(&self, key: &str) -> Result<()> {
        non_negative(
            &format!("{key}.initial_accumulator_value"),
            self.initial_accumulator_value,
        )?;
        positive(&format!("{key}.epsilon"), self.epsilon)?;
        self.clipping().validate(key)
    }
}
