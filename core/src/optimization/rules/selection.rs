//! Which variables get weight decay or a layer-wise trust ratio, by regexes searched
//! anywhere in the variable's name (Model Garden's `_do_use_weight_decay` and
//! `_do_layer_adaptation`).

use regex::Regex;

use crate::config::optimization::compile_patterns;
use crate::error::Result;

/// Selects variables for weight decay: none when the rate is 0; otherwise an include match
/// selects, an exclude match deselects, and every other variable is selected.
#[derive(Debug, Clone)]
pub struct WeightDecaySelection {
    rate: f64,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl WeightDecaySelection {
    /// Compiles the lists at `key` (e.g. `optimizer.adamw`) for errors.
    pub(crate) fn new(
        key: &str,
        rate: f64,
        include: &Option<Vec<String>>,
        exclude: &Option<Vec<String>>,
    ) -> Result<Self> {
        Ok(WeightDecaySelection {
            rate,
            include: compile_patterns(&format!("{key}.include_in_weight_decay"), include)?,
            exclude: compile_patterns(&format!("{key}.exclude_from_weight_decay"), exclude)?,
        })
    }

    /// The decay rate for the variable `name` (0 when it gets no decay).
    pub fn rate_for(&self, name: &str) -> f64 {
        if self.rate == 0.0 {
            return 0.0;
        }
        if self.include.iter().any(|r| r.is_match(name)) {
            return self.rate;
        }
        if self.exclude.iter().any(|r| r.is_match(name)) {
            0.0
        } else {
            self.rate
        }
    }
}

/// Selects variables for a layer-wise trust ratio: all but those matching
/// `exclude_from_layer_adaptation`, which defaults to `exclude_from_weight_decay`.
#[derive(Debug, Clone)]
pub(crate) struct LayerAdaptation {
    exclude: Vec<Regex>,
}

impl LayerAdaptation {
    /// Compiles the exclusions at `key` (e.g. `optimizer.lamb`).
    pub(crate) fn new(
        key: &str,
        exclude_from_weight_decay: &Option<Vec<String>>,
        exclude_from_layer_adaptation: &Option<Vec<String>>,
    ) -> Result<Self> {
        let exclude = match exclude_from_layer_adaptation {
            Some(_) => compile_patterns(
                &format!("{key}.exclude_from_layer_adaptation"),
                exclude_from_layer_adaptation,
            )?,
            None => compile_patterns(
                &format!("{key}.exclude_from_weight_decay"),
                exclude_from_weight_decay,
            )?,
        };
        Ok(LayerAdaptation { exclude })
    }

    /// Whether the variable `name` gets a trust ratio.
    pub(crate) fn applies_to(&self, name: &str) -> bool {
        !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// The weight-decay and layer-adaptation selections of a layer-wise optimizer (LAMB, LARS),
/// whose configs share these keys, at `key` (e.g. `optimizer.lamb`).
pub(crate) fn layerwise_selections(
    key: &str,
    weight_decay_rate: f64,
    exclude_from_weight_decay: &Option<Vec<String>>,
    exclude_from_layer_adaptation: &Option<Vec<String>>,
) -> Result<(WeightDecaySelection, LayerAdaptation)> {
    let decay =
        WeightDecaySelection::new(key, weight_decay_rate, &None, exclude_from_weight_decay)?;
    let adaptation = LayerAdaptation::new(
        key,
        exclude_from_weight_decay,
        exclude_from_layer_adaptation,
    )?;
    Ok((decay, adaptation))
}
