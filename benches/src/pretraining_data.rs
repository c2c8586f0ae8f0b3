//! `grove-bench pretraining-data`: writes a Model Garden-format BERT pretraining TFRecord set
//! (`tf.train.Example`s with `input_ids`, `input_mask`, `segment_ids`, `masked_lm_positions`,
//! `masked_lm_ids`, `masked_lm_weights`, `next_sentence_labels`) of a chosen size, for the
//! streaming benchmarks. Examples come from Grove's seeded synthetic corpus: a pool of
//! distinct examples is encoded once and written round-robin with a per-shard offset, so a
//! 4 GB set is written at disk speed. Nothing it writes is committed.

use std::io::{BufWriter, Write};
use std::path::Path;

use grove_records::tfrecord::frame_record;
use grove_tasks::data::synthetic_corpus::{SyntheticCorpus, SyntheticCorpusSpec};
use grove_tasks::masked_lm::tfrecord::encode_pretraining_example;
use serde_json::json;

/// Distinct examples encoded and cycled through.
const POOL: usize = 4096;

/// Writes `shards` files `pretrain-XXXXX-of-YYYYY.tfrecord` into `dir` holding about
/// `megabytes` MB in all; the summary as JSON.
pub fn write(
    dir: &Path,
    shards: usize,
    megabytes: u64,
    seq_length: usize,
    max_predictions: usize,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(shards > 0, "--shards must be positive");
    std::fs::create_dir_all(dir)?;
    let corpus = SyntheticCorpus::new(SyntheticCorpusSpec {
        seed: 7,
        num_examples: POOL,
        seq_length,
        max_predictions_per_seq: max_predictions,
        vocab_size: 8192,
        use_next_sentence_label: true,
    })
    .map_err(anyhow::Error::msg)?;
    let pool: Vec<Vec<u8>> = (0..POOL)
        .map(|index| frame_record(&encode_pretraining_example(&corpus.example(index), false)))
        .collect();
    let per_shard = megabytes * 1_000_000 / shards as u64;
    let mut records = 0u64;
    let mut bytes = 0u64;
    for shard in 0..shards {
        let path = dir.join(format!("pretrain-{shard:05}-of-{shards:05}.tfrecord"));
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut written = 0u64;
        let mut next = shard * 97;
        while written < per_shard {
            let record = &pool[next % POOL];
            out.write_all(record)?;
            written += record.len() as u64;
            next += 1;
            records += 1;
        }
        out.flush()?;
        bytes += written;
    }
    Ok(json!({
        "dir": dir.display().to_string(),
        "shards": shards,
        "records": records,
        "megabytes": bytes as f64 / 1e6,
        "bytes_per_record": bytes as f64 / records as f64,
    }))
}
