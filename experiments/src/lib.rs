//! grove-experiments: the experiments Grove ships and the `train` command line.
//!
//! [`register`] puts Grove's tasks and named experiments (`bert/*`, `image_classification/*`,
//! `vae/mnist_local`) in
//! grove-core's registries; [`cli`] is the `train` binary's whole logic, reusable by a user's
//! own binary after it registers its own experiments.

pub mod allocator;
pub mod bert;
pub mod cli;
pub mod image_classification;
mod logging;
pub mod sentence_prediction;
mod sweeps;
pub mod vae;
pub mod workers;

use std::sync::OnceLock;

use grove_core::registry::register_experiment;

/// Registers Grove's tasks and experiments. Safe to call more than once.
pub fn register() -> grove_core::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    grove_core::registry::register_once(&DONE, register_all)
}

fn register_all() -> grove_core::Result<()> {
    grove_tasks::register()?;
    grove_sweep::register()?;
    register_experiment("bert/local", bert::bert_local)?;
    register_experiment("bert/pretraining", bert::bert_pretraining)?;
    register_experiment("bert/progressive", bert::bert_progressive)?;
    register_experiment("bert/progressive_local", bert::bert_progressive_local)?;
    register_experiment(
        "image_classification/mnist_local",
        image_classification::mnist_local,
    )?;
    register_experiment("image_classification/mnist", image_classification::mnist)?;
    register_experiment(
        "image_classification/cifar10",
        image_classification::cifar10,
    )?;
    register_experiment(
        "bert/sentence_prediction",
        sentence_prediction::bert_sentence_prediction,
    )?;
    register_experiment(
        "bert/sentence_prediction_local",
        sentence_prediction::bert_sentence_prediction_local,
    )?;
    register_experiment("vae/mnist_local", vae::vae_mnist_local)?;
    Ok(())
}
