//! TensorFlow's record formats, written by hand (no protoc, no TensorFlow): the TFRecord
//! framing ([`tfrecord`]), the protocol-buffer wire format ([`wire`]) and `tf.train.Example`
//! ([`example`]). TensorBoard event files and Model Garden's pretraining data both use them.

pub mod example;
pub mod tfrecord;
pub mod wire;
