//! A run's hyperparameters as trackers and dashboards list them: every leaf of the resolved
//! config by its dotted key, with params.yaml's values (secrets from the environment masked).
//! Nulls and empty sections are left out; lists are one value.

use std::collections::BTreeMap;

use grove_core::config::{flatten, ExperimentConfig};
use serde_yaml::Value;

/// The config's leaves by dotted key (nulls and empty sections left out).
pub fn config_leaves(config: &ExperimentConfig) -> BTreeMap<String, Value> {
    flatten(&config.to_masked_yaml_value())
        .into_iter()
        .filter(|(_, value)| !matches!(value, Value::Null | Value::Mapping(_) | Value::Tagged(_)))
        .collect()
}

/// A leaf as text: numbers and flags as YAML writes them, lists as their JSON text.
pub fn leaf_text(value: &Value) -> String {
    match value {
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        other => serde_yaml::from_value::<serde_json::Value>(other.clone())
            .map(|json| json.to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_read_as_params_yaml_writes_them() {
        let yaml: Value = serde_yaml::from_str("a: 0.001\nb: [1, 2]\nc: true\nd: text").unwrap();
        let texts: Vec<String> = flatten(&yaml).values().map(leaf_text).collect();
        assert_eq!(texts, ["0.001", "[1,2]", "true", "text"]);
    }
}
