//! A client of MLflow's tracking REST API (`/api/2.0/mlflow/...`): experiments, runs, batched
//! params and metrics, run status, and artifacts through the server's `mlflow-artifacts`
//! proxy. Blocking, one request at a time; every call has connect and read timeouts.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{Result, TrackerError};

/// Most metrics one `runs/log-batch` request may carry (MLflow's limit).
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params one `runs/log-batch` request may carry (MLflow's limit).
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// The longest param value MLflow stores; longer values are cut to it (with a warning).
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client proves who it is, if the server asks.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>` (MLFLOW_TRACKING_TOKEN).
    Token(String),
    /// HTTP basic auth (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token(_) => f.write_str("Token(***)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}:***)"),
        }
    }
}

/// One metric value as MLflow stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's key (`train/training_loss`).
    pub key: String,
    /// Its value; NaN and infinities are sent in protobuf-JSON spelling.
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The training step.
    pub step: i64,
}

/// What the server holds about a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// Its experiment's id.
    pub experiment_id: String,
    /// Where its artifacts go (`mlflow-artifacts:/<experiment>/<run>/artifacts` when the
    /// server proxies them).
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Its params.
    pub params: BTreeMap<String, String>,
    /// The step of each metric's latest value.
    pub latest_steps: BTreeMap<String, i64>,
}

/// A run's status (MLflow's `RunStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Still going (also a run killed without a chance to say so).
    Running,
    /// Trained to the end.
    Finished,
    /// Ended by an error.
    Failed,
    /// Stopped on request (a preemption); the next run resumes it.
    Killed,
}

impl RunStatus {
    fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
}

/// A connection to one tracking server.
#[derive(Debug, Clone)]
pub struct MlflowClient {
    /// The tracking URI without a trailing `/`.
    uri: String,
    credentials: Credentials,
    agent: ureq::Agent,
}

impl MlflowClient {
    /// A client of the server at `tracking_uri` (`http://` or `https://`). Nothing is sent
    /// yet; other schemes (`file:`, `databricks`, a bare path) are refused, since Grove talks
    /// to a tracking server only.
    pub fn new(tracking_uri: &str, credentials: Credentials) -> Result<Self> {
        let uri = tracking_uri.trim().trim_end_matches('/').to_string();
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(TrackerError::InvalidSetting(format!(
                "runtime.mlflow.tracking_uri = {tracking_uri:?}: Grove sends runs to an MLflow \
                 tracking server over HTTP; give its address (e.g. http://127.0.0.1:5000, \
                 started by `mlflow server`)"
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build();
        Ok(MlflowClient {
            uri,
            credentials,
            agent,
        })
    }

    /// The tracking URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The id of the experiment named `name`, created when the server has none.
    pub fn experiment_id(&self, name: &str) -> Result<String> {
        if let Some(id) = self.find_experiment(name)? {
            return Ok(id);
        }
        match self.post("experiments/create", &json!({ "name": name })) {
            Ok(created) => string_field(&created, "experiment_id", &self.uri, "experiments/create"),
            // Another process created it in between.
            Err(TrackerError::Refused { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => self
                .find_experiment(name)?
                .ok_or_else(|| self.bad_response("experiments/get-by-name", "no experiment")),
            Err(error) => Err(error),
        }
    }

    fn find_experiment(&self, name: &str) -> Result<Option<String>> {
        let endpoint = "experiments/get-by-name";
        match self.get(endpoint, &[("experiment_name", name)]) {
            Ok(found) => {
                let id = found
                    .pointer("/experiment/experiment_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.bad_response(endpoint, "no experiment.experiment_id"))?;
                Ok(Some(id.to_string()))
            }
            Err(TrackerError::Refused { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Creates a run named `run_name` in `experiment_id`, with `tags`.
    pub fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<RunRecord> {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect();
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_ms(),
            "tags": tags,
        });
        let created = self.post("runs/create", &body)?;
        self.run_record(&created, "runs/create")
    }

    /// The run `run_id`, or `None` when the server has no such run.
    pub fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        match self.get("runs/get", &[("run_id", run_id)]) {
            Ok(found) => self.run_record(&found, "runs/get").map(Some),
            Err(TrackerError::Refused { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Logs `params` and `metrics` to `run_id`, in as many requests as MLflow's batch limits
    /// need, metrics in the order given.
    pub fn log_batch(
        &self,
        run_id: &str,
        params: &[(String, String)],
        metrics: &[Metric],
    ) -> Result<()> {
        for chunk in params.chunks(MAX_PARAMS_PER_BATCH) {
            let params: Vec<Value> = chunk
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect();
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "params": params }),
            )?;
        }
        for chunk in metrics.chunks(MAX_METRICS_PER_BATCH) {
            let metrics: Vec<Value> = chunk.iter().map(metric_json).collect();
            self.post(
                "runs/log-batch",
                &json!({ "run_id": run_id, "metrics": metrics }),
            )?;
        }
        Ok(())
    }

    /// Sets the status of `run_id`; an ended status also sets its end time.
    pub fn set_status(&self, run_id: &str, status: RunStatus) -> Result<()> {
        let mut body = json!({ "run_id": run_id, "status": status.name() });
        if status != RunStatus::Running {
            body["end_time"] = json!(now_ms());
        }
        self.post("runs/update", &body).map(drop)
    }

    /// Stores `bytes` as the artifact `path` (e.g. `params.yaml`) of a run whose artifacts
    /// live at `artifact_uri`. Returns false, sending nothing, when the server does not proxy
    /// the run's artifacts (an `s3:` or `file:` location the client would write itself).
    pub fn upload_artifact(&self, artifact_uri: &str, path: &str, bytes: &[u8]) -> Result<bool> {
        let Some(location) = proxied_location(artifact_uri) else {
            return Ok(false);
        };
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{location}/{path}",
            self.uri
        );
        let request = self.authorized(self.agent.put(&url));
        self.answer(request.send_bytes(bytes), "mlflow-artifacts/artifacts")?;
        Ok(true)
    }

    fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut request = self.authorized(self.agent.get(&self.endpoint_url(endpoint)));
        for (name, value) in query {
            request = request.query(name, value);
        }
        self.answer(request.call(), endpoint)
    }

    fn post(&self, endpoint: &str, body: &Value) -> Result<Value> {
        let request = self
            .authorized(self.agent.post(&self.endpoint_url(endpoint)))
            .set("Content-Type", "application/json");
        self.answer(request.send_string(&body.to_string()), endpoint)
    }

    fn endpoint_url(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.uri)
    }

    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.credentials {
            Credentials::None => request,
            Credentials::Token(token) => request.set("Authorization", &format!("Bearer {token}")),
            Credentials::Basic { username, password } => {
                let pair = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                request.set("Authorization", &format!("Basic {pair}"))
            }
        }
    }

    /// The JSON body of a successful answer, or the error the server or transport gave.
    fn answer(
        &self,
        outcome: std::result::Result<ureq::Response, ureq::Error>,
        endpoint: &str,
    ) -> Result<Value> {
        match outcome {
            Ok(response) => {
                let text = response
                    .into_string()
                    .map_err(|e| self.bad_response(endpoint, e))?;
                if text.trim().is_empty() {
                    return Ok(json!({}));
                }
                serde_json::from_str(&text).map_err(|e| {
                    self.bad_response(endpoint, format!("a body that is not JSON ({e})"))
                })
            }
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
                let hint = match status {
                    401 | 403 => {
                        "; give the server's credentials in MLFLOW_TRACKING_TOKEN (or \
                         runtime.mlflow.api_token), or MLFLOW_TRACKING_USERNAME and \
                         MLFLOW_TRACKING_PASSWORD"
                    }
                    _ => "",
                };
                Err(TrackerError::Refused {
                    uri: self.uri.clone(),
                    endpoint: endpoint.to_string(),
                    status,
                    code: field("error_code").unwrap_or_default(),
                    message: field("message").unwrap_or_else(|| text.trim().to_string()),
                    hint,
                })
            }
            Err(ureq::Error::Transport(transport)) => Err(TrackerError::Unreachable {
                uri: self.uri.clone(),
                reason: transport.to_string(),
            }),
        }
    }

    fn run_record(&self, body: &Value, endpoint: &str) -> Result<RunRecord> {
        let run = body
            .get("run")
            .ok_or_else(|| self.bad_response(endpoint, "no run"))?;
        let info = run
            .get("info")
            .ok_or_else(|| self.bad_response(endpoint, "no run.info"))?;
        let text = |name: &str| string_field(info, name, &self.uri, endpoint);
        let entries = |name: &str| {
            run.pointer(&format!("/data/{name}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let params = entries("params")
            .iter()
            .filter_map(|param| {
                let key = param.get("key")?.as_str()?;
                let value = param.get("value").and_then(Value::as_str).unwrap_or("");
                Some((key.to_string(), value.to_string()))
            })
            .collect();
        let latest_steps = entries("metrics")
            .iter()
            .filter_map(|metric| {
                let key = metric.get("key")?.as_str()?;
                Some((key.to_string(), integer(metric.get("step"))))
            })
            .collect();
        Ok(RunRecord {
            run_id: text("run_id")?,
            experiment_id: text("experiment_id")?,
            artifact_uri: info
                .get("artifact_uri")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            lifecycle_stage: info
                .get("lifecycle_stage")
                .and_then(Value::as_str)
                .unwrap_or("active")
                .to_string(),
            params,
            latest_steps,
        })
    }

    fn bad_response(&self, endpoint: &str, detail: impl ToString) -> TrackerError {
        TrackerError::BadResponse {
            uri: self.uri.clone(),
            endpoint: endpoint.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// The path under the server's artifact proxy of an `mlflow-artifacts:` location
/// (`mlflow-artifacts:/1/<run>/artifacts` or `mlflow-artifacts://host:port/1/<run>/artifacts`).
fn proxied_location(artifact_uri: &str) -> Option<String> {
    let rest = artifact_uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => &authority_and_path[authority_and_path.find('/')?..],
        None => rest,
    };
    Some(path.trim_matches('/').to_string())
}

/// `metric` as MLflow's JSON, non-finite values in protobuf-JSON spelling.
fn metric_json(metric: &Metric) -> Value {
    let value = if metric.value.is_nan() {
        json!("NaN")
    } else if metric.value.is_infinite() {
        json!(if metric.value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        json!(metric.value)
    };
    json!({
        "key": metric.key,
        "value": value,
        "timestamp": metric.timestamp_ms,
        "step": metric.step,
    })
}

/// A text field of an answer.
fn string_field(body: &Value, name: &str, uri: &str, endpoint: &str) -> Result<String> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| TrackerError::BadResponse {
            uri: uri.to_string(),
            endpoint: endpoint.to_string(),
            detail: format!("no {name}"),
        })
}

/// An int64 field, which protobuf JSON may give as a number or a string.
fn integer(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_locations_under_the_proxy() {
        assert_eq!(
            proxied_location("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_location("mlflow-artifacts://host:5000/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(proxied_location("s3://bucket/1/abc/artifacts"), None);
        assert_eq!(proxied_location("/tmp/mlruns/1/abc/artifacts"), None);
    }

    #[test]
    fn non_finite_values_use_protobuf_spelling() {
        let metric = |value| Metric {
            key: "loss".to_string(),
            value,
            timestamp_ms: 1,
            step: 2,
        };
        assert_eq!(metric_json(&metric(f64::NAN))["value"], "NaN");
        assert_eq!(metric_json(&metric(f64::INFINITY))["value"], "Infinity");
        assert_eq!(
            metric_json(&metric(f64::NEG_INFINITY))["value"],
            "-Infinity"
        );
        assert_eq!(metric_json(&metric(0.5))["value"], 0.5);
    }

    #[test]
    fn only_http_servers_are_accepted() {
        for uri in ["file:///tmp/mlruns", "databricks", "/tmp/mlruns", ""] {
            let error = MlflowClient::new(uri, Credentials::None).unwrap_err();
            assert!(
                error.to_string().contains("http://127.0.0.1:5000"),
                "{error}"
            );
        }
        let client = MlflowClient::new("http://127.0.0.1:5000/", Credentials::None).unwrap();
        assert_eq!(client.uri(), "http://127.0.0.1:5000");
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let token = format!("{:?}", Credentials::Token("s3cr3t".to_string()));
        let basic = format!(
            "{:?}",
            Credentials::Basic {
                username: "ada".to_string(),
                password: "s3cr3t".to_string()
            }
        );
        assert!(!token.contains("s3cr3t") && !basic.contains("s3cr3t"));
    }
}
