//! One Grove run as one MLflow run: started (or continued) in two steps, its summaries queued
//! per split and sent at every flush, its end status set once.
//!
//! - [`MlflowExperiment::connect`] reaches the server and resolves the experiment before the
//!   run writes anything, so a server that cannot be reached fails the run at its start.
//! - [`MlflowExperiment::start_run`] continues the MLflow run recorded in
//!   `model_dir/mlflow_run.json` when it is on the same server and not deleted, or creates one
//!   and records it; params the run lacks are logged (MLflow keeps a param's first value, so a
//!   changed one is reported and kept).
//! - Summaries are sent as `<split>/<name>` at each step, by a thread of the run's own so that
//!   training never waits for the server. The highest step the server holds
//!   for each split is read when the run starts and raised as values are sent, and a value at
//!   a step not above it is dropped: a run resumed from a checkpoint older than its last
//!   summaries repeats those steps, and the server keeps each step once.
//! - A send that fails keeps its values queued and is retried after a pause that doubles up
//!   to [`RetryPolicy::max_wait`]; at the run's end the rest is sent until
//!   [`RetryPolicy::finish_deadline`]. A failure is logged and never fails the run, whose own
//!   files (metrics.jsonl, event files) are complete.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use grove_orbit::summary::SummaryWriter;
use grove_orbit::{write_atomically, Logs};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrackerError};
use crate::mlflow_client::{
    now_ms, Credentials, Metric, MlflowClient, RunRecord, RunStatus, MAX_METRICS_PER_BATCH,
    MAX_PARAM_VALUE_CHARS,
};

/// The file in model_dir naming the MLflow run a resumed Grove run continues.
pub const RUN_FILE: &str = "mlflow_run.json";

/// What `mlflow_run.json` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    tracking_uri: String,
    experiment_id: String,
    run_id: String,
}

/// A tracking server that answered, with the experiment runs go to.
#[derive(Debug)]
pub struct MlflowExperiment {
    client: MlflowClient,
    experiment_id: String,
    retry: RetryPolicy,
}

impl MlflowExperiment {
    /// Reaches the server at `tracking_uri` and finds (or creates) the experiment `name`.
    pub fn connect(tracking_uri: &str, name: &str, credentials: Credentials) -> Result<Self> {
        let client = MlflowClient::new(tracking_uri, credentials)?;
        let experiment_id = client.experiment_id(name)?;
        Ok(MlflowExperiment {
            client,
            experiment_id,
            retry: RetryPolicy::default(),
        })
    }

    /// The same, retrying failed sends as `retry` says.
    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        MlflowExperiment { retry, ..self }
    }

    /// Starts the MLflow run of the Grove run in `model_dir` (continuing the recorded one
    /// where it can), logs the `params` it lacks and marks it running; `run_name` and `tags`
    /// are given to a new run.
    pub fn start_run(
        self,
        model_dir: &Path,
        run_name: &str,
        params: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
    ) -> Result<MlflowRun> {
        let client = self.client;
        let run_file = model_dir.join(RUN_FILE);
        let record = match continued_run(&client, &run_file)? {
            Some(record) => {
                tracing::info!(
                    "MLflow: continuing run {} at {} (recorded in {})",
                    record.run_id,
                    client.uri(),
                    run_file.display()
                );
                record
            }
            None => {
                let record = client.create_run(&self.experiment_id, run_name, tags)?;
                let file = RunFile {
                    tracking_uri: client.uri().to_string(),
                    experiment_id: record.experiment_id.clone(),
                    run_id: record.run_id.clone(),
                };
                let text = serde_json::to_string_pretty(&file).unwrap_or_default();
                write_atomically(&run_file, text.as_bytes())
                    .map_err(|e| TrackerError::run_file("cannot write", &run_file, e))?;
                tracing::info!(
                    "MLflow: run {} in experiment {} at {}",
                    record.run_id,
                    record.experiment_id,
                    client.uri()
                );
                record
            }
        };
        client.log_batch(&record.run_id, &new_params(&record, params), &[])?;
        client.set_status(&record.run_id, RunStatus::Running)?;
        Ok(MlflowRun::new(client, record, self.retry))
    }
}

/// The run `mlflow_run.json` names, if it is on this server and can still be logged to.
fn continued_run(client: &MlflowClient, run_file: &Path) -> Result<Option<RunRecord>> {
    let text = match std::fs::read_to_string(run_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrackerError::run_file("cannot read", run_file, e)),
    };
    let recorded: RunFile =
        serde_json::from_str(&text).map_err(|e| TrackerError::CorruptRunFile {
            path: run_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    if recorded.tracking_uri != client.uri() {
        tracing::warn!(
            "MLflow: this model_dir's run {} is on {}; a new run is started on {}",
            recorded.run_id,
            recorded.tracking_uri,
            client.uri()
        );
        return Ok(None);
    }
    match client.get_run(&recorded.run_id)? {
        Some(record) if record.lifecycle_stage == "active" => Ok(Some(record)),
        _ => {
            tracing::warn!(
                "MLflow: this model_dir's run {} is deleted on {}; a new run is started",
                recorded.run_id,
                client.uri()
            );
            Ok(None)
        }
    }
}

/// The params `record` lacks, values cut to MLflow's limit; a param whose value changed is
/// reported, since MLflow keeps the first.
fn new_params(record: &RunRecord, params: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut changed = Vec::new();
    let mut new = Vec::new();
    for (key, value) in params {
        let key = mlflow_key(key);
        let value = param_value(&key, value);
        match record.params.get(&key) {
            Some(logged) if *logged == value => {}
            Some(_) => changed.push(key),
            None => new.push((key, value)),
        }
    }
    if !changed.is_empty() {
        tracing::warn!(
            "MLflow: run {} keeps the first values of the params {} (MLflow params do not \
             change); the new values are in params.yaml",
            record.run_id,
            changed.join(", ")
        );
    }
    new
}

/// `value`, cut to [`MAX_PARAM_VALUE_CHARS`] with a warning.
fn param_value(key: &str, value: &str) -> String {
    if value.chars().count() <= MAX_PARAM_VALUE_CHARS {
        return value.to_string();
    }
    tracing::warn!(
        "MLflow: param {key} is {} characters long; its first {MAX_PARAM_VALUE_CHARS} are \
         logged (params.yaml has all)",
        value.chars().count()
    );
    value.chars().take(MAX_PARAM_VALUE_CHARS).collect()
}

/// `name` with each character MLflow refuses in keys (it takes letters, digits, `_ - . / :`
/// and spaces) replaced by `_`.
pub fn mlflow_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-./: ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The highest step per split among `latest_steps` (keys `<split>/<name>`).
fn sent_steps(latest_steps: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut sent = BTreeMap::new();
    for (key, &step) in latest_steps {
        if let Some((split, _)) = key.split_once('/') {
            let highest = sent.entry(split.to_string()).or_insert(step);
            *highest = (*highest).max(step);
        }
    }
    sent
}

/// A metric value waiting to be sent, with its split.
#[derive(Debug)]
struct Queued {
    split: String,
    metric: Metric,
}

/// How the sender retries: the first wait after a failed send (doubled after each further
/// failure up to `max_wait`), and how long [`MlflowRun::finish`] keeps trying to send what is
/// left.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failed send.
    pub first_wait: Duration,
    /// The longest wait between sends.
    pub max_wait: Duration,
    /// How long the run's end waits for the queue to empty.
    pub finish_deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            finish_deadline: Duration::from_secs(10),
        }
    }
}

/// The values waiting to be sent, shared by the writers and the sender thread.
#[derive(Debug, Default)]
struct Outbox {
    /// The highest step of each split that the server holds or that is queued.
    sent_steps: BTreeMap<String, i64>,
    queue: VecDeque<Queued>,
    /// Set by [`MlflowRun::finish`]: send what is left before the deadline, then stop.
    closing: Option<Instant>,
    /// Sends failed since the last one that worked.
    failed_sends: u64,
}

/// [`Outbox`] with the condition the sender waits on.
#[derive(Debug, Default)]
struct Shared {
    outbox: Mutex<Outbox>,
    wake: Condvar,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A started MLflow run (see the module doc). Values are sent by a thread of their own, so
/// a step never waits for the server.
#[derive(Debug)]
pub struct MlflowRun {
    client: MlflowClient,
    run_id: String,
    artifact_uri: String,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
}

impl MlflowRun {
    fn new(client: MlflowClient, record: RunRecord, retry: RetryPolicy) -> Self {
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox {
                sent_steps: sent_steps(&record.latest_steps),
                ..Outbox::default()
            }),
            wake: Condvar::new(),
        });
        let sender = {
            let (client, run_id, shared) =
                (client.clone(), record.run_id.clone(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("mlflow-sender".to_string())
                .spawn(move || send_until_closed(&client, &run_id, &shared, retry))
                .ok()
        };
        if sender.is_none() {
            tracing::warn!("MLflow: cannot start the sender thread; metrics are not sent");
        }
        MlflowRun {
            client,
            run_id: record.run_id,
            artifact_uri: record.artifact_uri,
            shared,
            sender,
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A summary writer sending `split`'s summaries to this run.
    pub fn writer(&self, split: &str) -> MlflowWriter {
        MlflowWriter {
            shared: Arc::clone(&self.shared),
            split: split.to_string(),
        }
    }

    /// Stores `bytes` as the artifact `path`; logs (and otherwise ignores) a failure, or a
    /// server that does not take artifacts.
    pub fn upload_artifact(&self, path: &str, bytes: &[u8]) {
        match self.client.upload_artifact(&self.artifact_uri, path, bytes) {
            Ok(true) => tracing::debug!("MLflow: artifact {path} stored"),
            Ok(false) => tracing::info!(
                "MLflow: the server does not proxy artifacts (they go to {}); {path} is not \
                 uploaded",
                self.artifact_uri
            ),
            Err(error) => tracing::warn!("MLflow: cannot upload {path}: {error}"),
        }
    }

    /// Uploads the file at `file` as the artifact `path`, if the file exists.
    pub fn upload_file(&self, path: &str, file: &Path) {
        match std::fs::read(file) {
            Ok(bytes) => self.upload_artifact(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("MLflow: cannot read {}: {e}", file.display()),
        }
    }

    /// Sends what is queued (retrying until the policy's deadline) and sets the run's end
    /// `status`; failures are logged.
    pub fn finish(mut self, status: RunStatus) {
        self.shared.outbox().closing = Some(Instant::now());
        self.shared.wake.notify_all();
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        let outbox = self.shared.outbox();
        if !outbox.queue.is_empty() {
            let mut splits: Vec<&str> = outbox.queue.iter().map(|q| q.split.as_str()).collect();
            splits.sort_unstable();
            splits.dedup();
            tracing::warn!(
                "MLflow: {} metric values of {} were not sent; metrics.jsonl and the event \
                 files in model_dir have them",
                outbox.queue.len(),
                splits.join(", ")
            );
        }
        drop(outbox);
        if let Err(error) = self.client.set_status(&self.run_id, status) {
            tracing::warn!(
                "MLflow: cannot set run {} to {status:?}: {error}",
                self.run_id
            );
        }
    }
}

/// The sender thread: sends the queue a batch at a time, waits after a failure, and returns
/// once the run is closing and the queue is empty or the finish deadline has passed.
fn send_until_closed(client: &MlflowClient, run_id: &str, shared: &Shared, retry: RetryPolicy) {
    let mut wait = retry.first_wait;
    loop {
        let batch: Vec<Metric> = {
            let mut outbox = shared.outbox();
            while outbox.queue.is_empty() && outbox.closing.is_none() {
                outbox = shared.wake.wait(outbox).unwrap_or_else(|p| p.into_inner());
            }
            if outbox.queue.is_empty() {
                return;
            }
            let count = outbox.queue.len().min(MAX_METRICS_PER_BATCH);
            outbox
                .queue
                .iter()
                .take(count)
                .map(|q| q.metric.clone())
                .collect()
        };
        let sent = client.log_batch(run_id, &[], &batch);
        let mut outbox = shared.outbox();
        match sent {
            Ok(()) => {
                outbox.queue.drain(..batch.len());
                if outbox.failed_sends > 0 {
                    tracing::info!(
                        "MLflow: sending works again (after {} failed sends)",
                        outbox.failed_sends
                    );
                    outbox.failed_sends = 0;
                }
                wait = retry.first_wait;
            }
            Err(error) => {
                outbox.failed_sends += 1;
                if outbox.failed_sends == 1 {
                    tracing::warn!(
                        "MLflow: cannot send {} metric values ({error}); they stay queued and \
                         are sent again; the run's own summaries in model_dir are complete",
                        outbox.queue.len()
                    );
                } else {
                    tracing::debug!("MLflow: send {} failed: {error}", outbox.failed_sends);
                }
                if outbox
                    .closing
                    .is_some_and(|since| since.elapsed() + wait > retry.finish_deadline)
                {
                    return;
                }
                drop(outbox);
                std::thread::sleep(wait);
                wait = (wait * 2).min(retry.max_wait);
            }
        }
    }
}

/// Sends one split's summaries to an [`MlflowRun`]: writing queues the values for the run's
/// sender thread. It never fails: a tracker that cannot be reached never stops training.
#[derive(Debug)]
pub struct MlflowWriter {
    shared: Arc<Shared>,
    split: String,
}

impl SummaryWriter for MlflowWriter {
    /// Queues `logs` at `step` as `<split>/<name>` metrics, unless the server has (or the
    /// queue holds) this split at this step or a later one.
    fn write_scalars(&mut self, step: u64, logs: &Logs) -> grove_orbit::Result<()> {
        let step = step as i64;
        let mut outbox = self.shared.outbox();
        if outbox
            .sent_steps
            .get(&self.split)
            .is_some_and(|&sent| step <= sent)
        {
            tracing::debug!(
                "MLflow: {} step {step} is on the server already",
                self.split
            );
            return Ok(());
        }
        outbox.sent_steps.insert(self.split.clone(), step);
        let timestamp_ms = now_ms();
        for (name, &value) in logs {
            outbox.queue.push_back(Queued {
                split: self.split.clone(),
                metric: Metric {
                    key: mlflow_key(&format!("{}/{name}", self.split)),
                    value,
                    timestamp_ms,
                    step,
                },
            });
        }
        drop(outbox);
        self.shared.wake.notify_all();
        Ok(())
    }

    fn flush(&mut self) -> grove_orbit::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::json;

    use super::*;
    use crate::test_server::{Request, TestServer};

    const MISSING: u16 = 404;

    fn run_json(run_id: &str, params: serde_json::Value, metrics: serde_json::Value) -> String {
        json!({"run": {
            "info": {
                "run_id": run_id,
                "experiment_id": "7",
                "artifact_uri": format!("mlflow-artifacts:/7/{run_id}/artifacts"),
                "lifecycle_stage": "active",
            },
            "data": {"params": params, "metrics": metrics},
        }})
        .to_string()
    }

    fn missing() -> (u16, String) {
        let body = json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such thing"});
        (MISSING, body.to_string())
    }

    /// A server with experiment 7 and, when `existing` is set, the run `r0` holding it.
    fn server(existing: Option<String>, failing_metric_sends: u32) -> TestServer {
        let failures = AtomicU32::new(failing_metric_sends);
        TestServer::start(move |request: &Request| {
            let path = request.path.as_str();
            if path.contains("experiments/get-by-name") {
                (
                    200,
                    json!({"experiment": {"experiment_id": "7"}}).to_string(),
                )
            } else if path.contains("runs/get") {
                match &existing {
                    Some(run) if path.ends_with("run_id=r0") => (200, run.clone()),
                    _ => missing(),
                }
            } else if path.contains("runs/create") {
                (200, run_json("r1", json!([]), json!([])))
            } else if path.contains("runs/log-batch")
                && request.body.contains("metrics")
                && failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                (503, "overloaded".to_string())
            } else {
                (200, "{}".to_string())
            }
        })
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Retries without the default's pauses.
    const FAST: RetryPolicy = RetryPolicy {
        first_wait: Duration::from_millis(5),
        max_wait: Duration::from_millis(20),
        finish_deadline: Duration::from_secs(30),
    };

    fn start(server: &TestServer, model_dir: &Path, values: &[(&str, &str)]) -> MlflowRun {
        MlflowExperiment::connect(&server.uri, "grove", Credentials::Token("t0k".into()))
            .unwrap()
            .with_retry(FAST)
            .start_run(model_dir, "run", &params(values), &BTreeMap::new())
            .unwrap()
    }

    fn write(run: &MlflowRun, split: &str, step: u64, value: f64) {
        run.writer(split).write_scalars(step, &logs(value)).unwrap();
    }

    fn logs(value: f64) -> Logs {
        Logs::from([("loss".to_string(), value)])
    }

    /// The (key, step, value) of every metric the server took, in order.
    fn sent_metrics(server: &TestServer) -> Vec<(String, i64, f64)> {
        let requests = server.requests().into_iter();
        let batches = requests.filter(|r| r.path.contains("log-batch") && r.status == 200);
        batches
            .flat_map(|r| r.json()["metrics"].as_array().cloned().unwrap_or_default())
            .map(|m| {
                let key = m["key"].as_str().unwrap().to_string();
                (
                    key,
                    m["step"].as_i64().unwrap(),
                    m["value"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_new_run_is_recorded_in_model_dir_with_its_params() {
        let server = server(None, 0);
        let dir = tempfile::tempdir().unwrap();
        let run = start(
            &server,
            dir.path(),
            &[("trainer.train_steps", "40"), ("a[0]", "x")],
        );
        assert_eq!(run.run_id(), "r1");
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(RUN_FILE)).unwrap())
                .unwrap();
        assert_eq!(file["run_id"], "r1");
        assert_eq!(file["tracking_uri"], server.uri.as_str());

        write(&run, "train", 10, 2.0);
        run.finish(RunStatus::Finished);
        let requests = server.requests();
        let logged = requests.iter().find(|r| r.body.contains("params")).unwrap();
        assert_eq!(
            logged.json()["params"],
            json!([{"key": "a_0_", "value": "x"}, {"key": "trainer.train_steps", "value": "40"}])
        );
        assert_eq!(sent_metrics(&server), [("train/loss".to_string(), 10, 2.0)]);
        let statuses: Vec<_> = requests
            .iter()
            .filter(|r| r.path.contains("runs/update"))
            .map(|r| r.json()["status"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(statuses, ["RUNNING", "FINISHED"]);
    }

    #[test]
    fn a_failed_send_is_retried_at_the_next_flush_and_loses_nothing() {
        let server = server(None, 3);
        let dir = tempfile::tempdir().unwrap();
        let run = start(&server, dir.path(), &[]);
        write(&run, "train", 10, 3.0);
        write(&run, "validation", 10, 2.5);
        write(&run, "train", 20, 2.0);
        run.finish(RunStatus::Finished);
        let failed = server
            .requests()
            .into_iter()
            .filter(|r| r.status == 503)
            .count();
        assert_eq!(failed, 3);
        assert_eq!(
            sent_metrics(&server),
            [
                ("train/loss".to_string(), 10, 3.0),
                ("validation/loss".to_string(), 10, 2.5),
                ("train/loss".to_string(), 20, 2.0),
            ]
        );
    }

    #[test]
    fn the_end_of_a_run_stops_trying_at_its_deadline() {
        let server = server(None, u32::MAX);
        let dir = tempfile::tempdir().unwrap();
        let run = MlflowExperiment::connect(&server.uri, "grove", Credentials::None)
            .unwrap()
            .with_retry(RetryPolicy {
                finish_deadline: Duration::from_millis(50),
                ..FAST
            })
            .start_run(dir.path(), "run", &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        write(&run, "train", 10, 1.0);
        run.finish(RunStatus::Failed);
        assert!(sent_metrics(&server).is_empty());
        let last = server.requests().pop().unwrap();
        assert_eq!(last.json()["status"], "FAILED");
    }

    #[test]
    fn a_resumed_run_continues_the_recorded_run_without_repeating_steps() {
        let existing = run_json(
            "r0",
            json!([{"key": "a", "value": "1"}]),
            json!([{"key": "train/loss", "value": 1.0, "step": "30", "timestamp": 1},
                   {"key": "validation/loss", "value": 1.0, "step": 20, "timestamp": 1}]),
        );
        let server = server(Some(existing), 0);
        let dir = tempfile::tempdir().unwrap();
        let recorded = json!({"tracking_uri": server.uri, "experiment_id": "7", "run_id": "r0"});
        std::fs::write(dir.path().join(RUN_FILE), recorded.to_string()).unwrap();

        let run = start(&server, dir.path(), &[("a", "2"), ("b", "3")]);
        assert_eq!(run.run_id(), "r0");
        assert!(!server
            .requests()
            .iter()
            .any(|r| r.path.contains("runs/create")));
        let logged = server
            .requests()
            .into_iter()
            .find(|r| r.body.contains("params"));
        assert_eq!(
            logged.unwrap().json()["params"],
            json!([{"key": "b", "value": "3"}])
        );

        for step in [20, 30, 40] {
            write(&run, "train", step, step as f64);
            write(&run, "validation", step, step as f64);
        }
        run.finish(RunStatus::Killed);
        assert_eq!(
            sent_metrics(&server),
            [
                ("validation/loss".to_string(), 30, 30.0),
                ("train/loss".to_string(), 40, 40.0),
                ("validation/loss".to_string(), 40, 40.0),
            ]
        );
    }

    #[test]
    fn a_run_deleted_on_the_server_or_recorded_elsewhere_starts_a_new_one() {
        let server = server(None, 0);
        let dir = tempfile::tempdir().unwrap();
        for uri in [server.uri.as_str(), "http://elsewhere:5000"] {
            let recorded = json!({"tracking_uri": uri, "experiment_id": "7", "run_id": "r9"});
            std::fs::write(dir.path().join(RUN_FILE), recorded.to_string()).unwrap();
            assert_eq!(start(&server, dir.path(), &[]).run_id(), "r1");
            let file = std::fs::read_to_string(dir.path().join(RUN_FILE)).unwrap();
            assert!(file.contains("\"r1\""), "{file}");
        }
    }

    #[test]
    fn a_corrupt_run_file_is_refused_with_the_fix() {
        let server = server(None, 0);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RUN_FILE), "{\"run_id\": ").unwrap();
        let experiment =
            MlflowExperiment::connect(&server.uri, "grove", Credentials::None).unwrap();
        let error = experiment
            .start_run(dir.path(), "run", &BTreeMap::new(), &BTreeMap::new())
            .unwrap_err();
        assert_eq!(error.kind(), grove_orbit::ErrorKind::UserInput);
        assert!(error.to_string().contains("delete the file"), "{error}");
    }

    #[test]
    fn an_unreachable_server_is_a_user_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = format!("http://127.0.0.1:{port}");
        let error = MlflowExperiment::connect(&uri, "grove", Credentials::None).unwrap_err();
        assert_eq!(error.kind(), grove_orbit::ErrorKind::UserInput);
        let message = error.to_string();
        assert!(
            message.contains(&format!("cannot reach the MLflow tracking server at {uri}")),
            "{message}"
        );
    }

    #[test]
    fn refusals_of_credentials_say_how_to_log_in() {
        let server = TestServer::start(|_: &Request| {
            let body = json!({"error_code": "PERMISSION_DENIED", "message": "who are you"});
            (401, body.to_string())
        });
        let error = MlflowExperiment::connect(&server.uri, "grove", Credentials::None).unwrap_err();
        assert_eq!(error.kind(), grove_orbit::ErrorKind::UserInput);
        assert!(
            error.to_string().contains("MLFLOW_TRACKING_TOKEN"),
            "{error}"
        );
        assert!(error.to_string().contains("PERMISSION_DENIED"), "{error}");
    }

    #[test]
    fn artifacts_go_to_the_servers_proxy_under_the_runs_location() {
        let server = server(None, 0);
        let dir = tempfile::tempdir().unwrap();
        let run = start(&server, dir.path(), &[]);
        run.upload_artifact("best/info.json", b"{}");
        let put = server
            .requests()
            .into_iter()
            .find(|r| r.method == "PUT")
            .unwrap();
        assert_eq!(
            put.path,
            "/api/2.0/mlflow-artifacts/artifacts/7/r1/artifacts/best/info.json"
        );
        assert_eq!(put.body, "{}");
    }

    #[test]
    fn keys_keep_what_mlflow_accepts() {
        assert_eq!(mlflow_key("train/loss.x-y_z: w"), "train/loss.x-y_z: w");
        assert_eq!(mlflow_key("a[0]{b}"), "a_0__b_");
    }
}
