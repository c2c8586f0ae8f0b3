//! Sentence prediction experiments: `bert/sentence_prediction` (BERT-base fine-tuning on the
//! TSV / JSONL files the user points at, Model Garden's GLUE recipe) and
//! `bert/sentence_prediction_local` (fine-tunes a `bert/local` checkpoint on synthetic pairs).

use grove_core::config::{Cadence, ExperimentConfig, TrainerConfig};
use grove_tasks::models::{EncoderConfig, BERT_ENCODER};
use grove_tasks::sentence_prediction::config::{SentenceFileType, SentencePredictionModelConfig};
use grove_tasks::sentence_prediction::{SentenceDataConfig, SentencePredictionConfig};

use crate::bert::{bert_optimization, bert_restrictions, local_encoder};

fn split(is_training: bool) -> SentenceDataConfig {
    SentenceDataConfig {
        is_training: Some(is_training),
        ..SentenceDataConfig::default()
    }
}

/// BERT-base with Model Garden's GLUE fine-tuning recipe (AdamW 3e-5, polynomial decay, 10%
/// warmup, batch 32, sequences of 128): set `task.init_checkpoint` (a pretraining model_dir,
/// or a Hugging Face BERT file with `init_checkpoint_format: huggingface_bert`), the data
/// `input_path`s, `vocab_file` and `text_fields`.
pub fn bert_sentence_prediction() -> ExperimentConfig {
    let train_steps = 10_000;
    ExperimentConfig {
        task: Box::new(SentencePredictionConfig {
            train_data: split(true),
            validation_data: split(false),
            ..SentencePredictionConfig::default()
        }),
        trainer: TrainerConfig {
            train_steps,
            validation_interval: Cadence::Steps(1000),
            checkpoint_interval: Cadence::Steps(1000),
            validation_steps: -1,
            optimizer_config: bert_optimization(3e-5, train_steps, train_steps / 10),
            ..TrainerConfig::default()
        },
        runtime: Default::default(),
        restrictions: bert_restrictions(),
        references: Default::default(),
    }
}

/// `bert/local`'s encoder classifying synthetic pairs by whether B continues A: give
/// `task.init_checkpoint=<a bert/local model_dir>` to fine-tune from its pretraining (the
/// encoder and, through `init_cls_pooler`, the next-sentence head's dense layer); 300 steps,
/// seconds on a CPU.
pub fn bert_sentence_prediction_local() -> ExperimentConfig {
    let train_steps = 300;
    let data = |is_training: bool, num_examples: usize| SentenceDataConfig {
        file_type: SentenceFileType::Synthetic,
        global_batch_size: 32,
        seq_length: 64,
        num_examples,
        ..split(is_training)
    };
    ExperimentConfig {
        task: Box::new(SentencePredictionConfig {
            init_cls_pooler: true,
            model: SentencePredictionModelConfig {
                encoder: EncoderConfig::new(BERT_ENCODER, local_encoder()),
                dropout_rate: 0.0,
                ..SentencePredictionModelConfig::default()
            },
            train_data: data(true, 4096),
            validation_data: data(false, 512),
            ..SentencePredictionConfig::default()
        }),
        trainer: TrainerConfig {
            train_steps,
            steps_per_loop: 50,
            summary_interval: Cadence::Steps(50),
            validation_interval: Cadence::Steps(100),
            checkpoint_interval: Cadence::Steps(100),
            validation_steps: -1,
            max_to_keep: 3,
            optimizer_config: bert_optimization(1e-3, train_steps, 30),
            ..TrainerConfig::default()
        },
        runtime: Default::default(),
        restrictions: bert_restrictions(),
        references: Default::default(),
    }
}
