//! `runtime.loggers: [..., mlflow]`: a `bert/local` run reports to a real MLflow tracking
//! server, and MLflow's own client reads the run back (`trackers/tests/mlflow_read_run.py`);
//! a run killed with kill -9 and run again continues the same MLflow run with every step
//! once. Those tests need Python with the `mlflow` package (`MLFLOW_PYTHON`; `.ci/run` makes a
//! venv) and are ignored in the default test run. A server that cannot be reached, or none
//! named, fails the run at its start with nothing written (no server needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_support::{assert_ok, stderr};
use serde_json::Value;

#[path = "cli_support/mod.rs"]
mod cli_support;

/// 120 steps of a small bert/local: summaries every 10 steps, checkpoints every 50 (so a run
/// killed at step 95 has summaries on the server past its last checkpoint).
const RUN: &str = "trainer.train_steps=120,trainer.steps_per_loop=10,trainer.summary_interval=10,\
    trainer.checkpoint_interval=50,trainer.validation_interval=50,\
    task.train_data.global_batch_size=8,task.validation_data.global_batch_size=8,\
    task.train_data.seq_length=32,task.validation_data.seq_length=32,\
    task.train_data.max_predictions_per_seq=5,task.validation_data.max_predictions_per_seq=5,\
    task.train_data.num_examples=256,task.validation_data.num_examples=24,\
    runtime.loggers=[tensorboard,jsonl,mlflow],runtime.mlflow.experiment_name=grove-test,\
    runtime.mlflow.run_name=resumed,runtime.mlflow.api_token=${env:TEST_MLFLOW_TOKEN}";

/// The token the runs read from the environment (the test server does not check it); it must
/// not reach params.yaml or the run's params.
const TOKEN: &str = "s3cr3t-t0ken";

/// The step the first run is killed at, and the checkpoint it resumes from.
const KILLED_AT: u64 = 95;
const RESUMED_FROM: i64 = 50;

/// Metrics measured on the clock: the same steps, values that differ between runs.
const TIMINGS: [&str; 2] = ["steps_per_second", "input_wait_fraction"];

/// `train` on bert/local with [`RUN`], reporting to `uri`.
fn train(model_dir: &Path, uri: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_train"));
    command
        .args(["--experiment=bert/local", "--mode=train_and_eval"])
        .arg(format!("--model_dir={}", model_dir.display()))
        .arg(format!(
            "--params_override={RUN},runtime.mlflow.tracking_uri={uri}"
        ))
        .env("RAYON_NUM_THREADS", "1")
        .env("TEST_MLFLOW_TOKEN", TOKEN)
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_TRACKING_TOKEN");
    command
}

/// A tracking server on 127.0.0.1 (SQLite store, proxied artifacts in a temp dir), stopped
/// with its workers on drop.
struct Server {
    child: Child,
    uri: String,
    python: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        use std::os::unix::process::CommandExt;

        let python = std::env::var("MLFLOW_PYTHON")
            .expect("set MLFLOW_PYTHON to a Python that has the mlflow package");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(&python)
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!(
                "--backend-store-uri=sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg(format!(
                "--artifacts-destination={}",
                dir.path().join("artifacts").display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            uri: format!("http://127.0.0.1:{port}"),
            python,
            _dir: dir,
        };
        server.wait_until_healthy();
        server
    }

    /// Waits (up to two minutes: the first start migrates the database) for `/health`.
    fn wait_until_healthy(&self) {
        let start = Instant::now();
        let address = self.uri.trim_start_matches("http://").to_string();
        while start.elapsed() < Duration::from_secs(120) {
            if health(&address) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("the MLflow server at {} did not answer /health", self.uri);
    }

    /// Every run of the test experiment, as MLflow's client reads it.
    fn runs(&self) -> Vec<Value> {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../trackers/tests/mlflow_read_run.py"
        );
        let output = Command::new(&self.python)
            .args([script, &self.uri, "grove-test"])
            .output()
            .unwrap();
        assert_ok(&output);
        let read: Value = serde_json::from_slice(&output.stdout).unwrap();
        read["runs"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 that nothing listens on (one the system just handed out and took back).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Whether an HTTP GET of `/health` at `address` answers `OK`.
fn health(address: &str) -> bool {
    use std::io::{Read, Write};

    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// metrics.jsonl as `<split>/<name>` → step → value, a repeated step keeping its last value.
fn jsonl_metrics(model_dir: &Path) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let text = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
    let mut metrics: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let step = entry["step"].as_i64().unwrap();
        let split = entry["split"].as_str().unwrap();
        for (name, value) in entry.as_object().unwrap() {
            if let Some(value) = value.as_f64().filter(|_| name != "step") {
                let key = format!("{split}/{name}");
                metrics.entry(key).or_default().insert(step, value);
            }
        }
    }
    metrics
}

/// A run's metric histories as `key` → [(step, value)] in step order.
fn histories(run: &Value) -> BTreeMap<String, Vec<(i64, f64)>> {
    let metrics = run["metrics"].as_object().unwrap();
    metrics
        .iter()
        .map(|(key, history)| {
            let points = history.as_array().unwrap().iter();
            let points = points.map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()));
            (key.clone(), points.collect())
        })
        .collect()
}

#[test]
#[ignore = "needs Python with the mlflow package: .ci/run makes a venv and runs it"]
fn a_killed_and_resumed_run_is_one_mlflow_run_with_every_metric_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");

    let killed = train(&model_dir, &server.uri)
        .env("GROVE_FAULT_INJECT", format!("train_step:{KILLED_AT}"))
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "{}", stderr(&killed));
    let runs = server.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "RUNNING");
    // The case resume must handle: summaries past the checkpoint the rerun starts from.
    let sent_before_kill = histories(&runs[0])["train/training_loss"].clone();
    assert!(
        sent_before_kill
            .iter()
            .any(|&(step, _)| step > RESUMED_FROM),
        "the killed run sent no summary after step {RESUMED_FROM}: {sent_before_kill:?}"
    );

    let resumed = train(&model_dir, &server.uri).output().unwrap();
    assert_ok(&resumed);
    assert!(stderr(&resumed).contains("MLflow: continuing run"));

    let runs = server.runs();
    assert_eq!(runs.len(), 1, "the rerun continues the same MLflow run");
    let run = &runs[0];
    assert_eq!(run["status"], "FINISHED");
    assert_eq!(run["name"], "resumed");
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("mlflow_run.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["run_id"], run["run_id"]);

    // Params: the resolved config's leaves as params.yaml holds them.
    let params = run["params"].as_object().unwrap();
    assert_eq!(params["trainer.train_steps"], "120");
    assert_eq!(params["task.train_data.seq_length"], "32");
    assert_eq!(
        params["runtime.loggers"],
        "[\"tensorboard\",\"jsonl\",\"mlflow\"]"
    );
    assert!(params.len() > 50, "{} params", params.len());
    assert_eq!(params["runtime.mlflow.api_token"], "***");
    assert!(!params.values().any(|v| v.as_str().unwrap().contains(TOKEN)));
    let saved = std::fs::read_to_string(model_dir.join("params.yaml")).unwrap();
    assert!(!saved.contains(TOKEN));
    let artifacts: Vec<&str> = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(artifacts.contains(&"params.yaml"), "{artifacts:?}");

    // Metrics: every metric of metrics.jsonl, each step once, with its value.
    let expected = jsonl_metrics(&model_dir);
    let received = histories(run);
    assert_eq!(
        received.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, points) in &received {
        let steps: Vec<i64> = points.iter().map(|&(step, _)| step).collect();
        let want: Vec<i64> = expected[key].keys().copied().collect();
        assert_eq!(steps, want, "{key}: steps on the server");
        if TIMINGS.iter().any(|timing| key.ends_with(timing)) {
            continue;
        }
        for &(step, value) in points {
            assert_eq!(value, expected[key][&step], "{key} at step {step}");
        }
    }
    assert_eq!(expected["train/training_loss"].len(), 12);
    assert_eq!(
        expected["validation/validation_loss"]
            .keys()
            .collect::<Vec<_>>(),
        [&50, &100, &120]
    );
}

/// A run whose tracking server does not answer fails at its start with the address and the
/// fix, exit code 2, and writes nothing.
#[test]
fn an_unreachable_tracking_server_fails_the_run_before_anything_is_written() {
    let uri = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let model_dir: PathBuf = dir.path().join("run");
    let output: Output = train(&model_dir, &uri).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("cannot reach the MLflow tracking server at {uri}")),
        "{message}"
    );
    assert!(message.contains("runtime.mlflow.tracking_uri"), "{message}");
    assert!(!model_dir.exists());
}

/// `mlflow` among the loggers with no server named (nor MLFLOW_TRACKING_URI) is refused.
#[test]
fn mlflow_without_a_tracking_uri_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = train(&model_dir, "").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("MLFLOW_TRACKING_URI"), "{message}");
    assert!(!model_dir.exists());
}
