//! Which part of a dataset one input pipeline reads when several workers share it.

use serde::{Deserialize, Serialize};

/// Pipeline `index` of `count`: every record is read by exactly one of the `count` pipelines
/// (Model Garden's `input_pipeline_id` of `num_input_pipelines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This pipeline, below `count`.
    pub index: usize,
    /// Pipelines sharing the data (1: the whole dataset).
    pub count: usize,
}

impl Shard {
    /// One pipeline reads everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether this pipeline keeps item `n` of a sequence dealt round-robin.
    pub fn keeps(&self, n: u64) -> bool {
        n % self.count as u64 == self.index as u64
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}
