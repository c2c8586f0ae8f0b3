//! grove-trainers: turns a Task into an Orbit run.
//!
//! It owns the [`DefaultTrainer`] and the [`ProgressiveTrainer`] (model, optimizer, schedule,
//! inputs and metrics of one Task, exposed to Orbit as trainer, evaluator and checkpointable
//! state), data parallelism behind the [`strategy::Strategy`] seam (`one_device`, `mirrored`),
//! the registry of user [`actions`] switched on from the config, the checkpoint directory
//! contents ([`checkpoint_files`]), config drift on resume ([`config_drift`]), the model_dir
//! lock ([`model_dir_lock`]), the run's params for dashboards ([`run_params`]: TensorBoard's
//! HParams session in [`hparams_session`], the MLflow run in `tracking`), [`export`] (`--mode=export`) and
//! [`train_lib::run_experiment`], which wires a resolved config,
//! the task registry and Orbit's Controller together for one mode. It knows no concrete task
//! and nothing of the command line (signal handling included: the binary hands in a
//! [`grove_orbit::Preemption`]).

pub mod actions;
pub mod checkpoint_files;
pub mod config_drift;
pub mod default_trainer;
pub mod error;
pub mod export;
pub mod hparams_session;
pub mod instrumentation;
pub mod model_dir_lock;
pub mod progressive_trainer;
pub mod run_params;
mod stage_task;
pub mod strategy;
mod tracking;
pub mod train_lib;
mod worker_placement;

pub use actions::{register_action, ActionFactory, ActionSetup};
pub use default_trainer::{DefaultTrainer, Roles};
pub use error::{Error, Result};
pub use export::{export_model, ExportTarget};
pub use progressive_trainer::ProgressiveTrainer;
pub use train_lib::{run_experiment, EvalCheckpoint, Mode, RunOptions, PARAMS_FILE};
