//! The update rules of Grove's optimizers (Keras / Model Garden semantics), one per file,
//! and the pieces several share.

pub(crate) mod adagrad;
pub(crate) mod adam;
pub(crate) mod lamb;
pub(crate) mod lars;
pub(crate) mod rmsprop;
mod selection;
pub(crate) mod sgd;

pub use selection::WeightDecaySelection;

use candle_core::{DType, Tensor};

use crate::error::Result;

/// The L2 norm of `t`, read back to the host.
fn l2_norm(t: &Tensor) -> Result<f64> {
    let sum = t
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(sum.sqrt())
}

/// A layer-wise trust ratio: `coefficient * ‖w‖ / ‖u‖`, or 1 when either norm is 0.
fn trust_ratio(w: &Tensor, u: &Tensor, coefficient: f64) -> Result<f64> {
    let (w_norm, u_norm) = (l2_norm(w)?, l2_norm(u)?);
    Ok(if w_norm > 0.0 && u_norm > 0.0 {
        coefficient * w_norm / u_norm
    } else {
        1.0
    })
}

/// Adam's moment updates in place: `m = b1·m + (1−b1)·g` in `slots[0]`, `v = b2·v + (1−b2)·g²`
/// in `slots[1]`; returns `(m, v)`.
fn update_moments(slots: &mut [Tensor], g: &Tensor, b1: f64, b2: f64) -> Result<(Tensor, Tensor)> {
    let m = (slots[0].affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
    let v = (slots[1].affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
    slots[0] = m.clone();
    slots[1] = v.clone();
    Ok((m, v))
}
