//! How a split's files are streamed: Model Garden's data keys (`shuffle_buffer_size`,
//! `cycle_length`, `block_length`, `deterministic`, `compression_type`, `cache`) with tf.data's
//! meaning, and Grove's `skip_corrupt_records`.

use grove_core::data::Shard;
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Files opened at once when `cycle_length` is unset (tf.data would pick by the CPU count,
/// which would make the order depend on the machine).
pub const DEFAULT_CYCLE_LENGTH: usize = 8;

/// `compression_type`, with TensorFlow's spellings: `""` (none), `GZIP`, `ZLIB` (or in
/// lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CompressionType {
    /// Plain files, read from any byte offset.
    #[default]
    #[serde(rename = "")]
    None,
    /// Gzip streams (`.gz`), read from their start.
    #[serde(rename = "GZIP", alias = "gzip")]
    Gzip,
    /// Zlib streams, read from their start.
    #[serde(rename = "ZLIB", alias = "zlib")]
    Zlib,
}

/// The streaming keys of a data config, as written.
#[derive(Debug, Clone, Copy)]
pub struct StreamKeys {
    /// Records a training stream's shuffle buffer holds.
    pub shuffle_buffer_size: usize,
    /// Files read at once (unset: all of them up to [`DEFAULT_CYCLE_LENGTH`]).
    pub cycle_length: Option<usize>,
    /// Consecutive records taken from one file before moving to the next.
    pub block_length: usize,
    /// tf.data's parallel-interleave switch; Grove's order is always deterministic.
    pub deterministic: Option<bool>,
    /// Compression of every file.
    pub compression_type: CompressionType,
    /// Keep every record read in memory so later epochs do not read the files again.
    pub cache: bool,
    /// Skip (and count) records whose framing is damaged instead of failing.
    pub skip_corrupt_records: bool,
}

impl StreamKeys {
    /// Checks the keys of the data config at `key`.
    pub fn validate(&self, key: &str) -> Result<()> {
        let fail = |message: String| Err(Error::Config(format!("{key}.{message}")));
        if self.shuffle_buffer_size == 0 {
            return fail(
                "shuffle_buffer_size = 0: it must be at least 1 (1 reads the interleaved files \
                 without mixing)"
                    .to_string(),
            );
        }
        if self.cycle_length == Some(0) {
            return fail("cycle_length = 0: at least one file must be open".to_string());
        }
        if self.block_length == 0 {
            return fail("block_length = 0: it must be at least 1".to_string());
        }
        if self.deterministic == Some(false) {
            return fail(
                "deterministic = false is not supported: Grove's input order is always \
                 deterministic (exact resume depends on it) and parallelism comes from \
                 runtime.input_threads; remove the key or set it to true"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Refuses keys set away from their defaults on a split whose `file_type` is not
    /// streamed, so a setting is never silently ignored.
    pub fn refuse_unless_streamed(&self, key: &str, file_type: &str) -> Result<()> {
        let defaults = StreamKeys::default();
        let set: Vec<&str> = [
            (
                "shuffle_buffer_size",
                self.shuffle_buffer_size != defaults.shuffle_buffer_size,
            ),
            ("cycle_length", self.cycle_length.is_some()),
            ("block_length", self.block_length != defaults.block_length),
            (
                "compression_type",
                self.compression_type != defaults.compression_type,
            ),
            ("cache", self.cache),
            ("skip_corrupt_records", self.skip_corrupt_records),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        if set.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{key}.{} applies to streamed files (file_type: tfrecord), but {key}.file_type is \
             {file_type}, which is read whole; remove it",
            set.join(", ")
        )))
    }
}

impl Default for StreamKeys {
    /// Model Garden's defaults: a buffer of 100, blocks of 1, no compression or cache.
    fn default() -> Self {
        StreamKeys {
            shuffle_buffer_size: 100,
            cycle_length: None,
            block_length: 1,
            deterministic: None,
            compression_type: CompressionType::None,
            cache: false,
            skip_corrupt_records: false,
        }
    }
}

/// Everything a record stream needs to know besides its files.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Training: files shuffled per epoch, records through the shuffle buffer, epochs
    /// repeated without end. Otherwise one pass in file order.
    pub training: bool,
    /// Seed of the file orders and buffer picks.
    pub seed: u64,
    /// The keys as configured.
    pub keys: StreamKeys,
    /// The part of the data this pipeline reads.
    pub shard: Shard,
    /// The split's config key, for messages.
    pub config_key: String,
}

impl StreamOptions {
    /// Files open at once for a set of `files` files.
    pub fn cycle_length(&self, files: usize) -> usize {
        self.keys
            .cycle_length
            .unwrap_or(DEFAULT_CYCLE_LENGTH)
            .min(files)
            .max(1)
    }

    /// Records the shuffle buffer holds (1 outside training: records pass in order).
    pub fn buffer_size(&self) -> usize {
        if self.training {
            self.keys.shuffle_buffer_size
        } else {
            1
        }
    }
}
