//! From a sweep file and the command line to the `train` command of each trial: the
//! experiment and base config layers (the file's first, then the flags'), every parameter
//! checked against the experiment's config before any trial runs, and the compute threads
//! split among the trials that run at once.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use grove_core::config::ExperimentConfig;
use grove_core::config::{flatten, parse_override, resolve, unflatten, ConfigSources, Override};
use grove_orbit::summary::SummarySink;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::space::{Assignment, Domain};
use crate::spec::Sweep;
use crate::trial_action::ACTION_NAME;

/// The experiment and config layers given on the command line next to `--sweep`.
#[derive(Debug, Clone, Default)]
pub struct SweepFlags {
    /// `--experiment`, if given.
    pub experiment: Option<String>,
    /// `--config_file`s.
    pub config_files: Vec<PathBuf>,
    /// `--params_override`s.
    pub params_overrides: Vec<String>,
    /// Trailing `key=value` overrides.
    pub trailing_overrides: Vec<String>,
}

/// What every trial of a sweep shares: recorded in `SWEEP_DIR/sweep.json` by the first run,
/// and a later run must agree with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseLayers {
    /// The registered experiment.
    pub experiment: String,
    /// Config files, absolute, in order.
    pub config_files: Vec<PathBuf>,
    /// `--params_override` strings, in order.
    pub params_overrides: Vec<String>,
    /// Trailing overrides, in order.
    pub trailing_overrides: Vec<String>,
}

/// How to run one trial.
#[derive(Debug, Clone)]
pub struct TrialCommand {
    /// The shared layers.
    pub layers: BaseLayers,
    /// `runtime.num_threads` of each trial.
    pub threads_per_trial: usize,
    /// The base config's `trainer.eval_actions`, to which `sweep_trial` is added.
    pub eval_actions: Vec<String>,
    /// Whether trials write TensorBoard summaries (`runtime.loggers`), and so the sweep its
    /// HParams experiment record.
    pub tensorboard: bool,
}

impl TrialCommand {
    /// Resolves the sweep's base config for `flags` and checks each parameter's values
    /// against it (`defaults` looks an experiment up in the registry).
    pub fn plan(
        sweep: &Sweep,
        flags: &SweepFlags,
        environment: &[(String, String)],
        defaults: impl Fn(&str) -> grove_core::Result<ExperimentConfig>,
    ) -> Result<TrialCommand> {
        let experiment = match (&flags.experiment, &sweep.spec.experiment) {
            (Some(flag), Some(file)) if flag != file => {
                return Err(SweepError::Spec(format!(
                    "--experiment={flag} differs from `experiment: {file}` in {}; give one of \
                     them",
                    sweep.file
                )))
            }
            (Some(name), _) | (None, Some(name)) => name.clone(),
            (None, None) => {
                return Err(SweepError::Spec(format!(
                    "name the experiment with --experiment or `experiment:` in {}",
                    sweep.file
                )))
            }
        };
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        let layers = BaseLayers {
            experiment,
            config_files: (sweep.spec.config_file.iter())
                .chain(&flags.config_files)
                .map(absolute)
                .collect(),
            params_overrides: (sweep.spec.params_override.iter())
                .chain(&flags.params_overrides)
                .cloned()
                .collect(),
            trailing_overrides: flags.trailing_overrides.clone(),
        };
        refuse_overlaps(sweep, &layers.trailing_overrides)?;
        let defaults = defaults(&layers.experiment)?;
        let sources = |params: Option<&Assignment>| -> Result<ConfigSources> {
            let mut params_overrides = layers.params_overrides.clone();
            if let Some(params) = params {
                params_overrides.push(params_mapping(params)?);
            }
            Ok(ConfigSources {
                config_files: layers.config_files.clone(),
                params_overrides,
                trailing_overrides: layers.trailing_overrides.clone(),
                environment: environment.to_vec(),
            })
        };
        let base = resolve(&defaults, &sources(None)?)?;
        for parameter in &sweep.space.parameters {
            for value in representative_values(&parameter.domain) {
                let params = Assignment::from([(parameter.key.clone(), value.clone())]);
                resolve(&defaults, &sources(Some(&params))?).map_err(|e| {
                    SweepError::Spec(format!(
                        "{}: `parameters.{}` with value {value}: {e}",
                        sweep.file, parameter.key
                    ))
                })?;
            }
        }
        let total_threads = match base.runtime.num_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(TrialCommand {
            layers,
            threads_per_trial: (total_threads / sweep.spec.parallel).max(1),
            eval_actions: base.trainer.eval_actions.clone(),
            tensorboard: base.runtime.loggers.contains(&SummarySink::Tensorboard),
        })
    }

    /// The arguments of `train` for the trial in `model_dir` with `params`.
    pub fn args(&self, model_dir: &Path, params: &Assignment) -> Result<Vec<OsString>> {
        let mut args: Vec<OsString> = vec![
            format!("--experiment={}", self.layers.experiment).into(),
            "--mode=train_and_eval".into(),
            flag("--model_dir=", model_dir.as_os_str()),
        ];
        for file in &self.layers.config_files {
            args.push(flag("--config_file=", file.as_os_str()));
        }
        for text in &self.layers.params_overrides {
            args.push(format!("--params_override={text}").into());
        }
        args.push(format!("--params_override={}", params_mapping(params)?).into());
        args.extend(self.layers.trailing_overrides.iter().map(OsString::from));
        let mut actions = self.eval_actions.clone();
        actions.push(ACTION_NAME.to_string());
        args.push(format!("runtime.num_threads={}", self.threads_per_trial).into());
        args.push(format!("trainer.eval_actions=[{}]", actions.join(", ")).into());
        Ok(args)
    }
}

fn flag(name: &str, value: &std::ffi::OsStr) -> OsString {
    let mut flag = OsString::from(name);
    flag.push(value);
    flag
}

/// The parameters as one nested JSON mapping (JSON is YAML, so `--params_override` reads it).
fn params_mapping(params: &Assignment) -> Result<String> {
    let flat: BTreeMap<String, serde_yaml::Value> = params
        .iter()
        .map(|(k, v)| Ok((k.clone(), serde_yaml::to_value(v).map_err(yaml_error)?)))
        .collect::<Result<_>>()?;
    let nested = unflatten(&flat)?;
    serde_json::to_string(&nested)
        .map_err(|e| SweepError::Spec(format!("cannot encode the trial's parameters: {e}")))
}

fn yaml_error(e: serde_yaml::Error) -> SweepError {
    SweepError::Spec(format!("cannot encode a parameter value: {e}"))
}

/// The values that stand for a domain when checking it: every listed value, or the bounds.
fn representative_values(domain: &Domain) -> Vec<serde_json::Value> {
    match domain {
        Domain::Choice(values) => values.clone(),
        _ => {
            let (low, high) = domain.internal_bounds();
            vec![domain.from_internal(low), domain.from_internal(high)]
        }
    }
}

/// Refuses a trailing override that sets a swept key (or a section holding one): the trial
/// would silently run with the override's value instead of the sampled one.
fn refuse_overlaps(sweep: &Sweep, trailing: &[String]) -> Result<()> {
    for text in trailing {
        let Ok(Override::Values(mapping)) = parse_override(text) else {
            continue; // the config layering reports malformed overrides
        };
        for key in flatten(&serde_yaml::Value::Mapping(mapping)).keys() {
            let overlap = sweep.space.parameters.iter().find(|p| {
                let (a, b) = (p.key.as_str(), key.as_str());
                a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
            });
            if let Some(parameter) = overlap {
                return Err(SweepError::Spec(format!(
                    "the override {text:?} sets `{key}`, which {} sweeps as `parameters.{}`; \
                     drop one of them",
                    sweep.file, parameter.key
                )));
            }
        }
    }
    Ok(())
}
