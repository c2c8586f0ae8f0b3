//! A toy task config and experiment shared by the config tests.

use grove_core::config::{DataConfig, ExperimentConfig, TaskConfig};
use serde::{Deserialize, Serialize};

/// A task config with scalars, a list of sub-configs and two data configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToyTask {
    pub init_checkpoint: String,
    pub hidden: usize,
    pub name: String,
    pub heads: Vec<Head>,
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
    let mut config = ExperimentConfig::new(ToyTask::default());
    config.trainer.train_steps = 100;
    config.trainer.steps_per_loop = 10;
    config.trainer.summary_interval = 10;
    config.trainer.checkpoint_interval = 10;
    config.trainer.validation_interval = 10;
    config.restrictions = vec!["task.train_data.global_batch_size <= task.hidden".to_string()];
    config
}
