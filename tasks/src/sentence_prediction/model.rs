//! The sentence classifier: a BERT encoder (`encoder.*`) and Model Garden's classification
//! head on `[CLS]` (`sentence_prediction.*`: dense + tanh, the "pooler", dropout, projection).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::config::SentencePredictionModelConfig;
use crate::models::{BertEncoder, BertEncoderConfig, ClassificationHead, ClsHeadConfig};

/// The variable prefix (and name) of the classification head.
pub const HEAD_NAME: &str = "sentence_prediction";

/// A BERT encoder with a classification head.
pub struct SentenceClassifier {
    encoder: BertEncoder,
    head: ClassificationHead,
}

impl SentenceClassifier {
    /// Builds the encoder of `bert` and a head with `cfg.num_classes` outputs under `vb`.
    pub fn new(
        cfg: &SentencePredictionModelConfig,
        bert: &BertEncoderConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        let head = ClsHeadConfig {
            inner_dim: bert.hidden_size,
            num_classes: cfg.num_classes,
            dropout_rate: cfg.dropout_rate,
            name: HEAD_NAME.to_string(),
            ..ClsHeadConfig::default()
        };
        Ok(SentenceClassifier {
            encoder: BertEncoder::new(bert, vb.pp("encoder"))?,
            head: ClassificationHead::new(&head, bert.hidden_size, vb.pp(HEAD_NAME))?,
        })
    }

    /// Logits `(B, num_classes)`; `dropout` is the step's stream in training.
    pub fn forward(
        &self,
        input_word_ids: &Tensor,
        input_mask: &Tensor,
        input_type_ids: &Tensor,
        mut dropout: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        let sequence = self.encoder.forward(
            input_word_ids,
            input_mask,
            input_type_ids,
            dropout.as_deref_mut(),
        )?;
        self.head.forward(&sequence, dropout)
    }
}
