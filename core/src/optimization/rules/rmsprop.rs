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

    #[inline(always)]
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
        let average = |avg: &mut f32, x: f32| *avg = rho * *avg + (1.0 - rho) * x;
        // The denominator's second moment: centered (minus the squared mean gradient) or not.
        let second = |rms: &mut f32, mg: Option<&mut f32>, g: f32| {
            average(rms, g * g);
            match mg {
                Some(mg) => {
                    average(mg, g);
                    *rms - *mg * *mg
                }
                None => *rms,
            }
        };
        let plain = |w: &mut f32, g: f32, second: f32| *w -= lr * g / (second.sqrt() + eps);
        let with_momentum = |w: &mut f32, mom: &mut f32, g: f32, second: f32| {
            *mom = mu * *mom + lr * g / (second + eps).sqrt();
            *w -= *mom;
        };
        // One branch-free loop for each of the four forms, so that each vectorises.
        let elements = w.iter_mut().zip(g.iter()).zip(rms[0].iter_mut());
        match (momentum.first_mut(), mg.first_mut()) {
            (None, None) => elements.for_each(|((w, g), rms)| plain(w, g, second(rms, None, g))),
            (None, Some(mg)) => elements
                .zip(mg.iter_mut())
                .for_each(|(((w, g), rms), mg)| plain(w, g, second(rms, Some(mg), g))),
            (Some(mom), None) => elements
                .zip(mom.iter_mut())
                .for_each(|(((w, g), rms), mom)| with_momentum(w, mom, g, second(rms, None, g))),
            (Some(mom), Some(mg)) => elements.zip(mom.iter_mut().zip(mg.iter_mut())).for_each(
                |(((w, g), rms), (mom, mg))| with_momentum(w, mom, g, second(rms, Some(mg), g)),
            ),
        }
    }
}
