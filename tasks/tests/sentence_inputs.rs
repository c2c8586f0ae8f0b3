//! Sentence prediction inputs on files the tests write (TSV and JSONL, pairs and single
//! sentences, bad rows), and initialization from Hugging Face-named BERT files (sentence
//! prediction's encoder and pooler, masked LM's encoder and pretraining heads).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use grove_core::task::Task;
use grove_core::vars::ModelVars;
use grove_tasks::masked_lm::{MaskedLmConfig, MaskedLmTask};
use grove_tasks::models::{
    BertEncoderConfig, BertPretrainerConfig, ClsHeadConfig, EncoderConfig, BERT_ENCODER,
};
use grove_tasks::sentence_prediction::config::{
    CheckpointFormat, SentenceFileType, SentencePredictionModelConfig,
};
use grove_tasks::sentence_prediction::inputs::read_text_examples;
use grove_tasks::sentence_prediction::{
    SentenceDataConfig, SentencePredictionConfig, SentencePredictionTask,
};

const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\ndog\nran\n";

fn data(dir: &Path, file: &str, text: &str, fields: &[&str]) -> SentenceDataConfig {
    std::fs::write(dir.join("vocab.txt"), VOCAB).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
    SentenceDataConfig {
        input_path: dir.join(file).display().to_string(),
        vocab_file: dir.join("vocab.txt").display().to_string(),
        seq_length: 8,
        text_fields: fields.iter().map(|f| f.to_string()).collect(),
        ..SentenceDataConfig::default()
    }
}

#[test]
fn tsv_and_jsonl_rows_are_tokenized_with_their_labels() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = "id\tsentence1\tsentence2\tlabel\n0\tThe cat\tsat\t1\n1\tthe dog\tran away\t0\n";
    let examples = read_text_examples(
        &data(dir.path(), "a.tsv", tsv, &["sentence1", "sentence2"]),
        "task.train_data",
        2,
    )
    .unwrap();
    assert_eq!(examples.len(), 2);
    assert_eq!(examples[0].encoded.input_word_ids, [2, 4, 5, 3, 6, 3, 0, 0]);
    assert_eq!(examples[0].encoded.input_type_ids, [0, 0, 0, 0, 1, 1, 0, 0]);
    assert_eq!((examples[0].label, examples[1].label), (1.0, 0.0));
    assert_eq!(examples[1].encoded.input_word_ids, [2, 4, 7, 3, 8, 1, 3, 0]);

    let jsonl = "{\"text\": \"the cat\", \"label\": 1}\n\n{\"text\": \"dog\", \"label\": \"0\"}\n";
    let mut config = data(dir.path(), "b.jsonl", jsonl, &["text"]);
    config.file_type = SentenceFileType::Jsonl;
    let examples = read_text_examples(&config, "task.train_data", 2).unwrap();
    assert_eq!(examples[1].encoded.input_word_ids, [2, 7, 3, 0, 0, 0, 0, 0]);
    assert_eq!(examples[1].label, 0.0);
}

#[test]
fn bad_rows_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let message = |config: &SentenceDataConfig| {
        read_text_examples(config, "task.train_data", 2)
            .unwrap_err()
            .to_string()
    };
    let config = data(
        dir.path(),
        "a.tsv",
        "sentence\tlabel\nthe cat\t1\nthe dog\n",
        &["sentence"],
    );
    let msg = message(&config);
    assert!(
        msg.contains("a.tsv:3") && msg.contains("1 columns where the header has 2"),
        "{msg}"
    );
    let config = data(
        dir.path(),
        "a.tsv",
        "sentence\tlabel\nthe cat\t7\n",
        &["sentence"],
    );
    assert!(
        message(&config).contains("a.tsv:2: label \"7\""),
        "{}",
        message(&config)
    );
    let config = data(
        dir.path(),
        "a.tsv",
        "text\tlabel\nthe cat\t1\n",
        &["sentence"],
    );
    assert!(
        message(&config).contains("no column `sentence`"),
        "{}",
        message(&config)
    );
    let mut config = data(dir.path(), "b.jsonl", "{\"text\": \"a\"}\n", &["text"]);
    config.file_type = SentenceFileType::Jsonl;
    assert!(
        message(&config).contains("b.jsonl:1: field `label` is missing"),
        "{}",
        message(&config)
    );
    let mut config = data(dir.path(), "a.tsv", "sentence\tlabel\n", &["sentence"]);
    config.vocab_file = dir.path().join("missing.txt").display().to_string();
    assert!(
        message(&config).contains("task.train_data.vocab_file"),
        "{}",
        message(&config)
    );
}

fn tiny_bert() -> BertEncoderConfig {
    BertEncoderConfig {
        vocab_size: 9,
        hidden_size: 4,
        num_layers: 1,
        num_attention_heads: 1,
        intermediate_size: 8,
        max_position_embeddings: 8,
        ..BertEncoderConfig::default()
    }
}

/// The Hugging Face name of a Grove encoder variable (written here as the inverse of the
/// mapping under test), `None` for variables outside the encoder.
fn hf_encoder_name(grove: &str) -> Option<String> {
    let rest = grove.strip_prefix("encoder.")?;
    let name = rest
        .replace("type_embeddings", "token_type_embeddings")
        .replace("embeddings_layer_norm.", "LayerNorm.")
        .replace("attention_layer_norm", "attention.output.LayerNorm")
        .replace("output_layer_norm", "output.LayerNorm")
        .replace("intermediate.", "intermediate.dense.")
        .replace("attention.output.weight", "attention.output.dense.weight")
        .replace("attention.output.bias", "attention.output.dense.bias")
        .replace("attention.query", "attention.self.query")
        .replace("attention.key", "attention.self.key")
        .replace("attention.value", "attention.self.value");
    let name = if name.contains("layer.") {
        let name = name
            .replace(".output.weight", ".output.dense.weight")
            .replace(".output.bias", ".output.dense.bias");
        format!("bert.encoder.{name}")
    } else {
        format!("bert.embeddings.{name}")
    };
    Some(name)
}

/// The Hugging Face `BertForPreTraining` name of a Grove pretrainer variable: the encoder's,
/// the masked LM head's and the `next_sentence` head's.
fn hf_pretraining_name(grove: &str) -> Option<String> {
    if let Some(rest) = grove.strip_prefix("masked_lm.") {
        return Some(match rest {
            "output_bias" => "cls.predictions.bias".to_string(),
            _ => format!(
                "cls.predictions.transform.{}",
                rest.replace("layer_norm.", "LayerNorm.")
            ),
        });
    }
    if let Some(rest) = grove.strip_prefix("next_sentence.") {
        return Some(match rest.strip_prefix("dense.") {
            Some(parameter) => format!("bert.pooler.dense.{parameter}"),
            None => format!("cls.seq_relationship.{}", rest.strip_prefix("out_proj.")?),
        });
    }
    hf_encoder_name(grove)
}

#[test]
fn a_hugging_face_pretraining_file_initializes_the_encoder_and_both_heads() {
    let model = BertPretrainerConfig {
        encoder: EncoderConfig::new(BERT_ENCODER, tiny_bert()),
        cls_heads: vec![ClsHeadConfig {
            inner_dim: 4,
            name: "next_sentence".to_string(),
            ..ClsHeadConfig::default()
        }],
        ..BertPretrainerConfig::default()
    };
    let config = MaskedLmConfig {
        model,
        init_checkpoint_format: CheckpointFormat::HuggingfaceBert,
        ..MaskedLmConfig::default()
    };
    let vars = ModelVars::new();
    let task = MaskedLmTask::from_config(&config).unwrap();
    let pretrainer = task
        .build_model(vars.var_builder(0, DType::F32, &Device::Cpu))
        .unwrap();
    let grove: Vec<(String, Tensor)> = vars.tensors();
    let mut file: HashMap<String, Tensor> = HashMap::new();
    for (i, (name, tensor)) in grove.iter().enumerate() {
        let hf = hf_pretraining_name(name).unwrap_or_else(|| panic!("{name} has no HF name"));
        let value = Tensor::full(i as f32 + 0.5, tensor.shape(), &Device::Cpu).unwrap();
        file.insert(hf, value);
    }
    // The decoder weight, tied to the word embeddings in both, has no variable of its own.
    let decoder = Tensor::zeros((9, 4), DType::F32, &Device::Cpu).unwrap();
    file.insert("cls.predictions.decoder.weight".into(), decoder);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    candle_core::safetensors::save(&file, &path).unwrap();

    let config = MaskedLmConfig {
        init_checkpoint: path.display().to_string(),
        ..config
    };
    MaskedLmTask::from_config(&config)
        .unwrap()
        .initialize(&pretrainer, &vars)
        .unwrap();
    let loaded: HashMap<String, Tensor> = vars.tensors().into_iter().collect();
    let first = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    for (i, (name, _)) in grove.iter().enumerate() {
        assert_eq!(first(&loaded[name]), i as f32 + 0.5, "{name}");
    }
}

#[test]
fn a_hugging_face_bert_file_initializes_the_encoder_and_pooler() {
    let config = SentencePredictionConfig {
        init_checkpoint_format: CheckpointFormat::HuggingfaceBert,
        init_cls_pooler: true,
        model: SentencePredictionModelConfig {
            encoder: EncoderConfig::new(BERT_ENCODER, tiny_bert()),
            ..SentencePredictionModelConfig::default()
        },
        ..SentencePredictionConfig::default()
    };
    let task = SentencePredictionTask::from_config(&config).unwrap();
    let vars = ModelVars::new();
    let model = task
        .build_model(vars.var_builder(0, DType::F32, &Device::Cpu))
        .unwrap();
    // The Hugging Face file: every Grove encoder tensor under its HF name, holding a value
    // that identifies it, plus the pooler and a pretraining head tensor Grove has no use for.
    let grove: HashMap<String, Tensor> = vars.tensors().into_iter().collect();
    let mut file: HashMap<String, Tensor> = HashMap::new();
    for (i, (name, tensor)) in grove.iter().enumerate() {
        if let Some(hf) = hf_encoder_name(name) {
            let value = Tensor::full(i as f32 + 0.5, tensor.shape(), &Device::Cpu).unwrap();
            file.insert(hf, value);
        }
    }
    let pooler = Tensor::full(7.0f32, (4, 4), &Device::Cpu).unwrap();
    file.insert("bert.pooler.dense.weight".into(), pooler);
    file.insert(
        "bert.pooler.dense.bias".into(),
        Tensor::full(7.0f32, 4, &Device::Cpu).unwrap(),
    );
    file.insert(
        "cls.predictions.bias".into(),
        Tensor::zeros(9, DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    candle_core::safetensors::save(&file, &path).unwrap();

    let config = SentencePredictionConfig {
        init_checkpoint: path.display().to_string(),
        ..config
    };
    let task = SentencePredictionTask::from_config(&config).unwrap();
    task.initialize(&model, &vars).unwrap();
    let loaded: HashMap<String, Tensor> = vars.tensors().into_iter().collect();
    let first = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    for (i, (name, _)) in grove.iter().enumerate() {
        if name.starts_with("encoder.") {
            assert_eq!(first(&loaded[name]), i as f32 + 0.5, "{name}");
        }
    }
    assert_eq!(first(&loaded["sentence_prediction.dense.weight"]), 7.0);
    assert_ne!(first(&loaded["sentence_prediction.out_proj.weight"]), 7.0);
}
