//! DefaultTrainer: drives any Task as an Orbit trainer, evaluator and checkpointable state.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use crate::instrumentation;
use crate::strategy::{
    build_strategy, collective_error, gather_aggregate, gather_all, reduce_metrics, reduce_sums,
    weights_checksum, ShardOutputs, StepPosition, Strategy,
};
use candle_core::{DType, Device, Tensor};
use grove_core::config::ExperimentConfig;
use grove_core::data::{Dataset, InputPosition, Shard};
use grove_core::init_checkpoint::MODEL_WEIGHTS_FILE;
use grove_core::metrics::{collect_and_reset, Metric};
use grove_core::optimization::{
    build_optimizer_with_ema, build_schedule, LearningRateSchedule, Optimizer,
};
use grove_core::progressive::StageOptimizer;
use grove_core::task::{DynTask, InputContext, Split};
use grove_core::vars::ModelVars;
use grove_core::{Error, Result};
use grove_orbit::fault::fault_point;
use grove_orbit::{Checkpointable, Evaluator, Logs, Preemption, RunnerError, Trainer};

use crate::checkpoint_files::{
    read_model, read_optimizer, read_state, write_state, write_state_views, write_tensors,
    TrainState, WorkerInputPositions, FORMAT_VERSION, OPTIMIZER_FILE,
};

/// Train log: the fraction of a train loop's wall time spent waiting for input batches.
pub const INPUT_WAIT_FRACTION: &str = "input_wait_fraction";
/// Train log (with workers): the fraction of a train loop's wall time spent all-reducing
/// gradients.
pub const ALL_REDUCE_FRACTION: &str = "all_reduce_fraction";
/// Train log: corrupt records skipped so far in the run (`skip_corrupt_records: true`; logged
/// once there is one).
pub const SKIPPED_RECORDS: &str = "skipped_corrupt_records";

/// Which halves of the trainer a run needs (their inputs are opened at construction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Build the training inputs.
    pub train: bool,
    /// Build the validation inputs.
    pub evaluate: bool,
}

/// One named validation set: its metrics and the inputs opened at construction (used by the
/// first evaluation; later ones reopen the set from its start).
struct ValidationSet {
    split: Split,
    fresh: Option<Dataset>,
    metrics: Vec<Box<dyn Metric>>,
    endless: bool,
}

/// Trains and evaluates one Task: model, optimizer, schedule, inputs and metrics.
pub struct DefaultTrainer {
    task: Box<dyn DynTask>,
    model: Box<dyn Any + Send + Sync>,
    vars: ModelVars,
    optimizer: Box<dyn Optimizer>,
    schedule: Box<dyn LearningRateSchedule>,
    device: Device,
    seed: u64,
    input_threads: usize,
    /// The part of the training data this process reads (a worker's, with workers).
    train_shard: Shard,
    global_step: u64,
    input_offset: u64,
    train_data: Option<Dataset>,
    train_metrics: Vec<Box<dyn Metric>>,
    strategy: Box<dyn Strategy>,
    validation_sets: Vec<ValidationSet>,
    preemption: Preemption,
    agreed_stop: Preemption,
}

impl DefaultTrainer {
    /// Builds the model (seeded from `runtime.seed`), optimizer, schedule and metrics of
    /// `task`, and opens the inputs `roles` asks for, so bad data is reported before a run
    /// writes anything.
    pub fn new(
        task: Box<dyn DynTask>,
        config: &ExperimentConfig,
        device: Device,
        roles: Roles,
    ) -> Result<Self> {
        let vars = ModelVars::new();
        let model = task.build_model(vars.var_builder(config.runtime.seed, DType::F32, &device))?;
        let optimization = &config.trainer.optimizer_config;
        let optimizer = StageOptimizer {
            optimizer: build_optimizer_with_ema(optimization)?,
            schedule: build_schedule(optimization),
        };
        Self::from_parts(task, (model, vars), optimizer, config, device, roles)
    }

    /// A trainer of `task` around a model built already (with its variables) and an
    /// optimizer; opens the inputs `roles` asks for.
    pub(crate) fn from_parts(
        task: Box<dyn DynTask>,
        (model, vars): (Box<dyn Any + Send + Sync>, ModelVars),
        optimizer: StageOptimizer,
        config: &ExperimentConfig,
        device: Device,
        roles: Roles,
    ) -> Result<Self> {
        let seed = config.runtime.seed;
        let input_threads = config.runtime.input_threads;
        let strategy = build_strategy(&config.runtime, &device)?;
        let train_shard = train_shard(strategy.as_ref(), task.train_batch_size())?;
        let context = InputContext {
            input_threads,
            ..InputContext::new(seed, Split::Train)
        };
        let train_data = roles
            .train
            .then(|| {
                task.build_train_inputs(&InputContext {
                    shard: train_shard,
                    ..context.clone()
                })
            })
            .transpose()?;
        let validation_sets = if roles.evaluate {
            open_validation_sets(task.as_ref(), &context, config.trainer.validation_steps)?
        } else {
            Vec::new()
        };
        Ok(DefaultTrainer {
            train_metrics: task.build_metrics(true),
            strategy,
            task,
            model,
            vars,
            optimizer: optimizer.optimizer,
            schedule: optimizer.schedule,
            device,
            seed,
            input_threads,
            train_shard,
            global_step: 0,
            input_offset: 0,
            train_data,
            validation_sets,
            preemption: Preemption::new(),
            agreed_stop: Preemption::new(),
        })
    }

    /// Replaces the model, its variables and the optimizer (progressive training's stage
    /// switch); the global step and the inputs stay.
    pub(crate) fn replace_model(
        &mut self,
        model: Box<dyn Any + Send + Sync>,
        vars: ModelVars,
        optimizer: StageOptimizer,
    ) {
        self.model = model;
        self.vars = vars;
        self.optimizer = optimizer.optimizer;
        self.schedule = optimizer.schedule;
    }

    /// The number of replicas each training and evaluation batch is split over.
    pub fn replica_count(&self) -> usize {
        self.strategy.replica_count()
    }

    /// The device the model lives on.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// Updates the optimizer has applied (restarted by progressive training's stage switches).
    pub fn optimizer_iterations(&self) -> u64 {
        self.optimizer.iterations()
    }

    /// Stops training loops after the current step once `preemption` is requested.
    pub fn with_preemption(mut self, preemption: Preemption) -> Self {
        self.agreed_stop = preemption.clone();
        self.preemption = preemption;
        self
    }

    /// With workers: requests `agreed` once the workers agree to stop (one of them had its
    /// `preemption` requested), after the same step on every worker; the controller's
    /// preemption action then watches `agreed` instead of this process's own signal.
    pub fn with_agreed_stop(mut self, agreed: Preemption) -> Self {
        self.agreed_stop = agreed;
        self
    }

    /// The workers of the job this trainer is part of (`None`: this process alone).
    pub fn workers(&self) -> Option<&dyn grove_collective::Collective> {
        self.strategy.workers()
    }

    /// The model's variables.
    pub fn vars(&self) -> &ModelVars {
        &self.vars
    }

    /// Runs the task's `initialize` (e.g. loading `task.init_checkpoint`).
    pub fn initialize(&mut self) -> Result<()> {
        self.task.initialize(self.model.as_ref(), &self.vars)
    }

    /// The learning rate the schedule gives at the optimizer's current iteration.
    pub fn learning_rate(&self) -> f64 {
        self.schedule.learning_rate(self.optimizer.iterations())
    }

    fn train_steps(&mut self, num_steps: u64) -> Result<Logs> {
        let params = self.vars.named_vars();
        let mut loss_sum: Option<Tensor> = None;
        let mut steps_run = 0u64;
        let started = Instant::now();
        if let Some(data) = self.train_data.as_mut() {
            data.take_input_wait();
        }
        self.strategy.take_all_reduce_time();
        let alone = self.strategy.workers().is_none();
        for _ in 0..num_steps {
            if alone && self.preemption.requested() {
                break;
            }
            fault_point("train_step").map_err(|e| Error::io("cannot train", "step", e))?;
            let batch = self.next_train_batch()?.to_device(&self.device)?;
            let position = StepPosition {
                seed: self.seed,
                global_step: self.global_step,
                stop_requested: !alone && self.preemption.requested(),
                replicas: Default::default(),
                worker_batch_of: self.worker_batch_of(),
            };
            let step = self.strategy.train_step(
                self.task.as_ref(),
                self.model.as_ref(),
                &batch,
                &params,
                position,
            )?;
            let lr = self.learning_rate();
            self.optimizer.apply(&params, &step.grads, lr)?;
            for outputs in &step.outputs {
                for metric in &mut self.train_metrics {
                    metric.update(outputs)?;
                }
            }
            let loss = step.loss.clone();
            loss_sum = Some(match loss_sum {
                Some(sum) => (sum + loss)?,
                None => loss,
            });
            self.global_step += 1;
            steps_run += 1;
            instrumentation::first_step_done();
            if step.stop_agreed {
                self.agreed_stop.request();
                break;
            }
        }
        reduce_metrics(self.strategy.workers(), &mut self.train_metrics)?;
        let mut logs: Logs = collect_and_reset(&mut self.train_metrics)?
            .into_iter()
            .collect();
        if let Some(sum) = loss_sum {
            let mean = f64::from(sum.to_dtype(DType::F32)?.to_scalar::<f32>()?) / steps_run as f64;
            logs.insert("training_loss".to_string(), mean);
        }
        logs.insert("learning_rate".to_string(), self.learning_rate());
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(time) = self.strategy.take_all_reduce_time() {
            if steps_run > 0 && elapsed > 0.0 {
                logs.insert(
                    ALL_REDUCE_FRACTION.to_string(),
                    time.as_secs_f64() / elapsed,
                );
            }
        }
        if let Some(data) = self.train_data.as_mut() {
            let waited = data.take_input_wait().as_secs_f64();
            if steps_run > 0 && elapsed > 0.0 {
                logs.insert(INPUT_WAIT_FRACTION.to_string(), waited / elapsed);
            }
            let skipped = data.stats().skipped_records;
            if skipped > 0 {
                logs.insert(SKIPPED_RECORDS.to_string(), skipped as f64);
            }
        }
        Ok(logs)
    }

    /// Drops the next `batches` training batches (past a span that blew up): the stream then
    /// stands where it would after training on them, whether it is repositioned by its
    /// reported position or by `global_step + input_offset`.
    fn skip_train_batches(&mut self, batches: u64) -> Result<()> {
        self.input_offset += batches;
        for _ in 0..batches {
            self.next_train_batch()?;
        }
        Ok(())
    }

    fn next_train_batch(&mut self) -> Result<grove_core::data::Batch> {
        let data = self.train_data.as_mut().ok_or_else(|| {
            Error::Run("this trainer was built without training inputs".to_string())
        })?;
        data.next_batch().unwrap_or_else(|| {
            Err(Error::Data(format!(
                "task.train_data ran out of batches at step {}; training inputs must repeat",
                self.global_step
            )))
        })
    }

    /// Evaluates every validation set, with the averaged weights when the optimizer keeps a
    /// moving average (the raw weights are back afterwards, even on error); the first set
    /// logs its metrics under their own names, the others as `<set name>/<metric>`.
    fn evaluate_steps(&mut self, num_steps: i64) -> Result<Logs> {
        let params = self.vars.named_vars();
        let averaged = self.optimizer.swap_average_weights(&params)?;
        let logs = self.evaluate_sets(num_steps);
        if averaged {
            self.optimizer.swap_average_weights(&params)?;
        }
        logs
    }

    /// Evaluates every validation set with the model's current weights.
    fn evaluate_sets(&mut self, num_steps: i64) -> Result<Logs> {
        let mut logs = Logs::new();
        for index in 0..self.validation_sets.len() {
            let set_logs = self.evaluate_set(index, num_steps)?;
            let split = &self.validation_sets[index].split;
            logs.extend(set_logs.into_iter().map(|(key, value)| match split {
                Split::Validation => (key, value),
                _ => (format!("{}/{key}", split.name()), value),
            }));
        }
        Ok(logs)
    }

    fn evaluate_set(&mut self, index: usize, num_steps: i64) -> Result<Logs> {
        let set = &mut self.validation_sets[index];
        if num_steps < 0 && set.endless {
            return Err(Error::Config(format!(
                "evaluating the whole validation set `{}`, but it never ends; give a positive \
                 number of evaluation steps",
                set.split.name()
            )));
        }
        let (fresh, split) = (set.fresh.take(), set.split.clone());
        let mut data = match fresh {
            Some(data) => data,
            None => self
                .task
                .build_validation_inputs(&self.input_context(split))?,
        };
        let mut metrics = std::mem::take(&mut self.validation_sets[index].metrics);
        let mut loss_sum: Option<Tensor> = None;
        let mut batches = 0u64;
        let mut aggregate = None;
        while num_steps < 0 || batches < num_steps as u64 {
            let Some(batch) = data.next_batch() else {
                if num_steps > 0 {
                    tracing::info!("the validation set was exhausted after {batches} steps");
                }
                break;
            };
            let batch = batch?.to_device(&self.device)?;
            let shards = self.strategy.validation_step(
                self.task.as_ref(),
                self.model.as_ref(),
                &batch,
                self.global_step,
            )?;
            for ShardOutputs { outputs, share } in shards {
                for metric in &mut metrics {
                    metric.update(&outputs)?;
                }
                if let Some(loss) = outputs.loss() {
                    // The batch's loss: the shards' losses weighed by their shares.
                    let loss = loss.detach().affine(share, 0.0)?;
                    loss_sum = Some(match loss_sum {
                        Some(sum) => (sum + loss)?,
                        None => loss,
                    });
                }
                aggregate = self.task.aggregate_logs(aggregate, &outputs)?;
            }
            batches += 1;
        }
        let workers = self.strategy.workers();
        reduce_metrics(workers, &mut metrics)?;
        let mut logs: Logs = collect_and_reset(&mut metrics)?.into_iter().collect();
        self.validation_sets[index].metrics = metrics;
        // [sum of the batches' losses, whether there is a loss]; with workers, each holds
        // its shards' part of every batch's loss.
        let mut loss = match loss_sum {
            Some(sum) => [
                f64::from(sum.to_dtype(DType::F32)?.to_scalar::<f32>()?),
                1.0,
            ],
            None => [0.0, 0.0],
        };
        reduce_sums(workers, &mut loss)?;
        if loss[1] > 0.0 && batches > 0 {
            logs.insert("validation_loss".to_string(), loss[0] / batches as f64);
        }
        if let Some(state) = gather_aggregate(workers, aggregate)? {
            logs.extend(self.task.reduce_aggregated_logs(state, self.global_step)?);
        }
        Ok(logs)
    }

    /// Writes the checkpoint files into `dir`: `stage` is recorded in `state.json` when given;
    /// `averaged` writes the moving averages (where there are any) as the model weights.
    /// With workers, every worker writes (the others into scratch), after checking that all
    /// hold the same weights.
    pub(crate) fn save_to(&self, dir: &Path, stage: Option<usize>, averaged: bool) -> Result<()> {
        self.check_workers_agree()?;
        let mut weights = self.vars.tensors();
        if averaged {
            let averages: HashMap<String, Tensor> =
                self.optimizer.average_weights().into_iter().collect();
            for (name, value) in &mut weights {
                if let Some(average) = averages.get(name) {
                    *value = average.to_dtype(value.dtype())?;
                }
            }
        }
        let (input_position, worker_input_positions) = self.train_input_positions()?;
        write_tensors(&dir.join(MODEL_WEIGHTS_FILE), weights)?;
        write_state_views(&dir.join(OPTIMIZER_FILE), &self.optimizer.state_views())?;
        write_state(
            dir,
            &TrainState {
                format_version: FORMAT_VERSION,
                global_step: self.global_step,
                optimizer_iterations: self.optimizer.iterations(),
                input_offset: self.input_offset,
                input_position,
                stage,
                workers: self.strategy.workers().map(|w| w.size()),
                worker_input_positions,
            },
        )
    }

    /// With workers: fails unless every worker holds the same weights at the same step (every
    /// worker saves each checkpoint, the chief into model_dir, the others into scratch).
    fn check_workers_agree(&self) -> Result<()> {
        let Some(workers) = self.strategy.workers() else {
            return Ok(());
        };
        let checksum = weights_checksum(&self.vars, self.global_step)?;
        workers
            .check_agreement(
                &format!("the weights at step {}", self.global_step),
                checksum,
            )
            .map_err(collective_error)
    }

    /// Loads the checkpoint in `dir` into the current model and optimizer.
    pub(crate) fn restore_from(&mut self, dir: &Path) -> Result<()> {
        let state = read_state(dir)?;
        let origin = dir.join(MODEL_WEIGHTS_FILE).display().to_string();
        self.vars.load_exact(&read_model(dir)?, &origin)?;
        self.optimizer.load_state(
            &self.vars.named_vars(),
            read_optimizer(dir)?,
            state.optimizer_iterations,
        )?;
        let workers = self.strategy.workers().map(|w| w.size());
        if state.workers != workers {
            let count = |n: Option<usize>| n.unwrap_or(1);
            tracing::warn!(
                "{} was written by {} worker(s) and this run has {}: training continues on the \
                 same global batches, split over the workers anew (shards and dropout streams \
                 follow the new count)",
                dir.display(),
                count(state.workers),
                count(workers)
            );
        }
        let position = match state.worker_input_positions {
            Some(positions) => {
                let (rank, count) = self
                    .strategy
                    .workers()
                    .map_or((0, 1), |w| (w.rank(), w.size()));
                if positions.len() != count {
                    return Err(Error::Checkpoint(format!(
                        "{} holds the input positions of {} workers, each reading its own \
                         shard of the training data, and this run has {count}: resume it with \
                         {} workers (a shard's position cannot be split anew)",
                        dir.display(),
                        positions.len(),
                        positions.len()
                    )));
                }
                positions[rank].clone()
            }
            None => state.input_position,
        };
        self.global_step = state.global_step;
        self.input_offset = state.input_offset;
        self.reposition_train_inputs(position)
    }

    /// Where the training stream stands: the position its source reported after the last
    /// batch trained on (`None` for sources repositioned by batch count, or before the first
    /// batch).
    pub(crate) fn train_input_position(&self) -> Option<InputPosition> {
        self.train_data.as_ref()?.position().cloned()
    }

    /// What `state.json` records of the training stream: this process's position, or, when
    /// every worker reads its own shard, every worker's (gathered from all of them).
    fn train_input_positions(
        &self,
    ) -> Result<(Option<InputPosition>, Option<WorkerInputPositions>)> {
        let own = self.train_input_position();
        match (self.strategy.workers(), self.worker_batch_of()) {
            (Some(workers), Some(_)) => Ok((None, Some(gather_all(workers, &own)?))),
            _ => Ok((own, None)),
        }
    }

    /// Rebuilds the training inputs where the run's input stream stands: at `position` for a
    /// streaming source, else at batch `global_step + input_offset`.
    pub(crate) fn reposition_train_inputs(
        &mut self,
        position: Option<InputPosition>,
    ) -> Result<()> {
        if self.train_data.is_some() {
            let context = InputContext {
                start_batch: self.global_step + self.input_offset,
                position,
                ..self.input_context(Split::Train)
            };
            self.train_data = Some(self.task.build_train_inputs(&context)?);
        }
        Ok(())
    }

    /// The context of `split`'s inputs from their start (the training data's with this
    /// process's shard of it).
    fn input_context(&self, split: Split) -> InputContext {
        let shard = match split {
            Split::Train => self.train_shard,
            _ => Shard::WHOLE,
        };
        InputContext {
            input_threads: self.input_threads,
            shard,
            ..InputContext::new(self.seed, split)
        }
    }

    /// The global batch size when the training batches are only this worker's part of it
    /// (the task read its shard of the data), else `None`.
    fn worker_batch_of(&self) -> Option<usize> {
        let data = self.train_data.as_ref()?;
        (data.part().count > 1).then(|| self.task.train_batch_size())
    }
}

/// The shard of the training data a worker of `strategy`'s job reads (the whole data without
/// workers); a global batch smaller than the job's workers is a config error.
fn train_shard(strategy: &dyn Strategy, global_batch_size: usize) -> Result<Shard> {
    let Some(workers) = strategy.workers() else {
        return Ok(Shard::WHOLE);
    };
    if global_batch_size < workers.size() {
        return Err(Error::Config(format!(
            "task.train_data.global_batch_size = {global_batch_size} is smaller than the job's \
             {} workers: give every worker at least one example",
            workers.size()
        )));
    }
    Ok(Shard {
        index: workers.rank(),
        count: workers.size(),
    })
}

/// Opens every validation set of `task` (so bad data is reported before a run writes
/// anything); an endless set with `validation_steps` -1 is a config error.
fn open_validation_sets(
    task: &dyn DynTask,
    train_context: &InputContext,
    validation_steps: i64,
) -> Result<Vec<ValidationSet>> {
    task.validation_splits()
        .into_iter()
        .map(|split| {
            let data = task.build_validation_inputs(&InputContext {
                split: split.clone(),
                ..train_context.clone()
            })?;
            let endless = data.is_endless();
            if endless && validation_steps < 0 {
                return Err(Error::Config(format!(
                    "trainer.validation_steps = -1 evaluates the whole validation set, but \
                     `{}` never ends (e.g. input_path: dummy); set trainer.validation_steps \
                     to a positive number",
                    split.name()
                )));
            }
            Ok(ValidationSet {
                split,
                fresh: Some(data),
                metrics: task.build_metrics(false),
                endless,
            })
        })
        .collect()
}

impl Trainer for DefaultTrainer {
    fn train(&mut self, num_steps: u64) -> std::result::Result<Logs, RunnerError> {
        self.train_steps(num_steps).map_err(RunnerError::from)
    }

    fn global_step(&self) -> u64 {
        self.global_step
    }

    fn skip_inputs(&mut self, batches: u64) -> std::result::Result<(), RunnerError> {
        self.skip_train_batches(batches).map_err(RunnerError::from)
    }
}

impl Evaluator for DefaultTrainer {
    fn evaluate(&mut self, num_steps: i64) -> std::result::Result<Logs, RunnerError> {
        self.evaluate_steps(num_steps).map_err(RunnerError::from)
    }
}

impl Checkpointable for DefaultTrainer {
    fn save(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
        self.save_to(dir, None, false).map_err(RunnerError::from)
    }

    fn save_export(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
        self.save_to(dir, None, true).map_err(RunnerError::from)
    }

    fn restore(&mut self, dir: &Path) -> std::result::Result<(), RunnerError> {
        self.restore_from(dir).map_err(RunnerError::from)
    }
}
