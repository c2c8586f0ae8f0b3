//! Secrets kept out of saved configs: a value that came from `${env:...}` under a key naming a
//! token, password, secret or key (`api_key`, `tracking_token`), or that copies such a value
//! through a reference, is written as [`MASK`] in `params.yaml`, `--print_config` and the
//! params sent to trackers, so a credential given through the environment never
//! lands in a model_dir or a terminal log. The references themselves (`${env:API_KEY}`) are
//! not secret: `params.unresolved.yaml` shows them.

use std::collections::BTreeMap;

use serde_yaml::Value;

/// What a masked value is written as.
pub const MASK: &str = "***";

/// Words of a key's last segment that mark its value as a credential.
const SECRET_WORDS: [&str; 6] = [
    "token",
    "password",
    "passwd",
    "secret",
    "key",
    "credentials",
];

/// Whether `key` (dotted, e.g. `runtime.mlflow.api_token`) names a credential: its last
/// segment, split at `_` and `-`, contains one of the words above.
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last).to_ascii_lowercase();
    last.split(['_', '-'])
        .any(|word| SECRET_WORDS.contains(&word))
}

/// The keys among `references` (dotted key → the text as given) whose values are masked: a
/// secret key whose text reads the environment, and any key whose text refers to a masked
/// key (`url: "https://${runtime.mlflow.api_token}@host"`), however many references away.
pub fn masked_keys(references: &BTreeMap<String, String>) -> Vec<&str> {
    let mut masked: Vec<&str> = references
        .iter()
        .filter(|(key, text)| text.contains("${env:") && is_secret_key(key))
        .map(|(key, _)| key.as_str())
        .collect();
    loop {
        let copies: Vec<&str> = references
            .iter()
            .filter(|(key, text)| {
                !masked.contains(&key.as_str())
                    && masked
                        .iter()
                        .any(|secret| text.contains(&format!("${{{secret}}}")))
            })
            .map(|(key, _)| key.as_str())
            .collect();
        if copies.is_empty() {
            masked.sort_unstable();
            return masked;
        }
        masked.extend(copies);
    }
}

/// Replaces the leaf at dotted `key` (segments `name` or `name[i]`) of `value` with [`MASK`];
/// a path that is not there is left alone.
pub fn mask_leaf(value: &mut Value, key: &str) {
    let mut node = value;
    for segment in key.split('.') {
        let mut parts = segment.split('[');
        let name = parts.next().unwrap_or_default();
        let Some(child) = node.get_mut(name) else {
            return;
        };
        node = child;
        for index in parts {
            let Some(child) = index
                .trim_end_matches(']')
                .parse::<usize>()
                .ok()
                .and_then(|i| node.get_mut(i))
            else {
                return;
            };
            node = child;
        }
    }
    *node = Value::String(MASK.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_recognised_by_their_words() {
        for key in [
            "runtime.mlflow.api_token",
            "task.api_key",
            "a.b[0].db-password",
            "secret",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "task.keyword",
            "trainer.best_checkpoint_eval_metric",
            "task.monkey",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn only_environment_values_of_secret_keys_are_masked() {
        let references = BTreeMap::from([
            ("task.api_key".to_string(), "${env:API_KEY}".to_string()),
            ("task.name".to_string(), "${env:USER}".to_string()),
            ("task.other_key".to_string(), "${task.name}".to_string()),
        ]);
        assert_eq!(masked_keys(&references), ["task.api_key"]);
    }

    #[test]
    fn values_that_copy_a_masked_secret_are_masked_too() {
        let references = BTreeMap::from([
            (
                "runtime.mlflow.api_token".to_string(),
                "${env:TOKEN}".to_string(),
            ),
            (
                "task.url".to_string(),
                "https://${runtime.mlflow.api_token}@host".to_string(),
            ),
            ("task.copy_of_url".to_string(), "${task.url}".to_string()),
            ("task.name".to_string(), "${env:USER}".to_string()),
        ]);
        assert_eq!(
            masked_keys(&references),
            ["runtime.mlflow.api_token", "task.copy_of_url", "task.url"]
        );
    }

    #[test]
    fn a_leaf_is_masked_through_mappings_and_lists() {
        let mut value: Value =
            serde_yaml::from_str("{a: {heads: [{token: x}, {token: y}]}, b: 1}").unwrap();
        mask_leaf(&mut value, "a.heads[1].token");
        mask_leaf(&mut value, "a.missing.token");
        let expected: Value =
            serde_yaml::from_str("{a: {heads: [{token: x}, {token: '***'}]}, b: 1}").unwrap();
        assert_eq!(value, expected);
    }
}
