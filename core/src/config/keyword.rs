//! The config keyword of a serde enum value, for messages.

use serde::Serialize;

/// How `value` (a unit variant of a keyword enum such as a `file_type`) is written in a
/// config: `ImageFileType::Cifar10` gives `cifar10`.
pub fn keyword<T: Serialize>(value: &T) -> String {
    match serde_yaml::to_value(value) {
        Ok(serde_yaml::Value::String(text)) => text,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum FileType {
        PlainText,
    }

    #[test]
    fn gives_the_name_a_config_uses() {
        assert_eq!(keyword(&FileType::PlainText), "plain_text");
    }
}
