//! Layering: factory defaults, config files in order, overrides in order; strict keys and types
//! in every layer, with errors naming the key and the layer.

use std::path::PathBuf;

use grove_core::config::{resolve, ConfigSources, DataConfig, ExperimentConfig, TaskConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ToyTask {
    init_checkpoint: String,
    hidden: usize,
    name: String,
    train_data: DataConfig,
    validation_data: DataConfig,
}

impl Default for ToyTask {
    fn default() -> Self {
        ToyTask {
            init_checkpoint: String::new(),
            hidden: 8,
            name: "factory".to_string(),
            train_data: DataConfig::default(),
            validation_data: DataConfig::default(),
        }
    }
}

impl TaskConfig for ToyTask {
    type Data = DataConfig;
    fn train_data(&self) -> &DataConfig {
        &self.train_data
    }
    fn validation_data(&self) -> &DataConfig {
        &self.validation_data
    }
    fn init_checkpoint(&self) -> &str {
        &self.init_checkpoint
    }
}

fn defaults() -> ExperimentConfig {
    let mut config = ExperimentConfig::new(ToyTask::default());
    config.trainer.train_steps = 100;
    config.trainer.steps_per_loop = 10;
    config.trainer.summary_interval = 10;
    config.trainer.checkpoint_interval = 10;
    config.trainer.validation_interval = 10;
    config
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn sources(files: Vec<PathBuf>, overrides: &[&str]) -> ConfigSources {
    ConfigSources {
        config_files: files,
        params_overrides: overrides.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn two_files_and_two_overrides_stack_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        &dir,
        "first.yaml",
        "task: {hidden: 16, name: first}\ntrainer: {train_steps: 200, max_to_keep: 2}\n",
    );
    let second = write(
        &dir,
        "second.yaml",
        "task:\n  hidden: 32\ntrainer:\n  train_steps: 300\n",
    );
    let config = resolve(
        &defaults(),
        &sources(
            vec![first, second],
            &[
                "trainer.train_steps=400,runtime.seed=7",
                "{trainer: {train_steps: 500}}",
            ],
        ),
    )
    .unwrap();
    let task = config.task_as::<ToyTask>().unwrap();
    assert_eq!(task.hidden, 32); // second file beats first
    assert_eq!(task.name, "first"); // first file beats the factory
    assert_eq!(config.trainer.max_to_keep, 2);
    assert_eq!(config.trainer.train_steps, 500); // last override wins
    assert_eq!(config.runtime.seed, 7);
    assert_eq!(config.trainer.steps_per_loop, 10); // factory value kept
}

#[test]
fn an_unknown_key_names_the_path_the_layer_and_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "typo.yaml", "task:\n  hiden: 16\n");
    let err = resolve(&defaults(), &sources(vec![file.clone()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("unknown key `task.hiden`"), "{err}");
    assert!(err.contains("did you mean `task.hidden`?"), "{err}");

    let err = resolve(&defaults(), &sources(vec![], &["trainer.train_step=5"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--params_override \"trainer.train_step=5\""),
        "{err}"
    );
    assert!(err.contains("unknown key `trainer.train_step`"), "{err}");

    let err = resolve(&defaults(), &sources(vec![], &["tasks.hidden=5"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `tasks`"), "{err}");
}

#[test]
fn a_wrong_type_names_the_path_the_expected_type_and_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "bad.yaml", "trainer:\n  train_steps: lots\n");
    let err = resolve(&defaults(), &sources(vec![file.clone()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("`trainer.train_steps` expects"), "{err}");
    assert!(err.contains("lots"), "{err}");

    let err = resolve(&defaults(), &sources(vec![], &["task.hidden=[1,2]"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--params_override"), "{err}");
    assert!(err.contains("`task.hidden` expects"), "{err}");
}

#[test]
fn a_missing_config_file_is_reported_as_such() {
    let err = resolve(&defaults(), &sources(vec!["/no/such.yaml".into()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such.yaml: no such file"), "{err}");
}

#[test]
fn switching_a_one_of_type_takes_the_branch_defaults_and_drops_the_others() {
    let config = resolve(
        &defaults(),
        &sources(vec![], &["trainer.optimizer_config.optimizer.type=adamw"]),
    )
    .unwrap();
    let yaml = config.to_yaml_string();
    assert!(yaml.contains("adamw:"), "{yaml}");
    assert!(!yaml.contains("sgd:"), "{yaml}");
    assert_eq!(
        config.trainer.optimizer_config.optimizer.adamw().beta_1,
        0.9
    );
}

#[test]
fn settings_not_built_yet_are_rejected() {
    for (text, what) in [
        (
            "runtime.mixed_precision_dtype=bfloat16",
            "mixed_precision_dtype",
        ),
        (
            "runtime.distribution_strategy=mirrored",
            "distribution_strategy",
        ),
        ("trainer.recovery_max_trials=3", "recovery_max_trials"),
        ("trainer.best_checkpoint_eval_metric=acc", "best_checkpoint"),
    ] {
        let err = resolve(&defaults(), &sources(vec![], &[text]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(what) && err.contains("not supported yet"),
            "{err}"
        );
    }
}

#[test]
fn the_resolved_config_round_trips_through_yaml() {
    let config = resolve(&defaults(), &sources(vec![], &["task.name='a, b'"])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "params.yaml", &config.to_yaml_string());
    let again = resolve(&defaults(), &sources(vec![file], &[])).unwrap();
    assert_eq!(config, again);
    assert_eq!(again.task_as::<ToyTask>().unwrap().name, "a, b");
}
