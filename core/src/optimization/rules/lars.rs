//! LARS (Model Garden's `LARS`): momentum SGD whose learning rate is scaled per variable by
//! a trust ratio `eeta·‖w‖/‖·‖`.

use super::selection::{layerwise_selections, LayerAdaptation};
use super::{trust_ratio, WeightDecaySelection};
use crate::config::optimization::LarsConfig;
use crate::error::Result;
use crate::optimization::rule::{l2_norm, l2_norm_of, Gradient, StepInfo, UpdateRule};
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

    /// The trust ratio of `name` from the norms of its weights and of its update direction
    /// (computed only when layer adaptation applies).
    fn ratio(&self, name: &str, w: &[f32], direction_norm: impl FnOnce() -> f64) -> f64 {
        if self.adaptation.applies_to(name) {
            trust_ratio(l2_norm(w), direction_norm(), self.eeta)
        } else {
            1.0
        }
    }
}

impl UpdateRule for Lars {
    fn slots(&self) -> Vec<SlotSpec> {
        vec![SlotSpec::zeros("momentum")]
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
        let rate = self.decay.rate_for(name) as f32;
        let (m, nesterov) = (self.momentum as f32, self.nesterov);
        let velocity = &mut slots[0];
        if self.classic_momentum {
            let decayed = g.iter().zip(w.iter()).map(|(g, &w)| g + rate * w);
            let ratio = self.ratio(name, w, || l2_norm_of(decayed));
            let scale = (ratio * step.lr) as f32;
            for ((w, v), g) in w.iter_mut().zip(velocity.iter_mut()).zip(g.iter()) {
                let scaled = scale * (g + rate * *w);
                *v = m * *v + scaled;
                *w -= if nesterov { m * *v + scaled } else { *v };
            }
        } else {
            // The direction u = v (Nesterov: m·v + g'), from the updated v and g' = g + rate·w
            // (w is unchanged until the last loop).
            let direction =
                |v: f32, g: f32, w: f32| if nesterov { m * v + g + rate * w } else { v };
            for ((v, g), &w) in velocity.iter_mut().zip(g.iter()).zip(w.iter()) {
                *v = m * *v + g + rate * w;
            }
            let ratio = self.ratio(name, w, || {
                let u = velocity.iter().zip(g.iter()).zip(w.iter());
                l2_norm_of(u.map(|((&v, g), &w)| direction(v, g, w)))
            });
            let scale = (ratio * step.lr) as f32;
            for ((w, &v), g) in w.iter_mut().zip(velocity.iter()).zip(g.iter()) {
                *w -= scale * direction(v, g, *w);
            }
        }
    }
}
