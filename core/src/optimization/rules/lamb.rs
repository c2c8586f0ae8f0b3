//! LAMB (Model Garden's `LAMB`): Adam's bias-corrected direction plus weight decay, scaled
//! per variable by a trust ratio.

use candle_core::Tensor;

use super::selection::{layerwise_selections, LayerAdaptation};
use super::{trust_ratio, update_moments, WeightDecaySelection};
use crate::config::optimization::LambConfig;
use crate::error::Result;
use crate::optimization::rule::{StepInfo, UpdateRule};
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

    fn update(
        &self,
        name: &str,
        w: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        step: StepInfo,
    ) -> Result<Tensor> {
        let (m, v) = update_moments(slots, g, self.beta_1, self.beta_2)?;
        let m_hat = m.affine(1.0 / (1.0 - self.beta_1.powf(step.t)), 0.0)?;
        let v_hat = v.affine(1.0 / (1.0 - self.beta_2.powf(step.t)), 0.0)?;
        let mut u = (m_hat / v_hat.sqrt()?.affine(1.0, self.epsilon)?)?;
        let rate = self.decay.rate_for(name);
        if rate > 0.0 {
            u = (u + w.affine(rate, 0.0)?)?;
        }
        let ratio = if self.adaptation.applies_to(name) {
            trust_ratio(w, &u, 1.0)?
        } else {
            1.0
        };
        Ok((w - u.affine(ratio * step.lr, 0.0)?)?)
    }
}
