//! Gradient clipping by global norm (TensorFlow's `tf.clip_by_global_norm`).

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use super::optimizer::NamedVar;
use crate::error::Result;

/// The global L2 norm `sqrt(sum over vars of sum(g^2))` of the gradients of `params`
/// (vars without a gradient are skipped; no gradient at all gives 0). Reads one value back
/// from the device.
pub fn global_norm(grads: &GradStore, params: &[NamedVar]) -> Result<f64> {
    let mut partials = Vec::with_capacity(params.len());
    for param in params {
        if let Some(g) = grads.get(param.var.as_tensor()) {
            let sum = g.to_dtype(DType::F32)?.sqr()?.sum_all()?;
            partials.push(sum.to_dtype(DType::F64)?);
        }
    }
    if partials.is_empty() {
        return Ok(0.0);
    }
    let total = Tensor::stack(&partials, 0)?.sum_all()?.to_scalar::<f64>()?;
    Ok(total.sqrt())
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
