//! `--print_config`: the resolved config as YAML with, beside each leaf, the layer that set it.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::layering::Resolved;

/// The resolved config as YAML, each leaf followed by `# <layer>`.
pub fn explain(resolved: &Resolved) -> String {
    let mut out = String::new();
    render(
        &resolved.config.to_masked_yaml_value(),
        "",
        0,
        &resolved.provenance,
        &mut out,
    );
    out
}

fn render(
    value: &Value,
    path: &str,
    indent: usize,
    provenance: &BTreeMap<String, String>,
    out: &mut String,
) {
    let Value::Mapping(mapping) = value else {
        return;
    };
    let pad = " ".repeat(indent);
    for (key, child) in mapping {
        let key = key.as_str().unwrap_or_default();
        let child_path = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        match child {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                render(child, &child_path, indent + 2, provenance, out);
            }
            Value::Sequence(items) if !items.is_empty() && items.iter().all(Value::is_mapping) => {
                out.push_str(&format!("{pad}{key}:\n"));
                for (i, item) in items.iter().enumerate() {
                    let mut lines = String::new();
                    let item_path = format!("{child_path}[{i}]");
                    render(item, &item_path, indent + 4, provenance, &mut lines);
                    // The first key of an item goes on the `- ` line.
                    out.push_str(&format!("{pad}  - {}", lines.trim_start()));
                }
            }
            leaf => {
                let source = provenance.get(&child_path).map_or("", String::as_str);
                out.push_str(&format!("{pad}{key}: {}  # {source}\n", flow(leaf)));
            }
        }
    }
}

/// A leaf in YAML flow style (`[1, 2]`, `{}`, `'a, b'`).
fn flow(value: &Value) -> String {
    match value {
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(m) if m.is_empty() => "{}".to_string(),
        scalar => serde_yaml::to_string(scalar)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}
