//! Keras Adagrad.

use crate::config::optimization::AdagradConfig;
use crate::optimization::rule::{Gradient, StepInfo, UpdateRule};
use crate::optimization::slots::SlotSpec;

/// `acc += g²` (starting at `initial_accumulator_value`), `w −= lr·g/(sqrt(acc) + ε)`.
/// Slot `accumulator`.
pub(crate) struct Adagrad {
    initial_accumulator_value: f64,
    epsilon: f64,
}

impl Adagrad {
    pub(crate) fn new(cfg: &AdagradConfig) -> Self {
        Adagrad {
            initial_accumulator_value: cfg.initial_accumulator_value,
            epsilon: cfg.epsilon,
        }
    }
}

impl UpdateRule for Adagrad {
    fn slots(&self) -> Vec<SlotSpec> {
        vec![SlotSpec {
            name: "accumulator",
            initial_value: self.initial_accumulator_value,
        }]
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
        let (lr, eps) = (step.lr as f32, self.epsilon as f32);
        for ((w, g), acc) in w.iter_mut().zip(g.iter()).zip(slots[0].iter_mut()) {
            *acc += g * g;
            *w -= lr * g / (acc.sqrt() + eps);
        }
    }
}
