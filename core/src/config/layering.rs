//! Resolving an experiment from its layers, lowest priority first: the experiment factory's
//! defaults, the machine profile (`GROVE_DEVICE`), each `--config_file`, the `GROVE_<PATH>`
//! environment variables, each `--params_override`, then trailing `key=value` arguments: what
//! is typed on the command line wins. Every layer is strictly typed; errors name the key, the
//! layer and the fix, and every resolved leaf remembers the layer that set it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::Mapping;

use super::describe::{describe_figment_error, layer_name};
use super::environment::{device_profile, environment_overrides};
use super::experiment::ExperimentConfig;
use super::flat::flatten;
use super::overrides::{parse_override, Override};
use super::trainer::TrainerConfig;
use crate::error::{Error, Result};

/// Where the layers above the factory defaults come from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// YAML files (`--config_file`), applied in order.
    pub config_files: Vec<PathBuf>,
    /// Override strings (`--params_override`), applied in order after the environment.
    pub params_overrides: Vec<String>,
    /// Trailing `key=value` arguments, applied last, in order.
    pub trailing_overrides: Vec<String>,
    /// The process environment (`GROVE_DEVICE`, `GROVE_CONFIG_DIR`, `GROVE_<PATH>`; other
    /// variables are ignored). Empty means none.
    pub environment: Vec<(String, String)>,
}

/// A resolved config and, for every leaf (dotted key), the layer that set it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The config, validated.
    pub config: ExperimentConfig,
    /// Dotted leaf key → layer name (`experiment defaults`, a file path, an override, ...).
    pub provenance: BTreeMap<String, String>,
}

/// Layers `sources` over `defaults` (an experiment factory's output), checks types and unknown
/// keys in every layer, normalises one-of sections and validates the result.
pub fn resolve(defaults: &ExperimentConfig, sources: &ConfigSources) -> Result<ExperimentConfig> {
    Ok(resolve_explained(defaults, sources)?.config)
}

/// [`resolve`], also reporting where each resolved value came from.
pub fn resolve_explained(defaults: &ExperimentConfig, sources: &ConfigSources) -> Result<Resolved> {
    let figment = layers(defaults, sources)?;
    let config = extract(&figment, defaults).map_err(|e| describe_figment_error(*e))?;
    config.validate()?;
    let provenance = flatten(&config.to_yaml_value())
        .into_keys()
        .map(|key| {
            // Figment addresses dictionaries only: an item of a list reports the list's layer.
            let container = key.split('[').next().unwrap_or(&key);
            let layer = figment
                .find_metadata(&key)
                .or_else(|| figment.find_metadata(container))
                .map(layer_name)
                .unwrap_or_else(|| "experiment defaults".to_string());
            (key, layer)
        })
        .collect();
    Ok(Resolved { config, provenance })
}

fn layers(defaults: &ExperimentConfig, sources: &ConfigSources) -> Result<Figment> {
    let defaults_value = Value::serialize(defaults)
        .map_err(|e| Error::Config(format!("experiment defaults cannot be layered: {e}")))?;
    let mut figment = Figment::from(Layer::new("experiment defaults", defaults_value)?);
    if let Some(profile) = device_profile(&sources.environment)? {
        figment = figment.merge(Yaml::file_exact(profile));
    }
    for file in &sources.config_files {
        figment = figment.merge(config_file(file)?);
    }
    for (name, mapping) in environment_overrides(&sources.environment)? {
        figment = figment.merge(Layer::from_mapping(&name, &mapping)?);
    }
    for text in &sources.params_overrides {
        figment = match parse_override(text)? {
            Override::Values(mapping) => figment.merge(Layer::from_mapping(
                &format!("--params_override {text:?}"),
                &mapping,
            )?),
            Override::File(path) => figment.merge(config_file(&path)?),
        };
    }
    for text in &sources.trailing_overrides {
        let name = format!("argument {text:?}");
        match text
            .contains('=')
            .then(|| parse_override(text))
            .transpose()?
        {
            Some(Override::Values(mapping)) => {
                figment = figment.merge(Layer::from_mapping(&name, &mapping)?);
            }
            _ => {
                return Err(Error::Config(format!(
                    "{name}: a trailing argument must be key=value, e.g. trainer.train_steps=200"
                )))
            }
        }
    }
    Ok(figment)
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
    fn from_mapping(name: &str, mapping: &Mapping) -> Result<Self> {
        let value = Value::serialize(mapping).map_err(|e| Error::Config(format!("{name}: {e}")))?;
        Self::new(name, value)
    }

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
