//! `task.train_data` / `task.validation_data`: what every input config has in common.

use serde::{Deserialize, Serialize};

/// What a trainer needs to know of any task's data config. Tasks with extra data keys
/// (e.g. masked LM's `seq_length`) define their own struct and implement this trait.
pub trait DataSpec {
    /// `input_path`: a file, directory, or a task-defined keyword such as `synthetic`.
    fn input_path(&self) -> &str;
    /// Examples per batch (the whole batch: Grove runs on one device).
    fn global_batch_size(&self) -> usize;
    /// Whether this is a training split (shuffled, repeated) or an evaluation split.
    fn is_training(&self) -> Option<bool>;
}

/// Model Garden's base `DataConfig` (the keys Grove acts on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// A file, directory, or a task-defined keyword such as `synthetic`.
    pub input_path: String,
    /// Examples per batch.
    pub global_batch_size: usize,
    /// Training split (shuffled, repeated) or evaluation split; must be set.
    pub is_training: Option<bool>,
    /// Drop a last batch smaller than `global_batch_size`.
    pub drop_remainder: bool,
    /// Examples held when shuffling.
    pub shuffle_buffer_size: usize,
    /// Seed of this input's order; unset derives it from `runtime.seed`.
    pub seed: Option<u64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            input_path: String::new(),
            global_batch_size: 0,
            is_training: None,
            drop_remainder: true,
            shuffle_buffer_size: 100,
            seed: None,
        }
    }
}

impl DataSpec for DataConfig {
    fn input_path(&self) -> &str {
        &self.input_path
    }
    fn global_batch_size(&self) -> usize {
        self.global_batch_size
    }
    fn is_training(&self) -> Option<bool> {
        self.is_training
    }
}
