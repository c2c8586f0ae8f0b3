//! The sweep file: which experiment and base config layers, the parameters and how to sample
//! them, the metric and its goal, the budget, and the pruner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};
use crate::pruner::PrunerSpec;
use crate::sampler::tpe::TpeSettings;
use crate::space::{ParameterSpec, Space};

/// How trials' parameters are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every combination of the parameters' values, in order.
    Grid,
    /// Independent uniform draws.
    Random,
    /// The tree-structured Parzen estimator (Optuna's default sampler).
    #[default]
    Tpe,
}

/// Whether larger or smaller metric values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Larger is better (accuracy).
    Maximize,
    /// Smaller is better (loss).
    Minimize,
}

impl Goal {
    /// `value` as a loss: smaller is better whatever the goal.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Goal::Maximize => -value,
            Goal::Minimize => value,
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        self.loss(a) < self.loss(b)
    }
}

/// The evaluation metric trials are ranked by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// An evaluation metric: `validation/accuracy` (or `accuracy`), or `name|metric` of an
    /// extra evaluation set.
    pub name: String,
    /// `maximize` or `minimize`.
    pub goal: Goal,
}

impl MetricSpec {
    /// The metric's key in an evaluation's logs (`validation/` dropped, `|` read as `/`).
    pub fn log_key(&self) -> String {
        let name = self.name.strip_prefix("validation/").unwrap_or(&self.name);
        name.replace('|', "/")
    }
}

/// A sweep file, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The registered experiment (or `--experiment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Config files layered over the experiment's defaults before the command line's
    /// (relative paths are relative to the sweep file's directory).
    #[serde(default)]
    pub config_file: Vec<PathBuf>,
    /// `--params_override` strings applied before the command line's.
    #[serde(default)]
    pub params_override: Vec<String>,
    /// `grid`, `random` or `tpe` (the default).
    #[serde(default)]
    pub method: Method,
    /// The metric to optimize.
    pub metric: MetricSpec,
    /// Dotted config keys and their domains.
    pub parameters: BTreeMap<String, ParameterSpec>,
    /// How many trials; for `grid`, at most (and by default) the grid's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_trials: Option<u64>,
    /// How many trials run at once; `runtime.num_threads` is split among them.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Seeds the sampler.
    #[serde(default)]
    pub seed: u64,
    /// Stops poor trials early from their intermediate evaluations.
    #[serde(default)]
    pub pruner: PrunerSpec,
    /// The sweep ends once this many trials have failed.
    #[serde(default = "default_max_failures")]
    pub max_failures: u64,
    /// TPE's settings (`method: tpe`).
    #[serde(default)]
    pub tpe: TpeSettings,
}

fn default_parallel() -> usize {
    1
}

fn default_max_failures() -> u64 {
    3
}

/// A sweep file read and checked, with its space and trial budget.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The file as written (with config files made absolute).
    pub spec: SweepSpec,
    /// Where it was read from, for messages.
    pub file: String,
    /// The parameters.
    pub space: Space,
    /// The number of trials to run.
    pub n_trials: u64,
}

impl Sweep {
    /// Reads and checks the sweep file at `path`.
    pub fn read(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SweepError::io("cannot read the sweep file", path, e))?;
        Sweep::parse(&text, path)
    }

    /// Parses and checks `text`, the contents of the sweep file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Sweep> {
        let file = path.display().to_string();
        let mut spec: SweepSpec = serde_yaml::from_str(text).map_err(|e| {
            SweepError::Spec(format!(
                "{file}: {e}; see README.md's \"Sweeps\" section for the keys"
            ))
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        for config_file in &mut spec.config_file {
            if config_file.is_relative() {
                *config_file = base.join(&*config_file);
            }
        }
        let space = Space::from_specs(&spec.parameters, &file)?;
        if spec.parallel == 0 {
            return Err(SweepError::Spec(format!(
                "{file}: `parallel` is 0; give the number of trials to run at once (>= 1)"
            )));
        }
        if spec.metric.name.trim().is_empty() {
            return Err(SweepError::Spec(format!(
                "{file}: `metric.name` is empty; name an evaluation metric, e.g. \
                 validation/accuracy"
            )));
        }
        spec.pruner
            .check()
            .map_err(|why| SweepError::Spec(format!("{file}: `pruner`: {why}")))?;
        let n_trials = match (spec.method, spec.n_trials) {
            (Method::Grid, requested) => {
                let size = space.grid()?.len() as u64;
                match requested {
                    Some(n) if n > size => {
                        return Err(SweepError::Spec(format!(
                            "{file}: `n_trials` = {n} is more than the grid's {size} points; \
                             drop `n_trials` to run the whole grid"
                        )))
                    }
                    Some(n) => n,
                    None => size,
                }
            }
            (_, Some(n)) => n,
            (method, None) => {
                return Err(SweepError::Spec(format!(
                    "{file}: `method: {}` needs `n_trials`",
                    grove_core::config::keyword(&method)
                )))
            }
        };
        if n_trials == 0 {
            return Err(SweepError::Spec(format!(
                "{file}: `n_trials` is 0; give the number of trials to run"
            )));
        }
        Ok(Sweep {
            spec,
            file,
            space,
            n_trials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Sweep> {
        Sweep::parse(text, Path::new("sweeps/s.yaml"))
    }

    const PARAMETERS: &str = "parameters:\n  a: {values: [1, 2, 3]}\n";

    #[test]
    fn a_full_sweep_file_reads_back() {
        let sweep = parse(&format!(
            "experiment: image_classification/mnist_local\nconfig_file: [base.yaml]\n\
             method: random\nmetric: {{name: validation/accuracy, goal: maximize}}\n\
             n_trials: 7\nparallel: 2\nseed: 3\npruner: {{type: median, n_startup_trials: 2}}\n\
             {PARAMETERS}"
        ))
        .unwrap();
        assert_eq!(sweep.n_trials, 7);
        assert_eq!(sweep.spec.config_file, [PathBuf::from("sweeps/base.yaml")]);
        assert_eq!(sweep.spec.metric.log_key(), "accuracy");
        assert_eq!(sweep.spec.method, Method::Random);
    }

    #[test]
    fn grid_defaults_to_its_size_and_refuses_more() {
        let grid = format!("method: grid\nmetric: {{name: loss, goal: minimize}}\n{PARAMETERS}");
        assert_eq!(parse(&grid).unwrap().n_trials, 3);
        let message = parse(&format!("{grid}n_trials: 4\n"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("more than the grid's 3 points"),
            "{message}"
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_file_and_key() {
        let metric = "metric: {name: a|b, goal: maximize}\n";
        let message = parse(&format!("methd: tpe\n{metric}{PARAMETERS}"))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("sweeps/s.yaml: unknown field `methd`"),
            "{message}"
        );
        let message = parse(&format!("{metric}{PARAMETERS}"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`method: tpe` needs `n_trials`"),
            "{message}"
        );
        let message = parse(&format!("n_trials: 2\nparallel: 0\n{metric}{PARAMETERS}"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("`parallel` is 0"), "{message}");
        let message = parse(&format!(
            "n_trials: 2\nmetric: {{name: a, goal: up}}\n{PARAMETERS}"
        ))
        .unwrap_err()
        .to_string();
        assert!(message.contains("unknown variant `up`"), "{message}");
        assert_eq!(
            parse(&format!("n_trials: 2\n{metric}{PARAMETERS}"))
                .unwrap()
                .spec
                .metric
                .log_key(),
            "a/b"
        );
    }
}
