//! Model Garden's BERT pretraining data: TFRecord files of `tf.train.Example`s with the
//! features `input_ids` (v2: `input_word_ids`), `input_mask`, `segment_ids` (v2:
//! `input_type_ids`), `masked_lm_positions`, `masked_lm_ids`, `masked_lm_weights` and
//! `next_sentence_labels`, as its `create_pretraining_data.py` writes them.

use std::path::Path;

use grove_core::Result;
use grove_records::example::{decode_example, Example, FeatureValues};
use grove_records::tfrecord::for_each_record;

use super::config::MaskedLmDataConfig;
use crate::data::file_patterns::expand_input_path;
use crate::data::synthetic_corpus::MlmExample;

/// A record's problem, as text (the record reader adds the file, index and offset).
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

/// What every example must satisfy.
struct Shape {
    seq_length: usize,
    max_predictions: usize,
    vocab_size: usize,
    next_sentence: bool,
}

/// Reads every example of the files `data.input_path` names (`key`: the split's config key,
/// for messages). Records are checked against `seq_length`, `max_predictions_per_seq` and
/// `vocab_size`; a bad one is an error naming the file, the record index and the feature.
pub fn read_pretraining_examples(
    data: &MaskedLmDataConfig,
    vocab_size: usize,
    key: &str,
) -> Result<Vec<MlmExample>> {
    let names = if data.use_v2_feature_names { &V2 } else { &V1 };
    let shape = Shape {
        seq_length: data.seq_length,
        max_predictions: data.max_predictions_per_seq,
        vocab_size,
        next_sentence: data.use_next_sentence_label,
    };
    let mut examples = Vec::new();
    for file in expand_input_path(&data.input_path, key)? {
        read_file(&file, names, &shape, &mut examples)?;
    }
    if examples.is_empty() {
        return Err(grove_core::Error::Data(format!(
            "{key}.input_path = {:?}: the files hold no record",
            data.input_path
        )));
    }
    Ok(examples)
}

fn read_file(
    file: &Path,
    names: &FeatureNames,
    shape: &Shape,
    out: &mut Vec<MlmExample>,
) -> Result<()> {
    for_each_record(file, |_, record| {
        let example = decode_example(record).map_err(|e| format!("not a tf.train.Example: {e}"))?;
        out.push(to_mlm_example(&example, names, shape)?);
        Ok(())
    })?;
    Ok(())
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

fn to_mlm_example(example: &Example, names: &FeatureNames, shape: &Shape) -> Checked<MlmExample> {
    let (seq, predictions) = (shape.seq_length, shape.max_predictions);
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
    let next_sentence_label = if shape.next_sentence {
        ids(example, "next_sentence_labels", 1, 2)?[0]
    } else {
        0
    };
    Ok(MlmExample {
        input_word_ids: ids(example, names.word_ids, seq, shape.vocab_size)?,
        input_mask: ids(example, "input_mask", seq, 2)?,
        input_type_ids: ids(example, names.type_ids, seq, 2)?,
        masked_lm_positions: ids(example, "masked_lm_positions", predictions, seq)?,
        masked_lm_ids: ids(example, "masked_lm_ids", predictions, shape.vocab_size)?,
        masked_lm_weights: weights,
        next_sentence_label,
    })
}
