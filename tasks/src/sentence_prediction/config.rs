//! Config of the sentence prediction task, with Model Garden's keys
//! (`SentencePredictionConfig`, `SentencePredictionTextDataConfig`).

use grove_core::config::{keyword, TaskConfig};
use grove_core::init_checkpoint::InitCheckpointRule;
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::data::file_patterns::refuse_input_path_for_synthetic;
pub use crate::models::CheckpointFormat;
use crate::models::{BertEncoderConfig, EncoderConfig, BERT_ENCODER};
use crate::text::PairTruncation;

/// `file_type`: where a split's sentences come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceFileType {
    /// Tab-separated files with a header row.
    Tsv,
    /// JSON-lines files (one object per line).
    Jsonl,
    /// Grove's synthetic sentence pairs (no files).
    Synthetic,
}

/// How labels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelType {
    /// Class indices (classification).
    Int,
    /// Scores (regression, `num_classes: 1`).
    Float,
}

grove_core::defaulted_config! {
    /// `task.train_data` / `task.validation_data` of sentence prediction.
    pub struct SentenceDataConfig {
        /// Files (comma-separated paths or globs) of `file_type`; ignored for `synthetic`.
        pub input_path: String = String::new(),
        /// `tsv`, `jsonl` or `synthetic`.
        pub file_type: SentenceFileType = SentenceFileType::Tsv,
        /// Examples per batch.
        pub global_batch_size: usize = 32,
        /// Training (shuffled per epoch, repeated) or evaluation (one pass in order); must be
        /// set.
        pub is_training: Option<bool> = None,
        /// Drop a last evaluation batch smaller than `global_batch_size`.
        pub drop_remainder: bool = false,
        /// Seed of the example order; unset uses `runtime.seed`.
        pub seed: Option<u64> = None,
        /// Tokens per example, `[CLS]` and `[SEP]`s included.
        pub seq_length: usize = 128,
        /// The WordPiece vocabulary (one token per line).
        pub vocab_file: String = String::new(),
        /// Lowercase and strip accents before WordPiece (uncased models).
        pub lower_case: bool = true,
        /// The one or two text columns (TSV header names) or fields (JSONL keys).
        pub text_fields: Vec<String> = vec!["sentence".to_string()],
        /// How a pair longer than `seq_length` is cut: `bert` (BERT's `_truncate_seq_pair`,
        /// as Model Garden's data) or `huggingface` (the tokenizers crate's longest-first).
        pub truncation: PairTruncation = PairTruncation::Bert,
        /// The label column or field.
        pub label_field: String = "label".to_string(),
        /// `int` (classes) or `float` (regression).
        pub label_type: LabelType = LabelType::Int,
        /// Examples of a `synthetic` split.
        pub num_examples: usize = 2048,
    }
}

grove_core::impl_data_spec!(SentenceDataConfig, epoch_examples = examples);

impl SentenceDataConfig {
    /// The examples of the split: `num_examples` of a `synthetic` one, else the rows of its
    /// files (read, not tokenized).
    fn examples(&self, key: &str) -> grove_core::Result<Option<usize>> {
        if self.file_type == SentenceFileType::Synthetic {
            return Ok(Some(self.num_examples));
        }
        super::inputs::count_rows(self, key).map(Some)
    }
}

/// Metrics computed over the whole validation set (`task.metric_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// Accuracy only (also logged for every other type).
    Accuracy,
    /// F1 of class 1 (binary tasks such as MRPC, QQP).
    F1,
    /// Matthews correlation (CoLA).
    MatthewsCorrcoef,
    /// Mean of Pearson and Spearman correlations (STS-B, regression).
    PearsonSpearmanCorr,
}

grove_core::defaulted_config! {
    /// `task.model`: a BERT encoder and a classification head on `[CLS]`.
    pub struct SentencePredictionModelConfig {
        /// Classes (1: regression on a score).
        pub num_classes: usize = 2,
        /// The encoder.
        pub encoder: EncoderConfig = EncoderConfig::new(BERT_ENCODER, BertEncoderConfig::default()),
        /// Dropout of the classification head.
        pub dropout_rate: f64 = 0.1,
    }
}

grove_core::defaulted_config! {
    /// `task:` of sentence prediction (Model Garden's `SentencePredictionConfig`).
    pub struct SentencePredictionConfig {
        /// Weights to start from when model_dir has no checkpoint ("" for none).
        pub init_checkpoint: String = String::new(),
        /// The naming of `init_checkpoint`'s tensors.
        pub init_checkpoint_format: CheckpointFormat = CheckpointFormat::Grove,
        /// Which variables load from which tensors; empty: the encoder (and, with
        /// `init_cls_pooler`, the head's dense layer from the pretraining `next_sentence`
        /// head or Hugging Face's pooler).
        pub init_checkpoint_rules: Vec<InitCheckpointRule> = Vec::new(),
        /// Also initialize the classification head's dense (pooler) layer.
        pub init_cls_pooler: bool = false,
        /// The corpus-level validation metric.
        pub metric_type: MetricType = MetricType::Accuracy,
        /// The model.
        pub model: SentencePredictionModelConfig = SentencePredictionModelConfig::default(),
        /// Training inputs.
        pub train_data: SentenceDataConfig = SentenceDataConfig::default(),
        /// Validation inputs.
        pub validation_data: SentenceDataConfig = SentenceDataConfig::default(),
    }
}

impl SentencePredictionConfig {
    /// The BERT encoder's settings (only BERT encoders are built).
    pub fn bert_encoder(&self) -> Result<&BertEncoderConfig> {
        self.model
            .encoder
            .get::<BertEncoderConfig>()
            .ok_or_else(|| {
                Error::Config(format!(
                "task.model.encoder.type = {}: sentence prediction builds only `{BERT_ENCODER}` \
                 encoders",
                self.model.encoder.kind()
            ))
            })
    }
}

impl TaskConfig for SentencePredictionConfig {
    type Data = SentenceDataConfig;

    fn train_data(&self) -> &SentenceDataConfig {
        &self.train_data
    }
    fn validation_data(&self) -> &SentenceDataConfig {
        &self.validation_data
    }
    fn init_checkpoint(&self) -> &str {
        &self.init_checkpoint
    }
    fn init_checkpoint_rules(&self) -> &[InitCheckpointRule] {
        &self.init_checkpoint_rules
    }

    fn validate(&self) -> Result<()> {
        let bert = self.bert_encoder()?;
        bert.validate("task.model.encoder.bert")
            .map_err(Error::Config)?;
        if self.model.num_classes == 0 {
            return Err(Error::Config(
                "task.model.num_classes = 0: give the number of classes (1 for regression)".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.model.dropout_rate) {
            return Err(Error::Config(format!(
                "task.model.dropout_rate = {}: must be in [0, 1)",
                self.model.dropout_rate
            )));
        }
        let regression = self.model.num_classes == 1;
        let correlation = self.metric_type == MetricType::PearsonSpearmanCorr;
        if regression != correlation {
            return Err(Error::Config(format!(
                "task.metric_type = {:?} with task.model.num_classes = {}: regression \
                 (num_classes 1) goes with pearson_spearman_corr, classification with the others",
                self.metric_type, self.model.num_classes
            )));
        }
        for (key, data) in [
            ("task.train_data", &self.train_data),
            ("task.validation_data", &self.validation_data),
        ] {
            validate_data(key, data, bert.max_position_embeddings, regression)?;
        }
        Ok(())
    }
}

fn validate_data(
    key: &str,
    data: &SentenceDataConfig,
    max_positions: usize,
    regression: bool,
) -> Result<()> {
    let fail = |message: String| Err(Error::Config(format!("{key}.{message}")));
    match data.file_type {
        SentenceFileType::Tsv | SentenceFileType::Jsonl => {
            if data.input_path.is_empty() {
                return fail(format!(
                    "input_path is empty: give the {} files (or file_type: synthetic for \
                     generated pairs)",
                    keyword(&data.file_type)
                ));
            }
            if data.text_fields.is_empty() || data.text_fields.len() > 2 {
                return fail(format!(
                    "text_fields = {:?}: give one field, or two for sentence pairs",
                    data.text_fields
                ));
            }
        }
        SentenceFileType::Synthetic => {
            refuse_input_path_for_synthetic(key, &data.input_path)?;
            if data.num_examples == 0 {
                return fail("num_examples = 0: it must be positive".to_string());
            }
        }
    }
    if data.global_batch_size == 0 {
        return fail("global_batch_size = 0: it must be positive".to_string());
    }
    if data.seq_length < 4 || data.seq_length > max_positions {
        return fail(format!(
            "seq_length = {} must be between 4 and \
             task.model.encoder.bert.max_position_embeddings = {max_positions}",
            data.seq_length
        ));
    }
    if regression != (data.label_type == LabelType::Float) {
        return fail(format!(
            "label_type = {:?}: regression (num_classes 1) reads float labels, classification \
             int labels",
            data.label_type
        ));
    }
    Ok(())
}
