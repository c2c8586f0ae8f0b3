//! A toy task config and experiment shared by the config tests.

use std::sync::Once;

use grove_core::config::{Cadence, ConfigFamily, DataConfig, ExperimentConfig, OneOf, TaskConfig};
use grove_core::registry::register_config_type;
use serde::{Deserialize, Serialize};

/// A registry-typed family of toy encoders: `small` and `large`.
pub struct ToyEncoders;

impl ConfigFamily for ToyEncoders {
    const NAME: &'static str = "toy encoder";
}

/// The `small` toy encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Small {
    pub width: usize,
}

impl Default for Small {
    fn default() -> Self {
        Small { width: 4 }
    }
}

/// The `large` toy encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Large {
    pub width: usize,
    pub depth: usize,
}

impl Default for Large {
    fn default() -> Self {
        Large {
            width: 64,
            depth: 3,
        }
    }
}

/// A task config with scalars, a registry-typed one-of, a list of sub-configs and two data
/// configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToyTask {
    pub init_checkpoint: String,
    pub hidden: usize,
    pub name: String,
    /// A credential the task would send to a service (masked in saved configs when it comes
    /// from the environment).
    pub service_token: String,
    pub heads: Vec<Head>,
    pub encoder: OneOf<ToyEncoders>,
    pub train_data: DataConfig,
    pub validation_data: DataConfig,
}

/// One item of [`ToyTask::heads`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Head {
    pub name: String,
    pub size: usize,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            name: "head".to_string(),
            size: 1,
        }
    }
}

impl Default for ToyTask {
    fn default() -> Self {
        ToyTask {
            init_checkpoint: String::new(),
            hidden: 8,
            name: "factory".to_string(),
            service_token: String::new(),
            heads: vec![
                Head {
                    name: "a".to_string(),
                    size: 2,
                },
                Head {
                    name: "b".to_string(),
                    size: 3,
                },
            ],
            encoder: OneOf::new("small", Small::default()),
            train_data: DataConfig::default(),
            validation_data: DataConfig::default(),
        }
    }
}

impl TaskConfig for ToyTask {
    type Data = DataConfig;
    fn train_data(&self) -> &DataConfig {
        &self.train_data
    }
    fn validation_data(&self) -> &DataConfig {
        &self.validation_data
    }
    fn init_checkpoint(&self) -> &str {
        &self.init_checkpoint
    }
}

/// The toy experiment: cadences of 10 steps and one restriction.
pub fn defaults() -> ExperimentConfig {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        register_config_type::<ToyEncoders, Small>("small").unwrap();
        register_config_type::<ToyEncoders, Large>("large").unwrap();
    });
    let mut config = ExperimentConfig::new(ToyTask::default());
    config.trainer.train_steps = 100;
    config.trainer.steps_per_loop = 10;
    config.trainer.summary_interval = grove_core::config::Cadence::Steps(10);
    config.trainer.checkpoint_interval = grove_core::config::Cadence::Steps(10);
    config.trainer.validation_interval = Cadence::Steps(10);
    config.restrictions = vec!["task.train_data.global_batch_size <= task.hidden".to_string()];
    config
}
