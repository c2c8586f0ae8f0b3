//! Typed experiment configs with Model Garden's key names, and their layering.
//!
//! An [`ExperimentConfig`] is `task` (a task's own [`TaskConfig`]), `trainer` and `runtime`.
//! [`resolve`] layers config files and `--params_override` strings over an experiment factory's
//! defaults; every layer is strictly typed and errors name the dotted key and the layer.

mod data;
mod describe;
mod experiment;
mod layering;
pub mod optimization;
mod overrides;
mod runtime;
mod task_config;
mod trainer;

pub use data::{DataConfig, DataSpec};
pub(crate) use describe::closest;
pub use experiment::ExperimentConfig;
pub use layering::{resolve, ConfigSources};
pub use optimization::OptimizationConfig;
pub use overrides::parse_override;
pub use runtime::{DeviceSpec, RuntimeConfig};
pub use task_config::{AnyTaskConfig, TaskConfig};
pub use trainer::{MetricComparison, TrainerConfig};
