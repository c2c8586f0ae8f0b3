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
//! Each fused op decides per parameter input at build time with a [`Route`]. Only variables
//! are taken out of the graph: a parameter computed from other tensors keeps its place in it,
//! so its gradient still flows back to where it came from.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

use super::rows::{rows_per_task, written};
use crate::tensor_slices::{add_into, write_in_place};

/// The parameter gradients the fused ops of one scope left, one sum per parameter (in the
/// order the backward pass produced them).
#[derive(Default)]
pub(super) struct Sink(Mutex<Vec<(Tensor, Tensor)>>);

impl Sink {
    fn deposits(&self) -> MutexGuard<'_, Vec<(Tensor, Tensor)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `grad` to the gradient of the variable `param` (in place when there is one).
    fn deposit(&self, param: &Tensor, grad: Tensor) -> Result<()> {
        let mut deposits = self.deposits();
        match deposits.iter_mut().find(|(p, _)| p.id() == param.id()) {
            Some((_, sum)) => {
                if !add_into(sum, &grad).map_err(candle_core::Error::wrap)? {
                    *sum = (&*sum + grad)?;
                }
            }
            None => deposits.push((param.clone(), grad)),
        }
        Ok(())
    }

    /// Adds row `i` of `grad` `(N, H)` to row `ids[i]` of the gradient of the table `param`
    /// `(V, H)`, for every `i`: into the gradient already left for `param` when there is one
    /// (a tied decoder's), without the dense `(V, H)` table of the rows alone.
    fn deposit_rows(&self, param: &Tensor, ids: &[u32], grad: &[f32]) -> Result<()> {
        let (vocab, h) = param.dims2()?;
        {
            let deposits = self.deposits();
            if let Some((_, sum)) = deposits.iter().find(|(p, _)| p.id() == param.id()) {
                let added = write_in_place(sum, |table| scatter_rows(table, ids, grad, h))
                    .map_err(candle_core::Error::wrap)?;
                if added {
                    return Ok(());
                }
            }
        }
        let mut table = vec![0f32; vocab * h];
        scatter_rows(&mut table, ids, grad, h);
        self.deposit(param, Tensor::from_vec(table, (vocab, h), &Device::Cpu)?)
    }

    /// Adds every gradient left here to `grads` (in place where `grads` has one).
    fn add_to(&self, grads: &mut GradStore) -> Result<()> {
        let deposits = std::mem::take(&mut *self.deposits());
        for (param, grad) in deposits {
            let sum = match grads.remove(&param) {
                Some(existing)
                    if add_into(&existing, &grad).map_err(candle_core::Error::wrap)? =>
                {
                    existing
                }
                Some(existing) => (existing + grad)?,
                None => grad,
            };
            grads.insert(&param, sum);
        }
        Ok(())
    }
}

/// Adds row `i` of `rows` `(N, H)` to row `ids[i]` of `table` `(V, H)` for every `i`, with
/// the table split into row blocks, one per task, each task scanning the ids for its own rows:
/// no two tasks write the same row, and every row adds its contributions in id order.
pub(super) fn scatter_rows(table: &mut [f32], ids: &[u32], rows: &[f32], h: usize) {
    if h == 0 {
        return;
    }
    let block = rows_per_task(h);
    table
        .par_chunks_mut(block * h)
        .enumerate()
        .for_each(|(b, table_rows)| {
            let first = b * block;
            for (i, &id) in ids.iter().enumerate() {
                let Some(local) = (id as usize).checked_sub(first) else {
                    continue;
                };
                if local < table_rows.len() / h {
                    table_rows[local * h..(local + 1) * h]
                        .iter_mut()
                        .zip(&rows[i * h..(i + 1) * h])
                        .for_each(|(d, g)| *d += g);
                }
            }
        });
}

thread_local! {
    /// The sink of the scope open on this thread, if any.
    static ACTIVE: RefCell<Option<Arc<Sink>>> = const { RefCell::new(None) };
}

/// The sink the fused ops built now on this thread leave their parameter gradients in, when a
/// [`DirectGradients`] scope is open.
fn active_sink() -> Option<Arc<Sink>> {
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

/// Where a fused op sends the gradient of a packed input: back through candle's graph (its
/// `cat`s) to the parameters, or, inside a [`DirectGradients`]
/// scope, cut into each parameter's gradient and left in the scope's sink.
pub(super) enum Route {
    Graph,
    Direct {
        sink: Arc<Sink>,
        blocks: Vec<Block>,
    },
    /// An input that is one parameter as it is (an embedding table, a tied decoder).
    Whole {
        sink: Arc<Sink>,
        param: Tensor,
    },
}

/// Where one parameter sits in a packed matrix: a block of rows and columns (a bias, `γ` or
/// `β` is one column).
pub(super) struct Block {
    pub(super) param: Tensor,
    pub(super) row: usize,
    pub(super) col: usize,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl Route {
    /// The route for parameters that go into a packed matrix as `blocks`: direct inside a
    /// scope when every parameter is a variable (a computed parameter's gradient has to flow
    /// on through the graph) and `tracked`, another input of the op is in candle's graph
    /// (candle runs an op's backward only then); through the graph otherwise.
    pub(super) fn for_blocks(blocks: Vec<Block>, tracked: bool) -> Self {
        match active_sink() {
            Some(sink) if tracked && blocks.iter().all(|b| b.param.is_variable()) => {
                Route::Direct { sink, blocks }
            }
            _ => Route::Graph,
        }
    }

    /// The route for an op input that is the parameter `param` itself: direct inside a
    /// scope when it is a variable and `tracked` (as for [`Route::for_blocks`]).
    pub(super) fn whole(param: &Tensor, tracked: bool) -> Self {
        match active_sink() {
            Some(sink) if tracked && param.is_variable() => Route::Whole {
                sink,
                param: param.clone(),
            },
            _ => Route::Graph,
        }
    }

    /// A [`Route::whole`] parameter as the op reads it: detached from the graph on the direct
    /// route.
    pub(super) fn input(&self, t: &Tensor) -> Tensor {
        match self {
            Route::Graph => t.clone(),
            Route::Direct { .. } | Route::Whole { .. } => t.detach(),
        }
    }

    /// Whether the parameters leave candle's graph.
    pub(super) fn is_direct(&self) -> bool {
        !matches!(self, Route::Graph)
    }

    /// The gradient candle gets for a [`Route::whole`] input whose gradient is `grad`: all of
    /// it through the graph, or nothing, with `grad` left in the sink.
    pub(super) fn whole_gradient(&self, grad: Tensor) -> Result<Option<Tensor>> {
        match self {
            Route::Whole { sink, param } => {
                sink.deposit(param, grad)?;
                Ok(None)
            }
            _ => Ok(Some(grad)),
        }
    }

    /// The gradient candle gets for a [`Route::whole`] table `table` `(V, H)` whose rows at
    /// `ids` received the rows of `grad` `(N, H)`: the table's gradient through the graph, or
    /// nothing, with the rows added into the sink's gradient of the table.
    pub(super) fn rows_gradient(
        &self,
        table: &Tensor,
        ids: &[u32],
        grad: &[f32],
    ) -> Result<Option<Tensor>> {
        match self {
            Route::Whole { sink, param } => {
                sink.deposit_rows(param, ids, grad)?;
                Ok(None)
            }
            _ => {
                let (vocab, h) = table.dims2()?;
                let mut dtable = vec![0f32; vocab * h];
                scatter_rows(&mut dtable, ids, grad, h);
                Ok(Some(Tensor::from_vec(dtable, (vocab, h), &Device::Cpu)?))
            }
        }
    }

    /// The gradient candle gets for the packed input `packed` whose gradient is `d`: all of
    /// it on the graph route; nothing on the direct route, where each parameter's block of
    /// `d` goes to the sink.
    pub(super) fn gradient(&self, d: Vec<f32>, packed: &Tensor) -> Result<Option<Tensor>> {
        match self {
            Route::Graph | Route::Whole { .. } => {
                let grad = Tensor::from_vec(d, packed.shape(), &Device::Cpu)?;
                self.whole_gradient(grad)
            }
            Route::Direct { sink, blocks } => {
                let stride = packed.dim(1)?;
                for block in blocks {
                    let values = block.cut(&d, stride);
                    let grad = Tensor::from_vec(values, block.param.shape(), &Device::Cpu)?;
                    sink.deposit(&block.param, grad)?;
                }
                Ok(None)
            }
        }
    }
}

impl Block {
    pub(super) fn new(
        param: &Tensor,
        (row, col): (usize, usize),
        (rows, cols): (usize, usize),
    ) -> Self {
        Self {
            param: param.clone(),
            row,
            col,
            rows,
            cols,
        }
    }

    /// This block of the row-major matrix `d` with `stride` columns, row-major.
    pub(super) fn cut(&self, d: &[f32], stride: usize) -> Vec<f32> {
        let cols = self.cols;
        // SAFETY: every row of the block is copied into its own row of the output.
        unsafe {
            written(self.rows * cols, |out| {
                let per_task = rows_per_task(cols);
                out.par_chunks_mut(cols * per_task)
                    .enumerate()
                    .for_each(|(task, out)| {
                        for (r, out) in out.chunks_mut(cols).enumerate() {
                            let start = (self.row + task * per_task + r) * stride + self.col;
                            for (o, &v) in out.iter_mut().zip(&d[start..start + cols]) {
                                o.write(v);
                            }
                        }
                    })
            })
        }
    }
}
