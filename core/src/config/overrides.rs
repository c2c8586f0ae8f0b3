//! Parsing `--params_override` strings, as Model Garden reads them: comma-separated
//! `dotted.key=value` pairs with YAML values (`a.b=1,c=[1,2],d='x, y',g.h[1]=2,g.h[0]=1`), a
//! YAML / JSON mapping (`{a: {b: 1}}`), or the path of a YAML file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// What one override string holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// Nested values to layer (from pairs or a mapping).
    Values(Mapping),
    /// A YAML file to layer, as `--config_file` would.
    File(PathBuf),
}

/// Parses one override string. An empty string is an empty mapping; a string that is neither
/// pairs nor a mapping must name an existing file. A malformed string is reported as what it
/// is (position and reason), never as a missing file.
pub fn parse_override(text: &str) -> Result<Override> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Override::Values(Mapping::new()));
    }
    if !starts_with_assignment(trimmed) {
        if let Ok(Value::Mapping(mapping)) = serde_yaml::from_str::<Value>(trimmed) {
            return Ok(Override::Values(mapping));
        }
    }
    let pieces = split_top_level(text).map_err(|e| error(text, &e))?;
    if !pieces.iter().any(|(_, piece)| piece.contains('=')) {
        let path = PathBuf::from(trimmed);
        if path.is_file() {
            return Ok(Override::File(path));
        }
        return Err(error(
            text,
            "it is neither key=value pairs, a YAML mapping, nor an existing YAML file",
        ));
    }
    parse_pairs(text, &pieces).map(Override::Values)
}

/// Whether `text` begins `dotted.key=` (or `key[i]=`): then it is pairs, even when YAML would
/// also read it as a mapping (`a.b={c: 1}` is a YAML mapping with the key `a.b={c`).
fn starts_with_assignment(text: &str) -> bool {
    let Some((key, _)) = text.split_once('=') else {
        return false;
    };
    let key = key.trim_end();
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
}

fn parse_pairs(text: &str, pieces: &[(usize, &str)]) -> Result<Mapping> {
    let mut root = Mapping::new();
    let mut indexed: BTreeMap<String, BTreeMap<usize, Value>> = BTreeMap::new();
    for &(start, pair) in pieces {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            error(
                text,
                &format!(
                    "`{}` at character {start} is not of the form key=value",
                    pair.trim()
                ),
            )
        })?;
        let (key, index) = split_index(key.trim()).ok_or_else(|| {
            error(
                text,
                &format!(
                    "`{}` at character {start} is not a dotted key such as trainer.train_steps or a.b[0]",
                    key.trim()
                ),
            )
        })?;
        let value = parse_value(value.trim()).map_err(|e| error(text, &e))?;
        match index {
            Some(i) => {
                if indexed
                    .entry(key.to_string())
                    .or_default()
                    .insert(i, value)
                    .is_some()
                {
                    return Err(error(text, &format!("`{key}[{i}]` is given twice")));
                }
            }
            None => insert_dotted(&mut root, key, value).map_err(|e| error(text, &e))?,
        }
    }
    for (key, items) in indexed {
        let list = assemble_list(&key, items).map_err(|e| error(text, &e))?;
        insert_dotted(&mut root, &key, list).map_err(|e| error(text, &e))?;
    }
    Ok(root)
}

/// `a.b[3]` → (`a.b`, Some(3)); `a.b` → (`a.b`, None); anything else → None.
fn split_index(key: &str) -> Option<(&str, Option<usize>)> {
    let (name, index) = match key.strip_suffix(']').and_then(|k| k.split_once('[')) {
        Some((name, digits)) => (name, Some(digits.parse().ok()?)),
        None => (key, None),
    };
    is_dotted_key(name).then_some((name, index))
}

/// Items `0..n` of an indexed override as a list; a gap is an error naming the list.
fn assemble_list(key: &str, items: BTreeMap<usize, Value>) -> std::result::Result<Value, String> {
    let given: Vec<usize> = items.keys().copied().collect();
    if given.iter().enumerate().any(|(position, &i)| position != i) {
        return Err(format!(
            "`{key}` gets items {given:?}: give every index from 0 to the largest, or the whole list as {key}=[...]"
        ));
    }
    Ok(Value::Sequence(items.into_values().collect()))
}

fn error(text: &str, reason: &str) -> Error {
    Error::Config(format!(
        "--params_override {text:?}: {reason}; write `a.b=1,c=[1,2],d='x, y'` or a YAML mapping \
         such as `{{a: {{b: 1}}}}`"
    ))
}

/// Splits at commas outside quotes and brackets, returning each piece with its start offset.
fn split_top_level(text: &str) -> std::result::Result<Vec<(usize, &str)>, String> {
    let mut pieces = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced `{c}` at character {i}"));
                }
            }
            (None, ',') if depth == 0 => {
                pieces.push((start, &text[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if depth != 0 {
        return Err("unclosed `[` or `{`".to_string());
    }
    pieces.push((start, &text[start..]));
    Ok(pieces
        .into_iter()
        .filter(|(_, piece)| !piece.trim().is_empty())
        .collect())
}

fn is_dotted_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Parses a value as YAML (`4` is an integer, `1e-4` a float, `[1,2]` a list, `'a,b'` a string).
pub(crate) fn parse_value(value: &str) -> std::result::Result<Value, String> {
    if value.is_empty() {
        return Ok(Value::String(String::new()));
    }
    serde_yaml::from_str(value).map_err(|e| format!("cannot read value `{value}`: {e}"))
}

pub(crate) fn insert_dotted(
    root: &mut Mapping,
    key: &str,
    value: Value,
) -> std::result::Result<(), String> {
    let mut parts = key.split('.').peekable();
    let mut node = root;
    while let Some(part) = parts.next() {
        let name = Value::String(part.to_string());
        if parts.peek().is_none() {
            node.insert(name, value);
            return Ok(());
        }
        let child = node
            .entry(name)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        node = match child {
            Value::Mapping(m) => m,
            _ => return Err(format!("`{key}` sets a key below a value given earlier")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Override {
        Override::Values(serde_yaml::from_str(text).unwrap())
    }

    fn err(text: &str) -> String {
        parse_override(text).unwrap_err().to_string()
    }

    #[test]
    fn model_gardens_example_parses_exactly() {
        let parsed = parse_override("a=1,b.c='x, y',d=[1,2],e=gs://b/c,f=1e-4,g.h[1]=2,g.h[0]=1");
        assert_eq!(
            parsed.unwrap(),
            yaml("{a: 1, b: {c: 'x, y'}, d: [1, 2], e: 'gs://b/c', f: 0.0001, g: {h: [1, 2]}}")
        );
        let Override::Values(values) = parse_override("f=1e-4").unwrap() else {
            panic!("pairs are values");
        };
        assert!(values[&Value::from("f")].is_f64());
    }

    #[test]
    fn an_index_gap_names_the_list() {
        let message = err("x[0]=1,x[2]=3");
        assert!(message.contains("`x` gets items [0, 2]"), "{message}");
        assert!(err("x[0]=1,x[0]=2").contains("`x[0]` is given twice"));
    }

    #[test]
    fn a_yaml_file_path_is_an_override_and_a_typo_is_not_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("o.yaml");
        std::fs::write(&file, "trainer: {train_steps: 3}").unwrap();
        let text = file.to_str().unwrap();
        assert_eq!(parse_override(text).unwrap(), Override::File(file.clone()));
        let message = err("trainer.train_steps:3");
        assert!(message.contains("neither key=value pairs"), "{message}");
    }

    #[test]
    fn yaml_mapping_strings_are_accepted() {
        assert_eq!(
            parse_override("{trainer: {train_steps: 7}}").unwrap(),
            yaml("{trainer: {train_steps: 7}}")
        );
    }

    #[test]
    fn a_pair_whose_value_is_a_flow_mapping_is_a_pair() {
        // YAML alone would read this as the key `a.b={c` with the value `1}`.
        assert_eq!(
            parse_override("a.b={c: 1}").unwrap(),
            yaml("{a: {b: {c: 1}}}")
        );
        assert_eq!(parse_override("x: 1").unwrap(), yaml("{x: 1}"));
    }

    #[test]
    fn empty_string_is_a_no_op() {
        assert_eq!(
            parse_override("  ").unwrap(),
            Override::Values(Mapping::new())
        );
    }

    #[test]
    fn malformed_strings_say_what_is_wrong() {
        let err = parse_override("a.b=1,c").unwrap_err().to_string();
        assert!(
            err.contains("`c` at character 6 is not of the form key=value"),
            "{err}"
        );
        let err = parse_override("a=[1,2").unwrap_err().to_string();
        assert!(err.contains("unclosed"), "{err}");
        let err = parse_override("a..b=1").unwrap_err().to_string();
        assert!(err.contains("not a dotted key"), "{err}");
        let err = parse_override("a=1,a.b=2").unwrap_err().to_string();
        assert!(err.contains("below a value given earlier"), "{err}");
    }
}
