//! Value checks shared by the optimization configs. Every error is an [`Error::Config`]
//! naming the key under `trainer.optimizer_config`, the bad value and what is allowed.

use super::CONFIG_PATH;
use crate::error::{Error, Result};

/// A selectable branch of a one-of config that can check its own values.
pub trait Branch: Default + Clone {
    /// Checks the values; `key` is the branch's dotted path under `trainer.optimizer_config`
    /// (e.g. `optimizer.adam`).
    fn validate(&self, key: &str) -> Result<()>;
}

/// An [`Error::Config`] for `key` (relative to `trainer.optimizer_config`).
pub(crate) fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> Error {
    Error::Config(format!(
        "{CONFIG_PATH}.{key}: got {value}, expected {allowed}"
    ))
}

/// `value` must be a finite number >= 0.
pub(crate) fn non_negative(key: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(bad(key, value, "a finite number >= 0"))
    }
}

/// `value` must be a finite number > 0.
pub(crate) fn positive(key: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(bad(key, value, "a finite number > 0"))
    }
}

/// `value` must lie in `[0, 1)` (a decay rate such as Adam's betas).
pub(crate) fn unit_interval(key: &str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(bad(key, value, "a number in [0, 1)"))
    }
}

/// `value` must be finite.
pub(crate) fn finite(key: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(bad(key, value, "a finite number"))
    }
}

/// A learning rate: finite and >= 0.
pub(crate) fn learning_rate(key: &str, lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(bad(key, lr, "a finite learning rate >= 0"))
    }
}

/// A step count that must be at least 1.
pub(crate) fn at_least_one(key: &str, steps: u64) -> Result<()> {
    if steps >= 1 {
        Ok(())
    } else {
        Err(bad(key, steps, "an integer >= 1"))
    }
}

/// A value with no default that the selected branch needs.
pub(crate) fn required<T: Copy>(key: &str, value: Option<T>, what: &str) -> Result<T> {
    value.ok_or_else(|| {
        Error::Config(format!(
            "{CONFIG_PATH}.{key}: got null, expected {what} (this key is required when its \
             section is selected)"
        ))
    })
}

/// Compiles a variable-name regex; an invalid one is an [`Error::Config`] naming `key`
/// (relative to `trainer.optimizer_config`).
pub fn compile_pattern(key: &str, pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| {
        Error::Config(format!(
            "{CONFIG_PATH}.{key}: {pattern:?} is not a valid regular expression ({e})"
        ))
    })
}

/// Compiles every regex of the optional list at `key` (`key[i]` names a bad one).
pub fn compile_patterns(key: &str, patterns: &Option<Vec<String>>) -> Result<Vec<regex::Regex>> {
    let patterns = patterns.iter().flatten().enumerate();
    patterns
        .map(|(i, p)| compile_pattern(&format!("{key}[{i}]"), p))
        .collect()
}
