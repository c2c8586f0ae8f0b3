//! Parsing `--params_override` strings: comma-separated `dotted.key=value` pairs with YAML values
//! (`a.b=1,c=[1,2],d='x, y'`), or a YAML / JSON mapping (`{a: {b: 1}}`).

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// Parses one override string into a nested YAML mapping. An empty string is an empty mapping.
pub fn parse_override(text: &str) -> Result<Mapping> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Mapping::new());
    }
    if let Ok(Value::Mapping(mapping)) = serde_yaml::from_str::<Value>(trimmed) {
        return Ok(mapping);
    }
    let mut root = Mapping::new();
    for (start, pair) in split_top_level(text).map_err(|e| error(text, &e))? {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            error(
                text,
                &format!(
                    "`{}` at character {start} is not of the form key=value",
                    pair.trim()
                ),
            )
        })?;
        let key = key.trim();
        if !is_dotted_key(key) {
            return Err(error(
                text,
                &format!(
                    "`{key}` at character {start} is not a dotted key such as trainer.train_steps"
                ),
            ));
        }
        insert_dotted(
            &mut root,
            key,
            parse_value(value.trim()).map_err(|e| error(text, &e))?,
        )
        .map_err(|e| error(text, &e))?;
    }
    Ok(root)
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
fn parse_value(value: &str) -> std::result::Result<Value, String> {
    if value.is_empty() {
        return Ok(Value::String(String::new()));
    }
    serde_yaml::from_str(value).map_err(|e| format!("cannot read value `{value}`: {e}"))
}

fn insert_dotted(root: &mut Mapping, key: &str, value: Value) -> std::result::Result<(), String> {
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

    fn yaml(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn comma_pairs_nest_and_type_their_values() {
        let parsed = parse_override("a=1,b.c='x, y',d=[1,2],e=gs://b/c,f=1e-4,g.h=true").unwrap();
        assert_eq!(
            parsed,
            yaml("{a: 1, b: {c: 'x, y'}, d: [1, 2], e: 'gs://b/c', f: 0.0001, g: {h: true}}")
        );
    }

    #[test]
    fn yaml_mapping_strings_are_accepted() {
        assert_eq!(
            parse_override("{trainer: {train_steps: 7}}").unwrap(),
            yaml("{trainer: {train_steps: 7}}")
        );
    }

    #[test]
    fn empty_string_is_a_no_op() {
        assert!(parse_override("  ").unwrap().is_empty());
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
