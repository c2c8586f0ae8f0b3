//! grove-tasks: the models and tasks Grove ships.
//!
//! [`models`] holds the BERT encoder and pretrainer heads written on candle-nn; [`data`] the
//! synthetic corpus local experiments train on; [`masked_lm`] the masked LM task. Everything
//! problem-specific lives here, behind grove-core's `Task` trait; nothing here knows about
//! trainers, Orbit or the command line.

use std::sync::OnceLock;

pub mod data;
pub mod image_classification;
pub mod masked_lm;
pub mod models;
pub mod sentence_prediction;
pub mod text;
pub mod vae;

/// Registers this crate's tasks and config types (the `bert` encoder) in grove-core's
/// registries. Safe to call more than once.
pub fn register() -> grove_core::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    grove_core::registry::register_once(&DONE, register_all)
}

fn register_all() -> grove_core::Result<()> {
    use grove_core::registry::{register_config_type, register_task};
    register_config_type::<models::EncoderFamily, models::BertEncoderConfig>(models::BERT_ENCODER)?;
    register_task::<masked_lm::MaskedLmTask>("masked_lm")?;
    register_task::<image_classification::ImageClassificationTask>("image_classification")?;
    register_task::<sentence_prediction::SentencePredictionTask>("sentence_prediction")?;
    register_task::<vae::VaeTask>("vae")?;
    grove_core::progressive::register_progressive_policy(
        masked_lm::progressive::progressive_masked_lm,
    )
}
