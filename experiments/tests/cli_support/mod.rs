//! What the test binaries that run `train` share: checks on a finished process's output and
//! the data files they train on.

use std::path::Path;
use std::process::Output;

/// Fails with the exit code and stderr unless the process succeeded.
pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The process's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes `count` examples of the synthetic corpus as a TFRecord file of Model Garden's BERT
/// pretraining `tf.train.Example`s (v1 or v2 feature names), sized as the tests' small bert/local (seq 32, 5 predictions, vocab 512).
#[allow(dead_code)] // not every test binary trains on TFRecords
pub fn write_pretraining_tfrecord(path: &Path, v2: bool, first: usize, count: usize) {
    use grove_records::tfrecord::frame_record;
    use grove_tasks::data::synthetic_corpus::{SyntheticCorpus, SyntheticCorpusSpec};
    use grove_tasks::masked_lm::tfrecord::encode_pretraining_example;
    let corpus = SyntheticCorpus::new(SyntheticCorpusSpec {
        seed: 11,
        num_examples: first + count,
        seq_length: 32,
        max_predictions_per_seq: 5,
        vocab_size: 512,
        use_next_sentence_label: true,
    })
    .unwrap();
    let bytes: Vec<u8> = (first..first + count)
        .flat_map(|index| frame_record(&encode_pretraining_example(&corpus.example(index), v2)))
        .collect();
    std::fs::write(path, bytes).unwrap();
}
