//! Typed experiment configs with Model Garden's key names, and their layering.
//!
//! An [`ExperimentConfig`] is `task` (a task's own [`TaskConfig`]), `trainer` and `runtime`.
//! [`resolve`] layers config files and `--params_override` strings over an experiment factory's
//! defaults; every layer is strictly typed and errors name the dotted key and the layer.
//! Step-valued trainer keys may be given in epochs (`trainer.train_epochs`, `"3 epochs"`),
//! converted to steps from the training split's size as a layer of their own (`epochs`).
//!
//! # Declaring config sections
//!
//! - A section is a struct declared with [`defaulted_config!`](crate::defaulted_config): every
//!   field with its Model Garden default (`pub steps_per_loop: u64 = 1000`), unknown keys
//!   refused, `Default` built from those values. Every section of Grove and its tasks is
//!   declared this way; an optimizer's section with [`optimizer_config!`](crate::optimizer_config),
//!   which adds Keras' clipping keys.
//! - A keyword (`file_type`, `distribution_strategy`, `comp`, ...) is a `snake_case` serde enum,
//!   never a checked string, so a misspelt value is refused with the closest valid name.
//!   [`keyword`] gives a value's config spelling for messages.
//! - A one-of (`{type: adamw, adamw: {...}}`) is declared with
//!   [`one_of_config!`](crate::one_of_config) when Grove's code handles every branch (optimizers,
//!   schedules, backbones, and the warmup, whose `type` may be null: the branches are an enum),
//!   or is a [`OneOf<F>`](one_of::OneOf) when users' crates add branches through the registry
//!   (encoders).

#[macro_use]
mod macros;
mod cadence;
mod data;
mod describe;
mod duration;
mod environment;
mod epochs;
mod experiment;
mod explain;
mod flat;
mod interpolation;
mod keyword;
mod layering;
pub mod one_of;
pub mod optimization;
mod overrides;
mod progressive;
mod restrictions;
mod runtime;
pub mod secrets;
mod task_config;
mod tensorflow_keys;
mod trainer;
mod yaml_lines;

pub use cadence::Cadence;
pub use data::{DataConfig, DataSpec};
pub(crate) use describe::closest;
pub use duration::ConfigDuration;
pub use environment::{CONFIG_DIR_VARIABLE, DEVICE_VARIABLE, LOG_VARIABLE};
pub use epochs::EpochSize;
pub use experiment::ExperimentConfig;
pub use explain::explain;
pub use flat::{flatten, unflatten};
pub use keyword::keyword;
pub use layering::{resolve, resolve_explained, ConfigSources, Resolved};
pub use one_of::{ConfigFamily, OneOf, SubConfig};
pub use optimization::{Branch, OptimizationConfig};
pub use overrides::{parse_override, Override};
pub use progressive::{ProgressiveConfig, StackingStageConfig};
pub use runtime::{DeviceSpec, DistributionStrategy, MlflowConfig, RuntimeConfig};
pub use task_config::{AnyTaskConfig, TaskConfig};
pub use trainer::{EarlyStoppingConfig, MetricComparison, TrainerConfig};
