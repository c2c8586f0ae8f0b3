//! `train --sweep=FILE` and `train --sweep_status`: the command line's side of grove-sweep.
//! Trials run this same program, so a user's own binary sweeps its own experiments.

use std::path::Path;

use grove_core::registry::get_experiment;
use grove_orbit::Preemption;
use grove_sweep::{Sweep, SweepError, SweepFlags, SweepRun, TrialCommand};

use crate::cli::Cli;

/// Runs (or continues) the sweep `file` describes in `--model_dir`, then prints its summary.
pub(crate) fn run(cli: &Cli, file: &Path) -> Result<(), SweepError> {
    let Some(sweep_dir) = &cli.model_dir else {
        unreachable!("clap requires --model_dir with --sweep");
    };
    let sweep = Sweep::read(file)?;
    let flags = SweepFlags {
        experiment: cli.experiment.clone(),
        config_files: cli.config_file.clone(),
        params_overrides: cli.params_override.clone(),
        trailing_overrides: cli.overrides.clone(),
    };
    let environment: Vec<(String, String)> = std::env::vars().collect();
    let command = TrialCommand::plan(&sweep, &flags, &environment, get_experiment)?;
    let program = std::env::current_exe()
        .map_err(|e| SweepError::io("cannot find", "this program (for the trials)", e))?;
    let preemption = Preemption::on_signals().map_err(|e| SweepError::Spec(e.to_string()))?;
    tracing::info!(
        "sweep {} | experiment {} | {} trials, {} at a time, {} threads each | {}",
        file.display(),
        command.layers.experiment,
        sweep.n_trials,
        sweep.spec.parallel,
        command.threads_per_trial,
        sweep_dir.display()
    );
    let summary = grove_sweep::run_sweep(SweepRun {
        sweep: &sweep,
        command: &command,
        program: &program,
        sweep_dir,
        preemption,
    })?;
    print!("{}", summary.markdown());
    Ok(())
}

/// Prints the standing of the sweep in `--model_dir`.
pub(crate) fn status(cli: &Cli) -> Result<(), SweepError> {
    let Some(sweep_dir) = &cli.model_dir else {
        unreachable!("clap requires --model_dir with --sweep_status");
    };
    print!("{}", grove_sweep::status(sweep_dir)?.markdown());
    Ok(())
}
