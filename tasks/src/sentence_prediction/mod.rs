//! Sentence prediction: BERT fine-tuning on sentences or sentence pairs (GLUE-style
//! classification or regression), from TSV / JSONL files or synthetic pairs.

pub mod config;
pub mod inputs;
pub mod metrics;
pub mod model;
pub mod task;

pub use config::{SentenceDataConfig, SentencePredictionConfig};
pub use task::SentencePredictionTask;
