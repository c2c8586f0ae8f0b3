//! Parameter gradients that the fused ops write beside candle's graph during a training step.
//!
//! A fused op whose layers travel as one packed matrix (see [`super::packed_layer`]) gets that
//! matrix from candle's `cat` of its weights and biases. candle's backward then passes the
//! packed gradient back through the `cat`: for every parameter element a zero tensor and an
//! add for the packed matrix, another for each layer's block of it, and a third, read through
//! a strided view, for the parameter itself, all on the calling thread. Inside a
//! [`DirectGradients`] scope the fused ops take their parameters outside the graph instead
//! (detached), and their backward cuts each parameter's gradient out of the packed gradient
//! and leaves it here; [`DirectGradients::backward`] runs candle's backward and adds these
//! gradients to its [`GradStore`]. The gradients are the same values either way.
//!
//! Only variables are taken out of the graph: a parameter computed from other tensors keeps
//! its place in it, so its gradient still flows back to where it came from.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

/// The parameter gradients the fused ops of one scope left, by parameter.
#[derive(Default)]
pub(super) struct Sink(Mutex<Vec<(Tensor, Tensor)>>);

impl Sink {
    /// Leaves `grad` for the variable `param`.
    pub(super) fn deposit(&self, param: &Tensor, grad: Tensor) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((param.clone(), grad));
    }

    /// Adds every gradient left here to `grads`.
    fn add_to(&self, grads: &mut GradStore) -> Result<()> {
        let deposits = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (param, grad) in deposits {
            let sum = match grads.get(&param) {
                Some(existing) => (existing + grad)?,
                None => grad,
            };
            grads.insert(&param, sum);
        }
        Ok(())
    }
}

thread_local! {
    /// The sink of the scope open on this thread, if any.
    static ACTIVE: RefCell<Option<Arc<Sink>>> = const { RefCell::new(None) };
}

/// The sink the fused ops built now on this thread leave their parameter gradients in, when a
/// [`DirectGradients`] scope is open.
pub(super) fn active_sink() -> Option<Arc<Sink>> {
    ACTIVE.with(|active| active.borrow().clone())
}

/// A training step's scope in which the fused ops' parameter gradients bypass candle's graph
/// (see the module docs): open it before the forward pass, then call
/// [`DirectGradients::backward`] on the loss instead of `Tensor::backward`. A loss
/// differentiated with `Tensor::backward` instead gets no gradient from the fused ops for the
/// parameters they took out of the graph (the ops leave them in the scope, and every backward
/// over the scope's ops adds to what [`DirectGradients::backward`] returns).
pub struct DirectGradients {
    sink: Arc<Sink>,
    /// The scope this one replaced on this thread, put back when it ends.
    outer: Option<Arc<Sink>>,
}

impl DirectGradients {
    /// Opens the scope on this thread: fused ops built from now on take their parameters
    /// outside candle's graph.
    pub fn start() -> Self {
        let sink = Arc::new(Sink::default());
        let outer = ACTIVE.with(|active| active.replace(Some(Arc::clone(&sink))));
        Self { sink, outer }
    }

    /// The gradients of `loss` with respect to every variable it depends on: candle's
    /// backward, plus the parameter gradients the scope's fused ops computed. Ends the scope.
    pub fn backward(self, loss: &Tensor) -> Result<GradStore> {
        let mut grads = loss.backward()?;
        self.sink.add_to(&mut grads)?;
        Ok(grads)
    }
}

impl Drop for DirectGradients {
    fn drop(&mut self) {
        let outer = self.outer.take();
        ACTIVE.with(|active| *active.borrow_mut() = outer);
    }
}
