//! The BERT pretraining model (Model Garden's `BertPretrainerV2`): encoder, masked-LM head with
//! a decoder tied to the word embeddings, and optional classification heads.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;

use super::bert::BertEncoder;
use super::config::{BertPretrainerConfig, ClsHeadConfig};
use super::layers::{dropout_opt, glorot_uniform_init, Dense, LayerNorm};

/// Model Garden's `MaskedLM` head: dense + GELU + LayerNorm, then logits against the (tied)
/// word embedding table plus `output_bias`.
#[derive(Debug, Clone)]
pub struct MaskedLmHead {
    dense: Dense,
    layer_norm: LayerNorm,
    output_bias: Tensor,
}

impl MaskedLmHead {
    /// Creates `dense.{weight,bias}` (`hidden → hidden`, weight from `N(0, initializer_range²)`),
    /// `layer_norm.{weight,bias}` and a zero `output_bias` `(vocab_size,)` under `vb`.
    pub fn new(
        hidden_size: usize,
        vocab_size: usize,
        initializer_range: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            dense: Dense::normal(hidden_size, hidden_size, initializer_range, vb.pp("dense"))?,
            layer_norm: LayerNorm::new(hidden_size, LayerNorm::BERT_EPS, vb.pp("layer_norm"))?,
            output_bias: vb.get_with_hints(
                vocab_size,
                "output_bias",
                candle_nn::Init::Const(0.0),
            )?,
        })
    }

    /// Maps gathered hidden states `(N, H)` to logits `(N, vocab)` using `word_embeddings`
    /// `(vocab, H)` as the decoder weight.
    pub fn forward(&self, hidden: &Tensor, word_embeddings: &Tensor) -> Result<Tensor> {
        grove_kernels::linear(&self.transform(hidden)?, word_embeddings, &self.output_bias)
    }

    /// The cross-entropy of each row's logits (as [`MaskedLmHead::forward`] gives them)
    /// against `labels` `(N,)`, and each row's arg-max prediction (u32), in one fused op on the
    /// CPU that never keeps the `(N, vocab)` logits.
    pub fn losses(
        &self,
        hidden: &Tensor,
        word_embeddings: &Tensor,
        labels: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        grove_kernels::linear_cross_entropy(
            &self.transform(hidden)?,
            word_embeddings,
            &self.output_bias,
            labels,
        )
    }

    /// The head's dense + GELU + LayerNorm before the decoder.
    fn transform(&self, hidden: &Tensor) -> Result<Tensor> {
        self.layer_norm.forward(&self.dense.forward_gelu(hidden)?)
    }
}

/// Model Garden's `ClassificationHead`: reads one token of the sequence output, then
/// dense + tanh, dropout, and a projection to the classes.
#[derive(Debug, Clone)]
pub struct ClassificationHead {
    name: String,
    dense: Dense,
    out_proj: Dense,
    dropout_rate: f64,
    cls_token_idx: usize,
}

impl ClassificationHead {
    /// Creates `dense.{weight,bias}` (`hidden → inner_dim`) and `out_proj.{weight,bias}`
    /// (`inner_dim → num_classes`) under `vb`, with Keras' `glorot_uniform` weights as in
    /// Model Garden.
    pub fn new(cfg: &ClsHeadConfig, hidden_size: usize, vb: VarBuilder) -> Result<Self> {
        let dense = Dense::new(
            hidden_size,
            cfg.inner_dim,
            glorot_uniform_init(hidden_size, cfg.inner_dim),
            vb.pp("dense"),
        )?;
        let out_proj = Dense::new(
            cfg.inner_dim,
            cfg.num_classes,
            glorot_uniform_init(cfg.inner_dim, cfg.num_classes),
            vb.pp("out_proj"),
        )?;
        Ok(Self {
            name: cfg.name.clone(),
            dense,
            out_proj,
            dropout_rate: cfg.dropout_rate,
            cls_token_idx: cfg.cls_token_idx,
        })
    }

    /// The head's name (its variable prefix and the key of its logits).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Maps the sequence output `(B, S, H)` to logits `(B, num_classes)`.
    pub fn forward(
        &self,
        sequence_output: &Tensor,
        dropout: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        let token = sequence_output
            .narrow(1, self.cls_token_idx, 1)?
            .squeeze(1)?;
        let x = self.dense.forward(&token)?.tanh()?;
        let x = dropout_opt(&x, self.dropout_rate, dropout)?;
        self.out_proj.forward(&x)
    }
}

/// One batch for [`BertPretrainer::forward`].
#[derive(Debug, Clone)]
pub struct PretrainerInputs {
    /// Token ids `(B, S)`, u32.
    pub input_word_ids: Tensor,
    /// 1 for real tokens, 0 for padding, `(B, S)`, u32 or f32.
    pub input_mask: Tensor,
    /// Segment ids `(B, S)`, u32.
    pub input_type_ids: Tensor,
    /// Positions (within each sequence) whose tokens the MLM head predicts, `(B, P)`, u32.
    pub masked_lm_positions: Tensor,
}

/// What [`BertPretrainer::forward`] returns.
#[derive(Debug, Clone)]
pub struct PretrainerOutputs {
    /// MLM logits `(B * P, vocab_size)`, row `b * P + p` for `masked_lm_positions[b][p]`.
    pub mlm_logits: Tensor,
    /// Logits `(B, num_classes)` of each classification head, keyed by the head's name, in
    /// config order.
    pub cls_logits: Vec<(String, Tensor)>,
}

/// What [`BertPretrainer::forward_with_mlm_loss`] returns.
#[derive(Debug, Clone)]
pub struct PretrainerLosses {
    /// Cross-entropy of each masked position against its label, `(B * P,)`, rows as in
    /// [`PretrainerOutputs::mlm_logits`].
    pub mlm_losses: Tensor,
    /// Arg-max token of each masked position, `(B * P,)` u32 (no gradient).
    pub mlm_predictions: Tensor,
    /// As in [`PretrainerOutputs::cls_logits`].
    pub cls_logits: Vec<(String, Tensor)>,
}

/// Model Garden's `BertPretrainerV2`.
#[derive(Debug, Clone)]
pub struct BertPretrainer {
    encoder: BertEncoder,
    masked_lm: MaskedLmHead,
    cls_heads: Vec<ClassificationHead>,
}

impl BertPretrainer {
    /// Builds the encoder under `encoder`, the MLM head under `masked_lm` and each
    /// classification head under its `name`. Fails if `cfg` does not validate.
    pub fn new(cfg: &BertPretrainerConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate("model").map_err(candle_core::Error::msg)?;
        let bert = cfg.bert_encoder("model").map_err(candle_core::Error::msg)?;
        let encoder = BertEncoder::new(bert, vb.pp("encoder"))?;
        let masked_lm = MaskedLmHead::new(
            bert.hidden_size,
            bert.vocab_size,
            cfg.mlm_initializer_range,
            vb.pp("masked_lm"),
        )?;
        let cls_heads = cfg
            .cls_heads
            .iter()
            .map(|head| ClassificationHead::new(head, bert.hidden_size, vb.pp(&head.name)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            encoder,
            masked_lm,
            cls_heads,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertEncoder {
        &self.encoder
    }

    /// The classification heads, in config order.
    pub fn cls_heads(&self) -> &[ClassificationHead] {
        &self.cls_heads
    }

    /// Runs the encoder and every head. `dropout` is the seeded rng for dropout masks
    /// (training); `None` means inference. The masked positions are gathered from the
    /// flattened sequence output before the MLM head, so the head only sees `B * P` rows.
    pub fn forward(
        &self,
        inputs: &PretrainerInputs,
        mut dropout: Option<&mut StdRng>,
    ) -> Result<PretrainerOutputs> {
        let (sequence_output, gathered) = self.encode(inputs, dropout.as_deref_mut())?;
        let mlm_logits = self
            .masked_lm
            .forward(&gathered, self.encoder.word_embeddings())?;
        Ok(PretrainerOutputs {
            mlm_logits,
            cls_logits: self.classify(&sequence_output, dropout)?,
        })
    }

    /// [`BertPretrainer::forward`] with the MLM head ending in its loss against
    /// `masked_lm_ids` `(B * P,)`: the losses and predictions of every masked position
    /// instead of its logits, which are never kept (the largest tensor of a pretraining step).
    /// The same dropout masks are drawn as by `forward`.
    pub fn forward_with_mlm_loss(
        &self,
        inputs: &PretrainerInputs,
        masked_lm_ids: &Tensor,
        mut dropout: Option<&mut StdRng>,
    ) -> Result<PretrainerLosses> {
        let (sequence_output, gathered) = self.encode(inputs, dropout.as_deref_mut())?;
        let (mlm_losses, mlm_predictions) =
            self.masked_lm
                .losses(&gathered, self.encoder.word_embeddings(), masked_lm_ids)?;
        Ok(PretrainerLosses {
            mlm_losses,
            mlm_predictions,
            cls_logits: self.classify(&sequence_output, dropout)?,
        })
    }

    /// The encoder's sequence output `(B, S, H)` and its rows at the masked positions
    /// `(B * P, H)`.
    fn encode(
        &self,
        inputs: &PretrainerInputs,
        dropout: Option<&mut StdRng>,
    ) -> Result<(Tensor, Tensor)> {
        let sequence_output = self.encoder.forward(
            &inputs.input_word_ids,
            &inputs.input_mask,
            &inputs.input_type_ids,
            dropout,
        )?;
        let (batch, seq, hidden) = sequence_output.dims3()?;
        let positions = &inputs.masked_lm_positions;
        let (pos_batch, _) = positions.dims2()?;
        if pos_batch != batch {
            candle_core::bail!("masked_lm_positions has batch size {pos_batch}, expected {batch}");
        }
        let offsets: Vec<u32> = (0..batch).map(|b| (b * seq) as u32).collect();
        let offsets = Tensor::from_vec(offsets, (batch, 1), positions.device())?;
        let rows = positions
            .to_dtype(DType::U32)?
            .broadcast_add(&offsets)?
            .flatten_all()?;
        // The rows at the masked positions, gathered as embedding rows are looked up.
        let gathered =
            grove_kernels::embedding(&sequence_output.reshape((batch * seq, hidden))?, &rows)?;
        Ok((sequence_output, gathered))
    }

    /// The logits of every classification head, by name.
    fn classify(
        &self,
        sequence_output: &Tensor,
        mut dropout: Option<&mut StdRng>,
    ) -> Result<Vec<(String, Tensor)>> {
        self.cls_heads
            .iter()
            .map(|head| {
                let logits = head.forward(sequence_output, dropout.as_deref_mut())?;
                Ok((head.name().to_string(), logits))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::{BertEncoderConfig, EncoderConfig, BERT_ENCODER};
    use candle_core::Device;
    use candle_nn::VarMap;
    use rand::SeedableRng;

    fn config() -> BertPretrainerConfig {
        BertPretrainerConfig {
            encoder: EncoderConfig::new(
                BERT_ENCODER,
                BertEncoderConfig {
                    vocab_size: 40,
                    hidden_size: 8,
                    num_layers: 1,
                    num_attention_heads: 2,
                    intermediate_size: 16,
                    max_position_embeddings: 16,
                    ..BertEncoderConfig::default()
                },
            ),
            cls_heads: vec![ClsHeadConfig {
                inner_dim: 8,
                num_classes: 2,
                dropout_rate: 0.1,
                name: "next_sentence".into(),
                ..ClsHeadConfig::default()
            }],
            ..BertPretrainerConfig::default()
        }
    }

    fn build() -> Result<(VarMap, BertPretrainer)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = BertPretrainer::new(&config(), vb)?;
        Ok((varmap, model))
    }

    fn inputs() -> Result<PretrainerInputs> {
        let dev = Device::Cpu;
        Ok(PretrainerInputs {
            input_word_ids: Tensor::new(&[[1u32, 3, 9, 2, 3, 2], [1, 5, 3, 2, 8, 2]], &dev)?,
            input_mask: Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], &dev)?,
            input_type_ids: Tensor::new(&[[0u32, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]], &dev)?,
            masked_lm_positions: Tensor::new(&[[1u32, 4, 0], [2, 0, 0]], &dev)?,
        })
    }

    #[test]
    fn parameter_names_of_the_heads() -> Result<()> {
        let (varmap, _) = build()?;
        let data = varmap.data().lock().unwrap();
        let mut heads: Vec<&str> = data
            .keys()
            .map(String::as_str)
            .filter(|n| !n.starts_with("encoder."))
            .collect();
        heads.sort();
        assert_eq!(
            heads,
            [
                "masked_lm.dense.bias",
                "masked_lm.dense.weight",
                "masked_lm.layer_norm.bias",
                "masked_lm.layer_norm.weight",
                "masked_lm.output_bias",
                "next_sentence.dense.bias",
                "next_sentence.dense.weight",
                "next_sentence.out_proj.bias",
                "next_sentence.out_proj.weight",
            ]
        );
        assert!(data.contains_key("encoder.word_embeddings.weight"));
        assert_eq!(data["masked_lm.output_bias"].dims(), &[40]);
        assert_eq!(data["next_sentence.out_proj.weight"].dims(), &[2, 8]);
        Ok(())
    }

    #[test]
    fn output_shapes_and_gathered_rows() -> Result<()> {
        let (_, model) = build()?;
        let inputs = inputs()?;
        let out = model.forward(&inputs, None)?;
        assert_eq!(out.mlm_logits.dims(), &[6, 40]);
        assert_eq!(out.cls_logits.len(), 1);
        assert_eq!(out.cls_logits[0].0, "next_sentence");
        assert_eq!(out.cls_logits[0].1.dims(), &[2, 2]);

        // Row b*P+p of the MLM logits is the head applied to sequence_output[b, pos[b][p]].
        let seq = model.encoder().forward(
            &inputs.input_word_ids,
            &inputs.input_mask,
            &inputs.input_type_ids,
            None,
        )?;
        let direct = model.masked_lm.forward(
            &seq.get(1)?.get(2)?.unsqueeze(0)?,
            model.encoder().word_embeddings(),
        )?;
        let row = out.mlm_logits.get(3)?.to_vec1::<f32>()?;
        for (a, b) in row.iter().zip(direct.get(0)?.to_vec1::<f32>()?) {
            assert!((a - b).abs() < 1e-5);
        }
        let again = model.forward(&inputs, None)?;
        assert_eq!(
            again.mlm_logits.to_vec2::<f32>()?,
            out.mlm_logits.to_vec2::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn gradient_reaches_every_parameter() -> Result<()> {
        let (varmap, model) = build()?;
        let inputs = inputs()?;
        let mut rng = StdRng::seed_from_u64(5);
        let out = model.forward(&inputs, Some(&mut rng))?;
        let labels = Tensor::new(&[4u32, 9, 3, 8, 1, 1], &Device::Cpu)?;
        let mlm = candle_nn::loss::cross_entropy(&out.mlm_logits, &labels)?;
        let nsp_labels = Tensor::new(&[0u32, 1], &Device::Cpu)?;
        let nsp = candle_nn::loss::cross_entropy(&out.cls_logits[0].1, &nsp_labels)?;
        let grads = (mlm + nsp)?.backward()?;
        for (name, var) in varmap.data().lock().unwrap().iter() {
            assert!(
                grads.get(var.as_tensor()).is_some(),
                "no gradient for {name}"
            );
        }
        Ok(())
    }

    #[test]
    fn rejects_invalid_config() {
        let mut cfg = config();
        cfg.cls_heads[0].name = "encoder".into();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let err = BertPretrainer::new(&cfg, vb).unwrap_err().to_string();
        assert!(err.contains("model.cls_heads[0].name"), "{err}");
    }
}
