//! The two step workloads as Grove experiments: registered experiments with the overrides
//! that give the shapes the peers in `benches/peers/` use (reference/perf_anchors.md).

use grove_core::config::{resolve, ConfigSources, ExperimentConfig};
use grove_core::registry::get_experiment;

/// A step workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// MLP 784-512-512-10, batch 128, softmax cross-entropy, AdamW.
    Mlp,
    /// BERT-mini masked LM: vocab 8192, hidden 256, 4 layers, 4 heads, FFN 1024, seq 128,
    /// batch 16, 19 masked positions per sequence, tied decoder, AdamW.
    Bert,
}

/// AdamW with weight decay 0.01 at a constant learning rate of 1e-3.
const ADAMW: [&str; 4] = [
    "trainer.optimizer_config.optimizer.type=adamw",
    "trainer.optimizer_config.optimizer.adamw.weight_decay_rate=0.01",
    "trainer.optimizer_config.learning_rate.type=constant",
    "trainer.optimizer_config.learning_rate.constant.learning_rate=0.001",
];

impl Workload {
    /// The registered experiment the workload starts from.
    pub fn experiment(self) -> &'static str {
        match self {
            Workload::Mlp => "image_classification/mnist_local",
            Workload::Bert => "bert/local",
        }
    }

    /// The overrides (`key=value`) that turn [`Workload::experiment`] into the workload.
    pub fn overrides(self) -> Vec<&'static str> {
        let shape: &[&str] = match self {
            Workload::Mlp => &[
                "task.model.backbone.mlp.hidden_sizes=[512, 512]",
                "task.train_data.global_batch_size=128",
            ],
            Workload::Bert => &[
                "task.model.encoder.bert.vocab_size=8192",
                "task.model.encoder.bert.hidden_size=256",
                "task.model.encoder.bert.num_layers=4",
                "task.model.encoder.bert.num_attention_heads=4",
                "task.model.encoder.bert.intermediate_size=1024",
                "task.model.encoder.bert.max_position_embeddings=128",
                "task.model.encoder.bert.initializer_range=0.02",
                "task.model.mlm_initializer_range=0.02",
                "task.model.cls_heads=[]",
                "task.train_data.use_next_sentence_label=false",
                "task.validation_data.use_next_sentence_label=false",
                "task.train_data.seq_length=128",
                "task.train_data.max_predictions_per_seq=19",
                "task.train_data.global_batch_size=16",
            ],
        };
        shape.iter().chain(ADAMW.iter()).copied().collect()
    }

    /// The resolved experiment config of the workload, with `extra` overrides (`key=value`)
    /// applied after the workload's own.
    pub fn config(self, extra: &[String]) -> anyhow::Result<ExperimentConfig> {
        grove_experiments::register()?;
        let sources = ConfigSources {
            trailing_overrides: self
                .overrides()
                .iter()
                .map(|s| s.to_string())
                .chain(extra.iter().cloned())
                .collect(),
            ..ConfigSources::default()
        };
        Ok(resolve(&get_experiment(self.experiment())?, &sources)?)
    }
}
