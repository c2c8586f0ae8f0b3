//! grove-sweep: hyperparameter sweeps over a Grove experiment's config keys.
//!
//! A sweep file ([`spec`]) names the parameters ([`space`]), the sampler ([`sampler`]: grid,
//! random or TPE), the metric and its goal, the budget and the pruner ([`pruner`]). Each
//! trial is a normal `train` run in `SWEEP_DIR/trial-<n>/` ([`launcher`], [`plan`]), so
//! every guarantee of a run holds per trial; the [`orchestrator`] keeps the crash-safe
//! [`ledger`] and continues an interrupted sweep; inside each trial the `sweep_trial` eval
//! action ([`trial_action`]) checks the metric and prunes; [`summary`] ranks the trials;
//! [`hparams_experiment`] shows the sweep in TensorBoard's HParams dashboard.

pub mod error;
pub mod hparams_experiment;
pub mod launcher;
pub mod ledger;
pub mod orchestrator;
pub mod plan;
pub mod pruner;
pub mod results;
pub mod sampler;
pub mod space;
pub mod spec;
pub mod summary;
pub mod trial_action;

use std::path::Path;

pub use error::{Result, SweepError};
pub use orchestrator::{run_sweep, SweepRecord, SweepRun};
pub use plan::{SweepFlags, TrialCommand};
pub use spec::Sweep;
pub use summary::SweepSummary;

/// Registers the `sweep_trial` eval action (trials run it). Call once at start-up, with
/// the other registrations.
pub fn register() -> grove_core::Result<()> {
    grove_trainers::register_action(trial_action::ACTION_NAME, trial_action::sweep_trial_action)
}

/// The standing of the sweep in `sweep_dir`, from its ledger (for `--sweep_status`; safe
/// while the sweep runs).
pub fn status(sweep_dir: &Path) -> Result<SweepSummary> {
    let record = SweepRecord::read(sweep_dir)?;
    let trials = ledger::Ledger::read(sweep_dir)?;
    Ok(SweepSummary::new(&record.metric, record.n_trials, &trials))
}
