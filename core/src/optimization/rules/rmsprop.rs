//! Keras RMSprop (legacy `tf.keras.optimizers.RMSprop`), optionally centered and with
//! momentum.

use candle_core::Tensor;

use crate::config::optimization::RmspropConfig;
use crate::error::Result;
use crate::optimization::rule::{StepInfo, UpdateRule};
use crate::optimization::slots::SlotSpec;

/// `rms = ρ·rms + (1−ρ)·g²`; centered: `mg = ρ·mg + (1−ρ)·g` and the denominator uses
/// `rms − mg²`. With momentum `μ > 0`: `mom = μ·mom + lr·g/sqrt(den + ε)`, `w −= mom`;
/// without: `w −= lr·g/(sqrt(den) + ε)` (Keras places ε differently in the two cases).
/// Slots `rms`, then `momentum` and `mg` when used.
pub(crate) struct Rmsprop {
    rho: f64,
    momentum: f64,
    epsilon: f64,
    centered: bool,
}

impl Rmsprop {
    pub(crate) fn new(cfg: &RmspropConfig) -> Self {
        Rmsprop {
            rho: cfg.rho,
            momentum: cfg.momentum,
            epsilon: cfg.epsilon,
            centered: cfg.centered,
        }
    }
}

impl UpdateRule for Rmsprop {
    fn slots(&self) -> Vec<SlotSpec> {
        let mut slots = vec![SlotSpec::zeros("rms")];
        if self.momentum > 0.0 {
            slots.push(SlotSpec::zeros("momentum"));
        }
        if self.centered {
            slots.push(SlotSpec::zeros("mg"));
        }
        slots
    }

    fn update(
        &self,
        _: &str,
        w: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        step: StepInfo,
    ) -> Result<Tensor> {
        let rho = self.rho;
        let rms = (slots[0].affine(rho, 0.0)? + g.sqr()?.affine(1.0 - rho, 0.0)?)?;
        slots[0] = rms.clone();
        let denominator = if self.centered {
            let last = slots.len() - 1;
            let mg = (slots[last].affine(rho, 0.0)? + g.affine(1.0 - rho, 0.0)?)?;
            slots[last] = mg.clone();
            (rms - mg.sqr()?)?
        } else {
            rms
        };
        let lr_g = g.affine(step.lr, 0.0)?;
        if self.momentum > 0.0 {
            let scaled = (lr_g / denominator.affine(1.0, self.epsilon)?.sqrt()?)?;
            let mom = (slots[1].affine(self.momentum, 0.0)? + scaled)?;
            slots[1] = mom.clone();
            Ok((w - mom)?)
        } else {
            Ok((w - (lr_g / denominator.sqrt()?.affine(1.0, self.epsilon)?)?)?)
        }
    }
}
