//! Image classification experiments: `image_classification/mnist_local` (seeded synthetic
//! digits, seconds on a CPU), `image_classification/mnist` and `image_classification/cifar10`
//! (the standard files the user points `input_path` at).

use grove_core::config::optimization::{
    AdamConfig, CosineLrConfig, LearningRateConfig, OptimizationConfig, OptimizerConfig,
};
use grove_core::config::{Cadence, ExperimentConfig, TrainerConfig};
use grove_tasks::image_classification::config::{
    BackboneConfig, CnnConfig, ImageClassifierConfig, ImageFileType, MlpConfig, NormType,
};
use grove_tasks::image_classification::{ImageClassificationConfig, ImageDataConfig};

/// Adam with a cosine decay over the run.
fn adam_cosine(learning_rate: f64, train_steps: u64) -> OptimizationConfig {
    OptimizationConfig {
        optimizer: OptimizerConfig::from(AdamConfig::default()),
        learning_rate: LearningRateConfig::from(CosineLrConfig {
            initial_learning_rate: Some(learning_rate),
            decay_steps: Some(train_steps),
            ..CosineLrConfig::default()
        }),
        ..OptimizationConfig::default()
    }
}

/// One split of `file_type` read from `input_path`.
fn split(file_type: ImageFileType, training: bool, batch_size: usize) -> ImageDataConfig {
    ImageDataConfig {
        file_type,
        global_batch_size: batch_size,
        is_training: Some(training),
        ..ImageDataConfig::default()
    }
}

/// The experiment around `task`: summaries every `steps_per_loop` steps, checkpoints and a
/// validation over the whole validation set every second loop.
fn experiment(
    task: ImageClassificationConfig,
    train_steps: u64,
    steps_per_loop: u64,
    learning_rate: f64,
) -> ExperimentConfig {
    ExperimentConfig {
        task: Box::new(task),
        trainer: TrainerConfig {
            train_steps,
            steps_per_loop,
            summary_interval: Cadence::Steps(steps_per_loop),
            checkpoint_interval: Cadence::Steps(2 * steps_per_loop),
            validation_interval: Cadence::Steps(2 * steps_per_loop),
            validation_steps: -1,
            max_to_keep: 3,
            optimizer_config: adam_cosine(learning_rate, train_steps),
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

/// An MLP (256, 128) on seeded synthetic 28×28 digits: 600 steps, about 2 s on 2 cores.
pub fn mnist_local() -> ExperimentConfig {
    let mut validation = split(ImageFileType::Synthetic, false, 256);
    validation.num_examples = 1024;
    let mut train = split(ImageFileType::Synthetic, true, 64);
    train.num_examples = 8192;
    let task = ImageClassificationConfig {
        model: ImageClassifierConfig {
            backbone: BackboneConfig::from(MlpConfig {
                hidden_sizes: vec![256, 128],
            }),
            ..ImageClassifierConfig::default()
        },
        train_data: train,
        validation_data: validation,
        ..ImageClassificationConfig::default()
    };
    experiment(task, 600, 100, 3e-3)
}

/// An MLP on MNIST's IDX files: set `task.train_data.input_path` and
/// `task.validation_data.input_path` to the directory holding them.
pub fn mnist() -> ExperimentConfig {
    let task = ImageClassificationConfig {
        model: ImageClassifierConfig {
            dropout_rate: 0.2,
            ..ImageClassifierConfig::default()
        },
        train_data: ImageDataConfig {
            mean: vec![0.1307],
            stddev: vec![0.3081],
            ..split(ImageFileType::Idx, true, 128)
        },
        validation_data: ImageDataConfig {
            mean: vec![0.1307],
            stddev: vec![0.3081],
            ..split(ImageFileType::Idx, false, 500)
        },
        ..ImageClassificationConfig::default()
    };
    // 10 epochs of 60000 images, a loop per epoch.
    experiment(task, 4690, 469, 1e-3)
}

/// A small CNN with batch norm on CIFAR-10's binary files, with flips and padded crops.
pub fn cifar10() -> ExperimentConfig {
    let mean = vec![0.4914, 0.4822, 0.4465];
    let stddev = vec![0.2470, 0.2435, 0.2616];
    let task = ImageClassificationConfig {
        model: ImageClassifierConfig {
            input_size: vec![32, 32, 3],
            backbone: BackboneConfig::from(CnnConfig {
                filters: vec![32, 64, 128],
                ..CnnConfig::default()
            }),
            norm_type: NormType::BatchNorm,
            dropout_rate: 0.3,
            ..ImageClassifierConfig::default()
        },
        train_data: ImageDataConfig {
            mean: mean.clone(),
            stddev: stddev.clone(),
            aug_rand_hflip: true,
            aug_crop_padding: 4,
            ..split(ImageFileType::Cifar10, true, 128)
        },
        validation_data: ImageDataConfig {
            mean,
            stddev,
            ..split(ImageFileType::Cifar10, false, 500)
        },
        ..ImageClassificationConfig::default()
    };
    // 30 epochs of 50000 images, a loop per epoch.
    experiment(task, 11730, 391, 1e-3)
}
