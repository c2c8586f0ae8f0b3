//! Finding the line of a dotted key in a YAML file, so messages can say `file:line`. Block-style
//! mappings are followed; a key inside a flow mapping (`{a: 1}`) or a list reports the line of
//! its nearest block-style ancestor.

/// The 1-based line where `text` sets `path` (or its deepest block-style ancestor).
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (matched depth, line)
    for (number, line) in text.lines().enumerate() {
        let Some((indent, key)) = block_key(line) else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let depth = stack.len();
        let matches = depth <= path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p);
        if matches && best.is_none_or(|(d, _)| depth > d) {
            best = Some((depth, number + 1));
            if depth == path.len() {
                break;
            }
        }
    }
    best.map(|(_, line)| line)
}

/// `(indent, key)` of a `key:` line in block style.
fn block_key(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with('-') {
        return None;
    }
    let indent = line.len() - trimmed.len();
    let (key, _) = trimmed.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '\'' || c == '"');
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some((indent, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
task:
  model:
    hidden: 3
  train_data: {input_path: x}
trainer:
  hidden: 4
  optimizer_config:
    optimizer:
      type: sgd
";

    #[test]
    fn finds_nested_keys_and_falls_back_to_ancestors() {
        assert_eq!(line_of(TEXT, &["task", "model", "hidden"]), Some(4));
        assert_eq!(line_of(TEXT, &["trainer", "hidden"]), Some(7));
        assert_eq!(
            line_of(TEXT, &["trainer", "optimizer_config", "optimizer", "type"]),
            Some(10)
        );
        assert_eq!(
            line_of(TEXT, &["task", "train_data", "input_path"]),
            Some(5)
        );
        assert_eq!(line_of(TEXT, &["runtime", "seed"]), None);
    }
}
