//! Gradient clipping by global norm (TensorFlow's `tf.clip_by_global_norm`).

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rayon::prelude::*;

use super::optimizer::NamedVar;
use super::rule::l2_norm;
use crate::error::Result;
use grove_kernels::tensor_slices::read_f32;

/// The global L2 norm `sqrt(sum over vars of sum(g^2))` of the gradients of `params`
/// (vars without a gradient are skipped; no gradient at all gives 0), accumulated in f64 over
/// the gradients' elements without intermediate tensors, the variables side by side.
pub fn global_norm(grads: &GradStore, params: &[NamedVar]) -> Result<f64> {
    let gradients: Vec<&Tensor> = params
        .iter()
        .filter_map(|p| grads.get(p.var.as_tensor()))
        .collect();
    let squares = gradients
        .into_par_iter()
        .map(|g| read_f32(g, |values| l2_norm(values).powi(2)))
        .collect::<candle_core::Result<Vec<f64>>>()?;
    Ok(squares.iter().sum::<f64>().sqrt())
}

/// The factor the gradients are multiplied by: `clip_norm / max(norm, clip_norm)`, i.e. 1
/// when `norm <= clip_norm`. `clip_norm <= 0` disables clipping (1). A non-finite `norm`
/// gives NaN, as in TensorFlow, so the update shows the blow-up instead of hiding it.
pub fn clip_scale(norm: f64, clip_norm: f64) -> f64 {
    if clip_norm <= 0.0 {
        1.0
    } else if !norm.is_finite() {
        f64::NAN
    } else {
        clip_norm / norm.max(clip_norm)
    }
}

/// Scales the gradients of `params` in place so that their global norm is at most
/// `clip_norm` (`clip_norm <= 0` leaves them unchanged). Returns the norm before clipping.
pub fn clip_by_global_norm(
    grads: &mut GradStore,
    params: &[NamedVar],
    clip_norm: f64,
) -> Result<f64> {
    let norm = global_norm(grads, params)?;
    let scale = clip_scale(norm, clip_norm);
    if scale != 1.0 {
        for param in params {
            let var = param.var.as_tensor();
            if let Some(g) = grads.remove(var) {
                grads.insert(var, g.affine(scale, 0.0)?);
            }
        }
    }
    Ok(norm)
}
