//! grove-trackers: experiment trackers that take a run's summaries beside model_dir's own
//! files (`runtime.loggers: [..., mlflow]`).
//!
//! - [`mlflow_client`]: MLflow's tracking REST API (experiments, runs, batched params and
//!   metrics, status, artifacts through the server's proxy), with MLflow's batch limits.
//! - [`mlflow_run`]: one Grove run as one MLflow run: connect before anything is written,
//!   start or continue the run recorded in `model_dir/mlflow_run.json`, per-split
//!   [`MlflowWriter`]s for Orbit's summary managers that send each step once and retry
//!   without failing the run, and the run's end status.
//!
//! It depends on grove-orbit only (summary writers, atomic writes); what the params are and
//! when a run starts is decided by grove-trainers.

pub mod error;
pub mod mlflow_client;
pub mod mlflow_run;
#[cfg(test)]
mod test_server;

pub use error::{Result, TrackerError};
pub use mlflow_client::{Credentials, MlflowClient, RunStatus};
pub use mlflow_run::{MlflowExperiment, MlflowRun, MlflowWriter, RUN_FILE};
