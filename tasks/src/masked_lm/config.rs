//! Config of the masked LM task, with Model Garden's keys (`MaskedLMConfig`,
//! `BertPretrainDataConfig`).

use std::collections::BTreeMap;

use grove_core::config::TaskConfig;
use grove_core::init_checkpoint::InitCheckpointRule;
use grove_core::task::MAIN_VALIDATION_SET;
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::models::BertPretrainerConfig;

/// `input_path` keyword: Model Garden's endless zero batches.
pub const DUMMY_INPUT: &str = "dummy";
/// `input_path` keyword: Grove's seeded synthetic corpus with learnable structure.
pub const SYNTHETIC_INPUT: &str = "synthetic";

/// `file_type` of Model Garden's BERT pretraining TFRecord files.
pub const TFRECORD_FILES: &str = "tfrecord";
/// `file_type` of plain text: one sentence per line, a blank line between documents.
pub const PLAIN_TEXT: &str = "text";
/// `file_type` of JSON lines: one document per line in a `text` field.
pub const JSONL_TEXT: &str = "jsonl";

/// `task.train_data` / `task.validation_data` of masked LM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskedLmDataConfig {
    /// `synthetic`, `dummy`, or files: a comma-separated list of paths or glob patterns.
    pub input_path: String,
    /// The format of the files `input_path` names: `tfrecord` (Model Garden's pretraining
    /// examples), `text` or `jsonl` (raw text, tokenized with `vocab_file`).
    pub file_type: String,
    /// The WordPiece vocabulary of `text` / `jsonl` files.
    pub vocab_file: String,
    /// Lowercase and strip accents before WordPiece (uncased models).
    pub lower_case: bool,
    /// The files use Model Garden's v2 feature names (`input_word_ids`, `input_type_ids`)
    /// instead of `input_ids`, `segment_ids`.
    pub use_v2_feature_names: bool,
    /// Sequences per batch.
    pub global_batch_size: usize,
    /// Training (shuffled per epoch, repeated) or evaluation (one pass in order); must be set.
    pub is_training: Option<bool>,
    /// Drop a last evaluation batch smaller than `global_batch_size`.
    pub drop_remainder: bool,
    /// Seed of the example order; unset uses `runtime.seed`.
    pub seed: Option<u64>,
    /// Tokens per sequence.
    pub seq_length: usize,
    /// Masked positions per sequence.
    pub max_predictions_per_seq: usize,
    /// Whether batches carry `next_sentence_labels` (trains the `next_sentence` head).
    pub use_next_sentence_label: bool,
    /// Examples in the synthetic corpus of this split (`input_path: synthetic`).
    pub num_examples: usize,
}

impl Default for MaskedLmDataConfig {
    fn default() -> Self {
        MaskedLmDataConfig {
            input_path: String::new(),
            file_type: TFRECORD_FILES.to_string(),
            vocab_file: String::new(),
            lower_case: true,
            use_v2_feature_names: false,
            global_batch_size: 512,
            is_training: None,
            drop_remainder: true,
            seed: None,
            seq_length: 512,
            max_predictions_per_seq: 76,
            use_next_sentence_label: true,
            num_examples: 10_000,
        }
    }
}

grove_core::impl_data_spec!(MaskedLmDataConfig);

/// `task:` of masked LM pretraining (Model Garden's `MaskedLMConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MaskedLmConfig {
    /// Weights to start from when model_dir has no checkpoint ("" for none).
    pub init_checkpoint: String,
    /// Which variables `init_checkpoint` loads and under which names (empty: all, as named),
    /// e.g. `[{model: "encoder.", checkpoint: "encoder."}]` for the encoder only.
    pub init_checkpoint_rules: Vec<InitCheckpointRule>,
    /// The BERT pretrainer: encoder, MLM head, classification heads.
    pub model: BertPretrainerConfig,
    /// Training inputs.
    pub train_data: MaskedLmDataConfig,
    /// Validation inputs (the set named `validation`).
    pub validation_data: MaskedLmDataConfig,
    /// More validation sets by name, each evaluated and logged as `<name>/<metric>`.
    pub extra_validation_data: BTreeMap<String, MaskedLmDataConfig>,
}

impl MaskedLmConfig {
    /// Every data config in split order: train, validation, then the extra sets by name.
    pub fn splits(&self) -> impl Iterator<Item = &MaskedLmDataConfig> {
        [&self.train_data, &self.validation_data]
            .into_iter()
            .chain(self.extra_validation_data.values())
    }
}

impl TaskConfig for MaskedLmConfig {
    type Data = MaskedLmDataConfig;

    fn train_data(&self) -> &MaskedLmDataConfig {
        &self.train_data
    }
    fn validation_data(&self) -> &MaskedLmDataConfig {
        &self.validation_data
    }
    fn extra_validation_data(&self) -> Vec<(&str, &MaskedLmDataConfig)> {
        self.extra_validation_data
            .iter()
            .map(|(name, data)| (name.as_str(), data))
            .collect()
    }
    fn init_checkpoint(&self) -> &str {
        &self.init_checkpoint
    }
    fn init_checkpoint_rules(&self) -> &[InitCheckpointRule] {
        &self.init_checkpoint_rules
    }

    fn validate(&self) -> Result<()> {
        self.model.validate("task.model").map_err(Error::Config)?;
        let max_positions = self
            .model
            .bert_encoder("task.model")
            .map_err(Error::Config)?
            .max_position_embeddings;
        for name in self.extra_validation_data.keys() {
            validate_set_name(name)?;
        }
        let extra = self
            .extra_validation_data
            .iter()
            .map(|(name, data)| (format!("task.extra_validation_data.{name}"), data));
        let all = [
            ("task.train_data".to_string(), &self.train_data),
            ("task.validation_data".to_string(), &self.validation_data),
        ]
        .into_iter()
        .chain(extra);
        for (key, data) in all {
            let key = key.as_str();
            validate_data(key, data, max_positions)?;
            if data.use_next_sentence_label
                && !self
                    .model
                    .cls_heads
                    .iter()
                    .any(|h| h.name == "next_sentence")
            {
                return Err(Error::Config(format!(
                    "{key}.use_next_sentence_label is true but task.model.cls_heads has no head \
                     named next_sentence; add one or set use_next_sentence_label: false"
                )));
            }
        }
        Ok(())
    }
}

fn validate_set_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name != MAIN_VALIDATION_SET
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    Err(Error::Config(format!(
        "task.extra_validation_data.{name}: a set name is letters, digits and `_`, and not \
         `{MAIN_VALIDATION_SET}` (that is task.validation_data)"
    )))
}

fn validate_data(key: &str, data: &MaskedLmDataConfig, max_positions: usize) -> Result<()> {
    let fail = |message: String| Err(Error::Config(format!("{key}.{message}")));
    match data.input_path.as_str() {
        SYNTHETIC_INPUT | DUMMY_INPUT => {}
        "" => {
            return fail(format!(
                "input_path is empty: give {TFRECORD_FILES} files (paths or globs, comma \
                 separated), {SYNTHETIC_INPUT} or {DUMMY_INPUT}"
            ))
        }
        _ => match data.file_type.as_str() {
            TFRECORD_FILES => {}
            PLAIN_TEXT | JSONL_TEXT if data.vocab_file.is_empty() => {
                return fail(format!(
                    "vocab_file is empty: {} files are tokenized with a WordPiece vocabulary",
                    data.file_type
                ))
            }
            PLAIN_TEXT | JSONL_TEXT => {}
            other => {
                return fail(format!(
                    "file_type = {other:?}: use {TFRECORD_FILES}, {PLAIN_TEXT} or {JSONL_TEXT} \
                     (or input_path {SYNTHETIC_INPUT} or {DUMMY_INPUT})"
                ))
            }
        },
    }
    if data.global_batch_size == 0 {
        return fail("global_batch_size = 0: it must be positive".to_string());
    }
    if data.seq_length < 5 || data.seq_length > max_positions {
        return fail(format!(
            "seq_length = {} must be between 5 and \
             task.model.encoder.bert.max_position_embeddings = {max_positions}",
            data.seq_length
        ));
    }
    if data.max_predictions_per_seq == 0 || data.max_predictions_per_seq > data.seq_length {
        return fail(format!(
            "max_predictions_per_seq = {} must be between 1 and seq_length = {}",
            data.max_predictions_per_seq, data.seq_length
        ));
    }
    if data.input_path == SYNTHETIC_INPUT && data.num_examples == 0 {
        return fail("num_examples = 0: the synthetic corpus needs examples".to_string());
    }
    Ok(())
}
