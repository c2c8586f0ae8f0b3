//! Config layers from the environment: `GROVE_<PATH>` variables (double underscore between
//! levels: `GROVE_TRAINER__TRAIN_STEPS=200` sets `trainer.train_steps`) and the machine profile
//! `GROVE_DEVICE=<name>`, the file `<config dir>/device/<name>.yaml`, where the config dir is
//! `GROVE_CONFIG_DIR` or `configs` in the working directory.

use std::path::PathBuf;

use serde_yaml::Mapping;

use super::overrides::{insert_dotted, parse_value};
use crate::error::{Error, Result};

/// Prefix of the variables that set config keys.
pub const PREFIX: &str = "GROVE_";
/// Names the machine profile to layer right after the experiment defaults.
pub const DEVICE_VARIABLE: &str = "GROVE_DEVICE";
/// Directory holding `device/<name>.yaml` profiles (default `configs`).
pub const CONFIG_DIR_VARIABLE: &str = "GROVE_CONFIG_DIR";
/// Log filter of the `train` binary.
pub const LOG_VARIABLE: &str = "GROVE_LOG";

/// Names a fault to inject in crash tests (grove-orbit's `fault` module).
pub const FAULT_VARIABLE: &str = "GROVE_FAULT_INJECT";

const RESERVED: [&str; 4] = [
    DEVICE_VARIABLE,
    CONFIG_DIR_VARIABLE,
    LOG_VARIABLE,
    FAULT_VARIABLE,
];

fn lookup<'a>(environment: &'a [(String, String)], name: &str) -> Option<&'a str> {
    environment
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The profile file `GROVE_DEVICE` names, if set; a missing profile is an error listing the
/// profiles that exist.
pub fn device_profile(environment: &[(String, String)]) -> Result<Option<PathBuf>> {
    let Some(name) = lookup(environment, DEVICE_VARIABLE) else {
        return Ok(None);
    };
    let dir =
        PathBuf::from(lookup(environment, CONFIG_DIR_VARIABLE).unwrap_or("configs")).join("device");
    let path = dir.join(format!("{name}.yaml"));
    if path.is_file() {
        return Ok(Some(path));
    }
    let mut available: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".yaml").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    available.sort();
    Err(Error::Config(format!(
        "{DEVICE_VARIABLE}={name}: no profile {}; profiles there: {}",
        path.display(),
        if available.is_empty() {
            "(none)".to_string()
        } else {
            available.join(", ")
        }
    )))
}

/// One override per `GROVE_<PATH>` variable (reserved names excluded), in name order, each
/// with its layer name (`environment GROVE_…`).
pub fn environment_overrides(environment: &[(String, String)]) -> Result<Vec<(String, Mapping)>> {
    let mut variables: Vec<&(String, String)> = environment
        .iter()
        .filter(|(key, _)| key.starts_with(PREFIX) && !RESERVED.contains(&key.as_str()))
        .collect();
    variables.sort();
    variables
        .into_iter()
        .map(|(key, value)| {
            let layer = format!("environment {key}");
            let path = key[PREFIX.len()..].to_lowercase().replace("__", ".");
            let fail = |reason: String| Error::Config(format!("{layer}: {reason}"));
            let value = parse_value(value.trim()).map_err(fail)?;
            let mut mapping = Mapping::new();
            insert_dotted(&mut mapping, &path, value).map_err(fail)?;
            Ok((layer, mapping))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_become_dotted_overrides_and_reserved_names_are_skipped() {
        let overrides = environment_overrides(&env(&[
            ("GROVE_TRAINER__TRAIN_STEPS", "7"),
            ("GROVE_LOG", "debug"),
            ("GROVE_DEVICE", "x"),
            ("HOME", "/root"),
        ]))
        .unwrap();
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].0, "environment GROVE_TRAINER__TRAIN_STEPS");
        let expected: Mapping = serde_yaml::from_str("{trainer: {train_steps: 7}}").unwrap();
        assert_eq!(overrides[0].1, expected);
    }

    #[test]
    fn a_missing_profile_lists_the_profiles_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("device")).unwrap();
        std::fs::write(
            dir.path().join("device/laptop.yaml"),
            "runtime: {num_threads: 2}",
        )
        .unwrap();
        let config_dir = dir.path().to_str().unwrap();
        let found = device_profile(&env(&[
            (DEVICE_VARIABLE, "laptop"),
            (CONFIG_DIR_VARIABLE, config_dir),
        ]))
        .unwrap();
        assert_eq!(found, Some(dir.path().join("device/laptop.yaml")));
        let err = device_profile(&env(&[
            (DEVICE_VARIABLE, "gpu"),
            (CONFIG_DIR_VARIABLE, config_dir),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("profiles there: laptop"), "{err}");
        assert_eq!(device_profile(&env(&[])).unwrap(), None);
    }
}
