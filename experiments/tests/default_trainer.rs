//! The DefaultTrainer in process, driven through Orbit's runner traits as the Controller
//! drives it: loop logs, checkpoint round trips that continue bit for bit, and evaluation
//! with a moving average that leaves the trained weights untouched.

mod common;

use std::collections::HashMap;

use candle_core::Device;
use common::config;
use grove_core::config::ExperimentConfig;
use grove_core::registry::get_task;
use grove_orbit::{Checkpointable, Evaluator, Trainer};
use grove_trainers::{DefaultTrainer, Roles};

/// mnist_local on 256 digits, in batches of 32, validated on 64.
const TINY: [&str; 4] = [
    "task.train_data.num_examples=256",
    "task.train_data.global_batch_size=32",
    "task.validation_data.num_examples=64",
    "task.validation_data.global_batch_size=32",
];

fn tiny(extra: &[&str]) -> ExperimentConfig {
    let overrides: Vec<&str> = TINY.iter().chain(extra).copied().collect();
    config("image_classification/mnist_local", &overrides)
}

fn trainer(config: &ExperimentConfig) -> DefaultTrainer {
    let roles = Roles {
        train: true,
        evaluate: true,
    };
    let task = get_task(config.task.as_ref()).unwrap();
    DefaultTrainer::new(task, config, Device::Cpu, roles).unwrap()
}

fn weights(trainer: &DefaultTrainer) -> HashMap<String, Vec<f32>> {
    trainer
        .vars()
        .named_vars()
        .iter()
        .map(|var| {
            let values = var
                .var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            (var.name.clone(), values)
        })
        .collect()
}

#[test]
fn a_loop_logs_its_mean_loss_and_learning_rate_and_advances_the_step() {
    let mut trainer = trainer(&tiny(&[]));
    let first = trainer.train(5).unwrap();
    assert_eq!(trainer.global_step(), 5);
    assert!(first["training_loss"].is_finite(), "{first:?}");
    assert!(first.contains_key("learning_rate"), "{first:?}");
    let later = trainer.train(20).unwrap();
    assert!(later["training_loss"] < first["training_loss"], "{later:?}");
    let evaluation = trainer.evaluate(-1).unwrap();
    assert!(evaluation["validation_loss"].is_finite(), "{evaluation:?}");
}

#[test]
fn a_restored_checkpoint_continues_as_if_training_never_stopped() {
    let config = tiny(&[]);
    let mut straight = trainer(&config);
    straight.train(6).unwrap();
    straight.train(6).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = trainer(&config);
    first.train(6).unwrap();
    first.save(dir.path()).unwrap();
    let mut resumed = trainer(&config);
    resumed.restore(dir.path()).unwrap();
    assert_eq!(resumed.global_step(), 6);
    resumed.train(6).unwrap();
    assert_eq!(weights(&resumed), weights(&straight));
}

#[test]
fn evaluating_with_a_moving_average_leaves_the_trained_weights_in_place() {
    let mut trainer = trainer(&tiny(&[
        "trainer.optimizer_config.ema={average_decay: 0.9}",
    ]));
    trainer.train(10).unwrap();
    let before = weights(&trainer);
    let averaged = trainer.evaluate(-1).unwrap();
    assert_eq!(weights(&trainer), before);

    let plain = tiny(&[]);
    let mut without = self::trainer(&plain);
    without.train(10).unwrap();
    assert_eq!(
        weights(&without),
        before,
        "the average must not steer training"
    );
    let raw = without.evaluate(-1).unwrap();
    assert_ne!(averaged["validation_loss"], raw["validation_loss"]);
}
