//! Grove names of the tensors of a Hugging Face BERT checkpoint (`BertModel` /
//! `BertForPreTraining` safetensors), for `init_checkpoint_format: huggingface_bert`. Both
//! store dense weights as `(out, in)`, so values load unchanged.

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
