//! Turning figment's extraction errors into messages that say what is wrong, where, and how to
//! fix it.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::PathBuf;

use figment::error::Kind;
use figment::{Metadata, Source};

use super::one_of::AT_PREFIX;
use super::yaml_lines::line_of;
use crate::error::Error;

/// Describes every error figment found (one line each) as one [`Error::Config`].
pub fn describe_figment_error(error: figment::Error) -> Error {
    let lines: Vec<String> = error.into_iter().map(|e| describe_one(&e)).collect();
    Error::Config(lines.join("\n"))
}

fn describe_one(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let layer = error
        .metadata
        .as_ref()
        .map(|m| layer_name_at(m, &key, &mut HashMap::new()))
        .unwrap_or_else(|| "config".to_string());
    match &error.kind {
        Kind::UnknownField(field, expected) => unknown_key(&layer, &key, field, expected),
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            wrong_type(&layer, &key, actual, expected)
        }
        Kind::Message(message) if message.starts_with(AT_PREFIX) => {
            describe_branch_error(&layer, &key, message)
        }
        Kind::UnknownVariant(value, expected) => {
            let mut message = format!(
                "{layer}: `{key}` = {value:?} is not one of: {}",
                expected
                    .iter()
                    .map(|name| if name.is_empty() { "\"\"" } else { name })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(suggestion) = closest(value, expected) {
                message.push_str(&format!("; did you mean {suggestion:?}?"));
            }
            message
        }
        Kind::MissingField(field) => {
            format!("{layer}: `{}` is missing; set it", join_key(&key, field))
        }
        other => format!("{layer}: `{key}`: {other}"),
    }
}

fn unknown_key(layer: &str, key: &str, field: &str, expected: &[&str]) -> String {
    let suggestion = closest(field, expected)
        .map(|s| format!("did you mean `{}`? ", join_key(&parent(key), s)))
        .unwrap_or_default();
    format!(
        "{layer}: unknown key `{key}`; {suggestion}valid keys here: {}",
        expected.join(", ")
    )
}

fn wrong_type(layer: &str, key: &str, actual: impl Display, expected: &str) -> String {
    format!("{layer}: `{key}` expects {expected}, found {actual}; give a value of that type")
}

/// An error inside a registry-typed one-of branch: `at `<sub.path>`: <serde message>`.
fn describe_branch_error(layer: &str, key: &str, message: &str) -> String {
    let rest = &message[AT_PREFIX.len()..];
    let Some((sub, detail)) = rest.split_once("`: ") else {
        return format!("{layer}: `{key}`: {message}");
    };
    let full = join_key(key, sub);
    if let Some(field) = detail
        .strip_prefix("unknown field `")
        .and_then(|d| d.split('`').next())
    {
        // serde reports the unknown field's own path; add it only when it is missing.
        let full = if full.ends_with(&format!(".{field}")) {
            full
        } else {
            join_key(&full, field)
        };
        let expected: Vec<&str> = detail
            .split_once("expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        return unknown_key(layer, &full, field, &expected);
    }
    if let Some((actual, expected)) = detail
        .strip_prefix("invalid type: ")
        .or_else(|| detail.strip_prefix("invalid value: "))
        .and_then(|d| d.split_once(", expected "))
    {
        return wrong_type(layer, &full, actual, expected);
    }
    format!("{layer}: `{full}`: {detail}")
}

/// The layer a value came from: a file path, or the layer's name (defaults, an override).
pub(crate) fn layer_name(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(Source::File(path)) => path.display().to_string(),
        _ => metadata.name.to_string(),
    }
}

/// Like [`layer_name`], with `:line` for a file when the line of dotted `key` can be found.
/// `files` caches the texts of the files read so far.
pub(crate) fn layer_name_at(
    metadata: &Metadata,
    key: &str,
    files: &mut HashMap<PathBuf, String>,
) -> String {
    let Some(Source::File(path)) = &metadata.source else {
        return layer_name(metadata);
    };
    let parts: Vec<&str> = key.split('[').next().unwrap_or(key).split('.').collect();
    let text = files
        .entry(path.clone())
        .or_insert_with(|| std::fs::read_to_string(path).unwrap_or_default());
    match line_of(text, &parts) {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

fn parent(key: &str) -> String {
    key.rsplit_once('.')
        .map(|(parent, _)| parent.to_string())
        .unwrap_or_default()
}

fn join_key(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// The valid key closest to `typed`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(typed: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(typed, c), *c))
        .filter(|(distance, c)| *distance <= (c.len().max(typed.len()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}
