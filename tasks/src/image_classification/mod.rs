//! Image classification: an MLP or small CNN trained with cross-entropy on MNIST (IDX),
//! CIFAR-10 (binary) or seeded synthetic images.

pub mod config;
pub mod inputs;
pub mod loss;
pub mod model;
pub mod task;

pub use config::{ImageClassificationConfig, ImageDataConfig};
pub use task::ImageClassificationTask;
