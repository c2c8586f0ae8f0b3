//! Keras SGD with optional (Nesterov) momentum.

use crate::config::optimization::SgdConfig;
use crate::optimization::rule::{Gradient, StepInfo, UpdateRule};
use crate::optimization::slots::SlotSpec;

/// Keras SGD. With momentum `m > 0` each var keeps a `momentum` slot `v`:
/// `v = m·v − lr·g; w += v` (Nesterov: `w += m·v − lr·g` with the new `v`).
/// With `m == 0`: `w −= lr·g` and no state.
pub(crate) struct Sgd {
    momentum: f64,
    nesterov: bool,
}

impl Sgd {
    pub(crate) fn new(cfg: &SgdConfig) -> Self {
        Sgd {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
        }
    }
}

impl UpdateRule for Sgd {
    fn slots(&self) -> Vec<SlotSpec> {
        if self.momentum > 0.0 {
            vec![SlotSpec::zeros("momentum")]
        } else {
            Vec::new()
        }
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
        let lr = step.lr as f32;
        let Some(velocity) = slots.first_mut() else {
            for (w, g) in w.iter_mut().zip(g.iter()) {
                *w -= lr * g;
            }
            return;
        };
        let m = self.momentum as f32;
        for ((w, g), v) in w.iter_mut().zip(g.iter()).zip(velocity.iter_mut()) {
            *v = m * *v - lr * g;
            *w += if self.nesterov { m * *v - lr * g } else { *v };
        }
    }
}
