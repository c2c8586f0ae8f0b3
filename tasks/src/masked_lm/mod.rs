//! Masked LM pretraining: config, inputs and the task.

pub mod config;
pub mod inputs;
pub mod task;

pub use config::{MaskedLmConfig, MaskedLmDataConfig};
pub use task::MaskedLmTask;
