//! `vae/mnist_local`: a variational autoencoder on seeded synthetic 28×28 digits.

use grove_core::config::optimization::{
    AdamConfig, ConstantLrConfig, OptimizationConfig, OptimizerConfig,
};
use grove_core::config::{Cadence, ExperimentConfig, TrainerConfig};
use grove_tasks::vae::VaeConfig;

/// Latent 8, hidden 256, Adam at 1e-3: 600 steps of 64 images, a few seconds on 2 cores.
pub fn vae_mnist_local() -> ExperimentConfig {
    let mut task = VaeConfig::default();
    task.train_data.global_batch_size = 64;
    task.train_data.num_examples = 8192;
    task.validation_data.global_batch_size = 256;
    task.validation_data.num_examples = 1024;
    ExperimentConfig {
        task: Box::new(task),
        trainer: TrainerConfig {
            train_steps: 600,
            steps_per_loop: 100,
            summary_interval: Cadence::Steps(100),
            checkpoint_interval: Cadence::Steps(200),
            validation_interval: Cadence::Steps(200),
            validation_steps: -1,
            max_to_keep: 3,
            optimizer_config: OptimizationConfig {
                optimizer: OptimizerConfig::from(AdamConfig::default()),
                learning_rate: ConstantLrConfig {
                    learning_rate: 1e-3,
                }
                .into(),
                ..OptimizationConfig::default()
            },
            ..TrainerConfig::default()
        },
        runtime: Default::default(),
        restrictions: vec![
            "task.train_data.is_training != None".to_string(),
            "task.validation_data.is_training != None".to_string(),
        ],
        references: Default::default(),
    }
}
