//! A variational autoencoder on grey images (MNIST IDX files or synthetic digits).

pub mod config;
pub mod model;
pub mod task;

pub use config::VaeConfig;
pub use task::VaeTask;
