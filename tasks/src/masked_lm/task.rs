//! The masked LM task (Model Garden's `MaskedLMTask`): BERT pretraining on masked tokens and,
//! optionally, next-sentence prediction.

use std::sync::Arc;

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use grove_core::data::{Batch, Dataset};
use grove_core::export::{ExportFormat, ExportPlan};
use grove_core::init_checkpoint::{load_init_checkpoint, load_renamed_init_checkpoint};
use grove_core::metrics::{Metric, WeightedMean};
use grove_core::task::{InputContext, StepContext, StepOutputs, Task, TrainOutputs};
use grove_core::vars::ModelVars;
use grove_core::{Error, Result};

use super::config::{MaskedLmConfig, MaskedLmDataConfig, MaskedLmFileType};
use super::inputs::{DummySource, ExampleSource};
use super::text_corpus::text_pretraining_examples;
use super::tfrecord::pretraining_dataset;
use crate::data::order::Order;
use crate::data::split_cache::SplitCache;
use crate::data::synthetic_corpus::{MlmExample, SyntheticCorpus, SyntheticCorpusSpec};
use crate::models::huggingface::huggingface_pretraining_name;
use crate::models::huggingface_export::{
    check_exportable, huggingface_plan, not_exportable, vocab_file, HuggingfaceModel,
};
use crate::models::{BertPretrainer, CheckpointFormat, PretrainerInputs};

/// Name of the classification head trained on `next_sentence_labels`.
const NEXT_SENTENCE_HEAD: &str = "next_sentence";

/// Masked language modelling with a BERT pretrainer.
pub struct MaskedLmTask {
    config: MaskedLmConfig,
    /// Examples made from text files per split, so an evaluation does not re-read them.
    file_examples: SplitCache<Vec<MlmExample>>,
}

impl Task for MaskedLmTask {
    type Config = MaskedLmConfig;
    type Model = BertPretrainer;

    fn from_config(config: &MaskedLmConfig) -> Result<Self> {
        Ok(MaskedLmTask {
            config: config.clone(),
            file_examples: SplitCache::default(),
        })
    }

    fn config(&self) -> &MaskedLmConfig {
        &self.config
    }

    fn build_model(&self, vb: VarBuilder) -> Result<BertPretrainer> {
        Ok(BertPretrainer::new(&self.config.model, vb)?)
    }

    fn build_inputs(&self, data: &MaskedLmDataConfig, context: &InputContext) -> Result<Dataset> {
        if data.is_dummy() {
            return Ok(Dataset::prefetch(DummySource::new(data)?));
        }
        let vocab_size = self
            .config
            .model
            .bert_encoder("task.model")
            .map_err(Error::Config)?
            .vocab_size;
        let training = data.is_training == Some(true);
        let shuffled = Order::Shuffled {
            seed: data.seed.unwrap_or(context.seed),
            position: context.start_batch * data.global_batch_size as u64,
        };
        if data.file_type == MaskedLmFileType::Tfrecord {
            return pretraining_dataset(data, vocab_size, context);
        }
        if data.file_type != MaskedLmFileType::Synthetic {
            let examples = self.file_examples(data, context, vocab_size)?;
            let order = match training {
                true => shuffled,
                false => Order::Sequential {
                    first: 0,
                    count: examples.len(),
                },
            };
            return Ok(Dataset::prefetch(ExampleSource::new(examples, order, data)));
        }
        // Each split's examples follow the previous splits' in the corpus, so all splits share
        // the corpus' language but never an example.
        let first: usize = self
            .config
            .splits()
            .take(context.split.ordinal())
            .map(|split| split.num_examples)
            .sum();
        let corpus = SyntheticCorpus::new(SyntheticCorpusSpec {
            seed: context.seed,
            num_examples: first + data.num_examples,
            seq_length: data.seq_length,
            max_predictions_per_seq: data.max_predictions_per_seq,
            vocab_size,
            use_next_sentence_label: data.use_next_sentence_label,
        })
        .map_err(|e| Error::Config(format!("task synthetic data: {e}")))?;
        let order = match training {
            true => shuffled,
            false => Order::Sequential {
                first,
                count: data.num_examples,
            },
        };
        Ok(Dataset::prefetch(ExampleSource::new(corpus, order, data)))
    }

    /// Loads `init_checkpoint` by the config's rules (all variables under their own names
    /// without rules); a Hugging Face `BertForPreTraining` file is read under Grove's names
    /// first ([`huggingface_pretraining_name`]).
    fn initialize(&self, _model: &BertPretrainer, vars: &ModelVars) -> Result<()> {
        let cfg = &self.config;
        if cfg.init_checkpoint.is_empty() {
            return Ok(());
        }
        let rules = &cfg.init_checkpoint_rules;
        match cfg.init_checkpoint_format {
            CheckpointFormat::Grove => load_init_checkpoint(&cfg.init_checkpoint, vars, rules)?,
            CheckpointFormat::HuggingfaceBert => {
                let has_head = cfg
                    .model
                    .cls_heads
                    .iter()
                    .any(|h| h.name == NEXT_SENTENCE_HEAD);
                let head = has_head.then_some(NEXT_SENTENCE_HEAD);
                load_renamed_init_checkpoint(&cfg.init_checkpoint, vars, rules, |name| {
                    huggingface_pretraining_name(name, head)
                })?
            }
        };
        Ok(())
    }

    /// Hugging Face: `BertForPreTraining` with a `next_sentence` head (the pooler and
    /// `cls.seq_relationship` from it), else `BertForMaskedLM`; the training data's vocabulary
    /// goes along when it has one.
    fn export(&self, format: ExportFormat, variables: &[String]) -> Result<ExportPlan> {
        let ExportFormat::Huggingface = format;
        let model = &self.config.model;
        let encoder = model.bert_encoder("task.model").map_err(Error::Config)?;
        check_exportable(encoder, "task.model.encoder.bert")?;
        if model.mlm_activation != encoder.hidden_activation {
            return Err(not_exportable(&format!(
                "task.model.mlm_activation = {:?} differs from the encoder's {:?} (Hugging \
                 Face's masked LM transform uses the encoder's)",
                model.mlm_activation, encoder.hidden_activation
            )));
        }
        let mut next_sentence = None;
        for head in &model.cls_heads {
            if head.name != NEXT_SENTENCE_HEAD {
                return Err(not_exportable(&format!(
                    "task.model.cls_heads has a head {:?}; BertForPreTraining has only \
                     {NEXT_SENTENCE_HEAD}",
                    head.name
                )));
            }
            if head.inner_dim != encoder.hidden_size
                || head.activation != "tanh"
                || head.num_classes != 2
            {
                return Err(not_exportable(&format!(
                    "the {NEXT_SENTENCE_HEAD} head must be a tanh pooler of hidden_size ({}) \
                     with 2 classes to be BertForPreTraining's",
                    encoder.hidden_size
                )));
            }
            next_sentence = Some(NEXT_SENTENCE_HEAD);
        }
        let class = match next_sentence {
            Some(_) => HuggingfaceModel::BertForPreTraining,
            None => HuggingfaceModel::BertForMaskedLm,
        };
        let mut plan = huggingface_plan(
            variables,
            class,
            encoder,
            |name| huggingface_pretraining_name(name, next_sentence),
            &[],
            serde_json::json!({}),
        )?;
        let data = &self.config.train_data;
        plan.files
            .extend(vocab_file(&data.vocab_file, "task.train_data.vocab_file")?);
        Ok(plan)
    }

    fn build_metrics(&self, training: bool) -> Vec<Box<dyn Metric>> {
        let data = if training {
            &self.config.train_data
        } else {
            &self.config.validation_data
        };
        let mut metrics: Vec<Box<dyn Metric>> = vec![
            Box::new(WeightedMean::weighted(
                "masked_lm_accuracy",
                "masked_lm_correct",
                "masked_lm_weights",
            )),
            Box::new(WeightedMean::new("lm_example_loss", "lm_example_loss")),
        ];
        if data.use_next_sentence_label {
            metrics.push(Box::new(WeightedMean::new(
                "next_sentence_accuracy",
                "next_sentence_correct",
            )));
            metrics.push(Box::new(WeightedMean::new(
                "next_sentence_loss",
                "next_sentence_loss",
            )));
        }
        metrics
    }

    fn train_step(
        &self,
        inputs: &Batch,
        model: &BertPretrainer,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        self.forward_and_loss(inputs, model, context)
    }
}

impl MaskedLmTask {
    /// The examples made from the text files of split `context.split` (read once).
    fn file_examples(
        &self,
        data: &MaskedLmDataConfig,
        context: &InputContext,
        vocab_size: usize,
    ) -> Result<Arc<Vec<MlmExample>>> {
        let key = context.split.config_key();
        self.file_examples.get_or_load(&context.split, || {
            let seed = data.seed.unwrap_or(context.seed);
            text_pretraining_examples(data, vocab_size, &key, seed)
        })
    }

    /// Model Garden's masked LM loss: weighted mean cross-entropy over the masked positions,
    /// plus the mean next-sentence cross-entropy when labels are present.
    fn forward_and_loss(
        &self,
        inputs: &Batch,
        model: &BertPretrainer,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        let model_inputs = PretrainerInputs {
            input_word_ids: inputs.get("input_word_ids")?.clone(),
            input_mask: inputs.get("input_mask")?.clone(),
            input_type_ids: inputs.get("input_type_ids")?.clone(),
            masked_lm_positions: inputs.get("masked_lm_positions")?.clone(),
        };
        let labels = inputs.get("masked_lm_ids")?.flatten_all()?;
        let outputs =
            model.forward_with_mlm_loss(&model_inputs, &labels, context.dropout.as_mut())?;
        let weights = inputs.get("masked_lm_weights")?.flatten_all()?;
        let per_position = outputs.mlm_losses;
        let correct = outputs
            .mlm_predictions
            .to_device(labels.device())?
            .eq(&labels.to_dtype(DType::U32)?)?
            .to_dtype(DType::F32)?;
        let weight_sum = weights.sum_all()?;
        let lm_loss = (per_position * &weights)?
            .sum_all()?
            .broadcast_div(&weight_sum.maximum(1e-12)?)?;
        let mut loss = lm_loss.clone();
        let mut step = StepOutputs::default();
        step.insert("masked_lm_correct", correct);
        step.insert("masked_lm_weights", weights);
        step.insert("lm_example_loss", lm_loss.detach());
        if let Ok(nsp_labels) = inputs.get("next_sentence_labels") {
            let logits = outputs
                .cls_logits
                .iter()
                .find(|(name, _)| name == NEXT_SENTENCE_HEAD)
                .map(|(_, logits)| logits)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "batches carry next_sentence_labels but the model has no \
                         `{NEXT_SENTENCE_HEAD}` head"
                    ))
                })?;
            let (per_example, correct) = cross_entropy(logits, nsp_labels)?;
            let nsp_loss = per_example.mean_all()?;
            loss = (loss + &nsp_loss)?;
            step.insert("next_sentence_correct", correct);
            step.insert("next_sentence_loss", nsp_loss.detach());
        }
        Ok(TrainOutputs::with_outputs(loss, step))
    }
}

/// Per-row cross-entropy of `logits (N, C)` against `labels (N,)`, and per-row correctness
/// (1.0 where the arg-max is the label).
fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let labels = labels.to_dtype(DType::U32)?;
    let per_row = grove_kernels::cross_entropy_rows(logits, &labels)?;
    let correct = logits
        .detach()
        .argmax(D::Minus1)?
        .eq(&labels)?
        .to_dtype(DType::F32)?;
    Ok((per_row, correct))
}
