//! Logs: the scalar outputs of a train loop or an evaluation.

use std::collections::BTreeMap;

/// Named scalar outputs of one train loop or one evaluation (`training_loss`, `learning_rate`,
/// task metrics, ...). Sorted by name so logs, summaries and JSON lines read the same every run.
pub type Logs = BTreeMap<String, f64>;

/// The value of evaluation metric `metric` (nested names `a|b` are logged as `a/b`); a missing
/// metric is an error naming `setting` and the metrics there are.
pub fn metric_value(logs: &Logs, metric: &str, setting: &str) -> crate::error::Result<f64> {
    let key = metric.replace('|', "/");
    logs.get(&key).copied().ok_or_else(|| {
        crate::error::OrbitError::InvalidSetting(format!(
            "{setting} `{metric}` is not among the evaluation metrics: {}",
            logs.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Logs of `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn logs_of(pairs: &[(&str, f64)]) -> Logs {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}
