//! The experiment tracker of a training run (`mlflow` in `runtime.loggers`): reached before
//! the run writes anything, started once params.yaml is written (its params: the config's
//! leaves, as params.yaml holds them), fed by the train and evaluation summary managers, and
//! ended with the run's outcome. Only the process that writes model_dir (alone, or a job's
//! chief) reports; the evaluation-only modes do not.

use std::collections::BTreeMap;
use std::path::Path;

use grove_core::config::{ExperimentConfig, MlflowConfig};
use grove_core::registry::task_name;
use grove_orbit::best_checkpoint::INFO_FILE;
use grove_orbit::summary::SummarySink;
use grove_orbit::{Controller, ErrorKind, Logs};
use grove_trackers::{Credentials, MlflowExperiment, MlflowRun, RunStatus};

use crate::error::Result;
use crate::run_params::{config_leaves, leaf_text};
use crate::train_lib::{Runner, PARAMS_FILE, UNRESOLVED_PARAMS_FILE};

/// The experiment of runs that name none (MLflow's own default).
const DEFAULT_EXPERIMENT: &str = "Default";

/// Reaches the tracking server of `config` and resolves its experiment, when the run reports
/// to one: `mlflow` is among `runtime.loggers` and this process writes model_dir.
pub(crate) fn connect(
    config: &ExperimentConfig,
    writes_model_dir: bool,
) -> Result<Option<MlflowExperiment>> {
    let settings = &config.runtime.mlflow;
    if !config.runtime.loggers.contains(&SummarySink::Mlflow) {
        if !settings.tracking_uri.is_empty() {
            tracing::warn!(
                "runtime.mlflow.tracking_uri is set but runtime.loggers does not list mlflow: \
                 nothing is sent to MLflow; add mlflow to runtime.loggers to report there"
            );
        }
        return Ok(None);
    }
    if !writes_model_dir {
        return Ok(None);
    }
    let uri = setting(&settings.tracking_uri, "MLFLOW_TRACKING_URI").ok_or_else(|| {
        grove_core::Error::Config(
            "runtime.loggers lists mlflow but no tracking server is named: set \
             runtime.mlflow.tracking_uri (e.g. http://127.0.0.1:5000) or MLFLOW_TRACKING_URI"
                .to_string(),
        )
    })?;
    let experiment = setting(&settings.experiment_name, "MLFLOW_EXPERIMENT_NAME")
        .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_string());
    Ok(Some(MlflowExperiment::connect(
        &uri,
        &experiment,
        credentials(settings),
    )?))
}

/// `value`, or the environment variable `name` when `value` is empty.
fn setting(value: &str, name: &str) -> Option<String> {
    let value = value.trim();
    if !value.is_empty() {
        return Some(value.to_string());
    }
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The token of the config or `MLFLOW_TRACKING_TOKEN`, else basic auth from
/// `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`, else none.
fn credentials(settings: &MlflowConfig) -> Credentials {
    if let Some(token) = setting(&settings.api_token, "MLFLOW_TRACKING_TOKEN") {
        return Credentials::Token(token);
    }
    match (
        setting("", "MLFLOW_TRACKING_USERNAME"),
        setting("", "MLFLOW_TRACKING_PASSWORD"),
    ) {
        (Some(username), Some(password)) => Credentials::Basic { username, password },
        _ => Credentials::None,
    }
}

/// A started tracker run.
pub(crate) struct Tracker {
    run: MlflowRun,
}

impl Tracker {
    /// Starts (or continues) the MLflow run of model_dir, with the config's params and
    /// params.yaml as an artifact.
    pub(crate) fn start(
        experiment: MlflowExperiment,
        config: &ExperimentConfig,
        model_dir: &Path,
    ) -> Result<Self> {
        let params: BTreeMap<String, String> = config_leaves(config)
            .iter()
            .map(|(key, value)| (key.clone(), leaf_text(value)))
            .collect();
        let run_name = match config.runtime.mlflow.run_name.trim() {
            "" => model_dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "grove".to_string()),
            name => name.to_string(),
        };
        let run = experiment.start_run(model_dir, &run_name, &params, &tags(config, model_dir))?;
        for file in [PARAMS_FILE, UNRESOLVED_PARAMS_FILE] {
            run.upload_file(file, &model_dir.join(file));
        }
        Ok(Tracker { run })
    }

    /// Attaches the run's writers to the controller's train and evaluation summaries.
    pub(crate) fn attach<R: Runner>(&self, controller: &mut Controller<R>, eval_split: &str) {
        let (train, eval) = controller.summary_managers_mut();
        train.attach(Box::new(self.run.writer("train")));
        eval.attach(Box::new(self.run.writer(eval_split)));
    }

    /// Ends the run with `outcome`'s status, after uploading the best checkpoint's record.
    pub(crate) fn finish(
        self,
        outcome: &Result<Logs>,
        config: &ExperimentConfig,
        model_dir: &Path,
    ) {
        let run = self.run;
        let best = &config.trainer.best_checkpoint_export_subdir;
        if !best.is_empty() {
            let path = format!("{best}/{INFO_FILE}");
            run.upload_file(&path, &model_dir.join(&path));
        }
        run.finish(status(outcome));
    }
}

/// The MLflow status of a run's outcome.
fn status(outcome: &Result<Logs>) -> RunStatus {
    match outcome {
        Ok(_) => RunStatus::Finished,
        Err(error) if error.kind() == ErrorKind::Preempted => RunStatus::Killed,
        Err(_) => RunStatus::Failed,
    }
}

/// The tags of a new run: where it came from.
fn tags(config: &ExperimentConfig, model_dir: &Path) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        ("mlflow.source.name".to_string(), "grove train".to_string()),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
        (
            "grove.model_dir".to_string(),
            std::path::absolute(model_dir)
                .unwrap_or_else(|_| model_dir.to_path_buf())
                .display()
                .to_string(),
        ),
    ]);
    if let Some(task) = task_name(config.task.as_ref()) {
        tags.insert("grove.task".to_string(), task);
    }
    if let Ok(user) = std::env::var("USER") {
        tags.insert("mlflow.user".to_string(), user);
    }
    tags
}
