//! The whole experiment: `task`, `trainer`, `runtime`.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::restrictions::check_restrictions;
use super::runtime::RuntimeConfig;
use super::secrets::{mask_leaf, masked_keys};
use super::task_config::{AnyTaskConfig, TaskConfig};
use super::trainer::TrainerConfig;
use crate::error::Result;

/// Model Garden's `ExperimentConfig`: everything a run does is decided here. Factories in the
/// experiment registry return a fresh one; config files and overrides are layered on top of it
/// by [`super::resolve`].
#[derive(Debug, Clone)]
pub struct ExperimentConfig {
    /// The task's own typed config.
    pub task: Box<dyn AnyTaskConfig>,
    /// Training length, cadences and optimization.
    pub trainer: TrainerConfig,
    /// Device, threads, seed.
    pub runtime: RuntimeConfig,
    /// Cross-field rules checked after all layers (`"task.train_data.is_training != None"`);
    /// set by the experiment factory, not part of `params.yaml`.
    pub restrictions: Vec<String>,
    /// Leaves whose layers gave `${...}` references: dotted key → the text as given. The
    /// fields hold the resolved values; [`Self::to_unresolved_yaml_string`] shows the text.
    pub references: BTreeMap<String, String>,
}

impl ExperimentConfig {
    /// An experiment with this task config and default trainer and runtime.
    pub fn new(task: impl TaskConfig) -> Self {
        ExperimentConfig {
            task: Box::new(task),
            trainer: TrainerConfig::default(),
            runtime: RuntimeConfig::default(),
            restrictions: Vec::new(),
            references: BTreeMap::new(),
        }
    }

    /// The task config as its concrete type, if it is one.
    pub fn task_as<T: TaskConfig>(&self) -> Option<&T> {
        self.task.as_any().downcast_ref::<T>()
    }

    /// Checks every section (values, cross-field rules, unsupported settings).
    pub fn validate(&self) -> Result<()> {
        if !self.restrictions.is_empty() {
            check_restrictions(&self.restrictions, &self.to_flat())?;
        }
        self.trainer.validate()?;
        self.runtime.validate()?;
        self.task.validate()
    }

    /// The config as YAML text (what `model_dir/params.yaml` holds), credentials from the
    /// environment masked ([`super::secrets`]).
    pub fn to_yaml_string(&self) -> String {
        serde_yaml::to_string(&self.to_masked_yaml_value()).expect("a config serializes to YAML")
    }

    /// [`Self::to_yaml_value`] with the credentials that came from the environment written as
    /// `***`: what may be saved or shown.
    pub fn to_masked_yaml_value(&self) -> serde_yaml::Value {
        let mut value = self.to_yaml_value();
        for key in masked_keys(&self.references) {
            mask_leaf(&mut value, key);
        }
        value
    }

    /// The config as YAML text with every interpolated leaf showing its `${...}` references
    /// (what `model_dir/params.unresolved.yaml` holds).
    pub fn to_unresolved_yaml_string(&self) -> String {
        let mut flat = self.to_flat();
        for (key, text) in &self.references {
            flat.insert(key.clone(), serde_yaml::Value::String(text.clone()));
        }
        let nested = super::unflatten(&flat).expect("keys of a flattened config unflatten");
        serde_yaml::to_string(&nested).expect("a config serializes to YAML")
    }

    /// The config as a nested YAML value.
    pub fn to_yaml_value(&self) -> serde_yaml::Value {
        serde_yaml::to_value(self).expect("a config serializes to YAML")
    }

    /// The config as a flat map of dotted keys (see [`super::flatten`]).
    pub fn to_flat(&self) -> BTreeMap<String, serde_yaml::Value> {
        super::flatten(&self.to_yaml_value())
    }
}

impl PartialEq for ExperimentConfig {
    fn eq(&self, other: &Self) -> bool {
        self.task.eq_dyn(other.task.as_ref())
            && self.trainer == other.trainer
            && self.runtime == other.runtime
            && self.restrictions == other.restrictions
    }
}

impl Serialize for ExperimentConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("task", &self.task.to_yaml())?;
        map.serialize_entry("trainer", &self.trainer)?;
        map.serialize_entry("runtime", &self.runtime)?;
        map.end()
    }
}
