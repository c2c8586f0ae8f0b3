//! The Task: all problem-specific code of an experiment (Model Garden's `base_task.Task`).
//!
//! A task builds its model and inputs, computes the loss and metric values of a step, and may
//! aggregate validation outputs on the host. Trainers own everything else: backward pass,
//! clipping, optimizer updates, loops, checkpoints. Unlike Model Garden's `train_step`, Grove's
//! returns the loss instead of applying the optimizer, so the trainer can clip, fuse and
//! accumulate updates the same way for every task.

use std::any::Any;
use std::collections::BTreeMap;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use crate::config::{DataSpec, TaskConfig};
use crate::data::{Batch, Dataset, InputPosition, Shard};
use crate::error::{Error, Result};
use crate::export::{ExportFormat, ExportPlan};
use crate::init_checkpoint::load_init_checkpoint;
use crate::metrics::Metric;
use crate::vars::ModelVars;

/// Name of the validation set of `task.validation_data`.
pub const MAIN_VALIDATION_SET: &str = "validation";

/// Host-side aggregate of validation outputs: named columns of numbers (e.g. predictions and
/// labels for an F1 score).
pub type Aggregate = BTreeMap<String, Vec<f64>>;

/// What a validation step returns (and what metrics and `aggregate_logs` read): named tensors
/// and, when the task computes one, the loss (`validation_loss` is logged when present).
#[derive(Debug, Clone, Default)]
pub struct StepOutputs {
    loss: Option<Tensor>,
    values: BTreeMap<String, Tensor>,
}

/// What a train step returns: the scalar loss the backward pass differentiates, which a
/// training step cannot leave out, and the step's other outputs for the training metrics.
#[derive(Debug, Clone)]
pub struct TrainOutputs {
    loss: Tensor,
    outputs: StepOutputs,
}

impl TrainOutputs {
    /// Outputs of a step with this loss and no other outputs yet.
    pub fn new(loss: Tensor) -> Self {
        Self::with_outputs(loss, StepOutputs::default())
    }

    /// `outputs` with this loss (replacing any loss `outputs` held).
    pub fn with_outputs(loss: Tensor, mut outputs: StepOutputs) -> Self {
        outputs.loss = None;
        TrainOutputs { loss, outputs }
    }

    /// Adds a named output.
    pub fn insert(&mut self, name: impl Into<String>, value: Tensor) {
        self.outputs.insert(name, value);
    }

    /// The loss.
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }
}

impl From<TrainOutputs> for StepOutputs {
    /// The train step's outputs as a validation step's (its loss becomes `validation_loss`).
    fn from(train: TrainOutputs) -> Self {
        StepOutputs {
            loss: Some(train.loss),
            values: train.outputs.values,
        }
    }
}

impl StepOutputs {
    /// Outputs with this loss.
    pub fn with_loss(loss: Tensor) -> Self {
        StepOutputs {
            loss: Some(loss),
            values: BTreeMap::new(),
        }
    }

    /// The loss, if the step computed one.
    pub fn loss(&self) -> Option<&Tensor> {
        self.loss.as_ref()
    }

    /// Adds a named output.
    pub fn insert(&mut self, name: impl Into<String>, value: Tensor) {
        self.values.insert(name.into(), value);
    }

    /// The outputs cut from candle's graph: once the backward pass has run, the forward
    /// pass's activations that only the graph still held are freed.
    pub fn detach(self) -> Self {
        StepOutputs {
            loss: self.loss.map(|loss| loss.detach()),
            values: self
                .values
                .into_iter()
                .map(|(name, value)| (name, value.detach()))
                .collect(),
        }
    }

    /// The output `name`; a missing one is an error naming it.
    pub fn value(&self, name: &str) -> Result<&Tensor> {
        self.values.get(name).ok_or_else(|| {
            Error::Run(format!(
                "the step produced no output `{name}` (it produced: {})",
                self.values.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// Per-step context handed to the task.
pub struct StepContext {
    /// The global step being computed (before it is incremented).
    pub global_step: u64,
    /// Dropout randomness for this step (`None` in evaluation: no dropout).
    pub dropout: Option<StdRng>,
}

/// Which of a task's inputs a dataset is built for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    /// `task.train_data`.
    Train,
    /// `task.validation_data`, the validation set named [`MAIN_VALIDATION_SET`].
    Validation,
    /// The `task.extra_validation_data` set `name`, the `index`-th of
    /// [`TaskConfig::extra_validation_data`].
    Extra {
        /// The set's name (its metrics are logged as `<name>/<metric>`).
        name: String,
        /// Its position among the extra sets.
        index: usize,
    },
}

impl Split {
    /// Whether this is the training input.
    pub fn is_train(&self) -> bool {
        *self == Split::Train
    }

    /// The split's position among the task's inputs: 0 train, 1 validation, 2.. the extra
    /// sets in order. A synthetic source places its examples after those of the splits
    /// before it, so no example is in two splits.
    pub fn ordinal(&self) -> usize {
        match self {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Extra { index, .. } => 2 + index,
        }
    }

    /// The validation set's name: `validation` or the extra set's (`train` for training).
    pub fn name(&self) -> &str {
        match self {
            Split::Train => "train",
            Split::Validation => MAIN_VALIDATION_SET,
            Split::Extra { name, .. } => name,
        }
    }

    /// The dotted config key of the split's data config, for messages.
    pub fn config_key(&self) -> String {
        match self {
            Split::Train => "task.train_data".to_string(),
            Split::Validation => "task.validation_data".to_string(),
            Split::Extra { name, .. } => format!("task.extra_validation_data.{name}"),
        }
    }
}

/// Seeds and position a task needs to build its inputs.
#[derive(Debug, Clone)]
pub struct InputContext {
    /// `runtime.seed`: the root of the data-order and data streams.
    pub seed: u64,
    /// Batches of this input already consumed by the run (the global step, for training
    /// inputs): a source that can seek starts after them, so a resumed run sees the batches
    /// an uninterrupted one would.
    pub start_batch: u64,
    /// Where a resumed stream stands: the position its dataset reported at the checkpoint
    /// ([`crate::data::Dataset::position`]). A source that reports positions resumes there,
    /// ahead of `start_batch`; `None` starts the stream (or seeks by `start_batch`).
    pub position: Option<InputPosition>,
    /// Which input this is.
    pub split: Split,
    /// The part of the data this pipeline reads when several workers share it.
    pub shard: Shard,
    /// `runtime.input_threads`: decoder threads beside the reader thread.
    pub input_threads: usize,
}

impl InputContext {
    /// The start of split `split`'s stream, read whole with one decoder thread.
    pub fn new(seed: u64, split: Split) -> Self {
        InputContext {
            seed,
            start_batch: 0,
            position: None,
            split,
            shard: Shard::WHOLE,
            input_threads: 1,
        }
    }
}

/// A training problem. Only the methods without a default must be written.
pub trait Task: Send + Sync + Sized + 'static {
    /// The task's config type; the task registry maps it to this task.
    type Config: TaskConfig;
    /// The model type `build_model` returns.
    type Model: Send + Sync + 'static;

    /// Builds the task from its resolved config.
    fn from_config(config: &Self::Config) -> Result<Self>;

    /// The task's config.
    fn config(&self) -> &Self::Config;

    /// Builds the model; every variable must be created through `vb`.
    fn build_model(&self, vb: VarBuilder) -> Result<Self::Model>;

    /// Builds a dataset from one of the task's data configs.
    fn build_inputs(
        &self,
        data: &<Self::Config as TaskConfig>::Data,
        context: &InputContext,
    ) -> Result<Dataset>;

    /// Metrics updated from every step's outputs (`training` selects train or validation).
    fn build_metrics(&self, training: bool) -> Vec<Box<dyn Metric>> {
        let _ = training;
        Vec::new()
    }

    /// Forward pass and loss of one training batch.
    fn train_step(
        &self,
        inputs: &Batch,
        model: &Self::Model,
        context: &mut StepContext,
    ) -> Result<TrainOutputs>;

    /// Forward pass of one validation batch. The default is `train_step`'s forward pass and
    /// loss (the context carries no dropout stream in evaluation), as Model Garden's base task
    /// does; tasks whose evaluation differs override it.
    fn validation_step(
        &self,
        inputs: &Batch,
        model: &Self::Model,
        context: &mut StepContext,
    ) -> Result<StepOutputs> {
        self.train_step(inputs, model, context)
            .map(StepOutputs::from)
    }

    /// Folds one validation step's outputs into host state (`None` before the first step).
    /// Returning `None` disables `reduce_aggregated_logs`.
    fn aggregate_logs(
        &self,
        state: Option<Aggregate>,
        outputs: &StepOutputs,
    ) -> Result<Option<Aggregate>> {
        let _ = outputs;
        Ok(state)
    }

    /// Extra validation metrics from the aggregated state.
    fn reduce_aggregated_logs(
        &self,
        state: Aggregate,
        global_step: u64,
    ) -> Result<BTreeMap<String, f64>> {
        let _ = (state, global_step);
        Ok(BTreeMap::new())
    }

    /// Initialises a freshly built model, e.g. from `task.init_checkpoint`. Runs only when
    /// model_dir has no checkpoint. The default loads the model variables from
    /// `init_checkpoint` by the config's `init_checkpoint_rules` (all variables under their own
    /// names when there are none), reporting what was loaded, kept and left unused.
    fn initialize(&self, model: &Self::Model, vars: &ModelVars) -> Result<()> {
        let _ = model;
        let path = self.config().init_checkpoint();
        if path.is_empty() {
            return Ok(());
        }
        load_init_checkpoint(path, vars, self.config().init_checkpoint_rules())?;
        Ok(())
    }

    /// How the model's `variables` (the names a checkpoint holds) are written in `format`
    /// (`--mode=export`). The default refuses: a task opts in per format.
    fn export(&self, format: ExportFormat, variables: &[String]) -> Result<ExportPlan> {
        let _ = variables;
        Err(Error::Config(format!(
            "this task's model cannot be exported as {}; use --export_format=grove",
            crate::config::keyword(&format)
        )))
    }
}

/// The object-safe form of [`Task`] that trainers drive; implemented for every `Task`.
pub trait DynTask: Send + Sync {
    /// See [`Task::build_model`].
    fn build_model(&self, vb: VarBuilder) -> Result<Box<dyn Any + Send + Sync>>;
    /// [`Task::build_inputs`] on `task.train_data`.
    fn build_train_inputs(&self, context: &InputContext) -> Result<Dataset>;
    /// The validation sets: [`Split::Validation`] (`task.validation_data`), then the
    /// `task.extra_validation_data` sets in order.
    fn validation_splits(&self) -> Vec<Split>;
    /// [`Task::build_inputs`] on the data config of validation split `context.split`.
    fn build_validation_inputs(&self, context: &InputContext) -> Result<Dataset>;
    /// See [`Task::build_metrics`].
    fn build_metrics(&self, training: bool) -> Vec<Box<dyn Metric>>;
    /// See [`Task::train_step`].
    fn train_step(
        &self,
        inputs: &Batch,
        model: &(dyn Any + Send + Sync),
        context: &mut StepContext,
    ) -> Result<TrainOutputs>;
    /// See [`Task::validation_step`].
    fn validation_step(
        &self,
        inputs: &Batch,
        model: &(dyn Any + Send + Sync),
        context: &mut StepContext,
    ) -> Result<StepOutputs>;
    /// See [`Task::aggregate_logs`].
    fn aggregate_logs(
        &self,
        state: Option<Aggregate>,
        outputs: &StepOutputs,
    ) -> Result<Option<Aggregate>>;
    /// See [`Task::reduce_aggregated_logs`].
    fn reduce_aggregated_logs(
        &self,
        state: Aggregate,
        global_step: u64,
    ) -> Result<BTreeMap<String, f64>>;
    /// See [`Task::initialize`].
    fn initialize(&self, model: &(dyn Any + Send + Sync), vars: &ModelVars) -> Result<()>;
    /// `task.train_data.global_batch_size` (for logs).
    fn train_batch_size(&self) -> usize;
    /// See [`Task::export`].
    fn export(&self, format: ExportFormat, variables: &[String]) -> Result<ExportPlan>;
}

/// A trainer asked for a validation set the task does not have.
fn no_such_set(split: &Split) -> Error {
    Error::Run(format!(
        "{} is not a validation set of this task",
        split.config_key()
    ))
}

fn model_of<T: Task>(model: &(dyn Any + Send + Sync)) -> &T::Model {
    model
        .downcast_ref::<T::Model>()
        .expect("a DynTask is only given models it built")
}

impl<T: Task> DynTask for T {
    fn build_model(&self, vb: VarBuilder) -> Result<Box<dyn Any + Send + Sync>> {
        Ok(Box::new(Task::build_model(self, vb)?))
    }
    fn build_train_inputs(&self, context: &InputContext) -> Result<Dataset> {
        self.build_inputs(self.config().train_data(), context)
    }
    fn validation_splits(&self) -> Vec<Split> {
        let extra = self.config().extra_validation_data();
        let extra = extra
            .into_iter()
            .enumerate()
            .map(|(index, (name, _))| Split::Extra {
                name: name.to_string(),
                index,
            });
        std::iter::once(Split::Validation).chain(extra).collect()
    }
    fn build_validation_inputs(&self, context: &InputContext) -> Result<Dataset> {
        let config = self.config();
        let data = match &context.split {
            Split::Validation => config.validation_data(),
            Split::Extra { index, .. } => config
                .extra_validation_data()
                .get(*index)
                .map(|(_, data)| *data)
                .ok_or_else(|| no_such_set(&context.split))?,
            Split::Train => return Err(no_such_set(&context.split)),
        };
        self.build_inputs(data, context)
    }
    fn build_metrics(&self, training: bool) -> Vec<Box<dyn Metric>> {
        Task::build_metrics(self, training)
    }
    fn train_step(
        &self,
        inputs: &Batch,
        model: &(dyn Any + Send + Sync),
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        Task::train_step(self, inputs, model_of::<T>(model), context)
    }
    fn validation_step(
        &self,
        inputs: &Batch,
        model: &(dyn Any + Send + Sync),
        context: &mut StepContext,
    ) -> Result<StepOutputs> {
        Task::validation_step(self, inputs, model_of::<T>(model), context)
    }
    fn aggregate_logs(
        &self,
        state: Option<Aggregate>,
        outputs: &StepOutputs,
    ) -> Result<Option<Aggregate>> {
        Task::aggregate_logs(self, state, outputs)
    }
    fn reduce_aggregated_logs(
        &self,
        state: Aggregate,
        global_step: u64,
    ) -> Result<BTreeMap<String, f64>> {
        Task::reduce_aggregated_logs(self, state, global_step)
    }
    fn initialize(&self, model: &(dyn Any + Send + Sync), vars: &ModelVars) -> Result<()> {
        Task::initialize(self, model_of::<T>(model), vars)
    }
    fn train_batch_size(&self) -> usize {
        self.config().train_data().global_batch_size()
    }
    fn export(&self, format: ExportFormat, variables: &[String]) -> Result<ExportPlan> {
        Task::export(self, format, variables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_name_their_config_keys_and_keep_their_order() {
        let extra = Split::Extra {
            name: "matched".to_string(),
            index: 1,
        };
        let splits = [Split::Train, Split::Validation, extra.clone()];
        let ordinals: Vec<usize> = splits.iter().map(Split::ordinal).collect();
        assert_eq!(ordinals, [0, 1, 3]);
        let keys: Vec<String> = splits.iter().map(Split::config_key).collect();
        assert_eq!(
            keys,
            [
                "task.train_data",
                "task.validation_data",
                "task.extra_validation_data.matched"
            ]
        );
        assert_eq!(extra.name(), "matched");
        assert_eq!(Split::Validation.name(), MAIN_VALIDATION_SET);
        assert!(Split::Train.is_train() && !extra.is_train());
    }
}
