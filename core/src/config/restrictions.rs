//! Restrictions: Model Garden's cross-field rules (`"a.b != c.d"`, `"x < y"`, `"x != None"`),
//! checked after all layers are merged. Each side is a dotted config key, a number or `None`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::error::{Error, Result};

/// Comparison operators, longest first so `<=` is not read as `<`.
const OPERATORS: [&str; 6] = ["==", "!=", "<=", ">=", "<", ">"];

/// Checks every restriction against the flat (dotted-key) config; a failure names both sides
/// and their values.
pub fn check_restrictions(restrictions: &[String], flat: &BTreeMap<String, Value>) -> Result<()> {
    restrictions.iter().try_for_each(|r| check_one(r, flat))
}

fn check_one(restriction: &str, flat: &BTreeMap<String, Value>) -> Result<()> {
    let (left, op, right) = split(restriction)?;
    let (left_value, right_value) = (
        operand(left, flat, restriction)?,
        operand(right, flat, restriction)?,
    );
    let holds = match compare(&left_value, &right_value) {
        Some(ordering) => match op {
            "==" => ordering == Ordering::Equal,
            "!=" => ordering != Ordering::Equal,
            "<" => ordering == Ordering::Less,
            "<=" => ordering != Ordering::Greater,
            ">" => ordering == Ordering::Greater,
            _ => ordering != Ordering::Less,
        },
        None => op == "!=",
    };
    if holds {
        return Ok(());
    }
    Err(Error::Config(format!(
        "restriction `{restriction}` does not hold: {} = {}, {} = {}; change one of them",
        left,
        show(&left_value),
        right,
        show(&right_value)
    )))
}

fn split(restriction: &str) -> Result<(&str, &str, &str)> {
    OPERATORS
        .iter()
        .find_map(|op| {
            let (left, right) = restriction.split_once(op)?;
            Some((left.trim(), *op, right.trim()))
        })
        .filter(|(left, _, right)| !left.is_empty() && !right.is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "restriction `{restriction}` is not `<key> <op> <key|number|None>` with op one \
                 of {}",
                OPERATORS.join(" ")
            ))
        })
}

fn operand(text: &str, flat: &BTreeMap<String, Value>, restriction: &str) -> Result<Value> {
    if text == "None" {
        return Ok(Value::Null);
    }
    if let Ok(number) = text.parse::<f64>() {
        return Ok(Value::from(number));
    }
    flat.get(text).cloned().ok_or_else(|| {
        Error::Config(format!(
            "restriction `{restriction}` names `{text}`, which is not a config key"
        ))
    })
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (x, y) if x == y => Some(Ordering::Equal),
        // Unequal non-numbers are unordered: only `!=` holds.
        _ => None,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "None".to_string(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat() -> BTreeMap<String, Value> {
        serde_yaml::from_str("{a: 1, b: 2, c: 2.0, name: x, unset: null, on: true}").unwrap()
    }

    fn check(r: &str) -> Result<()> {
        check_restrictions(&[r.to_string()], &flat())
    }

    #[test]
    fn comparisons_of_keys_numbers_and_none() {
        for ok in [
            "a < b",
            "b <= c",
            "b == c",
            "a != b",
            "b >= 2",
            "a > 0",
            "name != None",
            "unset == None",
            "on == on",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        let err = check("a == b").unwrap_err().to_string();
        assert!(
            err.contains("`a == b` does not hold: a = 1, b = 2"),
            "{err}"
        );
        let err = check("unset != None").unwrap_err().to_string();
        assert!(err.contains("unset = None"), "{err}");
    }

    #[test]
    fn malformed_restrictions_and_unknown_keys_are_errors() {
        assert!(check("a b")
            .unwrap_err()
            .to_string()
            .contains("is not `<key> <op>"));
        assert!(check("nope < 1")
            .unwrap_err()
            .to_string()
            .contains("not a config key"));
    }
}
