//! Keras Adam (with AMSGrad) and Model Garden's `AdamWeightDecay` (BERT's AdamW), which is
//! Adam plus decoupled weight decay and its own global-norm clip.

use super::WeightDecaySelection;
use crate::config::optimization::{AdamConfig, AdamWConfig};
use crate::error::Result;
use crate::optimization::rule::{Gradient, StepInfo, UpdateRule};
use crate::optimization::slots::SlotSpec;

/// Adam as Keras computes it. With `t` the 1-based update number:
/// `m = b1·m + (1−b1)·g`, `v = b2·v + (1−b2)·g²`, `lr_t = lr·sqrt(1−b2^t)/(1−b1^t)`,
/// optionally `w −= lr·rate·w` (AdamW's decoupled decay, for the selected vars), then
/// `w −= lr_t·m/(sqrt(v̂)+ε)` where `v̂` is `v`, or with AMSGrad the running maximum of `v`
/// (slot `vhat`). Slots: `m`, `v` (and `vhat`).
pub(crate) struct Adam {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    amsgrad: bool,
    decay: Option<WeightDecaySelection>,
    gradient_clip_norm: f64,
}

impl Adam {
    /// Keras Adam.
    pub(crate) fn new(cfg: &AdamConfig) -> Self {
        Adam {
            beta_1: cfg.beta_1,
            beta_2: cfg.beta_2,
            epsilon: cfg.epsilon,
            amsgrad: cfg.amsgrad,
            decay: None,
            gradient_clip_norm: 0.0,
        }
    }

    /// Model Garden's AdamWeightDecay; an invalid regex is an `Error::Config`.
    pub(crate) fn weight_decay(cfg: &AdamWConfig) -> Result<Self> {
        let decay = WeightDecaySelection::new(
            "optimizer.adamw",
            cfg.weight_decay_rate,
            &cfg.include_in_weight_decay,
            &cfg.exclude_from_weight_decay,
        )?;
        Ok(Adam {
            beta_1: cfg.beta_1,
            beta_2: cfg.beta_2,
            epsilon: cfg.epsilon,
            amsgrad: false,
            decay: Some(decay),
            gradient_clip_norm: cfg.gradient_clip_norm,
        })
    }
}

impl UpdateRule for Adam {
    fn slots(&self) -> Vec<SlotSpec> {
        let mut slots = vec![SlotSpec::zeros("m"), SlotSpec::zeros("v")];
        if self.amsgrad {
            slots.push(SlotSpec::zeros("vhat"));
        }
        slots
    }

    fn own_global_clip_norm(&self) -> f64 {
        self.gradient_clip_norm
    }

    #[inline(always)]
    fn update(
        &self,
        name: &str,
        w: &mut [f32],
        g: &Gradient,
        slots: &mut [&mut [f32]],
        step: StepInfo,
    ) {
        let (b1, b2) = (self.beta_1 as f32, self.beta_2 as f32);
        let lr_t =
            step.lr * (1.0 - self.beta_2.powf(step.t)).sqrt() / (1.0 - self.beta_1.powf(step.t));
        let (lr_t, eps) = (lr_t as f32, self.epsilon as f32);
        let rate = self.decay.as_ref().map_or(0.0, |d| d.rate_for(name));
        let keep = (1.0 - step.lr * rate) as f32;
        let (m, rest) = slots.split_at_mut(1);
        let (v, vhat) = rest.split_at_mut(1);
        let moments = m[0].iter_mut().zip(v[0].iter_mut());
        let advance = |m: &mut f32, v: &mut f32, g: f32| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
        };
        let apply = |w: &mut f32, m: f32, second: f32| {
            *w = *w * keep - lr_t * m / (second.sqrt() + eps);
        };
        // One branch-free loop for each form, so that both vectorise.
        let elements = w.iter_mut().zip(g.iter()).zip(moments);
        match vhat.first_mut() {
            None => elements.for_each(|((w, g), (m, v))| {
                advance(m, v, g);
                apply(w, *m, *v);
            }),
            Some(vhat) => elements
                .zip(vhat.iter_mut())
                .for_each(|(((w, g), (m, v)), vhat)| {
                    advance(m, v, g);
                    *vhat = vhat.max(*v);
                    apply(w, *m, *vhat);
                }),
        }
    }
}
