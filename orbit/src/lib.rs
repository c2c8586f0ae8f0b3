//! grove-orbit: the outer loop of training, independent of what is trained.
//!
//! It owns the [`Controller`] (train / evaluate / train-and-evaluate at absolute-step cadences),
//! the runner traits it drives ([`Trainer`], [`Evaluator`], [`Checkpointable`]), the
//! [`CheckpointManager`] (numbered, atomic, retained checkpoints with restore-or-initialize),
//! [`action`]s run after train loops and evaluations (the extension point) with Grove's own:
//! best-checkpoint export ([`BestCheckpointExporter`]), moving-average checkpoints
//! ([`EmaCheckpointing`]), [`EarlyStopping`], blow-up [`Recovery`], [`Preemption`], the
//! training-time budget ([`TrainBudget`]) and evaluations, summaries and checkpoints on time
//! ([`TrainTimer`]); summaries ([`summary`]: TensorBoard event files and
//! `metrics.jsonl`) and the progress display. It knows nothing of tasks, models, tensors or
//! configs: runners report plain [`Logs`] and save themselves into a directory.

pub mod action;
pub mod best_checkpoint;
pub mod checkpoint;
pub mod controller;
pub mod controller_state;
pub mod early_stopping;
pub mod ema_checkpointing;
pub mod error;
pub mod fault;
mod fs_atomic;
pub mod logs;
mod loop_means;
pub mod loss_guard;
pub mod manifest;
pub mod preemption;
pub mod process_lock;
pub mod progress;
pub mod runner;
pub mod summary;
pub mod train_budget;
pub mod train_timer;
mod training_time;

pub use action::{Action, ActionContext, Directive};
pub use best_checkpoint::{BestCheckpointExporter, Comparison};
pub use checkpoint::{
    checkpoint_name, latest_checkpoint_in, CheckpointFiles, CheckpointManager, INDEX_FILE,
};
pub use controller::{Controller, ControllerOptions};
pub use early_stopping::{EarlyStopping, EarlyStoppingState};
pub use ema_checkpointing::EmaCheckpointing;
pub use error::{ErrorKind, OrbitError, Result, RunnerError};
pub use fs_atomic::{remove_dir_if_present, write_atomically};
pub use logs::Logs;
pub use loss_guard::{LossGuard, Recovery};
pub use preemption::Preemption;
pub use runner::{Checkpointable, Evaluator, Trainer};
pub use train_budget::TrainBudget;
pub use train_timer::TrainTimer;
