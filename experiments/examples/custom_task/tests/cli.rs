//! The user's binary registers its own task and experiment and runs them through Grove's CLI.

use std::process::Command;

fn custom_train() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_custom_train"));
    command
        .env("RAYON_NUM_THREADS", "1")
        .env("GROVE_LOG", "warn");
    command
}

#[test]
fn the_users_experiment_is_listed_beside_groves() {
    let output = custom_train().arg("--list_experiments").output().unwrap();
    assert!(output.status.success());
    let names = String::from_utf8(output.stdout).unwrap();
    assert!(
        names.lines().any(|l| l == "linear_regression/local"),
        "{names}"
    );
    assert!(names.lines().any(|l| l == "bert/local"), "{names}");
}

#[test]
fn the_users_task_trains_and_its_error_falls() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let status = custom_train()
        .args([
            "--experiment=linear_regression/local",
            "--mode=train_and_eval",
        ])
        .arg(format!("--model_dir={}", model_dir.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let metrics = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
    let validation: Vec<f64> = metrics
        .lines()
        .filter(|l| l.contains("\"validation\""))
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            line["validation_loss"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(validation.len(), 2, "{metrics}");
    // Noise variance is 0.01: a fitted model gets close to it.
    assert!(validation[1] < 0.05, "{validation:?}");
    assert!(model_dir
        .join("ckpt-200")
        .join("model.safetensors")
        .is_file());
}

#[test]
fn the_users_action_switched_on_from_yaml_writes_a_report_per_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let config = dir.path().join("actions.yaml");
    std::fs::write(&config, "trainer:\n  eval_actions: [eval_report]\n").unwrap();
    let status = custom_train()
        .args([
            "--experiment=linear_regression/local",
            "--mode=train_and_eval",
        ])
        .arg(format!("--config_file={}", config.display()))
        .arg(format!("--model_dir={}", model_dir.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let reports = model_dir.join("eval_reports");
    let mut names: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["step-100.json", "step-200.json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("step-200.json")).unwrap()).unwrap();
    let metrics = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
    let last_validation: serde_json::Value = metrics
        .lines()
        .rfind(|l| l.contains("\"validation\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(
        report["validation_loss"],
        last_validation["validation_loss"]
    );
}

#[test]
fn a_misspelt_action_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = custom_train()
        .args([
            "--experiment=linear_regression/local",
            "--mode=train",
            "trainer.eval_actions=[eval_reprt]",
        ])
        .arg(format!("--model_dir={}", model_dir.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("trainer.eval_actions[0]"), "{stderr}");
    assert!(stderr.contains("did you mean `eval_report`?"), "{stderr}");
    assert!(!model_dir.exists());
}
