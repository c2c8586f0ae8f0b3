//! Progressive masked LM (Model Garden's `ProgressiveMaskedLM` with stacking): each stage of
//! `trainer.progressive.stage_list` trains a BERT pretrainer with the stage's `num_layers`;
//! a grown model's layer `i` starts as the previous model's layer `i mod k` (k its layer
//! count), everything else (embeddings, heads) carries over, and each stage has its own
//! polynomial decay with polynomial warmup. As in Model Garden, the ReZero scales of the
//! duplicated layers (`i >= k`) restart at 0, so a ReZero encoder grows without changing its
//! function.

use std::any::Any;
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use grove_core::config::optimization::{
    LearningRateConfig, LearningRateType, OptimizationConfig, PolynomialLrConfig,
    PolynomialWarmupConfig, WarmupConfig, WarmupType,
};
use grove_core::config::{StackingStageConfig, TrainerConfig};
use grove_core::data::Dataset;
use grove_core::optimization::{build_optimizer, build_schedule};
use grove_core::progressive::{ProgressivePolicy, StageOptimizer};
use grove_core::task::{DynTask, InputContext, Task};
use grove_core::vars::{set_checked, ModelVars};
use grove_core::{Error, Result};

use super::config::MaskedLmConfig;
use super::task::MaskedLmTask;
use crate::models::bert::REZERO_ALPHA;
use crate::models::{BertEncoderConfig, BertPretrainer};

/// Prefix of the encoder's transformer layers' variables (`encoder.layer.<i>.<rest>`).
const LAYER_PREFIX: &str = "encoder.layer.";

/// The stacking policy of a masked LM task.
pub struct ProgressiveMaskedLm {
    task: MaskedLmTask,
    stages: Vec<StackingStageConfig>,
    optimization: OptimizationConfig,
}

/// Builds the policy of `config` from `trainer.progressive.stage_list`; the optimizer type
/// and the rest of `trainer.optimizer_config` apply to every stage, the learning rate and
/// warmup come from each stage entry.
pub fn progressive_masked_lm(
    config: &MaskedLmConfig,
    trainer: &TrainerConfig,
) -> Result<Box<dyn ProgressivePolicy>> {
    let stages = trainer
        .progressive
        .as_ref()
        .map(|p| p.stage_list.clone())
        .unwrap_or_default();
    if stages.is_empty() {
        return Err(Error::Config(
            "trainer.progressive.stage_list is empty: progressive masked LM needs stages"
                .to_string(),
        ));
    }
    Ok(Box::new(ProgressiveMaskedLm {
        task: MaskedLmTask::from_config(config)?,
        stages,
        optimization: trainer.optimizer_config.clone(),
    }))
}

/// `optimization` with a polynomial decay from `initial_learning_rate` to `end_learning_rate`
/// over `decay_steps` after a polynomial (power 1) warmup of `warmup_steps`.
pub fn with_polynomial_schedule(
    optimization: OptimizationConfig,
    initial_learning_rate: f64,
    end_learning_rate: f64,
    decay_steps: u64,
    warmup_steps: u64,
) -> OptimizationConfig {
    OptimizationConfig {
        learning_rate: LearningRateConfig {
            kind: LearningRateType::Polynomial,
            polynomial: Some(PolynomialLrConfig {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                ..PolynomialLrConfig::default()
            }),
            ..LearningRateConfig::default()
        }
        .normalized(),
        warmup: WarmupConfig {
            kind: Some(WarmupType::Polynomial),
            polynomial: Some(PolynomialWarmupConfig {
                warmup_steps: Some(warmup_steps),
                ..PolynomialWarmupConfig::default()
            }),
            ..WarmupConfig::default()
        }
        .normalized(),
        ..optimization
    }
}

/// The variable of a `old_layers`-layer model a stacked model's variable `name` starts from:
/// layer `i` maps to layer `i mod old_layers`, other variables to themselves.
pub fn stacked_source(name: &str, old_layers: usize) -> String {
    match layer_of(name) {
        Some((i, tail)) => format!("{LAYER_PREFIX}{}.{tail}", i % old_layers.max(1)),
        None => name.to_string(),
    }
}

/// The transformer layer index and the rest of a variable name `encoder.layer.<i>.<rest>`.
fn layer_of(name: &str) -> Option<(usize, &str)> {
    let (index, rest) = name.strip_prefix(LAYER_PREFIX)?.split_once('.')?;
    Some((index.parse().ok()?, rest))
}

/// Number of transformer layers among `names`.
fn layer_count<'a>(names: impl Iterator<Item = &'a String>) -> usize {
    names
        .filter_map(|n| layer_of(n))
        .map(|(i, _)| i + 1)
        .max()
        .unwrap_or(0)
}

/// Sets every variable of `new` from `old` by the stacking rule ([`stacked_source`]), then
/// zeroes the ReZero scale of every duplicated layer (index `>=` the old layer count).
pub fn stack_weights(old: &ModelVars, new: &ModelVars) -> Result<()> {
    let old: HashMap<String, Tensor> = old.tensors().into_iter().collect();
    let old_layers = layer_count(old.keys());
    for var in new.named_vars() {
        let source = stacked_source(&var.name, old_layers);
        let tensor = old.get(&source).ok_or_else(|| {
            Error::Checkpoint(format!(
                "growing the model: `{}` has no source `{source}` in the previous stage's model",
                var.name
            ))
        })?;
        let duplicated_rezero = matches!(
            layer_of(&var.name),
            Some((i, REZERO_ALPHA)) if i >= old_layers
        );
        if duplicated_rezero {
            set_checked(&var, &tensor.zeros_like()?, "a reset ReZero scale")?;
        } else {
            set_checked(&var, tensor, "the previous stage's model")?;
        }
    }
    Ok(())
}

impl ProgressiveMaskedLm {
    fn stage(&self, stage: usize) -> &StackingStageConfig {
        &self.stages[stage.min(self.stages.len() - 1)]
    }
}

impl ProgressivePolicy for ProgressiveMaskedLm {
    fn num_stages(&self) -> usize {
        self.stages.len()
    }

    fn num_steps(&self, stage: usize) -> u64 {
        self.stage(stage).num_steps
    }

    fn task(&self) -> &dyn DynTask {
        &self.task
    }

    fn get_model(
        &self,
        stage: usize,
        old_model: Option<&ModelVars>,
        vars: &ModelVars,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Any + Send + Sync>> {
        let mut config = self.task.config().model.clone();
        let encoder = config
            .encoder
            .get_mut::<BertEncoderConfig>()
            .ok_or_else(|| {
                Error::Config(
                    "task.model.encoder: progressive masked LM stacks `bert` encoders only"
                        .to_string(),
                )
            })?;
        encoder.num_layers = self.stage(stage).num_layers;
        let model = BertPretrainer::new(&config, vars.var_builder(seed, DType::F32, device))?;
        if let Some(old) = old_model {
            stack_weights(old, vars)?;
        }
        Ok(Box::new(model))
    }

    fn get_optimizer(&self, stage: usize) -> Result<StageOptimizer> {
        let s = self.stage(stage);
        let optimization = with_polynomial_schedule(
            self.optimization.clone(),
            s.initial_learning_rate,
            s.end_learning_rate,
            s.decay_steps,
            s.warmup_steps,
        );
        Ok(StageOptimizer {
            optimizer: build_optimizer(&optimization.optimizer)?,
            schedule: build_schedule(&optimization),
        })
    }

    fn get_train_dataset(&self, _stage: usize, context: &InputContext) -> Result<Dataset> {
        self.task.build_train_inputs(context)
    }

    fn get_eval_dataset(&self, _stage: usize, context: &InputContext) -> Result<Dataset> {
        self.task.build_validation_inputs(context)
    }
}
