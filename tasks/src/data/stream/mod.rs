//! Streaming record files with tf.data's semantics, in memory bounded by the shuffle buffer,
//! the open files' read buffers and the prefetched batches — never by the dataset.
//!
//! Per epoch, a pipeline takes its files ([`file_set::FilePlan`]: its shard of them, shuffled
//! per epoch from the seed when training), reads `cycle_length` of them at once in runs of
//! `block_length` records ([`interleave`]), keeps its share of the records when there are
//! fewer files than pipelines, mixes them in a buffer of `shuffle_buffer_size`
//! ([`shuffle_buffer`]) and, when training, starts the next epoch once the buffer is drained.
//!
//! Resume is by checkpointed position, not by replay: [`record_stream::StreamPosition`] holds
//! the epoch, each open file's next record (index and byte offset), the buffered records'
//! locations and the number of buffer picks. Restoring reopens the files at those offsets and
//! reads back only the buffered records, so a resumed run gives the same records as an
//! uninterrupted one without reading what was consumed. Compressed files cannot seek: those
//! open at resume are decompressed again up to their offsets.

pub mod file_set;
pub mod interleave;
pub mod options;
pub mod record_file;
pub mod record_stream;
pub mod shuffle_buffer;

pub use file_set::FileSet;
pub use options::{CompressionType, StreamKeys, StreamOptions};
pub use record_file::{Location, Record};
pub use record_stream::RecordStream;
