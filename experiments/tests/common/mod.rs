//! Helpers the in-process test binaries share.

use grove_core::config::{resolve, ConfigSources, ExperimentConfig};
use grove_core::registry::get_experiment;

/// `experiment` with `overrides` (`key=value`) applied.
pub fn config(experiment: &str, overrides: &[&str]) -> ExperimentConfig {
    grove_experiments::register().unwrap();
    let sources = ConfigSources {
        trailing_overrides: overrides.iter().map(|s| s.to_string()).collect(),
        ..ConfigSources::default()
    };
    resolve(&get_experiment(experiment).unwrap(), &sources).unwrap()
}
