//! grove-records: TensorFlow's record formats, written by hand (no protoc, no TensorFlow).
//!
//! It owns the TFRecord framing ([`tfrecord`]: length, masked CRC-32C, data), the
//! protocol-buffer wire format ([`wire`]: varints, tags, length-delimited fields) and
//! `tf.train.Example` ([`example`]). TensorBoard event files (grove-orbit) and Model Garden's
//! pretraining data (grove-tasks) both use them. It knows nothing of tensors, configs or runs.

pub mod example;
pub mod tfrecord;
pub mod wire;
