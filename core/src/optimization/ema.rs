//! Model Garden's `ExponentialMovingAverage` optimizer wrapper: a moving average of every
//! variable, updated after each step of the wrapped optimizer, for evaluation and export.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::optimizer::{NamedVar, Optimizer, StateView};
use super::slots::{SlotSpec, Slots};
use crate::config::optimization::EmaConfig;
use crate::error::Result;
use grove_kernels::tensor_slices::{read_f32, update_f32};

/// The slot name of a variable's average (`<var name>/average` in checkpoints).
pub const AVERAGE_SLOT: &str = "average";

/// Wraps an optimizer and keeps an average of every variable. After each update, with `s`
/// the wrapped optimizer's iteration count: `decay = 0` if `s < start_step`; otherwise
/// `min(average_decay, (1 + n) / (10 + n))` with `n = s − start_step` when `dynamic_decay`,
/// else `average_decay`; `average −= (1 − decay)·(average − w)`. Averages start at zero, as
/// in Model Garden.
pub struct MovingAverage {
    inner: Box<dyn Optimizer>,
    config: EmaConfig,
    averages: Slots,
}

impl MovingAverage {
    /// Averages the variables `inner` updates, as `config` says.
    pub fn new(inner: Box<dyn Optimizer>, config: EmaConfig) -> Self {
        MovingAverage {
            inner,
            config,
            averages: Slots::new(vec![SlotSpec::zeros(AVERAGE_SLOT)]),
        }
    }

    /// The decay applied after the update that made the iteration count `step`.
    pub fn decay(&self, step: u64) -> f64 {
        let cfg = &self.config;
        if step < cfg.start_step {
            return 0.0;
        }
        if cfg.dynamic_decay {
            let n = (step - cfg.start_step) as f64;
            cfg.average_decay.min((1.0 + n) / (10.0 + n))
        } else {
            cfg.average_decay
        }
    }
}

impl Optimizer for MovingAverage {
    fn apply(&mut self, params: &[NamedVar], grads: &GradStore, lr: f64) -> Result<()> {
        self.inner.apply(params, grads, lr)?;
        let keep = self.decay(self.inner.iterations()) as f32;
        for param in params {
            let average = &mut self.averages.get_or_init(param)[0];
            read_f32(param.var.as_tensor(), |w| {
                for (a, &w) in average.iter_mut().zip(w) {
                    *a = keep * *a + (1.0 - keep) * w;
                }
            })?;
        }
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.inner.iterations()
    }

    fn state_views(&self) -> Vec<StateView<'_>> {
        let mut state = self.inner.state_views();
        state.extend(self.averages.views());
        state.sort_by(|a, b| a.name.cmp(&b.name));
        state
    }

    fn load_state(
        &mut self,
        params: &[NamedVar],
        state: HashMap<String, Tensor>,
        iterations: u64,
    ) -> Result<()> {
        let suffix = format!("/{AVERAGE_SLOT}");
        let (averages, inner): (HashMap<_, _>, HashMap<_, _>) = state
            .into_iter()
            .partition(|(name, _)| name.ends_with(&suffix));
        let mut loaded = self.averages.clone();
        loaded.load(params, averages)?;
        self.inner.load_state(params, inner, iterations)?;
        self.averages = loaded;
        Ok(())
    }

    fn swap_average_weights(&mut self, params: &[NamedVar]) -> Result<bool> {
        for param in params {
            if let Some(slots) = self.averages.get_mut(&param.name) {
                update_f32(&param.var, |w| w.swap_with_slice(&mut slots[0]))?;
            }
        }
        Ok(true)
    }

    fn average_weights(&self) -> Vec<(String, Tensor)> {
        let suffix = format!("/{AVERAGE_SLOT}");
        self.averages
            .views()
            .into_iter()
            .filter_map(|view| {
                Some((
                    view.name.strip_suffix(&suffix)?.to_string(),
                    view.to_tensor(),
                ))
            })
            .collect()
    }
}
