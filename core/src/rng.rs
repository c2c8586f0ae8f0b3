//! Seeded, counter-based random streams.
//!
//! candle's CPU RNG cannot be seeded, so every random draw of a run (initialisation, data order,
//! masking, augmentation, dropout) comes from a stream keyed by `(runtime.seed, stream, index)`. A stream's
//! state is those three integers: resuming at step N re-creates exactly the draws of step N.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// The independent random streams of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Weight initialisation (indexed by a hash of the variable name).
    Init,
    /// Order of training examples (indexed by epoch).
    DataOrder,
    /// Synthetic data and masking (indexed by example).
    Data,
    /// Dropout (indexed by global step).
    Dropout,
    /// Validation data (indexed by example).
    Validation,
    /// Data augmentation (indexed by position in the training stream).
    Augment,
    /// Order of a streamed dataset's files (indexed by epoch).
    FileOrder,
    /// Picks of a streamed dataset's shuffle buffer (indexed by epoch, then by draw).
    ShuffleBuffer,
}

impl Stream {
    fn id(self) -> u64 {
        match self {
            Stream::Init => 1,
            Stream::DataOrder => 2,
            Stream::Data => 3,
            Stream::Dropout => 4,
            Stream::Validation => 5,
            Stream::Augment => 6,
            Stream::FileOrder => 7,
            Stream::ShuffleBuffer => 8,
        }
    }
}

/// A 64-bit seed for `(seed, stream, index)`, well mixed so neighbouring indices are unrelated.
pub fn stream_seed(seed: u64, stream: Stream, index: u64) -> u64 {
    let mut x = splitmix64(seed ^ 0x6a09_e667_f3bc_c908);
    x = splitmix64(x ^ stream.id());
    splitmix64(x ^ index)
}

/// Draw number `draw` of `(seed, stream, index)` as one 64-bit value, computed directly from
/// the counter (no generator to replay), so a stream resumed at draw N costs nothing.
pub fn stream_draw(seed: u64, stream: Stream, index: u64, draw: u64) -> u64 {
    splitmix64(stream_seed(seed, stream, index) ^ splitmix64(draw))
}

/// `value` (uniform over `u64`) scaled to `0..bound` by a 128-bit multiply (Lemire's method
/// without rejection: the bias is below `bound / 2^64`, nothing next to a shuffle buffer's size).
pub fn below(value: u64, bound: usize) -> usize {
    ((u128::from(value) * bound as u128) >> 64) as usize
}

/// A fresh generator for `(seed, stream, index)`.
pub fn stream_rng(seed: u64, stream: Stream, index: u64) -> StdRng {
    StdRng::seed_from_u64(stream_seed(seed, stream, index))
}

/// A stable 64-bit hash of a string (FNV-1a), e.g. to index the init stream by variable name.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = stream_rng(7, Stream::Dropout, 3).random();
        let b: u64 = stream_rng(7, Stream::Dropout, 3).random();
        let c: u64 = stream_rng(7, Stream::Dropout, 4).random();
        let d: u64 = stream_rng(7, Stream::Data, 3).random();
        let e: u64 = stream_rng(8, Stream::Dropout, 3).random();
        assert_eq!(a, b);
        assert!(a != c && a != d && a != e);
    }
}
