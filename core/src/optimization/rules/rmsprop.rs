//! Keras RMSprop (legacy `tf.keras.optimizers.RMSprop`), optionally centered and with
//! momentum.

use crate::config::optimization::RmspropConfig;
use crate::optimization::rule::{Gradient, StepInfo, UpdateRule};
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
        w: &mut [f32],
        g: &Gradient,
        slots: &mut [&mut [f32]],
        step: StepInfo,
    ) {
        let (rho, lr, eps) = (self.rho as f32, step.lr as f32, self.epsilon as f32);
        let mu = self.momentum as f32;
        let (rms, rest) = slots.split_at_mut(1);
        let (momentum, mg) = rest.split_at_mut(usize::from(self.momentum > 0.0));
        let mut momentum = momentum.first_mut().map(|s| s.iter_mut());
        let mut mg = mg.first_mut().map(|s| s.iter_mut());
        for ((w, g), rms) in w.iter_mut().zip(g.iter()).zip(rms[0].iter_mut()) {
            *rms = rho * *rms + (1.0 - rho) * g * g;
            let denominator = match mg.as_mut().and_then(|it| it.next()) {
                Some(mg) => {
                    *mg = rho * *mg + (1.0 - rho) * g;
                    *rms - *mg * *mg
                }
                None => *rms,
            };
            match momentum.as_mut().and_then(|it| it.next()) {
                Some(mom) => {
                    *mom = mu * *mom + lr * g / (denominator + eps).sqrt();
                    *w -= *mom;
                }
                None => *w -= lr * g / (denominator.sqrt() + eps),
            }
        }
    }
}
