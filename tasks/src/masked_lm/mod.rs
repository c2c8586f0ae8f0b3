//! Masked LM pretraining: config, inputs, the task and its progressive (stacking) policy.

pub mod config;
pub mod inputs;
pub mod progressive;
pub mod task;

pub use config::{MaskedLmConfig, MaskedLmDataConfig};
pub use task::MaskedLmTask;
