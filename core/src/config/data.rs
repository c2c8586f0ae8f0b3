//! `task.train_data` / `task.validation_data`: what every input config has in common.

use crate::error::Result;

/// What a trainer needs to know of any task's data config. Tasks with extra data keys
/// (e.g. masked LM's `seq_length`) define their own struct and implement this trait.
pub trait DataSpec {
    /// `input_path`: files, a directory, or a task-defined keyword such as Model Garden's
    /// `dummy`. Generated data is chosen by a task's `file_type: synthetic`, not here.
    fn input_path(&self) -> &str;
    /// Examples per batch (the whole batch: Grove runs on one device).
    fn global_batch_size(&self) -> usize;
    /// Whether this is a training split (shuffled, repeated) or an evaluation split.
    fn is_training(&self) -> Option<bool>;
    /// The examples of one pass over this split (`key`: its config key, for messages): a
    /// generated split's `num_examples`, or the count of a file split the task can count
    /// before training; `None` when it cannot (a stream of unknown length).
    fn epoch_examples(&self, key: &str) -> Result<Option<usize>> {
        let _ = key;
        Ok(None)
    }
    /// Whether a last batch smaller than `global_batch_size` is dropped (for counting an
    /// epoch's steps).
    fn drop_remainder(&self) -> bool {
        false
    }
}

/// Implements [`DataSpec`] for a data config struct with the fields `input_path: String`,
/// `global_batch_size: usize` and `is_training: Option<bool>`. With
/// `epoch_examples = <method>`, the struct also has `drop_remainder: bool` and an inherent
/// `<method>(&self, key: &str) -> Result<Option<usize>>` giving [`DataSpec::epoch_examples`].
#[macro_export]
macro_rules! impl_data_spec {
    ($config:ty) => {
        impl $crate::config::DataSpec for $config {
            $crate::impl_data_spec!(@common);
        }
    };
    ($config:ty, epoch_examples = $method:ident) => {
        impl $crate::config::DataSpec for $config {
            $crate::impl_data_spec!(@common);
            fn epoch_examples(&self, key: &str) -> $crate::Result<Option<usize>> {
                self.$method(key)
            }
            fn drop_remainder(&self) -> bool {
                self.drop_remainder
            }
        }
    };
    (@common) => {
        fn input_path(&self) -> &str {
            &self.input_path
        }
        fn global_batch_size(&self) -> usize {
            self.global_batch_size
        }
        fn is_training(&self) -> Option<bool> {
            self.is_training
        }
    };
}

defaulted_config! {
    /// Model Garden's base `DataConfig`, reduced to the keys every Grove input acts on. A task whose
    /// inputs honour more of Model Garden's keys (`drop_remainder`, `shuffle_buffer_size`, ...)
    /// defines its own data config with them, as masked LM does.
    pub struct DataConfig {
        /// Files, a directory, or a task-defined keyword such as `dummy`.
        pub input_path: String = String::new(),
        /// Examples per batch.
        pub global_batch_size: usize = 0,
        /// Training split (shuffled, repeated) or evaluation split; must be set.
        pub is_training: Option<bool> = None,
        /// Seed of this input's order; unset derives it from `runtime.seed`.
        pub seed: Option<u64> = None,
    }
}

crate::impl_data_spec!(DataConfig);
