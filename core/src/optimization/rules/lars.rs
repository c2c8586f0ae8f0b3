//! LARS (Model Garden's `LARS`): momentum SGD whose learning rate is scaled per variable by
//! a trust ratio `eeta·‖w‖/‖·‖`.

use candle_core::Tensor;

use super::selection::{layerwise_selections, LayerAdaptation};
use super::{trust_ratio, WeightDecaySelection};
use crate::config::optimization::LarsConfig;
use crate::error::Result;
use crate::optimization::rule::{StepInfo, UpdateRule};
use crate::optimization::slots::SlotSpec;

/// With `g' = g + rate·w` (decay for the selected vars) and slot `momentum` `v`:
/// - classic momentum: `r = eeta·‖w‖/‖g'‖`, `v = m·v + r·lr·g'`, `w −= v` (Nesterov:
///   `w −= m·v + r·lr·g'`);
/// - otherwise: `v = m·v + g'`, `u = v` (Nesterov: `m·v + g'`), `r = eeta·‖w‖/‖u‖`,
///   `w −= r·lr·u`.
///
/// `r` is 1 when a norm is 0 or the var is excluded from layer adaptation.
pub(crate) struct Lars {
    momentum: f64,
    eeta: f64,
    nesterov: bool,
    classic_momentum: bool,
    decay: WeightDecaySelection,
    adaptation: LayerAdaptation,
}

impl Lars {
    pub(crate) fn new(cfg: &LarsConfig) -> Result<Self> {
        let (decay, adaptation) = layerwise_selections(
            "optimizer.lars",
            cfg.weight_decay_rate,
            &cfg.exclude_from_weight_decay,
            &cfg.exclude_from_layer_adaptation,
        )?;
        Ok(Lars {
            momentum: cfg.momentum,
            eeta: cfg.eeta,
            nesterov: cfg.nesterov,
            classic_momentum: cfg.classic_momentum,
            decay,
            adaptation,
        })
    }

    fn ratio(&self, name: &str, w: &Tensor, direction: &Tensor) -> Result<f64> {
        if self.adaptation.applies_to(name) {
            trust_ratio(w, direction, self.eeta)
        } else {
            Ok(1.0)
        }
    }
}

impl UpdateRule for Lars {
    fn slots(&self) -> Vec<SlotSpec> {
        vec![SlotSpec::zeros("momentum")]
    }

    fn update(
        &self,
        name: &str,
        w: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        step: StepInfo,
    ) -> Result<Tensor> {
        let rate = self.decay.rate_for(name);
        let g = if rate > 0.0 {
            (g + w.affine(rate, 0.0)?)?
        } else {
            g.clone()
        };
        let m = self.momentum;
        if self.classic_momentum {
            let scaled = g.affine(self.ratio(name, w, &g)? * step.lr, 0.0)?;
            let v = (slots[0].affine(m, 0.0)? + &scaled)?;
            let update = if self.nesterov {
                (v.affine(m, 0.0)? + scaled)?
            } else {
                v.clone()
            };
            slots[0] = v;
            Ok((w - update)?)
        } else {
            let v = (slots[0].affine(m, 0.0)? + &g)?;
            let update = if self.nesterov {
                (v.affine(m, 0.0)? + g)?
            } else {
                v.clone()
            };
            slots[0] = v;
            let ratio = self.ratio(name, w, &update)?;
            Ok((w - update.affine(ratio * step.lr, 0.0)?)?)
        }
    }
}
