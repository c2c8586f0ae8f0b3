//! The sweep in TensorBoard's HParams dashboard: the sweep directory gets the experiment
//! record (the swept config keys with their domains, and the sweep's metric in each trial's
//! `validation` run), so TensorBoard pointed at the sweep directory shows the trials, each a
//! session its own run wrote, as a table and a parallel-coordinates view. A trial the sweep
//! records as failed gets a failed session end.

use std::path::Path;

use grove_orbit::summary::hparams::{
    experiment_written, session_ended, write_experiment, write_session_end, HParamDomain,
    HParamInfo, HParamValue, MetricInfo, SessionStatus,
};
use grove_trainers::hparams_session::hparam_value;

use crate::error::{Result, SweepError};
use crate::space::Domain;
use crate::spec::Sweep;

/// Writes the experiment record into `sweep_dir` unless it holds one.
pub fn write_experiment_record(sweep: &Sweep, sweep_dir: &Path) -> Result<()> {
    if experiment_written(sweep_dir) {
        return Ok(());
    }
    let hparams: Vec<HParamInfo> = (sweep.space.parameters.iter())
        .map(|parameter| HParamInfo {
            name: parameter.key.clone(),
            domain: match &parameter.domain {
                Domain::Float { low, high, .. } => HParamDomain::Interval {
                    min: *low,
                    max: *high,
                },
                Domain::Int { low, high, .. } => HParamDomain::Interval {
                    min: *low as f64,
                    max: *high as f64,
                },
                Domain::Choice(values) => {
                    HParamDomain::Discrete(values.iter().filter_map(as_hparam).collect())
                }
            },
        })
        .collect();
    let metric = MetricInfo {
        group: "validation".to_string(),
        tag: sweep.spec.metric.log_key(),
    };
    write_experiment(sweep_dir, &hparams, &[metric])
        .map_err(|e| SweepError::Ledger(format!("cannot write the HParams experiment: {e}")))?;
    Ok(())
}

/// Marks a failed trial's session as failed, unless its session has ended already.
pub fn mark_failed(model_dir: &Path) -> Result<()> {
    if session_ended(model_dir) {
        return Ok(());
    }
    write_session_end(model_dir, SessionStatus::Failure)
        .map_err(|e| SweepError::Ledger(format!("cannot end the trial's HParams session: {e}")))?;
    Ok(())
}

/// A swept value as the trial's session records it (lists as JSON text).
fn as_hparam(value: &serde_json::Value) -> Option<HParamValue> {
    hparam_value(&serde_yaml::to_value(value).ok()?)
}
