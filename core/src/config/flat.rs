//! Conversions between nested config values and flat dotted maps
//! (`{trainer: {train_steps: 5}}` ↔ `{"trainer.train_steps": 5}`). Lists of mappings flatten to
//! indexed keys (`task.model.cls_heads[0].name`); lists of scalars and empty collections are
//! leaves.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// Every leaf of `value` by its dotted key.
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    let mut flat = BTreeMap::new();
    flatten_into("", value, &mut flat);
    flat
}

fn flatten_into(prefix: &str, value: &Value, flat: &mut BTreeMap<String, Value>) {
    match value {
        Value::Mapping(mapping) if !mapping.is_empty() => {
            for (key, child) in mapping {
                let key = key_text(key);
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_into(&path, child, flat);
            }
        }
        Value::Sequence(items) if !items.is_empty() && items.iter().all(Value::is_mapping) => {
            for (i, item) in items.iter().enumerate() {
                flatten_into(&format!("{prefix}[{i}]"), item, flat);
            }
        }
        leaf => {
            flat.insert(prefix.to_string(), leaf.clone());
        }
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// The nested value of a flat dotted map (the inverse of [`flatten`]).
pub fn unflatten(flat: &BTreeMap<String, Value>) -> Result<Value> {
    let mut root = Value::Mapping(Mapping::new());
    for (key, value) in flat {
        let mut node = &mut root;
        for step in steps(key)? {
            node = child(node, step, key)?;
        }
        *node = value.clone();
    }
    Ok(root)
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(key: &str) -> Result<Vec<Step<'_>>> {
    let bad = || Error::Config(format!("`{key}` is not a dotted key such as a.b[0].c"));
    let mut steps = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if name.is_empty() {
            return Err(bad());
        }
        steps.push(Step::Key(name));
        while !rest.is_empty() {
            let (digits, after) = rest.split_once(']').ok_or_else(bad)?;
            steps.push(Step::Index(digits.parse().map_err(|_| bad())?));
            rest = after.strip_prefix('[').unwrap_or(after);
            if !after.is_empty() && !after.starts_with('[') {
                return Err(bad());
            }
        }
    }
    Ok(steps)
}

fn child<'a>(node: &'a mut Value, step: Step<'_>, key: &str) -> Result<&'a mut Value> {
    let clash = || Error::Config(format!("`{key}` clashes with another key of the map"));
    match step {
        Step::Key(name) => {
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            let mapping = node.as_mapping_mut().ok_or_else(clash)?;
            Ok(mapping
                .entry(Value::String(name.to_string()))
                .or_insert(Value::Null))
        }
        Step::Index(i) => {
            if node.is_null() {
                *node = Value::Sequence(Vec::new());
            }
            let items = node.as_sequence_mut().ok_or_else(clash)?;
            if items.len() <= i {
                items.resize(i + 1, Value::Null);
            }
            Ok(&mut items[i])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn nested_and_flat_forms_round_trip() {
        let nested = yaml(
            "{task: {heads: [{name: a, n: 2}, {name: b, n: 3}], ids: [1, 2], empty: {}}, \
             trainer: {steps: 5, rate: 1.0e-4, off: null}}",
        );
        let flat = flatten(&nested);
        assert_eq!(flat["task.heads[1].name"], yaml("b"));
        assert_eq!(flat["task.ids"], yaml("[1, 2]"));
        assert_eq!(flat["trainer.off"], Value::Null);
        assert_eq!(unflatten(&flat).unwrap(), nested);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let flat = BTreeMap::from([("a..b".to_string(), Value::Null)]);
        assert!(unflatten(&flat).is_err());
        let flat = BTreeMap::from([("a[x]".to_string(), Value::Null)]);
        assert!(unflatten(&flat).is_err());
    }
}
