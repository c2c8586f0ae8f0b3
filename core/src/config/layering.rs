//! Resolving an experiment: factory defaults, then each `--config_file`, then each
//! `--params_override`, strictly typed, with errors that name the key, the layer and the fix.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::describe::describe_figment_error;
use super::experiment::ExperimentConfig;
use super::overrides::parse_override;
use super::trainer::TrainerConfig;
use crate::error::{Error, Result};

/// Where the layers above the factory defaults come from, lowest priority first within each kind:
/// all config files, then all overrides.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// YAML files (`--config_file`), applied in order.
    pub config_files: Vec<PathBuf>,
    /// Override strings (`--params_override`), applied in order after the files.
    pub params_overrides: Vec<String>,
}

/// Layers `sources` over `defaults` (an experiment factory's output), checks types and unknown
/// keys in every layer, normalises one-of sections and validates the result.
pub fn resolve(defaults: &ExperimentConfig, sources: &ConfigSources) -> Result<ExperimentConfig> {
    let defaults_value = Value::serialize(defaults)
        .map_err(|e| Error::Config(format!("experiment defaults cannot be layered: {e}")))?;
    let mut figment = Figment::from(Layer::new("experiment defaults", defaults_value)?);
    for file in &sources.config_files {
        figment = figment.merge(config_file(file)?);
    }
    for text in &sources.params_overrides {
        let mapping = parse_override(text)?;
        let value = Value::serialize(&mapping)
            .map_err(|e| Error::Config(format!("--params_override {text:?}: {e}")))?;
        figment = figment.merge(Layer::new(&format!("--params_override {text:?}"), value)?);
    }
    let config = extract(&figment, defaults).map_err(|e| describe_figment_error(*e))?;
    config.validate()?;
    Ok(config)
}

fn config_file(path: &Path) -> Result<Figment> {
    if !path.is_file() {
        return Err(Error::Config(format!(
            "--config_file {}: no such file; check the path (it is relative to the working \
             directory)",
            path.display()
        )));
    }
    Ok(Figment::from(Yaml::file_exact(path)))
}

/// The three top-level sections; anything else at the top level is an unknown key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // The fields exist only so serde rejects other top-level keys.
struct TopLevelKeys {
    task: serde::de::IgnoredAny,
    trainer: serde::de::IgnoredAny,
    runtime: serde::de::IgnoredAny,
}

fn extract(
    figment: &Figment,
    defaults: &ExperimentConfig,
) -> std::result::Result<ExperimentConfig, Box<figment::Error>> {
    figment.extract::<TopLevelKeys>()?;
    let mut trainer: TrainerConfig = section(figment, "trainer")?;
    trainer.optimizer_config = trainer.optimizer_config.normalized();
    let task = defaults
        .task
        .extract_same_type(&figment.focus("task"))
        .map_err(|e| prefix_paths(e, "task"))?;
    Ok(ExperimentConfig {
        task,
        trainer,
        runtime: section(figment, "runtime")?,
    })
}

/// Extracts one top-level section, with error paths starting at the section's key.
fn section<T: DeserializeOwned>(
    figment: &Figment,
    key: &str,
) -> std::result::Result<T, Box<figment::Error>> {
    figment
        .focus(key)
        .extract()
        .map_err(|e| prefix_paths(Box::new(e), key))
}

/// Puts `key` in front of the path of every error in the chain.
fn prefix_paths(error: Box<figment::Error>, key: &str) -> Box<figment::Error> {
    let prefixed = error.into_iter().map(|mut e| {
        e.path.insert(0, key.to_string());
        e
    });
    Box::new(
        prefixed
            .reduce(|chain, e| chain.chain(e))
            .expect("an error holds at least one error"),
    )
}

/// One named layer of values (defaults or an override), so errors can say where a value came from.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    fn new(name: &str, value: Value) -> Result<Self> {
        match value {
            Value::Dict(_, dict) => Ok(Layer {
                metadata: Metadata::named(name.to_string()),
                dict,
            }),
            _ => Err(Error::Config(format!(
                "{name}: expected a mapping of keys to values"
            ))),
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}
