//! BERT experiments: `bert/local` (a tiny model that trains on the CPU in seconds),
//! `bert/pretraining` (Model Garden's BERT-base recipe) and their progressive (layer stacking)
//! variants `bert/progressive_local` and `bert/progressive`.

use grove_core::config::optimization::{AdamWConfig, OptimizationConfig, OptimizerConfig};
use grove_core::config::{
    Cadence, ExperimentConfig, ProgressiveConfig, StackingStageConfig, TrainerConfig,
};
use grove_tasks::masked_lm::config::MaskedLmFileType;
use grove_tasks::masked_lm::progressive::with_polynomial_schedule;
use grove_tasks::masked_lm::{MaskedLmConfig, MaskedLmDataConfig};
use grove_tasks::models::{
    BertEncoderConfig, BertPretrainerConfig, ClsHeadConfig, EncoderConfig, BERT_ENCODER,
};

/// Model Garden's BERT optimization: AdamW (weight decay 0.01, not on LayerNorm and biases),
/// polynomial decay from `learning_rate` to 0 over `train_steps`, polynomial warmup.
pub(crate) fn bert_optimization(
    learning_rate: f64,
    train_steps: u64,
    warmup_steps: u64,
) -> OptimizationConfig {
    let adamw = OptimizationConfig {
        optimizer: OptimizerConfig::from(AdamWConfig {
            weight_decay_rate: 0.01,
            ..AdamWConfig::default()
        }),
        ..OptimizationConfig::default()
    };
    with_polynomial_schedule(adamw, learning_rate, 0.0, train_steps, warmup_steps)
}

/// Model Garden's restrictions of its BERT experiments: both splits say whether they train.
pub(crate) fn bert_restrictions() -> Vec<String> {
    vec![
        "task.train_data.is_training != None".to_string(),
        "task.validation_data.is_training != None".to_string(),
    ]
}

fn next_sentence_head(inner_dim: usize) -> ClsHeadConfig {
    ClsHeadConfig {
        inner_dim,
        num_classes: 2,
        dropout_rate: 0.1,
        name: "next_sentence".to_string(),
        ..ClsHeadConfig::default()
    }
}

/// `bert/pretraining`: BERT-base (12 layers, hidden 768) with Model Garden's pretraining
/// schedule. Set `task.train_data.input_path` (e.g. `synthetic` or `dummy`).
pub fn bert_pretraining() -> ExperimentConfig {
    let train_steps = 1_000_000;
    let data = |is_training: bool| MaskedLmDataConfig {
        is_training: Some(is_training),
        ..MaskedLmDataConfig::default()
    };
    ExperimentConfig {
        task: Box::new(MaskedLmConfig {
            model: BertPretrainerConfig {
                cls_heads: vec![next_sentence_head(768)],
                ..BertPretrainerConfig::default()
            },
            train_data: data(true),
            validation_data: data(false),
            ..MaskedLmConfig::default()
        }),
        trainer: TrainerConfig {
            train_steps,
            optimizer_config: bert_optimization(1e-4, train_steps, 10_000),
            ..TrainerConfig::default()
        },
        runtime: Default::default(),
        restrictions: bert_restrictions(),
        references: Default::default(),
    }
}

/// The encoder of `bert/local` (and of the local fine-tuning experiments that start from it).
pub(crate) fn local_encoder() -> BertEncoderConfig {
    BertEncoderConfig {
        vocab_size: 512,
        hidden_size: 64,
        num_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 256,
        max_position_embeddings: 64,
        dropout_rate: 0.0,
        attention_dropout_rate: 0.0,
        initializer_range: 0.1,
        ..BertEncoderConfig::default()
    }
}

/// `bert/local`: a 2-layer, hidden-64 BERT on the seeded synthetic corpus; trains to a
/// clearly falling loss (less than half the first) on two CPU cores in well under a minute,
/// with no download. Unlike BERT-base it initialises with a wider normal (0.1, about
/// 1/sqrt(hidden)), uses a larger learning rate and no dropout, so a few hundred steps get past
/// BERT's early plateau.
pub fn bert_local() -> ExperimentConfig {
    local_masked_lm(local_encoder())
}

/// bert/local's data, heads and trainer around `encoder`.
fn local_masked_lm(encoder: BertEncoderConfig) -> ExperimentConfig {
    let train_steps = 400;
    let data = |is_training: bool, num_examples: usize| MaskedLmDataConfig {
        file_type: MaskedLmFileType::Synthetic,
        global_batch_size: 16,
        is_training: Some(is_training),
        drop_remainder: is_training,
        seq_length: 64,
        max_predictions_per_seq: 10,
        num_examples,
        ..MaskedLmDataConfig::default()
    };
    let mut model = BertPretrainerConfig {
        cls_heads: vec![next_sentence_head(64)],
        mlm_initializer_range: 0.1,
        ..BertPretrainerConfig::default()
    };
    model.encoder = EncoderConfig::new(BERT_ENCODER, encoder);
    ExperimentConfig {
        task: Box::new(MaskedLmConfig {
            model,
            train_data: data(true, 8192),
            validation_data: data(false, 256),
            ..MaskedLmConfig::default()
        }),
        trainer: TrainerConfig {
            train_steps,
            steps_per_loop: 20,
            summary_interval: Cadence::Steps(20),
            checkpoint_interval: Cadence::Steps(100),
            max_to_keep: 3,
            validation_steps: -1,
            validation_interval: Cadence::Steps(100),
            optimizer_config: bert_optimization(3e-3, train_steps, 40),
            ..TrainerConfig::default()
        },
        runtime: Default::default(),
        restrictions: bert_restrictions(),
        references: Default::default(),
    }
}

/// A stacking stage growing to `num_layers`, with Model Garden's per-stage schedule shape.
fn stage(
    num_layers: usize,
    num_steps: u64,
    warmup_steps: u64,
    (initial_learning_rate, end_learning_rate): (f64, f64),
) -> StackingStageConfig {
    StackingStageConfig {
        num_layers,
        num_steps,
        warmup_steps,
        initial_learning_rate,
        end_learning_rate,
        decay_steps: num_steps,
    }
}

/// `bert/progressive`: BERT-base pretraining grown by stacking 3 → 6 → 12 layers over
/// Model Garden's default 112.5k + 112.5k + 450k steps.
pub fn bert_progressive() -> ExperimentConfig {
    progressive(
        bert_pretraining(),
        vec![
            stage(3, 112_500, 10_000, (1e-4, 1e-4)),
            stage(6, 112_500, 10_000, (1e-4, 1e-4)),
            stage(12, 450_000, 10_000, (1e-4, 0.0)),
        ],
    )
}

/// `bert/progressive_local`: `bert/local`'s tiny BERT and synthetic data grown by stacking
/// 1 → 2 → 4 layers over 100 + 100 + 200 steps (seconds on a CPU). The encoder uses ReZero
/// blocks, whose duplicated layers restart with a zero residual scale: each growth keeps the
/// model's function, so the loss goes on falling across the stage switches (post-LayerNorm
/// layers copied by stacking change it, and the loss jumps). ReZero learns well with a larger
/// learning rate than bert/local's.
pub fn bert_progressive_local() -> ExperimentConfig {
    let encoder = BertEncoderConfig {
        use_rezero: true,
        ..local_encoder()
    };
    progressive(
        local_masked_lm(encoder),
        vec![
            stage(1, 100, 20, (1e-2, 3e-3)),
            stage(2, 100, 20, (1e-2, 3e-3)),
            stage(4, 200, 20, (1e-2, 0.0)),
        ],
    )
}

/// `config` trained progressively through `stages`, to the end of the last one.
fn progressive(mut config: ExperimentConfig, stages: Vec<StackingStageConfig>) -> ExperimentConfig {
    config.trainer.train_steps = stages.iter().map(|s| s.num_steps).sum();
    config.trainer.progressive = Some(ProgressiveConfig { stage_list: stages });
    config
}
