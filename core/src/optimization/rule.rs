//! The machinery every optimizer shares: a per-variable [`UpdateRule`] plus iterations,
//! named slots and Keras' gradient clipping, wrapped as an [`Optimizer`] by
//! [`RuleOptimizer`].

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::clipping::{clip_scale, global_norm};
use super::optimizer::{f32_value_and_grad, write, NamedVar, Optimizer};
use super::slots::{SlotSpec, Slots};
use crate::config::optimization::GradientClipping;
use crate::error::Result;

/// What every variable's update in one optimizer step shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepInfo {
    /// The learning rate of this step.
    pub lr: f64,
    /// The 1-based number of this update (`iterations + 1`), for bias corrections.
    pub t: f64,
}

/// One optimizer's update of one variable.
pub(crate) trait UpdateRule: Send {
    /// The slots every variable keeps, in the order `update` receives them.
    fn slots(&self) -> Vec<SlotSpec>;

    /// A global-norm clip applied before Keras' clipping keys (Model Garden's AdamW
    /// `gradient_clip_norm`); 0 means none.
    fn own_global_clip_norm(&self) -> f64 {
        0.0
    }

    /// The new value of the variable `name` (f32 `w`) from its clipped gradient `g`; updates
    /// `slots` in place.
    fn update(
        &self,
        name: &str,
        w: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        step: StepInfo,
    ) -> Result<Tensor>;
}

/// An [`Optimizer`] applying `R` to every variable with a gradient, after clipping.
pub(crate) struct RuleOptimizer<R> {
    rule: R,
    clipping: GradientClipping,
    iterations: u64,
    slots: Slots,
}

impl<R: UpdateRule> RuleOptimizer<R> {
    /// `rule` with Keras' `clipping`.
    pub(crate) fn new(rule: R, clipping: GradientClipping) -> Self {
        let slots = Slots::new(rule.slots());
        RuleOptimizer {
            rule,
            clipping,
            iterations: 0,
            slots,
        }
    }

    /// The factor every gradient is multiplied by for the global-norm clips (1: none).
    fn global_scale(&self, params: &[NamedVar], grads: &GradStore) -> Result<f64> {
        let own = self.rule.own_global_clip_norm();
        let keras = self.clipping.global_clipnorm.unwrap_or(0.0);
        if own <= 0.0 && keras <= 0.0 {
            return Ok(1.0);
        }
        let norm = global_norm(grads, params)?;
        let first = clip_scale(norm, own);
        Ok(first * clip_scale(norm * first, keras))
    }

    /// `g` times `scale`, then clipped per variable (`clipnorm`) and elementwise
    /// (`clipvalue`), in Keras' order.
    fn clip(&self, g: Tensor, scale: f64) -> Result<Tensor> {
        let mut g = if scale == 1.0 {
            g
        } else {
            g.affine(scale, 0.0)?
        };
        if let Some(limit) = self.clipping.clipnorm {
            let norm = f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?).sqrt();
            let factor = clip_scale(norm, limit);
            if factor != 1.0 {
                g = g.affine(factor, 0.0)?;
            }
        }
        if let Some(limit) = self.clipping.clipvalue {
            g = g.clamp(-limit as f32, limit as f32)?;
        }
        Ok(g)
    }
}

impl<R: UpdateRule> Optimizer for RuleOptimizer<R> {
    fn apply(&mut self, params: &[NamedVar], grads: &GradStore, lr: f64) -> Result<()> {
        let scale = self.global_scale(params, grads)?;
        let step = StepInfo {
            lr,
            t: (self.iterations + 1) as f64,
        };
        for param in params {
            let Some((w, g)) = f32_value_and_grad(param, grads)? else {
                continue;
            };
            let g = self.clip(g, scale)?;
            let slots = self.slots.get_or_init(param)?;
            let new_w = self.rule.update(&param.name, &w, &g, slots, step)?;
            write(param, &new_w)?;
        }
        self.iterations += 1;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.slots.state()
    }

    fn load_state(
        &mut self,
        params: &[NamedVar],
        state: HashMap<String, Tensor>,
        iterations: u64,
    ) -> Result<()> {
        self.slots.load(params, state)?;
        self.iterations = iterations;
        Ok(())
    }
}
