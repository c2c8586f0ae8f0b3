//! Model Garden's `AdamWeightDecay` (BERT's AdamW, `legacy_adamw.py`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use regex::Regex;

use super::clipping::{clip_scale, global_norm};
use super::optimizer::{f32_value_and_grad, write, NamedVar, Optimizer};
use super::slots::Slots;
use crate::config::optimization::{compile_pattern, AdamWConfig};
use crate::error::Result;

/// Adam with decoupled weight decay. Per [`Optimizer::apply`] with learning rate `lr`:
/// 1. all gradients are scaled by [`clip_scale`]`(global norm, gradient_clip_norm)`;
/// 2. with `t = iterations + 1`: `m = b1·m + (1−b1)·g`, `v = b2·v + (1−b2)·g²`,
///    `lr_t = lr·sqrt(1−b2^t)/(1−b1^t)`;
/// 3. if the var's name is selected for decay: `w −= lr·rate·w`;
/// 4. `w −= lr_t·m/(sqrt(v)+ε)`.
///
/// A name is selected for decay unless `rate == 0`; an `include_in_weight_decay` regex match
/// selects it, otherwise an `exclude_from_weight_decay` match deselects it (regexes are
/// searched anywhere in the name). Slots: `m` and `v`.
#[derive(Debug, Clone)]
pub struct AdamWeightDecay {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    weight_decay_rate: f64,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    gradient_clip_norm: f64,
    iterations: u64,
    slots: Slots,
}

const SLOTS: &[&str] = &["m", "v"];

impl AdamWeightDecay {
    /// AdamW with the settings of `cfg`; an invalid regex is an `Error::Config`.
    pub fn new(cfg: &AdamWConfig) -> Result<Self> {
        let compile = |name: &str, list: &Option<Vec<String>>| -> Result<Vec<Regex>> {
            let key = |i| format!("optimizer.adamw.{name}[{i}]");
            let patterns = list.iter().flatten().enumerate();
            patterns.map(|(i, p)| compile_pattern(&key(i), p)).collect()
        };
        Ok(AdamWeightDecay {
            beta_1: cfg.beta_1,
            beta_2: cfg.beta_2,
            epsilon: cfg.epsilon,
            weight_decay_rate: cfg.weight_decay_rate,
            include: compile("include_in_weight_decay", &cfg.include_in_weight_decay)?,
            exclude: compile("exclude_from_weight_decay", &cfg.exclude_from_weight_decay)?,
            gradient_clip_norm: cfg.gradient_clip_norm,
            iterations: 0,
            slots: Slots::new(SLOTS),
        })
    }

    /// Whether the var named `name` gets weight decay (Model Garden's
    /// `_do_use_weight_decay`).
    pub fn uses_weight_decay(&self, name: &str) -> bool {
        if self.weight_decay_rate == 0.0 {
            return false;
        }
        if self.include.iter().any(|r| r.is_match(name)) {
            return true;
        }
        !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// The scalars shared by every var's update in one step.
struct StepCoefficients {
    /// `(1 − b1)·scale`: applied to the raw gradient in the first moment.
    m_grad: f64,
    /// `(1 − b2)·scale²`: applied to the raw squared gradient in the second moment.
    v_grad: f64,
    /// The bias-corrected learning rate `lr_t`.
    lr_t: f64,
    /// `1 − lr·rate`: the decay factor for selected vars.
    decay: f64,
}

impl Optimizer for AdamWeightDecay {
    fn apply(&mut self, params: &[NamedVar], grads: &GradStore, lr: f64) -> Result<()> {
        let scale = if self.gradient_clip_norm > 0.0 {
            clip_scale(global_norm(grads, params)?, self.gradient_clip_norm)
        } else {
            1.0
        };
        let t = (self.iterations + 1) as f64;
        let c = StepCoefficients {
            m_grad: (1.0 - self.beta_1) * scale,
            v_grad: (1.0 - self.beta_2) * scale * scale,
            lr_t: lr * (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t)),
            decay: 1.0 - lr * self.weight_decay_rate,
        };
        for param in params {
            let Some((w, g)) = f32_value_and_grad(param, grads)? else {
                continue;
            };
            let decays = self.uses_weight_decay(&param.name);
            let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
            let slots = self.slots.get_or_zeros(param)?;
            let m = (slots[0].affine(b1, 0.0)? + g.affine(c.m_grad, 0.0)?)?;
            let v = (slots[1].affine(b2, 0.0)? + g.sqr()?.affine(c.v_grad, 0.0)?)?;
            let step = (&m / v.sqrt()?.affine(1.0, eps)?)?.affine(c.lr_t, 0.0)?;
            let w = if decays { w.affine(c.decay, 0.0)? } else { w };
            write(param, &(w - step)?)?;
            slots[0] = m;
            slots[1] = v;
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
