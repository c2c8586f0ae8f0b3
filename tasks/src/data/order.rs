//! The order in which a source reads its examples: shuffled epochs for training (seekable, so
//! a resumed run continues the same stream) or one pass in order for evaluation.

use grove_core::rng::{stream_rng, Stream};
use rand::seq::SliceRandom;

/// Which examples a source reads, and in what order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Training: an endless stream of epochs, each a fresh permutation of the examples drawn
    /// from the data-order stream of `seed` indexed by epoch; starts at stream position
    /// `position`.
    Shuffled {
        /// Seed of the per-epoch permutations.
        seed: u64,
        /// Index into the endless example stream of the next example.
        position: u64,
    },
    /// Evaluation: examples `first..first + count` once, in order.
    Sequential {
        /// Index of the first example.
        first: usize,
        /// Number of examples.
        count: usize,
    },
}

/// Draws batches of example indices from `0..len` in an [`Order`].
#[derive(Debug, Clone)]
pub struct Sampler {
    order: Order,
    len: usize,
    epoch: Option<(u64, Vec<usize>)>,
    emitted: usize,
}

impl Sampler {
    /// A sampler over `len` examples (shuffled orders permute `0..len`).
    pub fn new(order: Order, len: usize) -> Self {
        Sampler {
            order,
            len,
            epoch: None,
            emitted: 0,
        }
    }

    /// Whether batches never run out (training).
    pub fn is_endless(&self) -> bool {
        matches!(self.order, Order::Shuffled { .. })
    }

    /// The stream position of the next example (training), for per-example randomness.
    pub fn position(&self) -> u64 {
        match self.order {
            Order::Shuffled { position, .. } => position,
            Order::Sequential { first, .. } => (first + self.emitted) as u64,
        }
    }

    /// The next batch of at most `batch_size` indices; empty when a one-pass order is done
    /// (or only a partial batch is left and `drop_remainder`).
    pub fn next_indices(&mut self, batch_size: usize, drop_remainder: bool) -> Vec<usize> {
        match self.order {
            Order::Shuffled { seed, position } => {
                let indices = (0..batch_size as u64)
                    .map(|i| self.shuffled_index(seed, position + i))
                    .collect();
                self.order = Order::Shuffled {
                    seed,
                    position: position + batch_size as u64,
                };
                indices
            }
            Order::Sequential { first, count } => {
                let remaining = count - self.emitted.min(count);
                let take = remaining.min(batch_size);
                if take == 0 || (take < batch_size && drop_remainder) {
                    return Vec::new();
                }
                let start = first + self.emitted;
                self.emitted += take;
                (start..start + take).collect()
            }
        }
    }

    fn shuffled_index(&mut self, seed: u64, position: u64) -> usize {
        let n = self.len as u64;
        let epoch = position / n;
        if self.epoch.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut permutation: Vec<usize> = (0..self.len).collect();
            permutation.shuffle(&mut stream_rng(seed, Stream::DataOrder, epoch));
            self.epoch = Some((epoch, permutation));
        }
        let (_, permutation) = self.epoch.as_ref().expect("set above");
        permutation[(position % n) as usize]
    }
}
