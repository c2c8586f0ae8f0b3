//! LAMB (Model Garden's `LAMB`): Adam's bias-corrected direction plus weight decay, scaled
//! per variable by a trust ratio.

use super::selection::{layerwise_selections, LayerAdaptation};
use super::{trust_ratio, WeightDecaySelection};
use crate::config::optimization::LambConfig;
use crate::error::Result;
use crate::optimization::rule::{l2_norm, l2_norm_of, Gradient, StepInfo, UpdateRule};
use crate::optimization::slots::SlotSpec;

/// With `t` the 1-based update number: `m`, `v` as Adam; `u = (m/(1−b1^t)) /
/// (sqrt(v/(1−b2^t)) + ε) + rate·w` (decay for the selected vars); `r = ‖w‖/‖u‖` (1 if a norm
/// is 0 or the var is excluded from layer adaptation); `w −= r·lr·u`. Slots `m`, `v`.
pub(crate) struct Lamb {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    decay: WeightDecaySelection,
    adaptation: LayerAdaptation,
}

impl Lamb {
    pub(crate) fn new(cfg: &LambConfig) -> Result<Self> {
        let (decay, adaptation) = layerwise_selections(
            "optimizer.lamb",
            cfg.weight_decay_rate,
            &cfg.exclude_from_weight_decay,
            &cfg.exclude_from_layer_adaptation,
        )?;
        Ok(Lamb {
            beta_1: cfg.beta_1,
            beta_2: cfg.beta_2,
            epsilon: cfg.epsilon,
            decay,
            adaptation,
        })
    }
}

impl UpdateRule for Lamb {
    fn slots(&self) -> Vec<SlotSpec> {
        vec![SlotSpec::zeros("m"), SlotSpec::zeros("v")]
    }

    fn elementwise(&self) -> bool {
        false
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
        let (b1, b2, eps) = (self.beta_1 as f32, self.beta_2 as f32, self.epsilon as f32);
        let m_scale = (1.0 / (1.0 - self.beta_1.powf(step.t))) as f32;
        let v_scale = (1.0 / (1.0 - self.beta_2.powf(step.t))) as f32;
        let rate = self.decay.rate_for(name) as f32;
        let (m, v) = slots.split_at_mut(1);
        let (m, v) = (&mut m[0], &mut v[0]);
        for ((m, v), g) in m.iter_mut().zip(v.iter_mut()).zip(g.iter()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
        }
        let direction =
            |w: f32, m: f32, v: f32| m * m_scale / ((v * v_scale).sqrt() + eps) + rate * w;
        let ratio = if self.adaptation.applies_to(name) {
            let u = w
                .iter()
                .zip(m.iter().zip(v.iter()))
                .map(|(&w, (&m, &v))| direction(w, m, v));
            trust_ratio(l2_norm(w), l2_norm_of(u), 1.0)
        } else {
            1.0
        };
        let scale = (ratio * step.lr) as f32;
        for (w, (&m, &v)) in w.iter_mut().zip(m.iter().zip(v.iter())) {
            *w -= scale * direction(*w, m, v);
        }
    }
}
