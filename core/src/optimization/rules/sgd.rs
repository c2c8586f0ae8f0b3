//! Keras SGD with optional (Nesterov) momentum.

use candle_core::Tensor;

use crate::config::optimization::SgdConfig;
use crate::error::Result;
use crate::optimization::rule::{StepInfo, UpdateRule};
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

    fn update(
        &self,
        _: &str,
        w: &Tensor,
        g: &Tensor,
        slots: &mut [Tensor],
        step: StepInfo,
    ) -> Result<Tensor> {
        let lr_g = g.affine(step.lr, 0.0)?;
        if self.momentum <= 0.0 {
            return Ok((w - lr_g)?);
        }
        let v = (slots[0].affine(self.momentum, 0.0)? - &lr_g)?;
        let new_w = if self.nesterov {
            ((w + v.affine(self.momentum, 0.0)?)? - lr_g)?
        } else {
            (w + &v)?
        };
        slots[0] = v;
        Ok(new_w)
    }
}
