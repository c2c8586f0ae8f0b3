//! Keras SGD with optional (Nesterov) momentum.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::optimizer::{f32_value_and_grad, write, NamedVar, Optimizer};
use super::slots::Slots;
use crate::config::optimization::SgdConfig;
use crate::error::Result;

/// Keras SGD. With momentum `m > 0` each var keeps a `momentum` slot `v`:
/// `v = m·v − lr·g; w += v` (Nesterov: `w += m·v − lr·g` with the new `v`).
/// With `m == 0`: `w −= lr·g` and no state.
#[derive(Debug, Clone)]
pub struct Sgd {
    momentum: f64,
    nesterov: bool,
    iterations: u64,
    slots: Slots,
}

const MOMENTUM_SLOTS: &[&str] = &["momentum"];

impl Sgd {
    /// SGD with the settings of `cfg` (assumed valid: momentum >= 0).
    pub fn new(cfg: &SgdConfig) -> Self {
        let names = if cfg.momentum > 0.0 {
            MOMENTUM_SLOTS
        } else {
            &[]
        };
        Sgd {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
            iterations: 0,
            slots: Slots::new(names),
        }
    }

    fn update(&mut self, param: &NamedVar, w: &Tensor, g: &Tensor, lr: f64) -> Result<Tensor> {
        let step = g.affine(lr, 0.0)?;
        if self.momentum <= 0.0 {
            return Ok((w - step)?);
        }
        let slots = self.slots.get_or_zeros(param)?;
        let v = (slots[0].affine(self.momentum, 0.0)? - &step)?;
        let new_w = if self.nesterov {
            ((w + v.affine(self.momentum, 0.0)?)? - step)?
        } else {
            (w + &v)?
        };
        slots[0] = v;
        Ok(new_w)
    }
}

impl Optimizer for Sgd {
    fn apply(&mut self, params: &[NamedVar], grads: &GradStore, lr: f64) -> Result<()> {
        for param in params {
            if let Some((w, g)) = f32_value_and_grad(param, grads)? {
                let new_w = self.update(param, &w, &g, lr)?;
                write(param, &new_w)?;
            }
        }
        self.iterations += 1;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.slots.state()
    }

    fn load_state(
        &mut self,
        params: &[NamedVar],
        state: HashMap<String, Tensor>,
        iterations: u64,
    ) -> Result<()> {
        self.slots.load(params, state)?;
        self.iterations = iterations;
        Ok(())
    }
}
