//! The machinery every optimizer shares: a per-variable [`UpdateRule`] plus iterations,
//! named slots and Keras' gradient clipping, wrapped as an [`Optimizer`] by
//! [`RuleOptimizer`].

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rayon::prelude::*;

use super::clipping::{clip_scale, global_norm};
use super::optimizer::{NamedVar, Optimizer, StateView};
use super::slots::{SlotSpec, Slots};
use crate::config::optimization::GradientClipping;
use crate::error::Result;
use grove_kernels::tensor_slices::{read_f32, update_f32};
use grove_kernels::vectorized;

/// What every variable's update in one optimizer step shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepInfo {
    /// The learning rate of this step.
    pub lr: f64,
    /// The 1-based number of this update (`iterations + 1`), for bias corrections.
    pub t: f64,
}

/// A variable's gradient as an update rule reads it: the raw values times the clip factor
/// (global-norm clips, then `clipnorm`), then limited to `±clipvalue`, in Keras' order. The
/// clipping happens as the rule reads, so no clipped copy is made.
pub(crate) struct Gradient<'a> {
    values: &'a [f32],
    factor: f32,
    limit: f32,
}

impl<'a> Gradient<'a> {
    /// `values` scaled by `global_scale` and clipped as `clipping` says.
    fn new(values: &'a [f32], global_scale: f64, clipping: &GradientClipping) -> Self {
        let mut factor = global_scale;
        if let Some(limit) = clipping.clipnorm {
            factor *= clip_scale(global_scale * l2_norm(values), limit);
        }
        Gradient {
            values,
            factor: factor as f32,
            limit: clipping.clipvalue.map_or(f32::INFINITY, |v| v as f32),
        }
    }

    /// Elements `start .. start + len` of the gradient, clipped the same way.
    fn chunk(&self, start: usize, len: usize) -> Gradient<'a> {
        Gradient {
            values: &self.values[start..start + len],
            ..*self
        }
    }

    /// The clipped gradient, element by element.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        let (factor, limit) = (self.factor, self.limit);
        self.values
            .iter()
            .map(move |g| (g * factor).clamp(-limit, limit))
    }
}

/// The L2 norm of `values`, accumulated in f64: chunks side by side, each with eight partial
/// sums so the loop vectorises, the chunk sums added in order (the same bits every run).
pub(crate) fn l2_norm(values: &[f32]) -> f64 {
    let partials: Vec<f64> = values.par_chunks(CHUNK).map(sum_of_squares).collect();
    partials.iter().sum::<f64>().sqrt()
}

fn sum_of_squares(values: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(x) * f64::from(x);
        }
    }
    let tail: f64 = rest.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    lanes.iter().sum::<f64>() + tail
}

/// The L2 norm of the elements `values` yields, accumulated in f64.
pub(crate) fn l2_norm_of(values: impl Iterator<Item = f32>) -> f64 {
    values
        .map(|x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// One optimizer's update of one variable, as one pass (two for the layer-wise rules) over
/// plain f32 slices: the variable `w`, its clipped gradient `g` and its slots, all of the
/// variable's length, updated in place.
pub(crate) trait UpdateRule: Send + Sync {
    /// The slots every variable keeps, in the order `update` receives them.
    fn slots(&self) -> Vec<SlotSpec>;

    /// Whether each element's update depends on that element alone, so a variable can be
    /// updated in chunks side by side (not so for LAMB and LARS, which use norms).
    fn elementwise(&self) -> bool {
        true
    }

    /// A global-norm clip applied before Keras' clipping keys (Model Garden's AdamW
    /// `gradient_clip_norm`); 0 means none.
    fn own_global_clip_norm(&self) -> f64 {
        0.0
    }

    /// Updates the variable `name` and its `slots` in place from its gradient `g`.
    fn update(
        &self,
        name: &str,
        w: &mut [f32],
        g: &Gradient,
        slots: &mut [&mut [f32]],
        step: StepInfo,
    );
}

/// Elements per parallel chunk of an element-wise update.
const CHUNK: usize = 64 * 1024;

/// Runs `rule` on one variable; an element-wise rule runs on chunks side by side.
fn update_chunks<R: UpdateRule>(
    rule: &R,
    name: &str,
    w: &mut [f32],
    g: &Gradient,
    slots: &mut [Vec<f32>],
    step: StepInfo,
) {
    if !rule.elementwise() || w.len() <= CHUNK {
        let mut slots: Vec<&mut [f32]> = slots.iter_mut().map(|s| s.as_mut_slice()).collect();
        vectorized!(rule.update(name, w, g, &mut slots, step));
        return;
    }
    // slot_chunks[i] holds chunk i of every slot, for chunk i of the variable.
    let mut slot_chunks: Vec<Vec<&mut [f32]>> = (0..w.len().div_ceil(CHUNK))
        .map(|_| Vec::with_capacity(slots.len()))
        .collect();
    for slot in slots.iter_mut() {
        for (chunks, chunk) in slot_chunks.iter_mut().zip(slot.chunks_mut(CHUNK)) {
            chunks.push(chunk);
        }
    }
    w.par_chunks_mut(CHUNK)
        .zip(slot_chunks)
        .enumerate()
        .for_each(|(i, (w, mut slots))| {
            let g = g.chunk(i * CHUNK, w.len());
            vectorized!(rule.update(name, w, &g, &mut slots, step));
        });
}

/// An [`Optimizer`] applying `R` to every variable with a gradient, after clipping.
pub(crate) struct RuleOptimizer<R> {
    rule: R,
    clipping: GradientClipping,
    iterations: u64,
    slots: Slots,
}

impl<R: UpdateRule> RuleOptimizer<R> {
    /// `rule` with Keras' `clipping`.
    pub(crate) fn new(rule: R, clipping: GradientClipping) -> Self {
        let slots = Slots::new(rule.slots());
        RuleOptimizer {
            rule,
            clipping,
            iterations: 0,
            slots,
        }
    }

    /// The factor every gradient is multiplied by for the global-norm clips (1: none).
    fn global_scale(&self, params: &[NamedVar], grads: &GradStore) -> Result<f64> {
        let own = self.rule.own_global_clip_norm();
        let keras = self.clipping.global_clipnorm.unwrap_or(0.0);
        if own <= 0.0 && keras <= 0.0 {
            return Ok(1.0);
        }
        let norm = global_norm(grads, params)?;
        let first = clip_scale(norm, own);
        Ok(first * clip_scale(norm * first, keras))
    }
}

impl<R: UpdateRule> Optimizer for RuleOptimizer<R> {
    fn apply(&mut self, params: &[NamedVar], grads: &GradStore, lr: f64) -> Result<()> {
        let scale = self.global_scale(params, grads)?;
        let step = StepInfo {
            lr,
            t: (self.iterations + 1) as f64,
        };
        let RuleOptimizer {
            rule,
            clipping,
            slots,
            ..
        } = self;
        let (params, gradients): (Vec<&NamedVar>, Vec<&Tensor>) = params
            .iter()
            .filter_map(|p| grads.get(p.var.as_tensor()).map(|g| (p, g)))
            .unzip();
        let slots = slots.get_many_or_init(&params)?;
        // Variables are independent: update them side by side on the compute threads.
        let rule = &*rule;
        let clipping = &*clipping;
        params
            .into_par_iter()
            .zip(gradients)
            .zip(slots)
            .try_for_each(|((param, g), slots)| -> Result<()> {
                read_f32(g, |g| {
                    let g = Gradient::new(g, scale, clipping);
                    update_f32(&param.var, |w| {
                        update_chunks(rule, &param.name, w, &g, slots, step)
                    })
                })??;
                Ok(())
            })?;
        self.iterations += 1;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn state_views(&self) -> Vec<StateView<'_>> {
        self.slots.views()
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
