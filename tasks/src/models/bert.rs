//! The BERT encoder: Model Garden's post-LayerNorm `BertEncoder` (without the pooler).
//!
//! Embeddings (word + position + type) go through a LayerNorm and dropout, then through
//! `num_layers` transformer blocks. Each block is self-attention (additive padding mask,
//! query scaled by `1/sqrt(head_size)`, dropout on the probabilities), an output dense,
//! dropout, residual and LayerNorm, then a GELU feed-forward block with dropout, residual and
//! LayerNorm. With `use_rezero` the two residuals are `x + alpha * sublayer(x)` instead, with
//! one learned scalar per layer and no LayerNorm (Model Garden's `ReZeroTransformer`). Hidden
//! states travel as a `(batch * seq, hidden)` matrix between blocks so every dense layer is one
//! plain matmul.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::rngs::StdRng;

use super::config::BertEncoderConfig;
use super::layers::{dropout_opt, Dense, Embedding, LayerNorm};

/// Additive attention bias for padded keys: `(1 - mask) * -10000`, shaped `(B, 1, 1, S)` so it
/// broadcasts over heads and query positions.
fn attention_bias(input_mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (batch, seq) = input_mask.dims2()?;
    input_mask
        .to_dtype(DType::F32)?
        .affine(10000.0, -10000.0)?
        .to_dtype(dtype)?
        .reshape((batch, 1, 1, seq))
}

/// Name of a ReZero layer's residual scale, under `layer.<i>`.
pub const REZERO_ALPHA: &str = "rezero_alpha";

/// How a block joins a sub-layer's output `y` to the sub-layer's input `x`.
#[derive(Debug, Clone)]
enum Residual {
    /// `LayerNorm(x + y)`: BERT's post-LayerNorm.
    PostNorm(LayerNorm),
    /// `x + alpha * y` with the layer's learned scalar `alpha` (shape `(1,)`).
    ReZero(Tensor),
}

impl Residual {
    /// The post-LayerNorm residual with its norm's variables under `vb`.
    fn post_norm(hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self::PostNorm(LayerNorm::new(
            hidden,
            LayerNorm::BERT_EPS,
            vb,
        )?))
    }

    fn forward(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        match self {
            Self::PostNorm(norm) => norm.forward_residual(x, y),
            Self::ReZero(alpha) => x + y.broadcast_mul(alpha)?,
        }
    }
}

/// One transformer block: Model Garden's post-LayerNorm `TransformerEncoderBlock`, or its
/// `ReZeroTransformer`.
#[derive(Debug, Clone)]
struct TransformerBlock {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_output: Dense,
    attention_residual: Residual,
    intermediate: Dense,
    output: Dense,
    output_residual: Residual,
    num_heads: usize,
    head_size: usize,
    dropout_rate: f64,
    attention_dropout_rate: f64,
}

impl TransformerBlock {
    /// Creates the block's variables under `vb` (which is `layer.{i}`).
    fn new(cfg: &BertEncoderConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        let attn = vb.pp("attention");
        let (attention_residual, output_residual) = if cfg.use_rezero {
            let alpha = vb.get_with_hints(1, REZERO_ALPHA, Init::Const(0.0))?;
            (Residual::ReZero(alpha.clone()), Residual::ReZero(alpha))
        } else {
            (
                Residual::post_norm(h, vb.pp("attention_layer_norm"))?,
                Residual::post_norm(h, vb.pp("output_layer_norm"))?,
            )
        };
        Ok(Self {
            query: Dense::normal(h, h, std, attn.pp("query"))?,
            key: Dense::normal(h, h, std, attn.pp("key"))?,
            value: Dense::normal(h, h, std, attn.pp("value"))?,
            attention_output: Dense::normal(h, h, std, attn.pp("output"))?,
            attention_residual,
            intermediate: Dense::normal(h, cfg.intermediate_size, std, vb.pp("intermediate"))?,
            output: Dense::normal(cfg.intermediate_size, h, std, vb.pp("output"))?,
            output_residual,
            num_heads: cfg.num_attention_heads,
            head_size: cfg.head_size(),
            dropout_rate: cfg.dropout_rate,
            attention_dropout_rate: cfg.attention_dropout_rate,
        })
    }

    /// Attention with dropout on the probabilities, from its separate ops (the fused
    /// [`grove_kernels::self_attention`] keeps no probabilities to drop).
    fn attention_with_dropout(
        &self,
        x: &Tensor,
        bias: &Tensor,
        (batch, seq, heads): (usize, usize, usize),
        rng: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        // (B*S, H) -> (B, NH, S, DH): batched matmul needs the heads laid out contiguously.
        let split_heads = |t: &Tensor| grove_kernels::split_heads(t, batch, seq, heads);
        let scale = 1.0 / (self.head_size as f64).sqrt();
        let (q, k, v) = (
            self.query.forward(x)?,
            self.key.forward(x)?,
            self.value.forward(x)?,
        );
        let scores = grove_kernels::matmul_nt(&split_heads(&q)?, &split_heads(&k)?)?;
        let probs = grove_kernels::masked_softmax(&scores, bias, scale)?;
        let probs = dropout_opt(&probs, self.attention_dropout_rate, rng)?;
        // (B, NH, S, DH) -> (B*S, H).
        grove_kernels::merge_heads(&probs.matmul(&split_heads(&v)?)?)
    }

    /// Runs the block on `x` `(B*S, H)` with the attention bias `(B, 1, 1, S)`.
    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        (batch, seq): (usize, usize),
        mut rng: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        let scale = 1.0 / (self.head_size as f64).sqrt();
        let sizes = (batch, seq, self.num_heads);
        let dropping = rng.is_some() && self.attention_dropout_rate > 0.0;
        let context = if dropping {
            self.attention_with_dropout(x, bias, sizes, rng.as_deref_mut())?
        } else {
            // The q, k, v projections and softmax(q·kᵀ / sqrt(DH) + mask bias) · v per head,
            // in one op.
            let projections = [&self.query, &self.key, &self.value].map(|d| (d.weight(), d.bias()));
            grove_kernels::self_attention(x, projections, bias, sizes, scale)?
        };
        // Without dropout between a sub-layer and its post-LayerNorm, the sub-layer's last
        // dense layer, the residual sum and the norm are one op.
        let dropping_hidden = rng.is_some() && self.dropout_rate > 0.0;
        let x = match (&self.attention_residual, dropping_hidden) {
            (Residual::PostNorm(norm), false) => self
                .attention_output
                .forward_add_layer_norm(&context, x, norm)?,
            _ => {
                let attention = self.attention_output.forward(&context)?;
                let attention = dropout_opt(&attention, self.dropout_rate, rng.as_deref_mut())?;
                self.attention_residual.forward(x, &attention)?
            }
        };
        match (&self.output_residual, dropping_hidden) {
            (Residual::PostNorm(norm), false) => {
                self.output
                    .forward_feed_forward_add_layer_norm(&self.intermediate, &x, norm)
            }
            _ => {
                let out = self.output.forward_feed_forward(&self.intermediate, &x)?;
                let out = dropout_opt(&out, self.dropout_rate, rng)?;
                self.output_residual.forward(&x, &out)
            }
        }
    }
}

/// Model Garden's `BertEncoder` (post-LayerNorm transformer), returning the sequence output.
#[derive(Debug, Clone)]
pub struct BertEncoder {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    type_embeddings: Embedding,
    embeddings_layer_norm: LayerNorm,
    layers: Vec<TransformerBlock>,
    hidden_size: usize,
    dropout_rate: f64,
}

impl BertEncoder {
    /// Creates the encoder's variables under `vb` (the caller's prefix, e.g. `encoder`):
    /// `word_embeddings.weight`, `position_embeddings.weight`, `type_embeddings.weight`,
    /// `embeddings_layer_norm.{weight,bias}` and, for each layer `i`,
    /// `layer.{i}.attention.{query,key,value,output}.{weight,bias}`,
    /// `layer.{i}.attention_layer_norm.{weight,bias}`, `layer.{i}.intermediate.{weight,bias}`,
    /// `layer.{i}.output.{weight,bias}` and `layer.{i}.output_layer_norm.{weight,bias}`; with
    /// `use_rezero`, `layer.{i}.rezero_alpha` `(1,)` replaces the two layer norms.
    ///
    /// Fails if `cfg` does not validate.
    pub fn new(cfg: &BertEncoderConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate("encoder.bert")
            .map_err(candle_core::Error::msg)?;
        let (h, std) = (cfg.hidden_size, cfg.initializer_range);
        let word_embeddings = Embedding::new(cfg.vocab_size, h, std, vb.pp("word_embeddings"))?;
        let position_embeddings = Embedding::new(
            cfg.max_position_embeddings,
            h,
            std,
            vb.pp("position_embeddings"),
        )?;
        let type_embeddings =
            Embedding::new(cfg.type_vocab_size, h, std, vb.pp("type_embeddings"))?;
        let embeddings_layer_norm =
            LayerNorm::new(h, LayerNorm::BERT_EPS, vb.pp("embeddings_layer_norm"))?;
        let layers = (0..cfg.num_layers)
            .map(|i| TransformerBlock::new(cfg, vb.pp("layer").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings,
            position_embeddings,
            type_embeddings,
            embeddings_layer_norm,
            layers,
            hidden_size: h,
            dropout_rate: cfg.dropout_rate,
        })
    }

    /// The word embedding table `(vocab_size, hidden_size)`, shared with a tied MLM decoder.
    pub fn word_embeddings(&self) -> &Tensor {
        self.word_embeddings.embeddings()
    }

    /// Width of the sequence output.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Encodes a batch and returns the sequence output `(B, S, hidden_size)`.
    ///
    /// `input_word_ids` and `input_type_ids` are `(B, S)` integer ids; `input_mask` is `(B, S)`
    /// (u32 or f32), 1 for real tokens and 0 for padding: padded keys get a -10000 attention
    /// bias. `dropout` is the seeded rng for dropout masks (training); `None` means inference,
    /// with no dropout and a deterministic result.
    pub fn forward(
        &self,
        input_word_ids: &Tensor,
        input_mask: &Tensor,
        input_type_ids: &Tensor,
        mut dropout: Option<&mut StdRng>,
    ) -> Result<Tensor> {
        let (batch, seq) = input_word_ids.dims2()?;
        for (name, t) in [
            ("input_mask", input_mask),
            ("input_type_ids", input_type_ids),
        ] {
            if t.dims() != [batch, seq] {
                candle_core::bail!(
                    "{name} has shape {:?}, expected input_word_ids' shape {:?}",
                    t.dims(),
                    [batch, seq]
                );
            }
        }
        let table = self.position_embeddings.embeddings();
        let max_positions = table.dim(0)?;
        if seq > max_positions {
            candle_core::bail!(
                "sequence length {seq} exceeds max_position_embeddings {max_positions}"
            );
        }
        // Item b's token s is at position s.
        let positions: Vec<u32> = (0..batch * seq).map(|i| (i % seq) as u32).collect();
        let positions = Tensor::from_vec(positions, batch * seq, input_word_ids.device())?;
        let embeddings = grove_kernels::embedding_sum([
            (
                self.word_embeddings.embeddings(),
                &input_word_ids.flatten_all()?,
            ),
            (table, &positions),
            (
                self.type_embeddings.embeddings(),
                &input_type_ids.flatten_all()?,
            ),
        ])?;
        let embeddings = self.embeddings_layer_norm.forward(&embeddings)?;
        let mut x = dropout_opt(&embeddings, self.dropout_rate, dropout.as_deref_mut())?;

        let bias = attention_bias(input_mask, x.dtype())?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, (batch, seq), dropout.as_deref_mut())?;
        }
        x.reshape((batch, seq, self.hidden_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;
    use rand::SeedableRng;

    fn small_config() -> BertEncoderConfig {
        BertEncoderConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 12,
            ..BertEncoderConfig::default()
        }
    }

    fn build(cfg: &BertEncoderConfig) -> Result<(VarMap, BertEncoder)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let encoder = BertEncoder::new(cfg, vb.pp("encoder"))?;
        Ok((varmap, encoder))
    }

    fn batch() -> Result<(Tensor, Tensor, Tensor)> {
        let dev = Device::Cpu;
        let ids = Tensor::new(
            &[[1u32, 7, 9, 2, 11, 2, 0, 0], [1, 5, 6, 8, 2, 13, 14, 2]],
            &dev,
        )?;
        let mask = Tensor::new(
            &[[1u32, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]],
            &dev,
        )?;
        let types = Tensor::new(
            &[[0u32, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]],
            &dev,
        )?;
        Ok((ids, mask, types))
    }

    #[test]
    fn parameter_names_follow_model_garden_layout() -> Result<()> {
        let (varmap, _) = build(&small_config())?;
        let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        let mut expected: Vec<String> = [
            "word_embeddings.weight",
            "position_embeddings.weight",
            "type_embeddings.weight",
            "embeddings_layer_norm.weight",
            "embeddings_layer_norm.bias",
        ]
        .iter()
        .map(|n| format!("encoder.{n}"))
        .collect();
        for i in 0..2 {
            for part in [
                "attention.query",
                "attention.key",
                "attention.value",
                "attention.output",
                "attention_layer_norm",
                "intermediate",
                "output",
                "output_layer_norm",
            ] {
                for p in ["weight", "bias"] {
                    expected.push(format!("encoder.layer.{i}.{part}.{p}"));
                }
            }
        }
        expected.sort();
        assert_eq!(names, expected);
        let data = varmap.data().lock().unwrap();
        assert_eq!(data["encoder.word_embeddings.weight"].dims(), &[50, 16]);
        assert_eq!(data["encoder.position_embeddings.weight"].dims(), &[12, 16]);
        assert_eq!(
            data["encoder.layer.1.intermediate.weight"].dims(),
            &[32, 16]
        );
        assert_eq!(data["encoder.layer.1.output.weight"].dims(), &[16, 32]);
        Ok(())
    }

    #[test]
    fn output_shape_and_inference_is_deterministic() -> Result<()> {
        let (_, encoder) = build(&small_config())?;
        let (ids, mask, types) = batch()?;
        let a = encoder.forward(&ids, &mask, &types, None)?;
        let b = encoder.forward(&ids, &mask, &types, None)?;
        assert_eq!(a.dims(), &[2, 8, 16]);
        assert_eq!(a.to_vec3::<f32>()?, b.to_vec3::<f32>()?);

        let mut rng = StdRng::seed_from_u64(3);
        let c = encoder.forward(&ids, &mask, &types, Some(&mut rng))?;
        let mut rng = StdRng::seed_from_u64(3);
        let d = encoder.forward(&ids, &mask, &types, Some(&mut rng))?;
        assert_eq!(c.to_vec3::<f32>()?, d.to_vec3::<f32>()?);
        assert_ne!(c.to_vec3::<f32>()?, a.to_vec3::<f32>()?);
        Ok(())
    }

    #[test]
    fn padded_tokens_do_not_change_real_outputs() -> Result<()> {
        let (_, encoder) = build(&small_config())?;
        let (ids, mask, types) = batch()?;
        let ids_f32_mask = mask.to_dtype(DType::F32)?;
        let a = encoder.forward(&ids, &mask, &types, None)?;
        let changed = Tensor::new(
            &[[1u32, 7, 9, 2, 11, 2, 42, 17], [1, 5, 6, 8, 2, 13, 14, 2]],
            &Device::Cpu,
        )?;
        let b = encoder.forward(&changed, &ids_f32_mask, &types, None)?;
        let real_a = a.get(0)?.narrow(0, 0, 6)?.to_vec2::<f32>()?;
        let real_b = b.get(0)?.narrow(0, 0, 6)?.to_vec2::<f32>()?;
        for (ra, rb) in real_a.iter().flatten().zip(real_b.iter().flatten()) {
            assert!((ra - rb).abs() < 1e-5, "{ra} vs {rb}");
        }
        // Without the mask the change would be visible.
        let full = Tensor::ones((2, 8), DType::U32, &Device::Cpu)?;
        let c = encoder.forward(&ids, &full, &types, None)?;
        let d = encoder.forward(&changed, &full, &types, None)?;
        let diff = (c.get(0)?.narrow(0, 0, 6)? - d.get(0)?.narrow(0, 0, 6)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff > 1e-4, "unmasked change had no effect: {diff}");
        Ok(())
    }

    fn rezero_config() -> BertEncoderConfig {
        BertEncoderConfig {
            use_rezero: true,
            ..small_config()
        }
    }

    #[test]
    fn rezero_layers_have_one_scale_and_start_as_the_identity() -> Result<()> {
        let (varmap, encoder) = build(&rezero_config())?;
        let data = varmap.data().lock().unwrap();
        let layer_vars: Vec<&String> = data.keys().filter(|n| n.contains(".layer.1.")).collect();
        assert!(
            layer_vars.iter().all(|n| !n.contains("layer_norm")),
            "{layer_vars:?}"
        );
        assert_eq!(layer_vars.len(), 13, "{layer_vars:?}");
        let alpha = &data["encoder.layer.1.rezero_alpha"];
        assert_eq!(alpha.as_tensor().to_vec1::<f32>()?, [0.0]);

        let (ids, mask, types) = batch()?;
        let before = encoder
            .forward(&ids, &mask, &types, None)?
            .to_vec3::<f32>()?;
        let intermediate = &data["encoder.layer.0.intermediate.weight"];
        intermediate.set(&(intermediate.as_tensor() * 3.0)?)?;
        let after = encoder
            .forward(&ids, &mask, &types, None)?
            .to_vec3::<f32>()?;
        assert_eq!(
            before, after,
            "a layer with a zero scale passes its input through"
        );
        data["encoder.layer.0.rezero_alpha"].set(&Tensor::new(&[0.5f32], &Device::Cpu)?)?;
        let scaled = encoder
            .forward(&ids, &mask, &types, None)?
            .to_vec3::<f32>()?;
        assert_ne!(before, scaled);
        Ok(())
    }

    #[test]
    fn gradient_reaches_every_parameter() -> Result<()> {
        for config in [small_config(), rezero_config()] {
            gradient_reaches_every_parameter_of(&config)?;
        }
        Ok(())
    }

    fn gradient_reaches_every_parameter_of(config: &BertEncoderConfig) -> Result<()> {
        let (varmap, encoder) = build(config)?;
        let (ids, mask, types) = batch()?;
        let mut rng = StdRng::seed_from_u64(11);
        let out = encoder.forward(&ids, &mask, &types, Some(&mut rng))?;
        let weights = Tensor::arange(0f32, 16.0, &Device::Cpu)?;
        let loss = out.broadcast_mul(&weights)?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let grad = grads.get(var.as_tensor());
            assert!(grad.is_some(), "no gradient for {name}");
            let norm = grad.unwrap().sqr()?.sum_all()?.to_scalar::<f32>()?;
            assert!(norm.is_finite(), "non-finite gradient for {name}");
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_shapes_and_configs() -> Result<()> {
        let (_, encoder) = build(&small_config())?;
        let (ids, mask, types) = batch()?;
        assert!(encoder
            .forward(&ids, &mask.narrow(1, 0, 4)?, &types, None)
            .is_err());
        let long = Tensor::zeros((1, 13), DType::U32, &Device::Cpu)?;
        assert!(encoder.forward(&long, &long, &long, None).is_err());
        let mut bad = small_config();
        bad.num_attention_heads = 3;
        let err = build(&bad).err().expect("invalid config").to_string();
        assert!(err.contains("encoder.bert.hidden_size"), "{err}");
        Ok(())
    }
}
