//! grove-tasks: the models and tasks Grove ships.
//!
//! [`models`] holds the BERT encoder and pretrainer heads written on candle-nn; [`data`] the
//! synthetic corpus local experiments train on; [`masked_lm`] the masked LM task. Everything
//! problem-specific lives here, behind grove-core's `Task` trait; nothing here knows about
//! trainers, Orbit or the command line.

pub mod data;
pub mod masked_lm;
pub mod models;

/// Registers every task of this crate in grove-core's task registry. Call once at start-up.
pub fn register() -> grove_core::Result<()> {
    grove_core::registry::register_task::<masked_lm::MaskedLmTask>()
}
