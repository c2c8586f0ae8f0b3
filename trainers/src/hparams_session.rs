//! Every training run is a session of TensorBoard's HParams dashboard: its first start writes
//! the resolved config's values (each leaf by its dotted key, as params.yaml holds them,
//! secrets masked) as `session_start_info` in model_dir, and the run that trains to the end
//! writes `session_end_info` with success. A run that fails leaves the status open (a later
//! run may still finish it; TensorBoard keeps a run's first end record). Written only when
//! `runtime.loggers` has `tensorboard`.

use std::collections::BTreeMap;
use std::path::Path;

use grove_core::config::ExperimentConfig;
use grove_orbit::summary::hparams::{
    session_ended, session_started, write_session_end, write_session_start, HParamValue,
    SessionStatus,
};
use grove_orbit::summary::SummarySink;

use crate::error::Result;
use crate::run_params::config_leaves;

/// Writes the session start, unless model_dir has one or TensorBoard summaries are off.
pub(crate) fn start_session(config: &ExperimentConfig, model_dir: &Path) -> Result<()> {
    if !writes_tensorboard(config) || session_started(model_dir) {
        return Ok(());
    }
    write_session_start(model_dir, &hparams_of(config))?;
    Ok(())
}

/// Writes the session's successful end, unless it has an end already.
pub(crate) fn end_session(config: &ExperimentConfig, model_dir: &Path) -> Result<()> {
    if !writes_tensorboard(config) || session_ended(model_dir) {
        return Ok(());
    }
    write_session_end(model_dir, SessionStatus::Success)?;
    Ok(())
}

fn writes_tensorboard(config: &ExperimentConfig) -> bool {
    config.runtime.loggers.contains(&SummarySink::Tensorboard)
}

/// The config's leaves as hyperparameters: numbers, text and flags as themselves, lists as
/// their JSON text.
fn hparams_of(config: &ExperimentConfig) -> BTreeMap<String, HParamValue> {
    config_leaves(config)
        .into_iter()
        .filter_map(|(key, value)| Some((key, hparam_value(&value)?)))
        .collect()
}

/// One config value as a hyperparameter.
pub fn hparam_value(value: &serde_yaml::Value) -> Option<HParamValue> {
    use serde_yaml::Value;
    match value {
        Value::Bool(flag) => Some(HParamValue::Bool(*flag)),
        Value::Number(number) => number.as_f64().map(HParamValue::Number),
        Value::String(text) => Some(HParamValue::Text(text.clone())),
        Value::Sequence(_) => {
            let json: serde_json::Value = serde_yaml::from_value(value.clone()).ok()?;
            Some(HParamValue::Text(json.to_string()))
        }
        Value::Null | Value::Mapping(_) | Value::Tagged(_) => None,
    }
}
