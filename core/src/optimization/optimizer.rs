//! The optimizer interface: an update rule with named, checkpointable state.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use crate::config::optimization::{OptimizationConfig, OptimizerConfig, OptimizerType};
use crate::error::Result;

use super::ema::MovingAverage;
use super::rule::RuleOptimizer;
use super::rules::{
    adagrad::Adagrad, adam::Adam, lamb::Lamb, lars::Lars, rmsprop::Rmsprop, sgd::Sgd,
};

/// A trainable variable and its name (module path, e.g.
/// `encoder.layer.0.attention.query.weight`).
#[derive(Debug, Clone)]
pub struct NamedVar {
    /// The variable's name; optimizer state and weight-decay patterns refer to it.
    pub name: String,
    /// The variable.
    pub var: Var,
}

impl NamedVar {
    /// Pairs a name with a variable.
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        NamedVar {
            name: name.into(),
            var,
        }
    }
}

/// Every variable of `varmap` with its name, sorted by name (a `VarMap`'s own order is random).
pub fn named_vars(varmap: &candle_nn::VarMap) -> Vec<NamedVar> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut vars: Vec<NamedVar> = data
        .iter()
        .map(|(name, var)| NamedVar::new(name.clone(), var.clone()))
        .collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// One named state buffer of an optimizer, borrowed: `values` holds the elements of `shape`
/// in row-major order.
#[derive(Debug, Clone)]
pub struct StateView<'a> {
    /// `<var name>/<slot>`.
    pub name: String,
    /// The variable's shape.
    pub shape: Vec<usize>,
    /// The buffer.
    pub values: &'a [f32],
}

impl StateView<'_> {
    /// The buffer copied into a CPU tensor of its shape.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(self.values, self.shape.as_slice(), &Device::Cpu)
            .expect("a state buffer has its shape's element count")
    }
}

/// An update rule with named state (Keras optimizer semantics).
pub trait Optimizer: Send {
    /// Applies one update to `params` from `grads` with learning rate `lr`; increments
    /// iterations. Vars without a gradient are skipped.
    fn apply(&mut self, params: &[NamedVar], grads: &GradStore, lr: f64) -> Result<()>;

    /// Number of updates applied so far (Keras `optimizer.iterations`).
    fn iterations(&self) -> u64;

    /// Every state buffer, named `<var name>/<slot>` (e.g. `.../m`, `.../v`,
    /// `.../momentum`), sorted by name, borrowed (a checkpoint writes them without a copy).
    fn state_views(&self) -> Vec<StateView<'_>>;

    /// [`Optimizer::state_views`] as CPU tensors (a copy of each buffer).
    fn state(&self) -> Vec<(String, Tensor)> {
        self.state_views()
            .into_iter()
            .map(|view| (view.name.clone(), view.to_tensor()))
            .collect()
    }

    /// Restores state saved by `state()` plus the iteration count. A slot name that this
    /// optimizer would not create for `params`, or a shape that differs from its var, is an
    /// `Error::Checkpoint` naming the tensor. On error the optimizer is left unchanged.
    fn load_state(
        &mut self,
        params: &[NamedVar],
        state: HashMap<String, Tensor>,
        iterations: u64,
    ) -> Result<()>;

    /// With a moving average of the weights (`optimizer_config.ema`): exchanges every
    /// variable's value with its average (Keras `swap_weights`), so calling it twice restores
    /// the raw weights, and returns true. Without one: does nothing and returns false.
    fn swap_average_weights(&mut self, params: &[NamedVar]) -> Result<bool> {
        let _ = params;
        Ok(false)
    }

    /// The averaged value of every variable that has one, by variable name (empty without a
    /// moving average).
    fn average_weights(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

/// Builds the optimizer selected by `cfg` (validating the selected branch first).
pub fn build_optimizer(cfg: &OptimizerConfig) -> Result<Box<dyn Optimizer>> {
    cfg.validate()?;
    let clipping = cfg.clipping();
    Ok(match cfg.kind {
        OptimizerType::Sgd => Box::new(RuleOptimizer::new(Sgd::new(&cfg.sgd()), clipping)),
        OptimizerType::Adam => Box::new(RuleOptimizer::new(Adam::new(&cfg.adam()), clipping)),
        OptimizerType::Adamw => Box::new(RuleOptimizer::new(
            Adam::weight_decay(&cfg.adamw())?,
            clipping,
        )),
        OptimizerType::Lamb => Box::new(RuleOptimizer::new(Lamb::new(&cfg.lamb())?, clipping)),
        OptimizerType::Lars => Box::new(RuleOptimizer::new(Lars::new(&cfg.lars())?, clipping)),
        OptimizerType::Rmsprop => {
            Box::new(RuleOptimizer::new(Rmsprop::new(&cfg.rmsprop()), clipping))
        }
        OptimizerType::Adagrad => {
            Box::new(RuleOptimizer::new(Adagrad::new(&cfg.adagrad()), clipping))
        }
    })
}

/// Builds the optimizer of `cfg.optimizer`, wrapped in a [`MovingAverage`] when `cfg.ema`
/// is set.
pub fn build_optimizer_with_ema(cfg: &OptimizationConfig) -> Result<Box<dyn Optimizer>> {
    let optimizer = build_optimizer(&cfg.optimizer)?;
    Ok(match &cfg.ema {
        Some(ema) => Box::new(MovingAverage::new(optimizer, ema.clone())),
        None => optimizer,
    })
}
