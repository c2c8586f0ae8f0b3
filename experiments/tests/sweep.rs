//! `train --sweep`: sweeps of a tiny `image_classification/mnist_local` run to their end,
//! continue after the sweep or one of its trials is killed (fault points, so each kill lands
//! at a chosen place) with the same trials and best trial as an uninterrupted sweep, split
//! the threads among parallel trials, record failed trials, and refuse bad sweeps clearly.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use cli_support::{assert_ok, stderr};
use serde_json::Value;

#[path = "cli_support/mod.rs"]
mod cli_support;

/// 40 steps of a small MLP, evaluated every 10 steps, checkpointed every 20.
const BASE: &str = "trainer.train_steps=40,trainer.steps_per_loop=10,\
    trainer.summary_interval=10,trainer.checkpoint_interval=20,trainer.validation_interval=10,\
    trainer.optimizer_config.learning_rate.cosine.decay_steps=40,\
    task.train_data.num_examples=1024,task.validation_data.num_examples=256";

/// TPE (after two random trials) with the median pruner over the learning rate and width.
fn tpe_sweep(n_trials: u64) -> String {
    format!(
        "experiment: image_classification/mnist_local\n\
         params_override: [\"{BASE}\"]\n\
         method: tpe\ntpe: {{n_startup_trials: 2}}\n\
         metric: {{name: validation/accuracy, goal: maximize}}\n\
         n_trials: {n_trials}\nseed: 7\n\
         pruner: {{type: median, n_startup_trials: 1}}\n\
         parameters:\n\
         \x20 trainer.optimizer_config.learning_rate.cosine.initial_learning_rate:\n\
         \x20   {{distribution: log_uniform, min: 1.0e-4, max: 0.3}}\n\
         \x20 task.model.backbone.mlp.hidden_sizes: {{values: [[16], [32]]}}\n"
    )
}

/// Runs `train --sweep` on `spec` (written next to the sweep directory) with `args`, and a
/// fault injected if given.
fn sweep(dir: &Path, spec: &str, args: &[&str], fault: Option<&str>) -> Output {
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, spec).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_train"));
    command
        .arg(format!("--sweep={}", file.display()))
        .arg(format!("--model_dir={}", dir.join("sweep").display()))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env("GROVE_LOG", "info")
        .env_remove("GROVE_FAULT_INJECT");
    if let Some(fault) = fault {
        command.env("GROVE_FAULT_INJECT", fault);
    }
    command.output().unwrap()
}

/// The ledger's events.
fn events(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("sweep/trials.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each trial's finished event without its time, by trial; fails if a trial finished twice.
fn finished(dir: &Path) -> BTreeMap<u64, Value> {
    let mut trials = BTreeMap::new();
    for mut event in events(dir) {
        if event["event"] == "finished" {
            event.as_object_mut().unwrap().remove("time");
            let trial = event["trial"].as_u64().unwrap();
            assert!(
                trials.insert(trial, event).is_none(),
                "trial {trial} finished twice"
            );
        }
    }
    trials
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("sweep/summary.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_sweep_or_trial_continues_to_the_same_trials_and_best_trial() {
    let spec = tpe_sweep(5);
    let uninterrupted = tempfile::tempdir().unwrap();
    let output = sweep(uninterrupted.path(), &spec, &[], None);
    assert_ok(&output);
    let expected = finished(uninterrupted.path());
    assert_eq!(expected.len(), 5);
    let states: Vec<&Value> = expected.values().map(|t| &t["state"]).collect();
    assert!(states.contains(&&Value::from("pruned")), "{states:?}");
    let best = summary(uninterrupted.path())["best"].clone();
    assert!(best["trial"].is_u64(), "{best}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("5 of 5 trials"));

    // The sweep killed after recording a suggestion, after a trial exited, after recording a
    // result; a trial killed in its 25th step (its checkpoint is at step 20).
    for fault in [
        "sweep_trial_suggested:3",
        "sweep_trial_exited:2",
        "sweep_trial_recorded:4",
        "train_step:25",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let killed = sweep(dir.path(), &spec, &[], Some(fault));
        assert!(!killed.status.success(), "{fault}: the fault did not fire");
        if fault.starts_with("train_step") {
            assert_eq!(
                killed.status.code(),
                Some(75),
                "{fault}: {}",
                stderr(&killed)
            );
            assert!(stderr(&killed).contains("trial 0 was killed by signal"));
        }
        let resumed = sweep(dir.path(), &spec, &[], None);
        assert_ok(&resumed);
        assert_eq!(finished(dir.path()), expected, "{fault}");
        assert_eq!(summary(dir.path())["best"], best, "{fault}");
        let suggested = events(dir.path())
            .iter()
            .filter(|e| e["event"] == "suggested")
            .count();
        assert_eq!(suggested, 5, "{fault}");
    }
}

#[test]
fn parallel_trials_split_the_threads_and_survive_a_killed_sweep() {
    let spec = format!(
        "experiment: image_classification/mnist_local\n\
         params_override: [\"{BASE},runtime.num_threads=2\"]\n\
         method: random\nmetric: {{name: validation/accuracy, goal: maximize}}\n\
         n_trials: 3\nparallel: 2\nseed: 3\n\
         parameters:\n\
         \x20 task.model.dropout_rate: {{distribution: uniform, min: 0.0, max: 0.5, q: 0.1}}\n"
    );
    let uninterrupted = tempfile::tempdir().unwrap();
    assert_ok(&sweep(uninterrupted.path(), &spec, &[], None));
    let events = events(uninterrupted.path());
    let position = |kind: &str, trial: u64| {
        (events.iter())
            .position(|e| e["event"] == kind && e["trial"] == trial)
            .unwrap()
    };
    assert!(position("started", 1) < position("finished", 0));
    for trial in 0..3 {
        let params = std::fs::read_to_string(
            uninterrupted
                .path()
                .join(format!("sweep/trial-{trial}/params.yaml")),
        )
        .unwrap();
        assert!(params.contains("num_threads: 1"), "{params}");
    }
    // Killed when the first trial exits, the other still running: it is stopped with a
    // checkpoint (its parent gone), and the rerun resumes it.
    let dir = tempfile::tempdir().unwrap();
    let killed = sweep(dir.path(), &spec, &[], Some("sweep_trial_exited:1"));
    assert!(!killed.status.success());
    assert_ok(&sweep(dir.path(), &spec, &[], None));
    assert_eq!(finished(dir.path()), finished(uninterrupted.path()));
}

#[test]
fn failed_trials_are_recorded_until_max_failures_ends_the_sweep() {
    let spec = |max_failures: u64| {
        format!(
            "experiment: image_classification/mnist_local\n\
             params_override: [\"{BASE}\"]\n\
             method: grid\nmetric: {{name: accuracy, goal: maximize}}\n\
             max_failures: {max_failures}\n\
             parameters:\n\
             \x20 trainer.optimizer_config.learning_rate.cosine.initial_learning_rate:\n\
             \x20   {{values: [1.0e+30, 0.003]}}\n\
             \x20 task.model.backbone.mlp.hidden_sizes: {{values: [[16], [32]]}}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&sweep(dir.path(), &spec(3), &[], None));
    let trials = finished(dir.path());
    let states: Vec<&str> = trials
        .values()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "complete", "failed", "complete"]);
    let reason = trials[&0]["reason"].as_str().unwrap();
    assert!(reason.contains("the training loss is NaN"), "{reason}");

    let dir = tempfile::tempdir().unwrap();
    let output = sweep(dir.path(), &spec(1), &[], None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("1 trials failed (max_failures = 1)"));
    assert_eq!(finished(dir.path()).len(), 1);
}

#[test]
fn bad_sweeps_are_refused_naming_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |spec: &str, args: &[&str], expected: &str| {
        let output = sweep(dir.path(), spec, args, None);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    };
    let typo = tpe_sweep(2).replace("mlp.hidden_sizes", "mlp.hiden_sizes");
    refused(
        &typo,
        &[],
        "`parameters.task.model.backbone.mlp.hiden_sizes` with value [16]",
    );
    refused(
        &typo,
        &[],
        "did you mean `task.model.backbone.mlp.hidden_sizes`?",
    );
    refused(
        &tpe_sweep(2),
        &["task.model.backbone.mlp.hidden_sizes=[8]"],
        "sets `task.model.backbone.mlp.hidden_sizes`, which",
    );
    refused(
        &tpe_sweep(2),
        &["--experiment=bert/local"],
        "differs from `experiment: image_classification/mnist_local`",
    );
    let negative = tpe_sweep(2).replace("min: 1.0e-4", "min: 0.0");
    refused(&negative, &[], "`distribution: log_uniform` needs min > 0");

    // A metric no evaluation has stops the sweep at the first evaluation.
    let wrong_metric = tpe_sweep(2).replace("validation/accuracy", "validation/acc");
    refused(
        &wrong_metric,
        &[],
        "`validation/acc` is not among this evaluation's metrics: accuracy",
    );
    assert!(finished(dir.path()).is_empty());
    assert!(!dir.path().join("sweep/trial-0/ckpt-20").exists());

    // Another search in the same directory, and a second sweep process, are refused.
    refused(&tpe_sweep(2), &[], "holds a sweep with another `metric`");
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("sweep")).unwrap();
    let lock = std::fs::File::create(other.path().join("sweep/.sweep.lock")).unwrap();
    lock.try_lock().unwrap();
    let output = sweep(other.path(), &tpe_sweep(2), &[], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("is being swept by another process"));
}

#[test]
fn sweep_status_prints_the_ranked_trials() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&sweep(dir.path(), &tpe_sweep(3), &[], None));
    let output = Command::new(env!("CARGO_BIN_EXE_train"))
        .arg("--sweep_status")
        .arg(format!(
            "--model_dir={}",
            dir.path().join("sweep").display()
        ))
        .output()
        .unwrap();
    assert_ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    let best = summary(dir.path())["best"]["trial"].as_u64().unwrap();
    assert!(text.contains("3 of 3 trials"), "{text}");
    assert!(
        text.contains(&format!("Best: trial {best} with validation/accuracy")),
        "{text}"
    );
    assert_eq!(
        text,
        std::fs::read_to_string(dir.path().join("sweep/summary.md")).unwrap()
    );
}

/// Lists the HParams sessions under `logdir` with TensorBoard's own backend.
fn tensorboard_sessions(logdir: &Path) -> Value {
    let python = std::env::var("TENSORBOARD_PYTHON")
        .expect("set TENSORBOARD_PYTHON to a Python that has the tensorboard package");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sweep/tests/tensorboard_hparams.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(logdir)
        .output()
        .unwrap();
    assert_ok(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A single run is a session too: TensorBoard lists its config values and metrics.
#[test]
#[ignore = "needs Python with the tensorboard package: .ci/run makes a venv and runs it"]
fn tensorboard_lists_a_single_run_with_its_config_values() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "--experiment=image_classification/mnist_local",
            "--mode=train_and_eval",
        ])
        .arg(format!("--model_dir={}", dir.path().join("run").display()))
        .arg(format!("--params_override={BASE}"))
        .arg("task.model.dropout_rate=0.25")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert_ok(&output);
    let listed = tensorboard_sessions(dir.path());
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session["name"], "run");
    assert_eq!(session["status"], "STATUS_SUCCESS");
    assert_eq!(session["hparams"]["task.model.dropout_rate"], 0.25);
    assert_eq!(session["hparams"]["trainer.train_steps"], 40.0);
    assert!(
        session["metrics"]["validation/accuracy"].is_f64(),
        "{session}"
    );
}

/// TensorBoard's own HParams backend (its event multiplexer, data provider and the hparams
/// plugin's ListSessionGroups handler, through `sweep/tests/tensorboard_hparams.py`) lists
/// every trial with its swept values, its status and its final metric.
#[test]
#[ignore = "needs Python with the tensorboard package: .ci/run makes a venv and runs it"]
fn tensorboard_lists_the_trials_with_their_hparams_status_and_metric() {
    let spec = format!(
        "experiment: image_classification/mnist_local\n\
         params_override: [\"{BASE}\"]\n\
         method: grid\nmetric: {{name: validation/accuracy, goal: maximize}}\n\
         parameters:\n\
         \x20 trainer.optimizer_config.learning_rate.cosine.initial_learning_rate:\n\
         \x20   {{values: [1.0e+30, 0.003]}}\n\
         \x20 task.model.backbone.mlp.hidden_sizes: {{values: [[16], [32]]}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&sweep(dir.path(), &spec, &[], None));
    let listed = tensorboard_sessions(&dir.path().join("sweep"));
    let lr = "trainer.optimizer_config.learning_rate.cosine.initial_learning_rate";
    let width = "task.model.backbone.mlp.hidden_sizes";
    assert_eq!(listed["hparams"], serde_json::json!([width, lr]));
    assert_eq!(
        listed["metrics"],
        serde_json::json!(["validation/accuracy"])
    );
    let sessions = listed["sessions"].as_array().unwrap();
    let trials = finished(dir.path());
    assert_eq!(sessions.len(), trials.len());
    let params: BTreeMap<u64, Value> = events(dir.path())
        .into_iter()
        .filter(|e| e["event"] == "suggested")
        .map(|e| (e["trial"].as_u64().unwrap(), e["params"].clone()))
        .collect();
    for session in sessions {
        let name = session["name"].as_str().unwrap();
        let trial: u64 = name.strip_prefix("trial-").unwrap().parse().unwrap();
        let hparams = &session["hparams"];
        assert_eq!(hparams[lr], params[&trial][lr], "{name}");
        assert_eq!(hparams[width], params[&trial][width].to_string(), "{name}");
        match trials[&trial]["state"].as_str().unwrap() {
            "complete" => {
                assert_eq!(session["status"], "STATUS_SUCCESS", "{name}");
                let expected = trials[&trial]["value"].as_f64().unwrap() as f32;
                let shown = session["metrics"]["validation/accuracy"].as_f64().unwrap();
                assert_eq!(shown as f32, expected, "{name}");
            }
            state => {
                assert_eq!(state, "failed");
                assert_eq!(session["status"], "STATUS_FAILURE", "{name}");
            }
        }
    }
}
