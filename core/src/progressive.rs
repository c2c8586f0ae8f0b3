//! Progressive training's policy (Model Garden's `ProgressivePolicy`): how many stages there
//! are, how long each trains, and the model, optimizer and inputs of each stage. A policy is
//! registered per task config type and selected by `trainer.progressive`.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use candle_core::Device;
use once_cell::sync::Lazy;

use crate::config::{AnyTaskConfig, TaskConfig, TrainerConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::optimization::{LearningRateSchedule, Optimizer};
use crate::task::{DynTask, InputContext};
use crate::vars::ModelVars;

/// The optimizer of one stage with its learning-rate schedule (evaluated at the optimizer's
/// own iterations, which start at 0 in every stage).
pub struct StageOptimizer {
    /// A fresh optimizer (no slots, 0 iterations).
    pub optimizer: Box<dyn Optimizer>,
    /// The stage's learning-rate schedule.
    pub schedule: Box<dyn LearningRateSchedule>,
}

/// The stages of a progressive run and what each trains.
pub trait ProgressivePolicy: Send + Sync {
    /// Number of stages.
    fn num_stages(&self) -> usize;
    /// Training steps of `stage`.
    fn num_steps(&self, stage: usize) -> u64;
    /// The task whose steps (loss, metrics) every stage runs.
    fn task(&self) -> &dyn DynTask;
    /// Builds the model of `stage`, creating its variables in `vars` (initialised from
    /// `seed`); with `old_model`, the variables of the previous stage's model, the new
    /// model's weights are derived from them (e.g. layers stacked).
    fn get_model(
        &self,
        stage: usize,
        old_model: Option<&ModelVars>,
        vars: &ModelVars,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Any + Send + Sync>>;
    /// A fresh optimizer and schedule for `stage`.
    fn get_optimizer(&self, stage: usize) -> Result<StageOptimizer>;
    /// The training inputs of `stage`, positioned at `context.start_batch`.
    fn get_train_dataset(&self, stage: usize, context: &InputContext) -> Result<Dataset>;
    /// The validation inputs of `stage` (split `context.split`).
    fn get_eval_dataset(&self, stage: usize, context: &InputContext) -> Result<Dataset>;

    /// The stage training `global_step`, as Model Garden computes it: the first stage whose
    /// cumulated steps exceed the step; past the last stage's end, the last stage.
    fn stage_of(&self, global_step: u64) -> usize {
        let mut remaining = global_step;
        for stage in 0..self.num_stages() {
            let steps = self.num_steps(stage);
            if remaining < steps {
                return stage;
            }
            remaining -= steps;
        }
        self.num_stages().saturating_sub(1)
    }
}

type PolicyFactory = Arc<
    dyn Fn(&dyn AnyTaskConfig, &TrainerConfig) -> Result<Box<dyn ProgressivePolicy>> + Send + Sync,
>;

static POLICIES: Lazy<RwLock<BTreeMap<TypeId, PolicyFactory>>> = Lazy::new(Default::default);

/// Registers the progressive policy of task config type `C`, built from the task config and
/// the trainer config (whose `progressive` section is set).
pub fn register_progressive_policy<C: TaskConfig>(
    factory: fn(&C, &TrainerConfig) -> Result<Box<dyn ProgressivePolicy>>,
) -> Result<()> {
    let mut policies = POLICIES.write().expect("policy registry poisoned");
    let id = TypeId::of::<C>();
    if policies.contains_key(&id) {
        return Err(Error::Registry(format!(
            "a progressive policy is registered twice for config type {}",
            std::any::type_name::<C>()
        )));
    }
    let erased: PolicyFactory = Arc::new(move |config, trainer| {
        let config = config
            .as_any()
            .downcast_ref::<C>()
            .expect("the registry keys policies by config type");
        factory(config, trainer)
    });
    policies.insert(id, erased);
    Ok(())
}

/// Builds the progressive policy registered for the type of `config`.
pub fn get_progressive_policy(
    config: &dyn AnyTaskConfig,
    trainer: &TrainerConfig,
) -> Result<Box<dyn ProgressivePolicy>> {
    let factory = POLICIES
        .read()
        .expect("policy registry poisoned")
        .get(&config.as_any().type_id())
        .cloned()
        .ok_or_else(|| {
            Error::Config(format!(
                "trainer.progressive is set, but task type {} has no progressive policy; \
                 remove trainer.progressive or use a task that supports progressive training \
                 (e.g. masked_lm)",
                config.type_name()
            ))
        })?;
    factory(config, trainer)
}
