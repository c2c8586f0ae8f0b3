//! Typed experiment configs with Model Garden's key names, and their layering.
//!
//! An [`ExperimentConfig`] is `task` (a task's own [`TaskConfig`]), `trainer` and `runtime`.
//! [`resolve`] layers config files and `--params_override` strings over an experiment factory's
//! defaults; every layer is strictly typed and errors name the dotted key and the layer.

#[macro_use]
mod macros;
mod data;
mod describe;
mod environment;
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
mod task_config;
mod tensorflow_keys;
mod trainer;
mod yaml_lines;

pub use data::{DataConfig, DataSpec};
pub(crate) use describe::closest;
pub use environment::{CONFIG_DIR_VARIABLE, DEVICE_VARIABLE, LOG_VARIABLE};
pub use experiment::ExperimentConfig;
pub use explain::explain;
pub use flat::{flatten, unflatten};
pub use keyword::keyword;
pub use layering::{resolve, resolve_explained, ConfigSources, Resolved};
pub use one_of::{ConfigFamily, OneOf, SubConfig};
pub use optimization::{Branch, OptimizationConfig};
pub use overrides::{parse_override, Override};
pub use progressive::{ProgressiveConfig, StackingStageConfig};
pub use runtime::{DeviceSpec, DistributionStrategy, RuntimeConfig};
pub use task_config::{AnyTaskConfig, TaskConfig};
pub use trainer::{EarlyStoppingConfig, MetricComparison, TrainerConfig};
