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

    /// This pipeline's part of `n` items cut into `count` consecutive parts one item apart in
    /// size, the first ones larger (as a batch is split over workers and replicas).
    pub fn part_of(&self, n: usize) -> usize {
        n / self.count + usize::from(self.index < n % self.count)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_a_batch_add_up_to_it_and_match_how_a_batch_is_split() {
        let parts: Vec<usize> = (0..3)
            .map(|index| Shard { index, count: 3 }.part_of(8))
            .collect();
        assert_eq!(parts, [3, 3, 2]);
        assert_eq!(Shard::WHOLE.part_of(8), 8);
    }
}
