//! Masked LM pretraining: config, inputs (synthetic, dummy, Model Garden's TFRecord files, raw
//! text), the task and its progressive (stacking) policy.

pub mod config;
pub mod inputs;
pub mod progressive;
pub mod task;
pub mod text_corpus;
pub mod tfrecord;

pub use config::{MaskedLmConfig, MaskedLmDataConfig};
pub use task::MaskedLmTask;
