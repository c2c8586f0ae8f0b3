//! `run_experiment`: one run of a resolved experiment in one mode (Model Garden's
//! `train_lib.run_experiment`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::Device;
use grove_core::config::{Cadence, ExperimentConfig, MetricComparison, TrainerConfig};
use grove_core::optimization::{build_schedule, zero_learning_rate_from};
use grove_core::progressive::get_progressive_policy;
use grove_core::registry::{get_task, task_name};
use grove_core::runtime::{compute_threads, device, on_compute_threads};
use grove_orbit::summary::SummaryManager;
use grove_orbit::{
    write_atomically, Action, BestCheckpointExporter, CheckpointManager, Checkpointable,
    Comparison, Controller, ControllerOptions, EarlyStopping, EmaCheckpointing, Evaluator, Logs,
    LossGuard, Preemption, Recovery, TrainBudget, TrainTimer, Trainer,
};

use crate::actions::{build_actions, ActionSetup};
use crate::config_drift::{check_drift, record_changes, Change};
use crate::default_trainer::{DefaultTrainer, Roles};
use crate::error::Result;
use crate::hparams_session::{end_session, start_session};
use crate::model_dir_lock::{lock_model_dir, ModelDirLock};
use crate::progressive_trainer::ProgressiveTrainer;
use crate::tracking::{self, Tracker};
use crate::worker_placement::{restore_or_initialize_everywhere, WorkerPlacement};

/// File of the resolved config inside model_dir.
pub const PARAMS_FILE: &str = "params.yaml";
/// File of the config with its `${...}` references, written when it has any.
pub const UNRESOLVED_PARAMS_FILE: &str = "params.unresolved.yaml";
/// Subdirectory of model_dir holding the moving-average checkpoints when
/// `trainer.optimizer_config.ema` is set (as in Model Garden).
pub const EMA_CHECKPOINTS_SUBDIR: &str = "ema_checkpoints";

/// What a run does (Model Garden's `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Train to `trainer.train_steps`.
    Train,
    /// Evaluate checkpoints of model_dir once (which: [`RunOptions::eval_checkpoint`]).
    Eval,
    /// Train to `trainer.train_steps`, evaluating every `trainer.validation_interval` steps.
    TrainAndEval,
    /// Train to `trainer.train_steps`, then evaluate once.
    TrainAndPostEval,
    /// Evaluate each new checkpoint of model_dir as a concurrent trainer writes it, until the
    /// one at `trainer.train_steps` or `trainer.continuous_eval_timeout` seconds without one.
    ContinuousEval,
}

impl Mode {
    pub(crate) fn roles(self) -> Roles {
        Roles {
            train: matches!(
                self,
                Mode::Train | Mode::TrainAndEval | Mode::TrainAndPostEval
            ),
            evaluate: self != Mode::Train,
        }
    }
}

/// Which checkpoints `--mode=eval` evaluates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EvalCheckpoint {
    /// The latest checkpoint of model_dir.
    #[default]
    Latest,
    /// Every retained checkpoint of model_dir, in step order.
    All,
    /// One checkpoint directory (`.../ckpt-<step>`).
    Path(PathBuf),
}

/// How often continuous evaluation looks for a new checkpoint.
const CONTINUOUS_EVAL_POLL: Duration = Duration::from_millis(500);

/// Choices of a run beyond its config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue a model_dir whose `params.yaml` differs from the config in keys other than
    /// cadences (the accepted changes are recorded in `config_changes.jsonl`).
    pub allow_config_change: bool,
    /// The checkpoints `--mode=eval` evaluates.
    pub eval_checkpoint: EvalCheckpoint,
    /// The stop request the run obeys: set, training stops after the current step with a
    /// checkpoint of it ([`grove_orbit::OrbitError::Preempted`]). The `train` binary sets it
    /// from SIGTERM / SIGINT (`Preemption::on_signals`); a library caller sets it itself.
    pub preemption: Preemption,
}

/// Runs `config` in `mode` on `model_dir` and returns the last evaluation's logs (empty when
/// the mode did not evaluate).
///
/// Order of work: a training mode first compares the config with the model_dir's
/// `params.yaml` (see [`check_drift`]); the task, model, optimizer and inputs are built
/// (opening data files), the latest checkpoint is restored or, without one, the task
/// initializes the model (e.g. from `task.init_checkpoint`); only then does a training mode
/// create model_dir and write `params.yaml`, so bad input leaves no model_dir behind. A run
/// with `mlflow` among `runtime.loggers` reaches its tracking server before all of this, and
/// starts (or continues) its MLflow run after `params.yaml` is written.
///
/// With `trainer.progressive` set, the task config's registered progressive policy builds the
/// stages and a [`ProgressiveTrainer`] replaces the [`DefaultTrainer`]
/// (docs/progressive_training.md).
pub fn run_experiment(
    config: &ExperimentConfig,
    mode: Mode,
    model_dir: &Path,
    options: RunOptions,
) -> Result<Logs> {
    on_compute_threads(|| run_on_this_thread(config, mode, model_dir, options))
}

/// [`run_experiment`]'s work, on the calling thread.
fn run_on_this_thread(
    config: &ExperimentConfig,
    mode: Mode,
    model_dir: &Path,
    options: RunOptions,
) -> Result<Logs> {
    config.validate()?;
    let workers = WorkerPlacement::of(config, mode, model_dir)?;
    let model_dir = workers.write_dir();
    let accepted_changes = if mode.roles().train {
        check_drift(
            config,
            &model_dir.join(PARAMS_FILE),
            options.allow_config_change,
        )?
    } else {
        Vec::new()
    };
    let mlflow = if mode.roles().train {
        tracking::connect(config, workers.writes_model_dir())?
    } else {
        None
    };
    let device = device(&config.runtime)?;
    let preemption = options.preemption.clone();
    // With workers, the controller stops once they agree to (after the same step on all).
    let agreed_stop = if workers.alone() {
        preemption.clone()
    } else {
        Preemption::new()
    };
    let controller_options = controller_options(config, model_dir, agreed_stop.clone())?;
    let roles = mode.roles();
    let task_config = config.task.as_ref();
    let run = Run {
        config,
        mode,
        model_dir,
        options: &options,
        accepted_changes: &accepted_changes,
        mlflow,
    };
    if config.trainer.progressive.is_some() {
        let policy = get_progressive_policy(task_config, &config.trainer)?;
        let trainer = ProgressiveTrainer::new(policy, config, device.clone(), roles, model_dir)?
            .with_preemption(preemption)
            .with_agreed_stop(agreed_stop);
        log_start(config, &device, trainer.current());
        run.drive(Controller::new(trainer, controller_options)?)
    } else {
        let trainer = DefaultTrainer::new(get_task(task_config)?, config, device.clone(), roles)?
            .with_preemption(preemption)
            .with_agreed_stop(agreed_stop);
        log_start(config, &device, &trainer);
        if roles.train {
            warn_of_idle_schedule_tail(&config.trainer);
        }
        run.drive(Controller::new(trainer, controller_options)?)
    }
}

fn log_start(config: &ExperimentConfig, device: &Device, trainer: &DefaultTrainer) {
    tracing::info!(
        "task {} | device {:?} | {} compute threads | {} replicas ({}) | {} parameters",
        task_name(config.task.as_ref()).unwrap_or_else(|| config.task.type_name().to_string()),
        device,
        compute_threads(),
        trainer.replica_count(),
        config.runtime.distribution_strategy,
        trainer.vars().parameter_count()
    );
}

/// Warns when the learning rate reaches 0 more than a tenth of `train_steps` before the end:
/// the steps after it apply no update (typically `train_steps` raised past the schedule's
/// `decay_steps`). Progressive training's stages have their own schedules and are not checked.
fn warn_of_idle_schedule_tail(trainer: &TrainerConfig) {
    let schedule = build_schedule(&trainer.optimizer_config);
    let Some(zero_from) = zero_learning_rate_from(schedule.as_ref(), trainer.train_steps) else {
        return;
    };
    let idle = trainer.train_steps - zero_from;
    if idle * 10 > trainer.train_steps {
        tracing::warn!(
            "the learning rate is 0 from step {zero_from} of trainer.train_steps = {}: the last \
             {idle} steps apply no update; lengthen the schedule (e.g. its decay_steps) or \
             shorten train_steps",
            trainer.train_steps
        );
    }
}

/// What either trainer needs from run_experiment beyond Orbit's traits.
pub(crate) trait Runner: Trainer + Evaluator + Checkpointable {
    /// Initializes a model that no checkpoint restored (e.g. from `task.init_checkpoint`).
    fn initialize(&mut self) -> grove_core::Result<()>;
    /// The trainer that runs the current model.
    fn current(&self) -> &DefaultTrainer;
}

impl Runner for DefaultTrainer {
    fn initialize(&mut self) -> grove_core::Result<()> {
        DefaultTrainer::initialize(self)
    }

    fn current(&self) -> &DefaultTrainer {
        self
    }
}

impl Runner for ProgressiveTrainer {
    fn initialize(&mut self) -> grove_core::Result<()> {
        ProgressiveTrainer::initialize(self)
    }

    fn current(&self) -> &DefaultTrainer {
        ProgressiveTrainer::current(self)
    }
}

/// One run's settings, shared by both trainers.
struct Run<'a> {
    config: &'a ExperimentConfig,
    mode: Mode,
    model_dir: &'a Path,
    options: &'a RunOptions,
    accepted_changes: &'a [Change],
    /// The tracking server reached for this run, if it reports to one.
    mlflow: Option<grove_trackers::MlflowExperiment>,
}

impl Run<'_> {
    /// Restores or initializes, writes params.yaml, starts the tracker run and runs the mode.
    fn drive<R: Runner>(self, mut controller: Controller<R>) -> Result<Logs> {
        let (config, mode, model_dir) = (self.config, self.mode, self.model_dir);
        let t = &config.trainer;
        if !mode.roles().train {
            return evaluate_checkpoints(&mut controller, config, mode, model_dir, self.options);
        }
        restore_or_initialize_everywhere(&mut controller)?;
        let step = controller.runner().global_step();
        let _lock = write_params(config, model_dir, step, self.accepted_changes)?;
        start_session(config, model_dir)?;
        let tracker = match self.mlflow {
            Some(experiment) => Some(Tracker::start(experiment, config, model_dir)?),
            None => None,
        };
        if let Some(tracker) = &tracker {
            tracker.attach(&mut controller, &t.validation_summary_subdir);
        }
        let outcome = train_in_mode(&mut controller, mode, t)
            .and_then(|logs| end_session(config, model_dir).map(|()| logs));
        if let Some(tracker) = tracker {
            tracker.finish(&outcome, config, model_dir);
        }
        outcome
    }
}

/// Trains (and evaluates) as the training `mode` says; returns the last evaluation's logs.
fn train_in_mode<R: Runner>(
    controller: &mut Controller<R>,
    mode: Mode,
    t: &TrainerConfig,
) -> Result<Logs> {
    Ok(match mode {
        Mode::TrainAndEval => controller
            .train_and_evaluate(
                t.train_steps,
                t.validation_steps,
                t.validation_interval.steps(),
            )?
            .unwrap_or_default(),
        Mode::TrainAndPostEval => {
            controller.train(t.train_steps)?;
            controller.evaluate(t.validation_steps)?
        }
        _ => {
            controller.train(t.train_steps)?;
            Logs::new()
        }
    })
}

/// The evaluation-only modes: `eval` (latest, all, or one checkpoint) and `continuous_eval`.
/// They never initialize a model: without a checkpoint there is nothing to evaluate.
fn evaluate_checkpoints<R: Runner>(
    controller: &mut Controller<R>,
    config: &ExperimentConfig,
    mode: Mode,
    model_dir: &Path,
    options: &RunOptions,
) -> Result<Logs> {
    let t = &config.trainer;
    if mode == Mode::ContinuousEval {
        let timeout = Duration::from_secs(t.continuous_eval_timeout);
        let logs = controller.evaluate_continuously(
            t.validation_steps,
            t.train_steps,
            timeout,
            CONTINUOUS_EVAL_POLL,
        )?;
        return Ok(logs.unwrap_or_default());
    }
    let retained: Vec<PathBuf> = controller
        .checkpoint_manager()
        .map(|m| {
            let steps = m.checkpoint_steps().into_iter();
            steps.map(|step| m.checkpoint_path(step)).collect()
        })
        .unwrap_or_default();
    let paths: Vec<PathBuf> = match &options.eval_checkpoint {
        EvalCheckpoint::Path(path) => vec![path.clone()],
        EvalCheckpoint::Latest => retained.last().cloned().into_iter().collect(),
        EvalCheckpoint::All => retained,
    };
    if paths.is_empty() {
        return Err(grove_core::Error::Checkpoint(format!(
            "--mode=eval needs a checkpoint, and {} has none; train first, point --model_dir \
             at a trained run, or give --eval_checkpoint=PATH",
            model_dir.display()
        ))
        .into());
    }
    let mut logs = Logs::new();
    for path in paths {
        controller.restore_checkpoint(&path)?;
        logs = controller.evaluate(t.validation_steps)?;
    }
    Ok(logs)
}

fn controller_options(
    config: &ExperimentConfig,
    model_dir: &Path,
    preemption: Preemption,
) -> Result<ControllerOptions> {
    let t = &config.trainer;
    let mut train_actions: Vec<Box<dyn Action>> = Vec::new();
    if t.recovery_max_trials >= 0 {
        train_actions.push(Box::new(Recovery::new(LossGuard {
            loss_upper_bound: t.loss_upper_bound,
            recovery_begin_steps: t.recovery_begin_steps,
            max_trials: t.recovery_max_trials as u64,
        })));
    }
    train_actions.push(Box::new(preemption));
    if let Some(budget) = t.max_duration {
        train_actions.push(Box::new(TrainBudget::new(budget.0)));
    }
    if let Cadence::Every(interval) = t.validation_interval {
        train_actions.push(Box::new(TrainTimer::evaluations(interval.0)));
    }
    if let Cadence::Every(interval) = t.summary_interval {
        train_actions.push(Box::new(TrainTimer::summaries(interval.0)));
    }
    if let Cadence::Every(interval) = t.checkpoint_interval {
        train_actions.push(Box::new(TrainTimer::checkpoints(interval.0)));
    }
    let mut eval_actions: Vec<Box<dyn Action>> = Vec::new();
    if let Some(exporter) = best_checkpoint_exporter(t, model_dir)? {
        eval_actions.push(Box::new(exporter));
    }
    if t.optimizer_config.ema.is_some() {
        eval_actions.push(Box::new(EmaCheckpointing::new(
            &model_dir.join(EMA_CHECKPOINTS_SUBDIR),
            t.max_to_keep as usize,
        )?));
    }
    if let Some(stopping) = early_stopping(t)? {
        eval_actions.push(Box::new(stopping));
    }
    let setup = ActionSetup { config, model_dir };
    train_actions.extend(build_actions(
        &t.train_actions,
        "trainer.train_actions",
        &setup,
    )?);
    eval_actions.extend(build_actions(
        &t.eval_actions,
        "trainer.eval_actions",
        &setup,
    )?);
    Ok(ControllerOptions {
        steps_per_loop: t.steps_per_loop,
        summary_interval: t.summary_interval.steps().unwrap_or_default(),
        checkpoint_manager: Some(match t.checkpoint_interval {
            Cadence::Steps(steps) => {
                CheckpointManager::new(model_dir, t.max_to_keep as usize, steps)?
            }
            Cadence::Every(_) => CheckpointManager::on_request(model_dir, t.max_to_keep as usize)?,
        }),
        train_summaries: SummaryManager::with_sinks(model_dir, "train", &config.runtime.loggers)?,
        eval_summaries: SummaryManager::with_sinks(
            model_dir,
            &t.validation_summary_subdir,
            &config.runtime.loggers,
        )?,
        train_actions,
        eval_actions,
    })
}

/// The best-checkpoint export the trainer config asks for, if any.
fn best_checkpoint_exporter(
    t: &TrainerConfig,
    model_dir: &Path,
) -> Result<Option<BestCheckpointExporter>> {
    if t.best_checkpoint_export_subdir.is_empty() {
        return Ok(None);
    }
    Ok(Some(BestCheckpointExporter::new(
        &model_dir.join(&t.best_checkpoint_export_subdir),
        &t.best_checkpoint_eval_metric,
        comparison(t.best_checkpoint_metric_comp),
        t.best_checkpoint_max_to_keep as usize,
    )?))
}

/// The early stopping the trainer config asks for, if any.
fn early_stopping(t: &TrainerConfig) -> Result<Option<EarlyStopping>> {
    let e = &t.early_stopping;
    if e.metric.is_empty() {
        return Ok(None);
    }
    Ok(Some(EarlyStopping::new(
        &e.metric,
        comparison(e.comp),
        e.patience,
        e.min_delta,
    )?))
}

fn comparison(comp: MetricComparison) -> Comparison {
    match comp {
        MetricComparison::Higher => Comparison::Higher,
        MetricComparison::Lower => Comparison::Lower,
    }
}

/// Creates model_dir, takes its training lock, writes the resolved config to
/// `model_dir/params.yaml` and records config changes accepted at `global_step`.
fn write_params(
    config: &ExperimentConfig,
    model_dir: &Path,
    global_step: u64,
    accepted_changes: &[Change],
) -> Result<ModelDirLock> {
    std::fs::create_dir_all(model_dir)
        .map_err(|e| grove_core::Error::io("cannot create", model_dir, e))?;
    let lock = lock_model_dir(model_dir)?;
    write_atomically(
        &model_dir.join(PARAMS_FILE),
        config.to_yaml_string().as_bytes(),
    )?;
    if !config.references.is_empty() {
        write_atomically(
            &model_dir.join(UNRESOLVED_PARAMS_FILE),
            config.to_unresolved_yaml_string().as_bytes(),
        )?;
    }
    record_changes(model_dir, global_step, accepted_changes)?;
    Ok(lock)
}
