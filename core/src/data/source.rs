//! What a dataset reads from: sources of batches, and the position a streaming source reports
//! so that a resumed run continues where the checkpoint left it.

use serde::{Deserialize, Serialize};

use super::batch::Batch;
use crate::error::Result;

/// Where a streaming source stands after the batches it has produced: opaque to everyone but
/// the source that wrote it, saved with each checkpoint and handed back (through
/// `InputContext::position`) to resume the stream there without re-reading consumed data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InputPosition(pub serde_json::Value);

/// Counters a source keeps about its input, reported with every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Corrupt records skipped so far (`skip_corrupt_records: true`), over the whole run.
    pub skipped_records: u64,
}

/// Something that yields batches in order; it runs on the prefetch thread.
pub trait BatchSource: Send + 'static {
    /// The next batch, or `None` when a finite source is exhausted.
    fn next_batch(&mut self) -> Option<Result<Batch>>;
    /// True when the source never ends (e.g. Model Garden's `input_path: dummy`).
    fn is_endless(&self) -> bool;
    /// Where the source stands after the batches it returned; `None` (the default) for
    /// sources that are repositioned by batch count (`InputContext::start_batch`) instead.
    fn position(&self) -> Option<InputPosition> {
        None
    }
}

/// A source whose batches are made in two stages: [`StagedSource::next_raw`] runs on the
/// reader thread and does what must happen in order (file reads, shuffling, bookkeeping of the
/// position); the decoder given to [`super::Dataset::staged`] turns each raw item into a
/// batch on one of `input_threads` workers (parsing, masking, stacking).
pub trait StagedSource: Send + 'static {
    /// What the reader hands to a decoder: typically one batch's raw records.
    type Raw: Send + 'static;
    /// The next raw item, or `None` when a finite source is exhausted.
    fn next_raw(&mut self) -> Option<Result<Self::Raw>>;
    /// True when the source never ends.
    fn is_endless(&self) -> bool;
    /// Where the source stands after the raw items it returned (see [`BatchSource::position`]).
    fn position(&self) -> Option<InputPosition> {
        None
    }
    /// The source's counters after the raw items it returned.
    fn stats(&self) -> InputStats {
        InputStats::default()
    }
}
