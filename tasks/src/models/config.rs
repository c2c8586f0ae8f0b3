//! Model configs with Model Garden's YAML names and defaults.
//!
//! The structs mirror `official/nlp/configs/encoders.py` (`BertEncoderConfig`, the one-of
//! `EncoderConfig`) and `official/nlp/configs/bert.py` (`ClsHeadConfig`) and
//! `official/nlp/tasks/masked_lm.py` (the pretrainer's model config). Every struct accepts a
//! partial YAML map (missing keys take the defaults) and rejects unknown keys.
//! `validate` checks the cross-field rules and names the offending dotted key.

use grove_core::config::{ConfigFamily, OneOf};

/// Joins a key prefix and a field name into a dotted key (`prefix.name`, or `name` alone).
fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Checks that a size is strictly positive.
fn check_positive(prefix: &str, name: &str, value: usize) -> Result<(), String> {
    if value == 0 {
        return Err(format!("{} must be > 0, got 0", key(prefix, name)));
    }
    Ok(())
}

/// Checks that a dropout rate lies in `[0, 1)`.
fn check_rate(prefix: &str, name: &str, value: f64) -> Result<(), String> {
    if !(0.0..1.0).contains(&value) {
        return Err(format!(
            "{} must be in [0, 1), got {value}",
            key(prefix, name)
        ));
    }
    Ok(())
}

/// Checks that an initializer standard deviation is finite and not negative.
fn check_stddev(prefix: &str, name: &str, value: f64) -> Result<(), String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "{} must be a finite number >= 0, got {value}",
            key(prefix, name)
        ));
    }
    Ok(())
}

/// Checks that an activation name is one Grove implements.
fn check_activation(prefix: &str, name: &str, value: &str, supported: &str) -> Result<(), String> {
    if value != supported {
        return Err(format!(
            "{} = {value:?} is not supported yet; use {supported:?}",
            key(prefix, name)
        ));
    }
    Ok(())
}

grove_core::defaulted_config! {
    /// The BERT encoder's hyper-parameters (Model Garden's `BertEncoderConfig`).
    pub struct BertEncoderConfig {
        /// Number of rows of the word embedding table.
        pub vocab_size: usize = 30522,
        /// Width of every token representation.
        pub hidden_size: usize = 768,
        /// Number of transformer layers.
        pub num_layers: usize = 12,
        /// Number of attention heads; must divide `hidden_size`.
        pub num_attention_heads: usize = 12,
        /// Activation of the feed-forward block; only `"gelu"` (exact, erf based) for now.
        pub hidden_activation: String = "gelu".to_string(),
        /// Width of the feed-forward block.
        pub intermediate_size: usize = 3072,
        /// Dropout rate after the embeddings and after each sub-block, in `[0, 1)`.
        pub dropout_rate: f64 = 0.1,
        /// Dropout rate on the attention probabilities, in `[0, 1)`.
        pub attention_dropout_rate: f64 = 0.1,
        /// Longest sequence the position embeddings cover.
        pub max_position_embeddings: usize = 512,
        /// Number of token types (segments).
        pub type_vocab_size: usize = 2,
        /// Standard deviation of the normal initializer for weights and embeddings.
        pub initializer_range: f64 = 0.02,
        /// ReZero blocks instead of post-LayerNorm ones (Model Garden's `ReZeroTransformer` with
        /// `use_layer_norm: false`): each block adds `alpha * sublayer(x)` to its input, with one
        /// learned scalar `alpha` per layer (`layer.<i>.rezero_alpha`, initialised to 0) shared by
        /// the attention and feed-forward residuals, and no LayerNorm inside the block. A layer
        /// whose alpha is 0 is the identity, so progressive stacking can grow the model without
        /// changing its function.
        pub use_rezero: bool = false,
    }
}

impl BertEncoderConfig {
    /// Checks the cross-field rules; errors name the dotted key under `key_prefix`.
    pub fn validate(&self, key_prefix: &str) -> Result<(), String> {
        let p = key_prefix;
        check_positive(p, "vocab_size", self.vocab_size)?;
        check_positive(p, "hidden_size", self.hidden_size)?;
        check_positive(p, "num_layers", self.num_layers)?;
        check_positive(p, "num_attention_heads", self.num_attention_heads)?;
        check_positive(p, "intermediate_size", self.intermediate_size)?;
        check_positive(p, "max_position_embeddings", self.max_position_embeddings)?;
        check_positive(p, "type_vocab_size", self.type_vocab_size)?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "{} ({}) must be divisible by {} ({})",
                key(p, "hidden_size"),
                self.hidden_size,
                key(p, "num_attention_heads"),
                self.num_attention_heads
            ));
        }
        check_activation(p, "hidden_activation", &self.hidden_activation, "gelu")?;
        check_rate(p, "dropout_rate", self.dropout_rate)?;
        check_rate(p, "attention_dropout_rate", self.attention_dropout_rate)?;
        check_stddev(p, "initializer_range", self.initializer_range)
    }

    /// Width of one attention head (`hidden_size / num_attention_heads`).
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }
}

/// The family of encoder configs: Model Garden's one-of `encoder: {type: bert, bert: {...}}`,
/// with the types taken from the registry (Grove registers `bert`; a user's crate may register
/// more with `grove_core::registry::register_config_type`).
pub struct EncoderFamily;

impl ConfigFamily for EncoderFamily {
    const NAME: &'static str = "encoder";
}

/// The encoder config of a model: which registered encoder type, with its settings.
pub type EncoderConfig = OneOf<EncoderFamily>;

/// Type name of the BERT encoder in [`EncoderConfig`].
pub const BERT_ENCODER: &str = "bert";

grove_core::defaulted_config! {
    /// A classification head on one token of the sequence output (Model Garden's `ClsHeadConfig`).
    pub struct ClsHeadConfig {
        /// Width of the hidden dense layer.
        pub inner_dim: usize = 768,
        /// Number of output classes.
        pub num_classes: usize = 2,
        /// Activation of the hidden dense layer; only `"tanh"` for now.
        pub activation: String = "tanh".to_string(),
        /// Dropout rate after the hidden dense layer, in `[0, 1)`.
        pub dropout_rate: f64 = 0.0,
        /// Index of the sequence position the head reads (the `[CLS]` token).
        pub cls_token_idx: usize = 0,
        /// Name of the head: its variable prefix and the key of its logits.
        pub name: String = "cls".to_string(),
    }
}

impl ClsHeadConfig {
    /// Checks the head's own fields; errors name the dotted key under `key_prefix`.
    pub fn validate(&self, key_prefix: &str) -> Result<(), String> {
        let p = key_prefix;
        check_positive(p, "inner_dim", self.inner_dim)?;
        check_positive(p, "num_classes", self.num_classes)?;
        check_activation(p, "activation", &self.activation, "tanh")?;
        check_rate(p, "dropout_rate", self.dropout_rate)?;
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(format!(
                "{} = {:?} must be non-empty and use only letters, digits, '_' or '-'",
                key(p, "name"),
                self.name
            ));
        }
        Ok(())
    }
}

grove_core::defaulted_config! {
    /// The BERT pretraining model: encoder, masked-LM head and optional classification heads
    /// (the `model` section of Model Garden's `MaskedLMConfig`).
    pub struct BertPretrainerConfig {
        /// The encoder.
        pub encoder: EncoderConfig = EncoderConfig::new(BERT_ENCODER, BertEncoderConfig::default()),
        /// Classification heads on the sequence output (e.g. next-sentence prediction).
        pub cls_heads: Vec<ClsHeadConfig> = Vec::new(),
        /// Activation of the masked-LM head's transform; only `"gelu"` for now.
        pub mlm_activation: String = "gelu".to_string(),
        /// Standard deviation of the masked-LM head's dense initializer.
        pub mlm_initializer_range: f64 = 0.02,
    }
}

/// Variable prefixes the pretrainer itself uses; a classification head may not take them.
const RESERVED_HEAD_NAMES: [&str; 2] = ["encoder", "masked_lm"];

impl BertPretrainerConfig {
    /// The BERT encoder's settings; another encoder type is an error naming
    /// `<key_prefix>.encoder.type` (this model builds BERT encoders only).
    pub fn bert_encoder(&self, key_prefix: &str) -> Result<&BertEncoderConfig, String> {
        self.encoder.get::<BertEncoderConfig>().ok_or_else(|| {
            format!(
                "{} = {}: the BERT pretrainer builds only `{BERT_ENCODER}` encoders",
                key(key_prefix, "encoder.type"),
                self.encoder.kind()
            )
        })
    }

    /// Checks the encoder, the heads and the cross-field rules; errors name the dotted key
    /// under `key_prefix` (e.g. `task.model.cls_heads[0].name`).
    pub fn validate(&self, key_prefix: &str) -> Result<(), String> {
        let p = key_prefix;
        let bert = self.bert_encoder(p)?;
        bert.validate(&key(p, "encoder.bert"))?;
        check_activation(p, "mlm_activation", &self.mlm_activation, "gelu")?;
        check_stddev(p, "mlm_initializer_range", self.mlm_initializer_range)?;
        let max_positions = bert.max_position_embeddings;
        for (i, head) in self.cls_heads.iter().enumerate() {
            let hp = key(p, &format!("cls_heads[{i}]"));
            head.validate(&hp)?;
            if head.cls_token_idx >= max_positions {
                return Err(format!(
                    "{} ({}) must be < {} ({max_positions})",
                    key(&hp, "cls_token_idx"),
                    head.cls_token_idx,
                    key(p, "encoder.bert.max_position_embeddings"),
                ));
            }
            if RESERVED_HEAD_NAMES.contains(&head.name.as_str()) {
                return Err(format!(
                    "{} = {:?} is reserved for the pretrainer's own variables; pick another name",
                    key(&hp, "name"),
                    head.name
                ));
            }
            if let Some(j) = self.cls_heads[..i].iter().position(|h| h.name == head.name) {
                return Err(format!(
                    "{} = {:?} is already used by {}; head names must be unique",
                    key(&hp, "name"),
                    head.name,
                    key(p, &format!("cls_heads[{j}].name")),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_model_garden() {
        let cfg = BertPretrainerConfig::default();
        let bert = cfg.bert_encoder("").unwrap();
        assert_eq!(cfg.encoder.kind(), BERT_ENCODER);
        assert_eq!(bert.vocab_size, 30522);
        assert_eq!(bert.hidden_size, 768);
        assert_eq!(bert.num_layers, 12);
        assert_eq!(bert.num_attention_heads, 12);
        assert_eq!(bert.intermediate_size, 3072);
        assert_eq!(bert.max_position_embeddings, 512);
        assert_eq!(bert.type_vocab_size, 2);
        assert_eq!(bert.head_size(), 64);
        assert!(cfg.cls_heads.is_empty());
        assert_eq!(cfg.mlm_activation, "gelu");
        assert_eq!(ClsHeadConfig::default().inner_dim, 768);
        cfg.validate("task.model").unwrap();
    }

    #[test]
    fn validate_names_the_dotted_key() {
        let mut cfg = BertPretrainerConfig::default();
        cfg.encoder
            .get_mut::<BertEncoderConfig>()
            .unwrap()
            .num_attention_heads = 5;
        let err = cfg.validate("task.model").unwrap_err();
        assert!(err.contains("task.model.encoder.bert.hidden_size"), "{err}");

        let mut cfg = BertPretrainerConfig::default();
        cfg.encoder
            .get_mut::<BertEncoderConfig>()
            .unwrap()
            .hidden_activation = "relu".into();
        let err = cfg.validate("task.model").unwrap_err();
        assert!(
            err.contains("task.model.encoder.bert.hidden_activation"),
            "{err}"
        );
        assert!(err.contains("not supported yet"), "{err}");

        let mut cfg = BertPretrainerConfig::default();
        cfg.encoder
            .get_mut::<BertEncoderConfig>()
            .unwrap()
            .dropout_rate = 1.0;
        let err = cfg.validate("").unwrap_err();
        assert!(err.starts_with("encoder.bert.dropout_rate"), "{err}");

        let mut cfg = BertPretrainerConfig::default();
        cfg.encoder
            .get_mut::<BertEncoderConfig>()
            .unwrap()
            .num_layers = 0;
        assert!(cfg
            .validate("m")
            .unwrap_err()
            .contains("m.encoder.bert.num_layers"));
    }

    #[test]
    fn validate_checks_cls_heads() {
        let mut cfg = BertPretrainerConfig {
            cls_heads: vec![ClsHeadConfig::default(), ClsHeadConfig::default()],
            ..BertPretrainerConfig::default()
        };
        let err = cfg.validate("task.model").unwrap_err();
        assert!(err.contains("task.model.cls_heads[1].name"), "{err}");
        assert!(err.contains("task.model.cls_heads[0].name"), "{err}");

        cfg.cls_heads[1].name = "masked_lm".into();
        let err = cfg.validate("task.model").unwrap_err();
        assert!(err.contains("reserved"), "{err}");

        cfg.cls_heads[1].name = "next_sentence".into();
        cfg.cls_heads[1].activation = "relu".into();
        let err = cfg.validate("task.model").unwrap_err();
        assert!(err.contains("task.model.cls_heads[1].activation"), "{err}");

        cfg.cls_heads[1].activation = "tanh".into();
        cfg.cls_heads[1].cls_token_idx = 512;
        let err = cfg.validate("task.model").unwrap_err();
        assert!(
            err.contains("task.model.cls_heads[1].cls_token_idx"),
            "{err}"
        );

        cfg.cls_heads[1].cls_token_idx = 0;
        cfg.validate("task.model").unwrap();
    }

    /// Deserializes `T` from a flat map of string keys and string values.
    fn from_str_map<T: serde::de::DeserializeOwned>(
        entries: &[(&'static str, &'static str)],
    ) -> Result<T, serde::de::value::Error> {
        let de = serde::de::value::MapDeserializer::new(entries.iter().copied());
        T::deserialize(de)
    }

    #[test]
    fn encoder_config_uses_model_garden_one_of_names_from_the_registry() {
        crate::register().unwrap();
        let cfg: EncoderConfig = from_str_map(&[("type", "bert")]).unwrap();
        assert_eq!(cfg, BertPretrainerConfig::default().encoder);
        let err = from_str_map::<EncoderConfig>(&[("type", "albert")]).unwrap_err();
        assert!(err.to_string().contains("registered: bert"), "{err}");
        let err = from_str_map::<EncoderConfig>(&[("kind", "bert")]).unwrap_err();
        assert!(err.to_string().contains("type`: missing"), "{err}");
    }

    #[test]
    fn partial_maps_take_defaults_and_unknown_keys_fail() {
        let head: ClsHeadConfig =
            from_str_map(&[("name", "next_sentence"), ("activation", "tanh")]).unwrap();
        assert_eq!(head.name, "next_sentence");
        assert_eq!(head.num_classes, 2);
        let err = from_str_map::<ClsHeadConfig>(&[("hidden", "x")]).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let cfg: BertPretrainerConfig = from_str_map(&[("mlm_activation", "gelu")]).unwrap();
        assert_eq!(cfg, BertPretrainerConfig::default());
        let err = from_str_map::<BertEncoderConfig>(&[("hidden_sise", "1")]).unwrap_err();
        assert!(err.to_string().contains("hidden_sise"), "{err}");
    }
}
