//! Config drift on resume, in process: a rerun's config against the params.yaml of its
//! model_dir.

mod common;

use std::path::{Path, PathBuf};

use common::config;
use grove_core::config::ExperimentConfig;
use grove_orbit::ErrorKind;
use grove_trainers::config_drift::{check_drift, record_changes, CHANGES_FILE};

const EXPERIMENT: &str = "image_classification/mnist_local";

fn written(dir: &Path, config: &ExperimentConfig) -> PathBuf {
    let params = dir.join("params.yaml");
    std::fs::write(&params, config.to_yaml_string()).unwrap();
    params
}

#[test]
fn a_first_run_and_an_unchanged_rerun_have_no_drift() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(EXPERIMENT, &[]);
    let absent = dir.path().join("params.yaml");
    assert_eq!(check_drift(&config, &absent, false).unwrap(), Vec::new());
    let params = written(dir.path(), &config);
    assert_eq!(check_drift(&config, &params, false).unwrap(), Vec::new());
}

#[test]
fn cadence_changes_pass_and_others_need_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let params = written(dir.path(), &config(EXPERIMENT, &[]));
    let rerun = config(
        EXPERIMENT,
        &[
            "task.losses.label_smoothing=0.25",
            "task.init_checkpoint=/elsewhere",
            "trainer.train_steps=5000",
            "runtime.num_threads=3",
        ],
    );

    let refused = check_drift(&rerun, &params, false).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::UserInput);
    let message = refused.to_string();
    assert!(
        message.contains("task.losses.label_smoothing: 0.0 -> 0.25"),
        "{message}"
    );
    assert!(message.contains("--allow_config_change"), "{message}");
    assert!(!message.contains("train_steps"), "{message}");
    assert!(!message.contains("init_checkpoint"), "{message}");

    let accepted = check_drift(&rerun, &params, true).unwrap();
    let keys: Vec<&str> = accepted.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["task.losses.label_smoothing"]);
    record_changes(dir.path(), 40, &accepted).unwrap();
    record_changes(dir.path(), 40, &[]).unwrap();
    let record = std::fs::read_to_string(dir.path().join(CHANGES_FILE)).unwrap();
    let lines: Vec<serde_json::Value> = record
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = serde_json::json!({
        "global_step": 40,
        "changes": {"task.losses.label_smoothing": {"old": 0.0, "new": 0.25}},
    });
    assert_eq!(lines, [expected]);
}

#[test]
fn a_damaged_params_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("params.yaml");
    std::fs::write(&params, "task: [unclosed").unwrap();
    let error = check_drift(&config(EXPERIMENT, &[]), &params, false).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UserInput);
    let message = error.to_string();
    assert!(
        message.contains("params.yaml: not valid YAML") && message.contains("remove it"),
        "{message}"
    );
}
