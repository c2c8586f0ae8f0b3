//! The optional warmup (`warmup.type`: linear, polynomial or null) that replaces the first
//! `warmup_steps` steps of the schedule.

use serde::{Deserialize, Serialize};

use super::checks::{finite, learning_rate, required};
use crate::error::Result;

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
        let needs = "an integer >= 0 (or set warmup.type to null for no warmup)";
        match self.kind {
            None => Ok(()),
            Some(WarmupType::Linear) => {
                let cfg = self.linear();
                learning_rate(
                    "warmup.linear.warmup_learning_rate",
                    cfg.warmup_learning_rate,
                )?;
                required("warmup.linear.warmup_steps", cfg.warmup_steps, needs).map(drop)
            }
            Some(WarmupType::Polynomial) => {
                let cfg = self.polynomial();
                finite("warmup.polynomial.power", cfg.power)?;
                required("warmup.polynomial.warmup_steps", cfg.warmup_steps, needs).map(drop)
            }
        }
    }
}

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
