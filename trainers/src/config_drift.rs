//! Config drift on resume: the resolved config of a rerun compared with the `params.yaml` the
//! model_dir already holds. Changes to cadence keys are logged; any other change stops the run
//! unless the user accepts it, and an accepted change is recorded in model_dir.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use grove_core::config::{flatten, ExperimentConfig};
use grove_core::{Error, Result};
use serde_yaml::Value;

/// Keys a resumed run may change freely: how long, how often and where summaries go, not
/// what is trained. `task.init_checkpoint` is here too: it is never read once model_dir has
/// a checkpoint.
const CADENCE_KEYS: &[&str] = &[
    "trainer.train_steps",
    "trainer.train_epochs",
    "trainer.max_duration",
    "trainer.steps_per_loop",
    "trainer.summary_interval",
    "trainer.checkpoint_interval",
    "trainer.max_to_keep",
    "trainer.validation_steps",
    "trainer.validation_interval",
    "trainer.continuous_eval_timeout",
    "runtime.num_threads",
    "runtime.input_threads",
    "runtime.loggers",
    "runtime.mlflow.tracking_uri",
    "runtime.mlflow.experiment_name",
    "runtime.mlflow.run_name",
    "runtime.mlflow.api_token",
    "task.init_checkpoint",
];

/// File in model_dir recording accepted config changes, one JSON object per line.
pub const CHANGES_FILE: &str = "config_changes.jsonl";

/// One key whose value differs between params.yaml and the new config.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Dotted key.
    pub key: String,
    /// Value in params.yaml (`None`: absent there).
    pub old: Option<Value>,
    /// Value in the new config (`None`: absent now).
    pub new: Option<Value>,
}

/// The changes that need acceptance, after logging the cadence changes. Errors (exit code 2)
/// when there are such changes and `allow_config_change` is false, or params.yaml is unreadable.
pub fn check_drift(
    config: &ExperimentConfig,
    params_file: &Path,
    allow_config_change: bool,
) -> Result<Vec<Change>> {
    let text = match std::fs::read_to_string(params_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot read", params_file, e)),
    };
    let old: Value = serde_yaml::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "{}: not valid YAML ({e}); restore it or remove it",
            params_file.display()
        ))
    })?;
    let (cadence, other): (Vec<Change>, Vec<Change>) =
        differences(&flatten(&old), &flatten(&config.to_masked_yaml_value()))
            .into_iter()
            .partition(|c| CADENCE_KEYS.contains(&c.key.as_str()));
    for change in &cadence {
        tracing::info!("config change on resume: {}", describe(change));
    }
    if !other.is_empty() && !allow_config_change {
        let lines: Vec<String> = other.iter().map(|c| format!("  {}", describe(c))).collect();
        return Err(Error::Config(format!(
            "{} holds the config this model_dir was trained with, and this run differs:\n{}\n\
             rerun with the same config, use another --model_dir, or pass \
             --allow_config_change to continue with the new values",
            params_file.display(),
            lines.join("\n")
        )));
    }
    Ok(other)
}

/// Appends accepted changes to `model_dir/config_changes.jsonl`, with the step they apply from.
pub fn record_changes(model_dir: &Path, global_step: u64, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let json = |v: &Option<Value>| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    let entries: serde_json::Map<String, serde_json::Value> = changes
        .iter()
        .map(|c| {
            let entry = serde_json::json!({"old": json(&c.old), "new": json(&c.new)});
            (c.key.clone(), entry)
        })
        .collect();
    let line = serde_json::json!({"global_step": global_step, "changes": entries});
    let path = model_dir.join(CHANGES_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"))
        .map_err(|e| Error::io("cannot write", &path, e))?;
    tracing::warn!(
        "accepted {} config change(s), recorded in {}",
        changes.len(),
        path.display()
    );
    Ok(())
}

fn differences(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<Change> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| Change {
            key: key.clone(),
            old: old.get(key).cloned(),
            new: new.get(key).cloned(),
        })
        .collect()
}

fn describe(change: &Change) -> String {
    let show = |v: &Option<Value>| match v {
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
        None => "(absent)".to_string(),
    };
    format!(
        "{}: {} -> {}",
        change.key,
        show(&change.old),
        show(&change.new)
    )
}
