//! A Grove BERT as Hugging Face `transformers` writes one: the tensor names of
//! `BertForPreTraining`, `BertForMaskedLM` or `BertForSequenceClassification` (found by
//! running the import's mapping over every name Hugging Face's model has, so export and
//! import cannot drift apart), and `config.json` with `BertConfig`'s fields. Models Hugging
//! Face's BERT cannot express (ReZero blocks, another activation, a head of another width)
//! are refused, naming why.

use std::collections::BTreeMap;

use grove_core::export::ExportPlan;
use grove_core::{Error, Result};
use serde_json::{json, Value};

use super::config::BertEncoderConfig;
use super::layers::LayerNorm;

/// The `transformers` model classes Grove's tasks export as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuggingfaceModel {
    /// Encoder, pooler, masked LM and next-sentence heads (masked LM with a `next_sentence` head).
    BertForPreTraining,
    /// Encoder and masked LM head (masked LM without a next-sentence head).
    BertForMaskedLm,
    /// Encoder, pooler and classifier (sentence prediction) with this many labels.
    BertForSequenceClassification {
        /// Classes (1: regression).
        num_labels: usize,
    },
}

impl HuggingfaceModel {
    /// The class name `config.json`'s `architectures` lists.
    fn class_name(self) -> &'static str {
        match self {
            HuggingfaceModel::BertForPreTraining => "BertForPreTraining",
            HuggingfaceModel::BertForMaskedLm => "BertForMaskedLM",
            HuggingfaceModel::BertForSequenceClassification { .. } => {
                "BertForSequenceClassification"
            }
        }
    }

    /// Every tensor name the class stores (the decoder weight and bias are tied to the word
    /// embeddings and `cls.predictions.bias`, so they are not stored apart).
    fn tensor_names(self, num_layers: usize) -> Vec<String> {
        let mut names: Vec<String> = [
            "word_embeddings.weight",
            "position_embeddings.weight",
            "token_type_embeddings.weight",
            "LayerNorm.weight",
            "LayerNorm.bias",
        ]
        .iter()
        .map(|n| format!("bert.embeddings.{n}"))
        .collect();
        for layer in 0..num_layers {
            for part in [
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            ] {
                for parameter in ["weight", "bias"] {
                    names.push(format!("bert.encoder.layer.{layer}.{part}.{parameter}"));
                }
            }
        }
        let pooler = ["bert.pooler.dense.weight", "bert.pooler.dense.bias"];
        let mlm = [
            "cls.predictions.bias",
            "cls.predictions.transform.dense.weight",
            "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias",
        ];
        let heads: Vec<&str> = match self {
            HuggingfaceModel::BertForPreTraining => pooler
                .iter()
                .chain(&mlm)
                .chain(&["cls.seq_relationship.weight", "cls.seq_relationship.bias"])
                .copied()
                .collect(),
            HuggingfaceModel::BertForMaskedLm => mlm.to_vec(),
            HuggingfaceModel::BertForSequenceClassification { .. } => pooler
                .iter()
                .chain(&["classifier.weight", "classifier.bias"])
                .copied()
                .collect(),
        };
        names.extend(heads.iter().map(|n| n.to_string()));
        names
    }
}

/// The refusal of an export Hugging Face's BERT cannot express, with `why`.
pub fn not_exportable(why: &str) -> Error {
    Error::Config(format!(
        "cannot export as Hugging Face BERT: {why}; use --export_format=grove"
    ))
}

/// The vocabulary file of an export (`vocab.txt`), read from `path` (`key`: its config key);
/// none when `path` is empty.
pub fn vocab_file(path: &str, key: &str) -> Result<Option<(String, Vec<u8>)>> {
    if path.is_empty() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "{key} = {path:?}: cannot read it for the export ({e})"
        ))
    })?;
    Ok(Some(("vocab.txt".to_string(), bytes)))
}

/// Fails unless `encoder` is a BERT that Hugging Face's `BertModel` computes the same way.
pub fn check_exportable(encoder: &BertEncoderConfig, key: &str) -> Result<()> {
    let refuse = |why: String| Err(not_exportable(&why));
    if encoder.use_rezero {
        return refuse(format!(
            "{key}.use_rezero = true (ReZero blocks have no LayerNorm, which BertModel has)"
        ));
    }
    if encoder.hidden_activation != "gelu" {
        return refuse(format!(
            "{key}.hidden_activation = {:?} (only gelu is exported)",
            encoder.hidden_activation
        ));
    }
    Ok(())
}

/// The export of a model of `variables` as `model` with `encoder`: every variable under its
/// Hugging Face name (`grove_name` maps a Hugging Face name to Grove's, as the import does;
/// `extra` adds pairs the import does not load, such as the classifier), and `config.json`
/// with `config_extra`'s fields on top of `BertConfig`'s. Fails naming any variable Hugging
/// Face's class has no place for, and any tensor of the class the model lacks.
pub fn huggingface_plan(
    variables: &[String],
    model: HuggingfaceModel,
    encoder: &BertEncoderConfig,
    grove_name: impl Fn(&str) -> Option<String>,
    extra: &[(&str, String)],
    config_extra: Value,
) -> Result<ExportPlan> {
    let mut grove_of: BTreeMap<String, String> = BTreeMap::new();
    for hf in model.tensor_names(encoder.num_layers) {
        let grove = extra
            .iter()
            .find(|(name, _)| *name == hf)
            .map(|(_, grove)| grove.clone())
            .or_else(|| grove_name(&hf));
        if let Some(grove) = grove {
            grove_of.insert(hf, grove);
        }
    }
    let class = model.class_name();
    let missing: Vec<String> = grove_of
        .iter()
        .filter(|(_, grove)| !variables.contains(grove))
        .map(|(hf, grove)| format!("{grove} (for {hf})"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Checkpoint(format!(
            "cannot export as Hugging Face {class}: the checkpoint lacks {}",
            missing.join(", ")
        )));
    }
    let unplaced: Vec<&str> = variables
        .iter()
        .filter(|v| !grove_of.values().any(|grove| grove == *v))
        .map(String::as_str)
        .collect();
    if !unplaced.is_empty() {
        return Err(Error::Config(format!(
            "cannot export as Hugging Face {class}: it has no place for {}; use \
             --export_format=grove",
            unplaced.join(", ")
        )));
    }
    let mut config = bert_config(encoder, model);
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, config_extra) {
        config.extend(extra);
    }
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    Ok(ExportPlan {
        tensors: grove_of
            .into_iter()
            .map(|(hf, grove)| (grove, hf))
            .collect(),
        files: vec![("config.json".to_string(), text.into_bytes())],
    })
}

/// `config.json`: `BertConfig`'s fields for `encoder`, and the class's own.
fn bert_config(encoder: &BertEncoderConfig, model: HuggingfaceModel) -> Value {
    let mut config = json!({
        "architectures": [model.class_name()],
        "model_type": "bert",
        "vocab_size": encoder.vocab_size,
        "hidden_size": encoder.hidden_size,
        "num_hidden_layers": encoder.num_layers,
        "num_attention_heads": encoder.num_attention_heads,
        "intermediate_size": encoder.intermediate_size,
        "hidden_act": encoder.hidden_activation,
        "hidden_dropout_prob": encoder.dropout_rate,
        "attention_probs_dropout_prob": encoder.attention_dropout_rate,
        "max_position_embeddings": encoder.max_position_embeddings,
        "type_vocab_size": encoder.type_vocab_size,
        "initializer_range": encoder.initializer_range,
        "layer_norm_eps": LayerNorm::BERT_EPS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    });
    if let HuggingfaceModel::BertForSequenceClassification { num_labels } = model {
        let names: Vec<String> = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
        let id2label: serde_json::Map<String, Value> = (names.iter().enumerate())
            .map(|(i, name)| (i.to_string(), json!(name)))
            .collect();
        let label2id: serde_json::Map<String, Value> = (names.iter().enumerate())
            .map(|(i, name)| (name.clone(), json!(i)))
            .collect();
        config["id2label"] = Value::Object(id2label);
        config["label2id"] = Value::Object(label2id);
        if num_labels == 1 {
            config["problem_type"] = json!("regression");
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::super::huggingface::{huggingface_bert_name, huggingface_pretraining_name};
    use super::*;

    fn tiny() -> BertEncoderConfig {
        BertEncoderConfig {
            num_layers: 2,
            ..BertEncoderConfig::default()
        }
    }

    /// The Grove names of a pretrainer with a next-sentence head, as the import maps them.
    fn pretrainer_variables(encoder: &BertEncoderConfig) -> Vec<String> {
        let model = HuggingfaceModel::BertForPreTraining;
        let mut names: Vec<String> = model
            .tensor_names(encoder.num_layers)
            .iter()
            .filter_map(|hf| huggingface_pretraining_name(hf, Some("next_sentence")))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_pretrainer_exports_every_variable_under_the_name_the_import_reads() {
        let encoder = tiny();
        let variables = pretrainer_variables(&encoder);
        let plan = huggingface_plan(
            &variables,
            HuggingfaceModel::BertForPreTraining,
            &encoder,
            |hf| huggingface_pretraining_name(hf, Some("next_sentence")),
            &[],
            json!({}),
        )
        .unwrap();
        assert_eq!(plan.tensors.len(), variables.len());
        assert_eq!(plan.tensors.len(), 5 + 2 * 16 + 2 + 5 + 2);
        for (grove, hf) in &plan.tensors {
            let back = huggingface_pretraining_name(hf, Some("next_sentence"));
            assert_eq!(back.as_deref(), Some(grove.as_str()), "{hf}");
        }
        let config: Value = serde_json::from_slice(&plan.files[0].1).unwrap();
        assert_eq!(config["architectures"], json!(["BertForPreTraining"]));
        assert_eq!(config["num_hidden_layers"], 2);
        assert_eq!(config["layer_norm_eps"], 1e-12);
    }

    #[test]
    fn variables_without_a_place_and_missing_tensors_are_refused_by_name() {
        let encoder = tiny();
        let mut variables = pretrainer_variables(&encoder);
        variables.push("encoder.layer.0.rezero_alpha".to_string());
        let plan = |variables: &[String]| {
            huggingface_plan(
                variables,
                HuggingfaceModel::BertForPreTraining,
                &encoder,
                |hf| huggingface_pretraining_name(hf, Some("next_sentence")),
                &[],
                json!({}),
            )
        };
        let error = plan(&variables).unwrap_err().to_string();
        assert!(
            error.contains("no place for encoder.layer.0.rezero_alpha"),
            "{error}"
        );
        variables.retain(|v| !v.starts_with("masked_lm.dense") && !v.contains("rezero"));
        let error = plan(&variables).unwrap_err().to_string();
        assert!(
            error.contains("lacks masked_lm.dense.bias (for cls.predictions.transform.dense.bias)"),
            "{error}"
        );
    }

    #[test]
    fn a_classifier_exports_its_pooler_and_classifier_with_its_labels() {
        let encoder = tiny();
        let pooler = Some("sentence_prediction.dense.");
        let model = HuggingfaceModel::BertForSequenceClassification { num_labels: 3 };
        let extra = [
            (
                "classifier.weight",
                "sentence_prediction.out_proj.weight".to_string(),
            ),
            (
                "classifier.bias",
                "sentence_prediction.out_proj.bias".to_string(),
            ),
        ];
        let mut variables: Vec<String> = model
            .tensor_names(encoder.num_layers)
            .iter()
            .filter_map(|hf| huggingface_bert_name(hf, pooler))
            .collect();
        variables.extend(extra.iter().map(|(_, grove)| grove.clone()));
        let plan = huggingface_plan(
            &variables,
            model,
            &encoder,
            |hf| huggingface_bert_name(hf, pooler),
            &extra,
            json!({"classifier_dropout": 0.1}),
        )
        .unwrap();
        assert!(plan.tensors.contains(&(
            "sentence_prediction.out_proj.weight".into(),
            "classifier.weight".into()
        )));
        let config: Value = serde_json::from_slice(&plan.files[0].1).unwrap();
        assert_eq!(config["id2label"]["2"], "LABEL_2");
        assert_eq!(config["label2id"]["LABEL_1"], 1);
        assert_eq!(config["classifier_dropout"], 0.1);
    }

    #[test]
    fn rezero_and_other_activations_are_refused() {
        let rezero = BertEncoderConfig {
            use_rezero: true,
            ..tiny()
        };
        let error = check_exportable(&rezero, "task.model.encoder.bert").unwrap_err();
        assert!(error.to_string().contains("use_rezero = true"), "{error}");
        let relu = BertEncoderConfig {
            hidden_activation: "relu".to_string(),
            ..tiny()
        };
        assert!(check_exportable(&relu, "k").is_err());
        assert!(check_exportable(&tiny(), "k").is_ok());
    }
}
