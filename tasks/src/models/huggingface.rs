//! Grove names of the tensors of a Hugging Face BERT checkpoint (`BertModel` /
//! `BertForPreTraining` safetensors), for `init_checkpoint_format: huggingface_bert`. Both
//! store dense weights as `(out, in)`, so values load unchanged.

/// Where `init_checkpoint`'s tensor names come from (`init_checkpoint_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointFormat {
    /// A Grove checkpoint (a masked LM run's `ckpt-<step>`, its model_dir, or its weights).
    #[default]
    Grove,
    /// A Hugging Face BERT safetensors file (`bert.embeddings...`, `bert.encoder.layer.N...`,
    /// and `cls.predictions...`, `cls.seq_relationship...` for the pretraining heads).
    HuggingfaceBert,
}

/// The Grove variable a tensor of Hugging Face's `BertForPreTraining` initializes in Grove's
/// pretrainer: the encoder as [`huggingface_bert_name`] maps it; the masked LM head's
/// transform (`cls.predictions.transform.*` → `masked_lm.dense` / `masked_lm.layer_norm`)
/// and bias (`cls.predictions.bias` → `masked_lm.output_bias`; the decoder weight is the word
/// embeddings in both, so `cls.predictions.decoder.*` has no place of its own); and, when
/// the model has a next-sentence head named `next_sentence_head`, the pooler
/// (`bert.pooler.dense` → `<head>.dense`) and `cls.seq_relationship` (→ `<head>.out_proj`).
pub fn huggingface_pretraining_name(
    name: &str,
    next_sentence_head: Option<&str>,
) -> Option<String> {
    let name = name.replace(".gamma", ".weight").replace(".beta", ".bias");
    if let Some(rest) = name.strip_prefix("cls.predictions.") {
        return match rest {
            "bias" => Some("masked_lm.output_bias".to_string()),
            _ => {
                let transform = rest.strip_prefix("transform.")?;
                let (layer, parameter) = transform.split_once('.')?;
                let grove = match layer {
                    "dense" => "dense",
                    "LayerNorm" => "layer_norm",
                    _ => return None,
                };
                Some(format!("masked_lm.{grove}.{parameter}"))
            }
        };
    }
    if let Some(parameter) = name.strip_prefix("cls.seq_relationship.") {
        return next_sentence_head.map(|head| format!("{head}.out_proj.{parameter}"));
    }
    let pooler = next_sentence_head.map(|head| format!("{head}.dense."));
    huggingface_bert_name(&name, pooler.as_deref())
}

/// The Grove variable a Hugging Face BERT tensor initializes, or `None` for tensors Grove's
/// encoder has no place for (e.g. the pretraining heads). `pooler` is the Grove prefix the
/// pooler dense layer loads into (e.g. `sentence_prediction.dense.`), `None` to leave it.
pub fn huggingface_bert_name(name: &str, pooler: Option<&str>) -> Option<String> {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    let name = name.replace(".gamma", ".weight").replace(".beta", ".bias");
    if let Some(rest) = name.strip_prefix("pooler.dense.") {
        return pooler.map(|prefix| format!("{prefix}{rest}"));
    }
    if let Some(rest) = name.strip_prefix("embeddings.") {
        let grove = match rest {
            "word_embeddings.weight" => "word_embeddings.weight".to_string(),
            "position_embeddings.weight" => "position_embeddings.weight".to_string(),
            "token_type_embeddings.weight" => "type_embeddings.weight".to_string(),
            other => format!(
                "embeddings_layer_norm.{}",
                other.strip_prefix("LayerNorm.")?
            ),
        };
        return Some(format!("encoder.{grove}"));
    }
    let rest = name.strip_prefix("encoder.layer.")?;
    let (index, part) = rest.split_once('.')?;
    let grove = if let Some(p) = part.strip_prefix("attention.self.") {
        format!("attention.{p}")
    } else if let Some(p) = part.strip_prefix("attention.output.dense.") {
        format!("attention.output.{p}")
    } else if let Some(p) = part.strip_prefix("attention.output.LayerNorm.") {
        format!("attention_layer_norm.{p}")
    } else if let Some(p) = part.strip_prefix("intermediate.dense.") {
        format!("intermediate.{p}")
    } else if let Some(p) = part.strip_prefix("output.dense.") {
        format!("output.{p}")
    } else if let Some(p) = part.strip_prefix("output.LayerNorm.") {
        format!("output_layer_norm.{p}")
    } else {
        return None;
    };
    Some(format!("encoder.layer.{index}.{grove}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pretraining_head_tensor_has_its_grove_name() {
        let nsp = Some("next_sentence");
        let cases = [
            ("cls.predictions.bias", Some("masked_lm.output_bias")),
            (
                "cls.predictions.transform.dense.weight",
                Some("masked_lm.dense.weight"),
            ),
            (
                "cls.predictions.transform.LayerNorm.gamma",
                Some("masked_lm.layer_norm.weight"),
            ),
            (
                "cls.predictions.transform.LayerNorm.bias",
                Some("masked_lm.layer_norm.bias"),
            ),
            ("cls.predictions.decoder.weight", None),
            ("cls.predictions.decoder.bias", None),
            (
                "cls.seq_relationship.weight",
                Some("next_sentence.out_proj.weight"),
            ),
            ("bert.pooler.dense.bias", Some("next_sentence.dense.bias")),
            (
                "bert.encoder.layer.0.output.dense.bias",
                Some("encoder.layer.0.output.bias"),
            ),
        ];
        for (hf, grove) in cases {
            assert_eq!(
                huggingface_pretraining_name(hf, nsp).as_deref(),
                grove,
                "{hf}"
            );
        }
        assert_eq!(
            huggingface_pretraining_name("cls.seq_relationship.bias", None),
            None
        );
        assert_eq!(
            huggingface_pretraining_name("bert.pooler.dense.weight", None),
            None
        );
    }

    #[test]
    fn every_encoder_tensor_has_its_grove_name() {
        let pooler = Some("sentence_prediction.dense.");
        let cases = [
            (
                "bert.embeddings.word_embeddings.weight",
                "encoder.word_embeddings.weight",
            ),
            (
                "bert.embeddings.token_type_embeddings.weight",
                "encoder.type_embeddings.weight",
            ),
            (
                "bert.embeddings.LayerNorm.gamma",
                "encoder.embeddings_layer_norm.weight",
            ),
            (
                "bert.encoder.layer.3.attention.self.query.bias",
                "encoder.layer.3.attention.query.bias",
            ),
            (
                "bert.encoder.layer.0.attention.output.dense.weight",
                "encoder.layer.0.attention.output.weight",
            ),
            (
                "bert.encoder.layer.0.attention.output.LayerNorm.beta",
                "encoder.layer.0.attention_layer_norm.bias",
            ),
            (
                "bert.encoder.layer.11.intermediate.dense.weight",
                "encoder.layer.11.intermediate.weight",
            ),
            (
                "bert.encoder.layer.1.output.dense.bias",
                "encoder.layer.1.output.bias",
            ),
            (
                "bert.encoder.layer.1.output.LayerNorm.weight",
                "encoder.layer.1.output_layer_norm.weight",
            ),
            (
                "bert.pooler.dense.weight",
                "sentence_prediction.dense.weight",
            ),
        ];
        for (hf, grove) in cases {
            assert_eq!(
                huggingface_bert_name(hf, pooler).as_deref(),
                Some(grove),
                "{hf}"
            );
        }
        assert_eq!(huggingface_bert_name("bert.pooler.dense.bias", None), None);
        assert_eq!(huggingface_bert_name("cls.predictions.bias", pooler), None);
    }
}
