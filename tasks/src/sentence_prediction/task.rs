//! The sentence prediction task (Model Garden's `SentencePredictionTask`): classification
//! (cross-entropy, `cls_accuracy`) or regression (mean squared error) on `[CLS]`, with F1,
//! Matthews or Pearson/Spearman correlation over the whole validation set.

use std::collections::BTreeMap;

use candle_core::{DType, D};
use candle_nn::VarBuilder;
use grove_core::data::{Batch, Dataset};
use grove_core::export::{ExportFormat, ExportPlan};
use grove_core::init_checkpoint::{
    load_init_checkpoint, load_renamed_init_checkpoint, InitCheckpointRule,
};
use grove_core::metrics::{Metric, WeightedMean};
use grove_core::task::{Aggregate, InputContext, StepContext, StepOutputs, Task, TrainOutputs};
use grove_core::vars::ModelVars;
use grove_core::Result;

use super::config::{
    CheckpointFormat, MetricType, SentenceDataConfig, SentenceFileType, SentencePredictionConfig,
};
use super::inputs::{read_text_examples, synthetic_pairs, SentenceExample, SentenceSource};
use super::metrics::{f1_score, matthews_corrcoef, pearson, spearman};
use super::model::{SentenceClassifier, HEAD_NAME};
use crate::data::order::{Order, Sampler};
use crate::data::split_cache::SplitCache;
use crate::models::huggingface::huggingface_bert_name;
use crate::models::huggingface_export::{
    check_exportable, huggingface_plan, vocab_file, HuggingfaceModel,
};

/// The pretraining head whose dense layer `init_cls_pooler` loads into the classifier's.
const PRETRAINING_POOLER: &str = "next_sentence.dense.";

/// Sentence (pair) classification or regression with a BERT encoder.
pub struct SentencePredictionTask {
    config: SentencePredictionConfig,
    examples: SplitCache<Vec<SentenceExample>>,
}

impl SentencePredictionTask {
    fn regression(&self) -> bool {
        self.config.model.num_classes == 1
    }

    fn forward_and_loss(
        &self,
        inputs: &Batch,
        model: &SentenceClassifier,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        let logits = model.forward(
            inputs.get("input_word_ids")?,
            inputs.get("input_mask")?,
            inputs.get("input_type_ids")?,
            context.dropout.as_mut(),
        )?;
        let labels = inputs.get("label")?;
        if self.regression() {
            let scores = logits.squeeze(1)?;
            let loss = (&scores - labels.to_dtype(DType::F32)?)?
                .sqr()?
                .mean_all()?;
            let mut step = TrainOutputs::new(loss);
            step.insert("predictions", scores.detach());
            step.insert("labels", labels.to_dtype(DType::F32)?);
            return Ok(step);
        }
        let labels = labels.to_dtype(DType::U32)?;
        let per_example = grove_kernels::cross_entropy_rows(&logits, &labels)?;
        let predictions = logits.detach().argmax(D::Minus1)?;
        let correct = predictions.eq(&labels)?.to_dtype(DType::F32)?;
        let mut step = TrainOutputs::new(per_example.mean_all()?);
        step.insert("cls_correct", correct);
        step.insert("predictions", predictions.to_dtype(DType::F32)?);
        step.insert("labels", labels.to_dtype(DType::F32)?);
        Ok(step)
    }

    /// The default rules: the encoder, and with `init_cls_pooler` the head's dense layer.
    fn default_rules(&self, pooler_source: &str) -> Vec<InitCheckpointRule> {
        let rule = |model: &str, checkpoint: &str| InitCheckpointRule {
            model: model.to_string(),
            checkpoint: checkpoint.to_string(),
        };
        let mut rules = vec![rule("encoder.", "encoder.")];
        if self.config.init_cls_pooler {
            rules.push(rule(&format!("{HEAD_NAME}.dense."), pooler_source));
        }
        rules
    }
}

impl Task for SentencePredictionTask {
    type Config = SentencePredictionConfig;
    type Model = SentenceClassifier;

    fn from_config(config: &SentencePredictionConfig) -> Result<Self> {
        Ok(SentencePredictionTask {
            config: config.clone(),
            examples: SplitCache::default(),
        })
    }

    fn config(&self) -> &SentencePredictionConfig {
        &self.config
    }

    fn build_model(&self, vb: VarBuilder) -> Result<SentenceClassifier> {
        let bert = self.config.bert_encoder()?;
        Ok(SentenceClassifier::new(&self.config.model, bert, vb)?)
    }

    fn build_inputs(&self, data: &SentenceDataConfig, context: &InputContext) -> Result<Dataset> {
        let cfg = &self.config;
        let examples = self.examples.get_or_load(&context.split, || {
            if data.file_type == SentenceFileType::Synthetic {
                let first = if context.split.is_train() {
                    0
                } else {
                    cfg.train_data.num_examples
                };
                let vocab = cfg.bert_encoder()?.vocab_size;
                return synthetic_pairs(
                    context.seed,
                    first,
                    data.num_examples,
                    data.seq_length,
                    vocab,
                );
            }
            read_text_examples(data, &context.split.config_key(), cfg.model.num_classes)
        })?;
        let order = if data.is_training == Some(true) {
            Order::Shuffled {
                seed: data.seed.unwrap_or(context.seed),
                position: context.start_batch * data.global_batch_size as u64,
            }
        } else {
            Order::Sequential {
                first: 0,
                count: examples.len(),
            }
        };
        let sampler = Sampler::new(order, examples.len());
        Ok(Dataset::prefetch(SentenceSource::new(
            examples,
            sampler,
            data,
            self.regression(),
        )))
    }

    fn build_metrics(&self, _training: bool) -> Vec<Box<dyn Metric>> {
        if self.regression() {
            return Vec::new();
        }
        vec![Box::new(WeightedMean::new("cls_accuracy", "cls_correct"))]
    }

    fn train_step(
        &self,
        inputs: &Batch,
        model: &SentenceClassifier,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        self.forward_and_loss(inputs, model, context)
    }

    fn aggregate_logs(
        &self,
        state: Option<Aggregate>,
        outputs: &StepOutputs,
    ) -> Result<Option<Aggregate>> {
        if self.config.metric_type == MetricType::Accuracy {
            return Ok(None);
        }
        let mut state = state.unwrap_or_default();
        for column in ["predictions", "labels"] {
            let values: Vec<f32> = outputs.value(column)?.to_vec1()?;
            state
                .entry(column.to_string())
                .or_default()
                .extend(values.into_iter().map(f64::from));
        }
        Ok(Some(state))
    }

    fn reduce_aggregated_logs(
        &self,
        state: Aggregate,
        _global_step: u64,
    ) -> Result<BTreeMap<String, f64>> {
        let (predictions, labels) = (&state["predictions"], &state["labels"]);
        let (name, value) = match self.config.metric_type {
            MetricType::Accuracy => return Ok(BTreeMap::new()),
            MetricType::F1 => ("f1", f1_score(predictions, labels)),
            MetricType::MatthewsCorrcoef => {
                ("matthews_corrcoef", matthews_corrcoef(predictions, labels))
            }
            MetricType::PearsonSpearmanCorr => (
                "pearson_spearman_corr",
                (pearson(predictions, labels) + spearman(predictions, labels)) / 2.0,
            ),
        };
        Ok(BTreeMap::from([(name.to_string(), value)]))
    }

    /// Hugging Face: `BertForSequenceClassification` (the head's dense layer is the pooler,
    /// its projection the classifier), with the training data's vocabulary.
    fn export(&self, format: ExportFormat, variables: &[String]) -> Result<ExportPlan> {
        let ExportFormat::Huggingface = format;
        let encoder = self.config.bert_encoder()?;
        check_exportable(encoder, "task.model.encoder.bert")?;
        let model = &self.config.model;
        let pooler = format!("{HEAD_NAME}.dense.");
        let extra = [
            ("classifier.weight", format!("{HEAD_NAME}.out_proj.weight")),
            ("classifier.bias", format!("{HEAD_NAME}.out_proj.bias")),
        ];
        let mut plan = huggingface_plan(
            variables,
            HuggingfaceModel::BertForSequenceClassification {
                num_labels: model.num_classes,
            },
            encoder,
            |name| huggingface_bert_name(name, Some(&pooler)),
            &extra,
            serde_json::json!({ "classifier_dropout": model.dropout_rate }),
        )?;
        let data = &self.config.train_data;
        plan.files
            .extend(vocab_file(&data.vocab_file, "task.train_data.vocab_file")?);
        Ok(plan)
    }

    /// Loads `init_checkpoint` (a masked LM checkpoint or a Hugging Face BERT file): by the
    /// config's rules, or by default the encoder and, with `init_cls_pooler`, the pooler.
    fn initialize(&self, _model: &SentenceClassifier, vars: &ModelVars) -> Result<()> {
        let cfg = &self.config;
        if cfg.init_checkpoint.is_empty() {
            return Ok(());
        }
        let user_rules =
            (!cfg.init_checkpoint_rules.is_empty()).then(|| cfg.init_checkpoint_rules.clone());
        match cfg.init_checkpoint_format {
            CheckpointFormat::Grove => {
                let rules = user_rules.unwrap_or_else(|| self.default_rules(PRETRAINING_POOLER));
                load_init_checkpoint(&cfg.init_checkpoint, vars, &rules)?;
            }
            CheckpointFormat::HuggingfaceBert => {
                let pooler = format!("{HEAD_NAME}.dense.");
                let rules = user_rules.unwrap_or_else(|| self.default_rules(&pooler));
                let pooler = cfg.init_cls_pooler.then_some(pooler.as_str());
                load_renamed_init_checkpoint(&cfg.init_checkpoint, vars, &rules, |name| {
                    huggingface_bert_name(name, pooler)
                })?;
            }
        }
        Ok(())
    }
}
