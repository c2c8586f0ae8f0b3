//! Keras Adagrad.

use candle_core::Tensor;

use crate::config::optimization::AdagradConfig;
use crate::error::Result;
use crate::optimization::rule::{StepInfo, UpdateRule};
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

    fn update(
        &self,
        _: &str,
        w: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        step: StepInfo,
    ) -> Result<Tensor> {
        let accumulator = (&slots[0] + g.sqr()?)?;
        slots[0] = accumulator.clone();
        let step = (g.affine(step.lr, 0.0)? / accumulator.sqrt()?.affine(1.0, self.epsilon)?)?;
        Ok((w - step)?)
    }
}
