//! Model Garden's BERT pretraining data: TFRecord files of `tf.train.Example`s with the
//! features `input_ids` (v2: `input_word_ids`), `input_mask`, `segment_ids` (v2:
//! `input_type_ids`), `masked_lm_positions`, `masked_lm_ids`, `masked_lm_weights` and
//! `next_sentence_labels`, as its `create_pretraining_data.py` writes them. The files are
//! streamed ([`crate::data::stream`]): records are read in order on the reader thread and
//! parsed and stacked on `runtime.input_threads` decoders.

use std::sync::Arc;

use grove_core::data::{Batch, Dataset, InputPosition, InputStats, StagedSource};
use grove_core::task::InputContext;
use grove_core::{Error, Result};
use grove_records::example::{decode_example, encode_example, Example, FeatureValues};

use super::config::MaskedLmDataConfig;
use super::inputs::to_batch;
use crate::data::file_patterns::expand_input_path;
use crate::data::stream::{FileSet, Record, RecordStream, StreamOptions};
use crate::data::synthetic_corpus::MlmExample;

/// A record's problem, as text (the caller adds the file, index and offset).
type Checked<T> = std::result::Result<T, String>;

/// The feature names of one naming scheme.
struct FeatureNames {
    word_ids: &'static str,
    type_ids: &'static str,
}

const V1: FeatureNames = FeatureNames {
    word_ids: "input_ids",
    type_ids: "segment_ids",
};
const V2: FeatureNames = FeatureNames {
    word_ids: "input_word_ids",
    type_ids: "input_type_ids",
};

/// What every example must satisfy, and how to name a record in messages.
struct Decoder {
    names: &'static FeatureNames,
    seq_length: usize,
    max_predictions: usize,
    vocab_size: usize,
    next_sentence: bool,
    files: Arc<FileSet>,
}

impl Decoder {
    /// The batch of `records`; a bad record is a data error naming its file, index and offset.
    fn decode(&self, records: Vec<Record>) -> Result<Batch> {
        let examples = records
            .iter()
            .map(|record| self.example(record))
            .collect::<Result<Vec<_>>>()?;
        to_batch(&examples, self.next_sentence)
    }

    fn example(&self, record: &Record) -> Result<MlmExample> {
        decode_example(&record.data)
            .map_err(|e| format!("not a tf.train.Example: {e}"))
            .and_then(|example| to_mlm_example(&example, self))
            .map_err(|why| {
                let at = record.location;
                Error::Data(format!(
                    "{}: record {} (byte offset {}): {why}",
                    self.files.path(at.file()).display(),
                    at.index(),
                    at.offset()
                ))
            })
    }
}

/// Batches of records off a [`RecordStream`] (skipping `skip` batches first).
struct RecordBatches {
    stream: RecordStream,
    batch_size: usize,
    drop_remainder: bool,
    skip: u64,
}

impl RecordBatches {
    fn take_batch(&mut self) -> Result<Option<Vec<Record>>> {
        let mut records = Vec::with_capacity(self.batch_size);
        while records.len() < self.batch_size {
            match self.stream.next_record()? {
                Some(record) => records.push(record),
                None => break,
            }
        }
        let complete = records.len() == self.batch_size;
        let keep = complete || (!records.is_empty() && !self.drop_remainder);
        Ok(keep.then_some(records))
    }
}

impl StagedSource for RecordBatches {
    type Raw = Vec<Record>;

    fn next_raw(&mut self) -> Option<Result<Vec<Record>>> {
        while self.skip > 0 {
            self.skip -= 1;
            if let Err(e) = self.take_batch() {
                return Some(Err(e));
            }
        }
        self.take_batch().transpose()
    }

    fn is_endless(&self) -> bool {
        self.stream.is_endless()
    }

    fn position(&self) -> Option<InputPosition> {
        Some(self.stream.position())
    }

    fn stats(&self) -> InputStats {
        InputStats {
            skipped_records: self.stream.skipped(),
        }
    }
}

/// The streamed pretraining batches of the files `data.input_path` names, for the split of
/// `context` (resumed at `context.position` when there is one). Records are checked against
/// `seq_length`, `max_predictions_per_seq` and `vocab_size`; the first file's first record is
/// checked before this returns, so a mismatched config fails before the run writes anything.
pub fn pretraining_dataset(
    data: &MaskedLmDataConfig,
    vocab_size: usize,
    context: &InputContext,
) -> Result<Dataset> {
    let key = context.split.config_key();
    let files = Arc::new(FileSet::new(
        expand_input_path(&data.input_path, &key)?,
        &key,
    )?);
    let decoder = Decoder {
        names: if data.use_v2_feature_names { &V2 } else { &V1 },
        seq_length: data.seq_length,
        max_predictions: data.max_predictions_per_seq,
        vocab_size,
        next_sentence: data.use_next_sentence_label,
        files: files.clone(),
    };
    let options = StreamOptions {
        training: data.is_training == Some(true),
        seed: data.seed.unwrap_or(context.seed),
        keys: data.stream_keys(),
        shard: context.shard,
        config_key: key,
    };
    let mut probe = RecordStream::start(
        files.clone(),
        StreamOptions {
            training: false,
            ..options.clone()
        },
    );
    if let Some(first) = probe.next_record()? {
        decoder.example(&first)?;
    }
    let (stream, skip) = match &context.position {
        Some(position) => (RecordStream::resume(files, options, position)?, 0),
        None => (RecordStream::start(files, options), context.start_batch),
    };
    // With workers, each reads its shard of the files and batches its part of the global
    // batch.
    let batches = RecordBatches {
        stream,
        batch_size: context.shard.part_of(data.global_batch_size),
        drop_remainder: data.drop_remainder,
        skip,
    };
    Ok(Dataset::staged(
        batches,
        move |records| decoder.decode(records),
        context.input_threads,
    )
    .holding_part(context.shard))
}

/// `example` as Model Garden's pretraining `tf.train.Example` (v2 or v1 feature names): the
/// inverse of what this module reads, for writing test and benchmark data.
pub fn encode_pretraining_example(example: &MlmExample, v2_feature_names: bool) -> Vec<u8> {
    let names = if v2_feature_names { &V2 } else { &V1 };
    let ints = |v: &[u32]| FeatureValues::Int64(v.iter().map(|&x| i64::from(x)).collect());
    let mut out = Example::new();
    out.insert(names.word_ids.into(), ints(&example.input_word_ids));
    out.insert("input_mask".into(), ints(&example.input_mask));
    out.insert(names.type_ids.into(), ints(&example.input_type_ids));
    out.insert(
        "masked_lm_positions".into(),
        ints(&example.masked_lm_positions),
    );
    out.insert("masked_lm_ids".into(), ints(&example.masked_lm_ids));
    let weights = FeatureValues::Float(example.masked_lm_weights.clone());
    out.insert("masked_lm_weights".into(), weights);
    out.insert(
        "next_sentence_labels".into(),
        ints(&[example.next_sentence_label]),
    );
    encode_example(&out)
}

/// The int64 feature `name` as ids, each below `bound`, exactly `len` of them.
fn ids(example: &Example, name: &str, len: usize, bound: usize) -> Checked<Vec<u32>> {
    let values = match example.get(name) {
        Some(FeatureValues::Int64(values)) => values,
        Some(other) => {
            return Err(format!(
                "feature `{name}` is a {}, not an int64_list",
                other.kind()
            ))
        }
        None => return Err(missing(example, name)),
    };
    if values.len() != len {
        return Err(format!(
            "feature `{name}` has {} values, expected {len}",
            values.len()
        ));
    }
    values
        .iter()
        .map(|&v| {
            u32::try_from(v)
                .ok()
                .filter(|&v| (v as usize) < bound)
                .ok_or_else(|| format!("feature `{name}` holds {v}, outside [0, {bound})"))
        })
        .collect()
}

fn missing(example: &Example, name: &str) -> String {
    let present: Vec<&str> = example.keys().map(String::as_str).collect();
    format!(
        "feature `{name}` is missing (the record has {}; use_v2_feature_names switches between \
         input_ids/segment_ids and input_word_ids/input_type_ids)",
        present.join(", ")
    )
}

fn to_mlm_example(example: &Example, decoder: &Decoder) -> Checked<MlmExample> {
    let (seq, predictions, names) = (decoder.seq_length, decoder.max_predictions, decoder.names);
    let weights = match example.get("masked_lm_weights") {
        Some(FeatureValues::Float(values)) if values.len() == predictions => values.clone(),
        Some(FeatureValues::Float(values)) => {
            return Err(format!(
                "feature `masked_lm_weights` has {} values, expected {predictions}",
                values.len()
            ))
        }
        Some(other) => {
            return Err(format!(
                "feature `masked_lm_weights` is a {}, not a float_list",
                other.kind()
            ))
        }
        None => return Err(missing(example, "masked_lm_weights")),
    };
    let next_sentence_label = if decoder.next_sentence {
        ids(example, "next_sentence_labels", 1, 2)?[0]
    } else {
        0
    };
    Ok(MlmExample {
        input_word_ids: ids(example, names.word_ids, seq, decoder.vocab_size)?,
        input_mask: ids(example, "input_mask", seq, 2)?,
        input_type_ids: ids(example, names.type_ids, seq, 2)?,
        masked_lm_positions: ids(example, "masked_lm_positions", predictions, seq)?,
        masked_lm_ids: ids(example, "masked_lm_ids", predictions, decoder.vocab_size)?,
        masked_lm_weights: weights,
        next_sentence_label,
    })
}
