//! Resolving an experiment from its layers, lowest priority first: the experiment factory's
//! defaults, the machine profile (`GROVE_DEVICE`), each `--config_file`, the `GROVE_<PATH>`
//! environment variables, each `--params_override`, then trailing `key=value` arguments: what
//! is typed on the command line wins. Every layer is strictly typed; errors name the key, the
//! layer and the fix, and every resolved leaf remembers the layer that set it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::Mapping;

use super::describe::{describe_figment_error, layer_name, layer_name_at};
use super::environment::{device_profile, environment_overrides};
use super::epochs::{epoch_mapping, epoch_values, LayerOf};
use super::experiment::ExperimentConfig;
use super::flat::{flatten, unflatten};
use super::interpolation::{interpolate, Interpolated};
use super::overrides::{insert_dotted, parse_override, Override};
use super::tensorflow_keys::strip_tensorflow_keys;
use super::trainer::TrainerConfig;
use crate::error::{Error, Result};

/// Name of the layer of the experiment factory's defaults.
const DEFAULTS_LAYER: &str = "experiment defaults";
/// Name of the layer of values resolved from `${...}` references.
const INTERPOLATION_LAYER: &str = "interpolation";

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
    let merged: serde_yaml::Value = figment.extract().map_err(describe_figment_error)?;
    let merged = flatten(&merged);
    let interpolated = interpolate(&merged, &sources.environment)?;
    let mut substituted = merged.clone();
    substituted.extend(interpolated.values.clone());
    let figment = if interpolated.values.is_empty() {
        figment
    } else {
        merge(figment, interpolation_layer(&substituted, &interpolated)?)?
    };
    let figment = with_epochs_in_steps(figment, defaults, &substituted)?;
    let mut config = extract(&figment, defaults).map_err(|e| describe_figment_error(*e))?;
    config.references = interpolated.references;
    let resolved = config.to_flat();
    let mut files = HashMap::new();
    reject_dropped_values(&figment, merged.keys(), &resolved, &mut files)?;
    config.validate()?;
    let provenance = resolved
        .into_keys()
        .map(|key| {
            let layer = layer_of(&figment, &key, &mut files);
            (key, layer)
        })
        .collect();
    Ok(Resolved { config, provenance })
}

/// A layer holding the leaves whose references were resolved (a list is given whole, since
/// layers address lists as one value); `substituted` is the merged config with them.
fn interpolation_layer(
    substituted: &BTreeMap<String, serde_yaml::Value>,
    interpolated: &Interpolated,
) -> Result<(Metadata, Mapping)> {
    let full = unflatten(substituted)?;
    let mut mapping = Mapping::new();
    for key in interpolated.values.keys() {
        let container = key.split('[').next().unwrap_or(key);
        let value = container
            .split('.')
            .try_fold(&full, |node, part| node.get(part))
            .cloned()
            .unwrap_or(serde_yaml::Value::Null);
        insert_dotted(&mut mapping, container, value).map_err(Error::Config)?;
    }
    Ok((Metadata::named(INTERPOLATION_LAYER), mapping))
}

/// `figment` with a layer per key given in epochs (see [`super::epochs`]), set in steps.
/// The training split's size comes from the task section, extracted only when needed.
fn with_epochs_in_steps(
    figment: Figment,
    defaults: &ExperimentConfig,
    values: &BTreeMap<String, serde_yaml::Value>,
) -> Result<Figment> {
    let mut files = HashMap::new();
    let mut epoch = None;
    let converted = epoch_values(
        values,
        &mut || {
            if epoch.is_none() {
                let task = defaults
                    .task
                    .extract_same_type(&figment.focus("task"))
                    .map_err(|e| describe_figment_error(*prefix_paths(e, "task")))?;
                epoch = Some(task.train_epoch()?);
            }
            Ok(epoch.expect("set above"))
        },
        &mut |key| LayerOf {
            name: layer_of(&figment, key, &mut files),
            rank: layer_rank(&figment, key),
        },
        DEFAULTS_LAYER,
    )?;
    converted.iter().try_fold(figment, |figment, value| {
        merge(
            figment,
            (Metadata::named(value.layer.clone()), epoch_mapping(value)?),
        )
    })
}

/// The position, in merge order, of the layer that set the leaf `key` (0 when none did).
fn layer_rank(figment: &Figment, key: &str) -> usize {
    let container = key.split('[').next().unwrap_or(key);
    let Some(found) = figment
        .find_metadata(key)
        .or_else(|| figment.find_metadata(container))
    else {
        return 0;
    };
    figment
        .metadata()
        .position(|metadata| metadata == found)
        .unwrap_or(0)
}

/// The name of the layer that set the leaf `key` (`files` caches file texts for line numbers).
fn layer_of(figment: &Figment, key: &str, files: &mut HashMap<PathBuf, String>) -> String {
    // Figment addresses dictionaries only: an item of a list reports the list's layer.
    let container = key.split('[').next().unwrap_or(key);
    figment
        .find_metadata(key)
        .or_else(|| figment.find_metadata(container))
        .map(|m| layer_name_at(m, key, files))
        .unwrap_or_else(|| DEFAULTS_LAYER.to_string())
}

/// Fails when a layer above the defaults set a value the resolved config does not hold: a
/// field of a one-of branch that is not selected.
fn reject_dropped_values<'a>(
    figment: &Figment,
    merged_keys: impl Iterator<Item = &'a String>,
    resolved: &BTreeMap<String, serde_yaml::Value>,
    files: &mut HashMap<PathBuf, String>,
) -> Result<()> {
    for key in merged_keys.filter(|key| !resolved.contains_key(*key)) {
        let layer = layer_of(figment, key, files);
        if layer == DEFAULTS_LAYER {
            continue;
        }
        let reason = one_of_reason(key, resolved).unwrap_or_default();
        return Err(Error::Config(format!(
            "{layer}: `{key}` would have no effect{reason}; remove it"
        )));
    }
    Ok(())
}

/// For a key inside an unselected one-of branch (`a.b.<branch>.c`): why it is unused.
fn one_of_reason(key: &str, resolved: &BTreeMap<String, serde_yaml::Value>) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    (1..parts.len()).find_map(|i| {
        let type_key = format!("{}.type", parts[..i].join("."));
        let selected = resolved.get(&type_key)?;
        let selected = serde_yaml::to_string(selected).ok()?;
        Some(format!(
            ": `{type_key}` selects {} (set it to {} to use this branch)",
            selected.trim_end(),
            parts[i]
        ))
    })
}

fn layers(defaults: &ExperimentConfig, sources: &ConfigSources) -> Result<Figment> {
    let defaults_value = Value::serialize(defaults)
        .map_err(|e| Error::Config(format!("experiment defaults cannot be layered: {e}")))?;
    let mut figment = Figment::from(Layer::new(Metadata::named(DEFAULTS_LAYER), defaults_value)?);
    if let Some(profile) = device_profile(&sources.environment)? {
        figment = merge(figment, file_layer(&profile)?)?;
    }
    for file in &sources.config_files {
        figment = merge(figment, file_layer(file)?)?;
    }
    for (name, mapping) in environment_overrides(&sources.environment)? {
        figment = merge(figment, (Metadata::named(name), mapping))?;
    }
    for text in &sources.params_overrides {
        let layer = match parse_override(text)? {
            Override::Values(mapping) => (
                Metadata::named(format!("--params_override {text:?}")),
                mapping,
            ),
            Override::File(path) => file_layer(&path)?,
        };
        figment = merge(figment, layer)?;
    }
    for text in &sources.trailing_overrides {
        let name = format!("argument {text:?}");
        match text
            .contains('=')
            .then(|| parse_override(text))
            .transpose()?
        {
            Some(Override::Values(mapping)) => {
                figment = merge(figment, (Metadata::named(name), mapping))?;
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

/// Merges one layer over `figment`, dropping TensorFlow-only keys with a warning. A list of sub-configs given with the length it already has
/// edits its items in place (Model Garden's strict list override); a list of another length
/// replaces it, each item starting from its type's defaults.
fn merge(figment: Figment, (metadata, mut mapping): (Metadata, Mapping)) -> Result<Figment> {
    let declared = |path: &str| figment.find_value(path).is_ok();
    let ignored = strip_tensorflow_keys(&mut mapping, &declared);
    if !ignored.is_empty() {
        tracing::warn!(
            "{}: ignoring keys that only mean something to TensorFlow: {}",
            layer_name(&metadata),
            ignored.join(", ")
        );
    }
    overlay_same_length_lists(&figment, "", &mut mapping);
    let value = Value::serialize(&mapping)
        .map_err(|e| Error::Config(format!("{}: {e}", layer_name(&metadata))))?;
    Ok(figment.merge(Layer::new(metadata, value)?))
}

fn overlay_same_length_lists(figment: &Figment, prefix: &str, mapping: &mut Mapping) {
    for (key, value) in mapping.iter_mut() {
        let Some(key) = key.as_str() else { continue };
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            serde_yaml::Value::Mapping(child) => overlay_same_length_lists(figment, &path, child),
            serde_yaml::Value::Sequence(items) if items.iter().all(|i| i.is_mapping()) => {
                let existing = figment
                    .find_value(&path)
                    .ok()
                    .and_then(|v| serde_yaml::to_value(v).ok());
                if let Some(serde_yaml::Value::Sequence(old)) = existing {
                    if old.len() == items.len() {
                        for (item, old_item) in items.iter_mut().zip(old) {
                            *item = deep_merge(old_item, item.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// `over` laid over `base`: mappings merge key by key, anything else replaces.
fn deep_merge(base: serde_yaml::Value, over: serde_yaml::Value) -> serde_yaml::Value {
    match (base, over) {
        (serde_yaml::Value::Mapping(mut base), serde_yaml::Value::Mapping(over)) => {
            for (key, value) in over {
                let merged = match base.remove(&key) {
                    Some(old) => deep_merge(old, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            serde_yaml::Value::Mapping(base)
        }
        (_, over) => over,
    }
}

/// A YAML file as a layer named by its path. Syntax errors name the file, line and column.
fn file_layer(path: &Path) -> Result<(Metadata, Mapping)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "config file {}: cannot read it ({e}); check the path (it is relative to the \
             working directory)",
            path.display()
        ))
    })?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: invalid YAML: {e}", path.display())))?;
    let mapping = match value {
        serde_yaml::Value::Mapping(mapping) => mapping,
        serde_yaml::Value::Null => Mapping::new(),
        _ => {
            return Err(Error::Config(format!(
                "{}: the top level must be a mapping of keys (task, trainer, runtime)",
                path.display()
            )))
        }
    };
    Ok((Metadata::from(path.display().to_string(), path), mapping))
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
        restrictions: defaults.restrictions.clone(),
        references: BTreeMap::new(),
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
    fn new(metadata: Metadata, value: Value) -> Result<Self> {
        match value {
            Value::Dict(_, dict) => Ok(Layer { metadata, dict }),
            _ => Err(Error::Config(format!(
                "{}: expected a mapping of keys to values",
                layer_name(&metadata)
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
