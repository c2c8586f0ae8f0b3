//! `task:` — the typed, task-specific part of an experiment, and its type-erased form.

use std::any::Any;
use std::fmt::Debug;

use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::data::DataSpec;
use super::epochs::EpochSize;
use crate::error::Result;
use crate::init_checkpoint::InitCheckpointRule;

/// A task's typed config (Model Garden's `TaskConfig` subclasses). Implement it on a
/// `#[serde(default, deny_unknown_fields)]` struct; the experiment registry stores it type-erased
/// and the task registry finds the Task registered for its type.
pub trait TaskConfig:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The data config type of `train_data` and `validation_data`.
    type Data: DataSpec;

    /// `task.train_data`.
    fn train_data(&self) -> &Self::Data;
    /// `task.validation_data`.
    fn validation_data(&self) -> &Self::Data;
    /// `task.extra_validation_data`: more named validation sets, evaluated after
    /// `validation_data` and logged as `<name>/<metric>` (none by default).
    fn extra_validation_data(&self) -> Vec<(&str, &Self::Data)> {
        Vec::new()
    }
    /// `task.init_checkpoint` ("" for none).
    fn init_checkpoint(&self) -> &str;
    /// Which model variables `init_checkpoint` loads, under which names (none: all, as named).
    fn init_checkpoint_rules(&self) -> &[InitCheckpointRule] {
        &[]
    }
    /// Cross-field rules and values, checked after all config layers are merged. Messages name
    /// the dotted key (`task.…`).
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// The object-safe view of any [`TaskConfig`], as held by [`super::ExperimentConfig`].
pub trait AnyTaskConfig: Debug + Send + Sync {
    /// The concrete config, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The Rust type name of the concrete config (for messages).
    fn type_name(&self) -> &'static str;
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn AnyTaskConfig>;
    /// The config as a YAML value.
    fn to_yaml(&self) -> serde_yaml::Value;
    /// Extracts `figment` (focused on the `task` section) as the same concrete type as `self`.
    fn extract_same_type(
        &self,
        figment: &Figment,
    ) -> std::result::Result<Box<dyn AnyTaskConfig>, Box<figment::Error>>;
    /// Runs [`TaskConfig::validate`].
    fn validate(&self) -> Result<()>;
    /// Equality with another erased config (false when the types differ).
    fn eq_dyn(&self, other: &dyn AnyTaskConfig) -> bool;
    /// One pass over `train_data`, for step counts given in epochs (a file split may be read
    /// to count it).
    fn train_epoch(&self) -> Result<EpochSize>;
}

impl<T: TaskConfig> AnyTaskConfig for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn clone_box(&self) -> Box<dyn AnyTaskConfig> {
        Box::new(self.clone())
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::to_value(self).expect("a config serializes to YAML")
    }
    fn extract_same_type(
        &self,
        figment: &Figment,
    ) -> std::result::Result<Box<dyn AnyTaskConfig>, Box<figment::Error>> {
        Ok(Box::new(figment.extract::<T>().map_err(Box::new)?))
    }
    fn train_epoch(&self) -> Result<EpochSize> {
        let data = self.train_data();
        Ok(EpochSize {
            examples: data.epoch_examples("task.train_data")?,
            global_batch_size: data.global_batch_size(),
            drop_remainder: data.drop_remainder(),
        })
    }
    fn validate(&self) -> Result<()> {
        TaskConfig::validate(self)
    }
    fn eq_dyn(&self, other: &dyn AnyTaskConfig) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

impl Clone for Box<dyn AnyTaskConfig> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}
