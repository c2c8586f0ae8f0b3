//! Config of the masked LM task, with Model Garden's keys (`MaskedLMConfig`,
//! `BertPretrainDataConfig`).

use std::collections::BTreeMap;

use grove_core::config::{keyword, TaskConfig};
use grove_core::init_checkpoint::InitCheckpointRule;
use grove_core::task::MAIN_VALIDATION_SET;
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::data::file_patterns::refuse_input_path_for_synthetic;
use crate::data::stream::{CompressionType, StreamKeys};
use crate::models::{BertPretrainerConfig, CheckpointFormat};

/// `input_path` keyword: Model Garden's endless zero batches.
pub const DUMMY_INPUT: &str = "dummy";

/// `file_type`: where a split's pretraining examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskedLmFileType {
    /// Model Garden's BERT pretraining TFRecord files.
    Tfrecord,
    /// Plain text: one sentence per line, a blank line between documents.
    Text,
    /// JSON lines: one document per line in a `text` field.
    Jsonl,
    /// Grove's seeded synthetic corpus with learnable structure (no files).
    Synthetic,
}

grove_core::defaulted_config! {
    /// `task.train_data` / `task.validation_data` of masked LM.
    pub struct MaskedLmDataConfig {
        /// Files (a comma-separated list of paths or glob patterns) of `file_type`, or
        /// `dummy` (Model Garden's endless zero batches); ignored for `synthetic`.
        pub input_path: String = String::new(),
        /// `tfrecord` (Model Garden's pretraining examples), `text` or `jsonl` (raw text,
        /// tokenized with `vocab_file`), or `synthetic`.
        pub file_type: MaskedLmFileType = MaskedLmFileType::Tfrecord,
        /// The WordPiece vocabulary of `text` / `jsonl` files.
        pub vocab_file: String = String::new(),
        /// Lowercase and strip accents before WordPiece (uncased models).
        pub lower_case: bool = true,
        /// The files use Model Garden's v2 feature names (`input_word_ids`, `input_type_ids`)
        /// instead of `input_ids`, `segment_ids`.
        pub use_v2_feature_names: bool = false,
        /// Sequences per batch.
        pub global_batch_size: usize = 512,
        /// Training (shuffled per epoch, repeated) or evaluation (one pass in order); must be
        /// set.
        pub is_training: Option<bool> = None,
        /// Drop a last evaluation batch smaller than `global_batch_size`.
        pub drop_remainder: bool = true,
        /// Records a training stream's shuffle buffer mixes (`tfrecord` files).
        pub shuffle_buffer_size: usize = 100,
        /// Files read at once, interleaved (`tfrecord`; unset: up to 8).
        pub cycle_length: Option<usize> = None,
        /// Consecutive records taken from one file before the next (`tfrecord`).
        pub block_length: usize = 1,
        /// tf.data's switch for a non-deterministic interleave; only `true` (or unset) is
        /// accepted: Grove's input order is always deterministic.
        pub deterministic: Option<bool> = None,
        /// `""`, `GZIP` or `ZLIB`: compression of the `tfrecord` files.
        pub compression_type: CompressionType = CompressionType::None,
        /// Keep the `tfrecord` records in memory once read, so later epochs do not read the
        /// files again.
        pub cache: bool = false,
        /// Skip (and count, as `skipped_corrupt_records`) `tfrecord` records whose framing is
        /// damaged instead of failing.
        pub skip_corrupt_records: bool = false,
        /// Seed of the example order; unset uses `runtime.seed`.
        pub seed: Option<u64> = None,
        /// Tokens per sequence.
        pub seq_length: usize = 512,
        /// Masked positions per sequence.
        pub max_predictions_per_seq: usize = 76,
        /// Whether batches carry `next_sentence_labels` (trains the `next_sentence` head).
        pub use_next_sentence_label: bool = true,
        /// Examples in the synthetic corpus of this split (`file_type: synthetic`).
        pub num_examples: usize = 10_000,
    }
}

impl MaskedLmDataConfig {
    /// True for Model Garden's `input_path: dummy` (endless zero batches).
    pub fn is_dummy(&self) -> bool {
        self.input_path == DUMMY_INPUT
    }

    /// The keys that shape how `tfrecord` files are streamed.
    pub fn stream_keys(&self) -> StreamKeys {
        StreamKeys {
            shuffle_buffer_size: self.shuffle_buffer_size,
            cycle_length: self.cycle_length,
            block_length: self.block_length,
            deterministic: self.deterministic,
            compression_type: self.compression_type,
            cache: self.cache,
            skip_corrupt_records: self.skip_corrupt_records,
        }
    }
}

grove_core::impl_data_spec!(MaskedLmDataConfig, epoch_examples = generated_examples);

impl MaskedLmDataConfig {
    /// The examples of a `synthetic` split (`num_examples`); `None` for files, which are
    /// streamed (pretraining corpora are not counted before training).
    fn generated_examples(&self, _key: &str) -> grove_core::Result<Option<usize>> {
        Ok((self.file_type == MaskedLmFileType::Synthetic).then_some(self.num_examples))
    }
}

grove_core::defaulted_config! {
    /// `task:` of masked LM pretraining (Model Garden's `MaskedLMConfig`).
    pub struct MaskedLmConfig {
        /// Weights to start from when model_dir has no checkpoint ("" for none).
        pub init_checkpoint: String = String::new(),
        /// Which variables `init_checkpoint` loads and under which names (empty: all, as named),
        /// e.g. `[{model: "encoder.", checkpoint: "encoder."}]` for the encoder only.
        pub init_checkpoint_rules: Vec<InitCheckpointRule> = Vec::new(),
        /// `grove` or `huggingface_bert`: a `BertForPreTraining` safetensors file, whose
        /// encoder, masked LM head and (with a `next_sentence` head) pooler and
        /// next-sentence layer load under Grove's names before the rules apply.
        pub init_checkpoint_format: CheckpointFormat = CheckpointFormat::Grove,
        /// The BERT pretrainer: encoder, MLM head, classification heads.
        pub model: BertPretrainerConfig = BertPretrainerConfig::default(),
        /// Training inputs.
        pub train_data: MaskedLmDataConfig = MaskedLmDataConfig::default(),
        /// Validation inputs (the set named `validation`).
        pub validation_data: MaskedLmDataConfig = MaskedLmDataConfig::default(),
        /// More validation sets by name, each evaluated and logged as `<name>/<metric>`.
        pub extra_validation_data: BTreeMap<String, MaskedLmDataConfig> = BTreeMap::new(),
    }
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
    let file_type = keyword(&data.file_type);
    match (data.file_type, data.input_path.as_str()) {
        (_, DUMMY_INPUT) => {}
        (MaskedLmFileType::Synthetic, path) => refuse_input_path_for_synthetic(key, path)?,
        (_, "synthetic") => {
            return fail(format!(
                "input_path = \"synthetic\" with file_type = {file_type}: synthetic data is \
                 selected by file_type, as in every task; set file_type: synthetic (input_path \
                 is then ignored)"
            ))
        }
        (_, "") => {
            return fail(format!(
                "input_path is empty: give the {file_type} files (paths or globs, comma \
                 separated), or {DUMMY_INPUT}, or set file_type: synthetic"
            ))
        }
        (MaskedLmFileType::Text | MaskedLmFileType::Jsonl, _) if data.vocab_file.is_empty() => {
            return fail(format!(
                "vocab_file is empty: {file_type} files are tokenized with a WordPiece \
                 vocabulary"
            ))
        }
        _ => {}
    }
    let keys = data.stream_keys();
    keys.validate(key)?;
    if data.file_type != MaskedLmFileType::Tfrecord && !data.is_dummy() {
        keys.refuse_unless_streamed(key, &file_type)?;
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
    if data.file_type == MaskedLmFileType::Synthetic && data.num_examples == 0 {
        return fail("num_examples = 0: the synthetic corpus needs examples".to_string());
    }
    Ok(())
}
