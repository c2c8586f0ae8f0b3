//! A buffer an op's forward computes and leaves for its backward.
//!
//! candle's graph holds every node's output until the whole backward pass has run, but what an
//! op keeps for itself (a pre-activation, attention projections) is the op's own. The backward
//! takes it out, so it is freed as soon as that op's gradient is done, while the backward moves
//! on through the layers below. A second backward over the same graph finds the buffer gone and
//! recomputes it from the op's inputs.

use std::sync::Mutex;

/// The values an op's forward left for its backward, taken out by the first backward.
#[derive(Default)]
pub(super) struct Kept(Mutex<Option<Vec<f32>>>);

impl Kept {
    /// Leaves `values` for the backward, replacing anything left before.
    pub(super) fn keep(&self, values: Vec<f32>) {
        *self.slot() = Some(values);
    }

    /// The kept values, or `recompute()`'s when a previous backward took them.
    pub(super) fn take_or(&self, recompute: impl FnOnce() -> Vec<f32>) -> Vec<f32> {
        self.take().unwrap_or_else(recompute)
    }

    /// The kept values, if the forward left any and no backward took them yet.
    pub(super) fn take(&self) -> Option<Vec<f32>> {
        self.slot().take()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Vec<f32>>> {
        // The lock is only held to move the buffer in or out, which cannot panic.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
