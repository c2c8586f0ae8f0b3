//! tf.data's `shuffle(buffer_size)`: records enter a buffer of `buffer_size`; each output is
//! a uniformly drawn one of those buffered, replaced by the next input. The picks come from a
//! counter-based stream, so resuming at pick N needs only N.

use grove_core::rng::{below, stream_draw, Stream};

use super::record_file::{Location, Record};

/// Records waiting to be drawn.
pub struct ShuffleBuffer {
    capacity: usize,
    records: Vec<Record>,
    seed: u64,
    draws: u64,
}

impl ShuffleBuffer {
    /// An empty buffer of `capacity` records (1: records pass in order).
    pub fn new(capacity: usize, seed: u64) -> Self {
        ShuffleBuffer {
            capacity,
            records: Vec::with_capacity(capacity.min(1 << 16)),
            seed,
            draws: 0,
        }
    }

    /// A buffer holding `records` (in buffer order) after `draws` picks of the epoch.
    pub fn restored(capacity: usize, seed: u64, records: Vec<Record>, draws: u64) -> Self {
        ShuffleBuffer {
            capacity,
            records,
            seed,
            draws,
        }
    }

    /// Whether the buffer has room for another record.
    pub fn has_room(&self) -> bool {
        self.records.len() < self.capacity
    }

    /// Adds a record.
    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Draws a record (uniformly among those buffered, by pick `draws` of `epoch`), `None`
    /// when empty.
    pub fn take(&mut self, epoch: u64) -> Option<Record> {
        if self.records.is_empty() {
            return None;
        }
        let pick = match self.records.len() {
            1 => 0,
            n => below(
                stream_draw(self.seed, Stream::ShuffleBuffer, epoch, self.draws),
                n,
            ),
        };
        self.draws += 1;
        Some(self.records.swap_remove(pick))
    }

    /// Starts a new epoch's picks (the buffer is empty between epochs).
    pub fn reset_draws(&mut self) {
        self.draws = 0;
    }

    /// Picks made this epoch.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// Where the buffered records are, in buffer order.
    pub fn locations(&self) -> Vec<Location> {
        self.records.iter().map(|r| r.location).collect()
    }
}
