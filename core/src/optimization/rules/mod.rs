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

/// A layer-wise trust ratio: `coefficient * w_norm / u_norm`, or 1 when either norm is 0.
fn trust_ratio(w_norm: f64, u_norm: f64, coefficient: f64) -> f64 {
    if w_norm > 0.0 && u_norm > 0.0 {
        coefficient * w_norm / u_norm
    } else {
        1.0
    }
}
