//! Interpolation: a string leaf may hold `${dotted.key}` (another config value) or
//! `${env:VAR}` (an environment variable). References are resolved after all layers are
//! merged, before the config is typed, so a leaf that is wholly one reference takes the
//! referenced value's type (`train_steps: ${trainer.decay}` is an integer). Cycles and dangling
//! references are errors naming the keys.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::error::{Error, Result};

/// The leaves that held references: their resolved values and their original text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interpolated {
    /// Dotted key → resolved value.
    pub values: BTreeMap<String, Value>,
    /// Dotted key → the text with references, as the layers gave it.
    pub references: BTreeMap<String, String>,
}

/// Resolves every reference in the string leaves of `flat` (a flattened merged config).
pub fn interpolate(
    flat: &BTreeMap<String, Value>,
    environment: &[(String, String)],
) -> Result<Interpolated> {
    let mut resolver = Resolver {
        flat,
        environment,
        done: BTreeMap::new(),
        visiting: Vec::new(),
    };
    let mut result = Interpolated::default();
    for (key, value) in flat {
        if let Value::String(text) = value {
            if text.contains("${") {
                let resolved = resolver.resolve(key)?;
                result.values.insert(key.clone(), resolved);
                result.references.insert(key.clone(), text.clone());
            }
        }
    }
    Ok(result)
}

struct Resolver<'a> {
    flat: &'a BTreeMap<String, Value>,
    environment: &'a [(String, String)],
    done: BTreeMap<String, Value>,
    visiting: Vec<String>,
}

impl Resolver<'_> {
    /// The value of `key` with its references resolved.
    fn resolve(&mut self, key: &str) -> Result<Value> {
        if let Some(value) = self.done.get(key) {
            return Ok(value.clone());
        }
        if let Some(start) = self.visiting.iter().position(|k| k == key) {
            let mut cycle = self.visiting[start..].to_vec();
            cycle.push(key.to_string());
            return Err(Error::Config(format!(
                "interpolation cycle: {}; break it by giving one of these a value",
                cycle.join(" -> ")
            )));
        }
        let value = self.flat.get(key).cloned().ok_or_else(|| {
            Error::Config(format!(
                "`{}` refers to ${{{key}}}, which is not a config key",
                self.visiting.last().map_or("?", String::as_str)
            ))
        })?;
        let Value::String(text) = &value else {
            return Ok(value);
        };
        if !text.contains("${") {
            return Ok(value);
        }
        self.visiting.push(key.to_string());
        let resolved = self.substitute(key, text)?;
        self.visiting.pop();
        self.done.insert(key.to_string(), resolved.clone());
        Ok(resolved)
    }

    /// Replaces each `${...}` of `text`; a text that is one whole reference keeps its type.
    fn substitute(&mut self, key: &str, text: &str) -> Result<Value> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let end = rest[start..].find('}').ok_or_else(|| {
                Error::Config(format!("`{key}` = {text:?}: `${{` is not closed by `}}`"))
            })? + start;
            let reference = rest[start + 2..end].trim();
            let value = self.reference(key, reference)?;
            if start == 0 && end + 1 == rest.len() && out.is_empty() {
                return Ok(value);
            }
            out.push_str(&rest[..start]);
            out.push_str(&scalar_text(key, &value)?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn reference(&mut self, key: &str, reference: &str) -> Result<Value> {
        match reference.strip_prefix("env:") {
            Some(variable) => self
                .environment
                .iter()
                .find(|(name, _)| name == variable)
                .map(|(_, value)| {
                    serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.clone()))
                })
                .ok_or_else(|| {
                    Error::Config(format!(
                        "`{key}` refers to ${{env:{variable}}}, but {variable} is not set"
                    ))
                }),
            None => self.resolve(reference),
        }
    }
}

fn scalar_text(key: &str, value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(Error::Config(format!(
            "`{key}` embeds a reference to a list, mapping or null in a longer string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(yaml: &str) -> BTreeMap<String, Value> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn env() -> Vec<(String, String)> {
        vec![
            ("DATA".to_string(), "/data".to_string()),
            ("N".to_string(), "4".to_string()),
        ]
    }

    #[test]
    fn references_resolve_with_their_type_or_inside_strings() {
        let resolved = interpolate(
            &flat("{a: 5, b: '${a}', c: 'ckpt-${b}', d: '${env:DATA}/x', e: '${env:N}', f: plain}"),
            &env(),
        )
        .unwrap();
        assert_eq!(resolved.values["b"], Value::from(5));
        assert_eq!(resolved.values["c"], Value::from("ckpt-5"));
        assert_eq!(resolved.values["d"], Value::from("/data/x"));
        assert_eq!(resolved.values["e"], Value::from(4));
        assert_eq!(resolved.references["c"], "ckpt-${b}");
        assert!(!resolved.values.contains_key("f"));
    }

    #[test]
    fn cycles_and_dangling_references_are_named() {
        let err = interpolate(&flat("{a: '${b}', b: '${a}'}"), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("interpolation cycle: a -> b -> a"), "{err}");
        let err = interpolate(&flat("{a: '${nope}'}"), &env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`a` refers to ${nope}, which is not a config key"),
            "{err}"
        );
        let err = interpolate(&flat("{a: '${env:MISSING}'}"), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("MISSING is not set"), "{err}");
        let err = interpolate(&flat("{a: 'x${b'}"), &env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not closed"), "{err}");
    }
}
