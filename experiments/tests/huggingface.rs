//! Grove against Hugging Face transformers itself: a `bert/local` model exported with
//! `--mode=export` gives the same outputs in transformers as in Grove (the MLM logits at masked
//! positions and the next-sentence logits, on a batch with a sentence pair, padding and masked
//! positions; transformers' Flax BERT, `tasks/tests/huggingface_outputs.py`, reads the
//! PyTorch-format safetensors without torch), and Grove's WordPiece gives the ids of
//! transformers' BERT tokenizers, truncated pairs included (`tasks/tests/huggingface_tokens.py`).
//! Both need Python with transformers, flax and jax (`HUGGINGFACE_PYTHON`; `.ci/run` makes a
//! venv), so they are ignored in the default test run.

#[path = "cli_support/mod.rs"]
mod cli_support;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use cli_support::{assert_ok, stderr};
use grove_core::init_checkpoint::read_weights;
use grove_tasks::masked_lm::MaskedLmConfig;
use grove_tasks::models::{BertPretrainer, PretrainerInputs};
use serde_json::{json, Value};

/// A small bert/local: 20 steps of batches of 8 sequences of 32 tokens.
const SMALL: [&str; 8] = [
    "trainer.train_steps=20",
    "trainer.steps_per_loop=10",
    "trainer.summary_interval=10",
    "trainer.checkpoint_interval=20",
    "task.train_data.global_batch_size=8",
    "task.train_data.seq_length=32",
    "task.train_data.max_predictions_per_seq=5",
    "runtime.num_threads=1",
];

/// Two sequences of 12: a pair (`[CLS] a b c [SEP] d e [SEP]`, then padding) and one
/// sentence filling the row; three masked positions each.
fn inputs() -> Value {
    json!({
        "input_ids": [[2, 17, 40, 99, 3, 123, 7, 3, 0, 0, 0, 0],
                      [2, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 3]],
        "token_type_ids": [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0],
                           [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
        "attention_mask": [[1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
                           [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
        "masked_positions": [[1, 3, 6], [2, 5, 10]],
    })
}

/// `inputs()[name]` as a `(B, S)` u32 tensor.
fn tensor(name: &str) -> Tensor {
    let rows: Vec<Vec<u32>> = serde_json::from_value(inputs()[name].clone()).unwrap();
    Tensor::new(rows, &Device::Cpu).unwrap()
}

/// `value` (nested lists of numbers) as one flat list.
fn flat_numbers(value: &Value) -> Vec<f32> {
    match value {
        Value::Array(items) => items.iter().flat_map(flat_numbers).collect(),
        number => vec![number.as_f64().unwrap() as f32],
    }
}

/// The largest difference between two lists, scaled by the larger magnitude (at least 1).
fn max_difference(grove: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(grove.len(), reference.len());
    grove
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs() / a.abs().max(b.abs()).max(1.0))
        .fold(0.0, f32::max)
}

fn train(model_dir: &Path, mode: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["--experiment=bert/local", &format!("--mode={mode}")])
        .arg(format!("--model_dir={}", model_dir.display()))
        .args(SMALL)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert_ok(&output);
}

/// Runs `tasks/tests/<script>` with `args` in `HUGGINGFACE_PYTHON` and returns the JSON it
/// prints.
fn run_script(script: &str, args: &[&Path]) -> Value {
    let python = std::env::var("HUGGINGFACE_PYTHON")
        .expect("set HUGGINGFACE_PYTHON to a Python with transformers, flax and jax");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tasks/tests")
        .join(script);
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert_ok(&output);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        let script = script.display();
        panic!("{script} printed no JSON ({e}):\n{}", stderr(&output))
    })
}

/// bert/local's masked LM config with [`SMALL`].
fn small_masked_lm() -> MaskedLmConfig {
    let config = common::config("bert/local", &SMALL);
    let task = config.task.as_any().downcast_ref::<MaskedLmConfig>();
    task.unwrap().clone()
}

#[test]
#[ignore = "needs Python with transformers, flax and jax: .ci/run makes a venv and runs it"]
fn an_exported_bert_gives_grove_s_outputs_in_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    train(&model_dir, "train");
    train(&model_dir, "export");

    // Grove's outputs, from the checkpoint the export was written from.
    let task = small_masked_lm();
    let weights = read_weights(&model_dir.join("ckpt-20/model.safetensors")).unwrap();
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    let grove = grove_outputs(&BertPretrainer::new(&task.model, vb).unwrap());

    // transformers' outputs, from the export.
    let inputs_file = dir.path().join("inputs.json");
    std::fs::write(&inputs_file, inputs().to_string()).unwrap();
    let reference = run_script(
        "huggingface_outputs.py",
        &[&model_dir.join("export/20"), &inputs_file],
    );
    assert_eq!(reference["loading_warnings"], json!([]), "{reference}");
    compare(&grove, &reference, &["mlm_logits", "nsp_logits"]);
}

/// The sentence cases of the tokenizer check: case, accents, punctuation, unknown words,
/// word pieces, CJK characters, and pairs long enough to be truncated (a 22-token and a
/// 15-token sentence at 16 tokens, either way round, where the two rules cut differently).
fn sentence_cases() -> Value {
    let long_a = "the quick brown fox jumped over the lazy dog and the cat ran home fast \
                  to a b c d e f";
    let long_b = "hello world the dog sat on the mat and the fox ran over a cat";
    json!([
        {"a": "Hello, World! Café naïve.", "b": null, "seq_length": 16},
        {"a": "The QUICK Brown fox", "b": "jumped over the LAZY dog", "seq_length": 32},
        {"a": "unaffable zebra 中文 dog", "b": "Ünaffable", "seq_length": 24},
        {"a": long_a, "b": long_b, "seq_length": 16},
        {"a": long_b, "b": long_a, "seq_length": 16},
        {"a": long_a, "b": long_a, "seq_length": 11},
        {"a": long_a, "b": null, "seq_length": 8},
    ])
}

/// Grove's WordPiece gives Hugging Face's ids exactly: `truncation: bert` those of the Python
/// `BertTokenizer` (BERT's pair rule), `truncation: huggingface` those of `BertTokenizerFast`.
#[test]
#[ignore = "needs Python with transformers: .ci/run makes a venv and runs it"]
fn wordpiece_ids_and_pair_truncation_match_hugging_face_tokenizers() {
    use grove_tasks::text::{PairTruncation, WordPieceTokenizer};

    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.txt");
    let words = "[PAD] [UNK] [CLS] [SEP] [MASK] the quick brown fox jumped over lazy dog and \
                 cat ran home fast to a b c d e f hello world cafe naive sat on mat un ##aff \
                 ##able , . ! 中";
    let lines: String = words.split(' ').map(|w| format!("{w}\n")).collect();
    std::fs::write(&vocab, lines).unwrap();
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, sentence_cases().to_string()).unwrap();
    let reference = run_script("huggingface_tokens.py", &[&vocab, &cases_file]);

    let tokenizer =
        WordPieceTokenizer::from_vocab_file(&vocab.display().to_string(), true, "test").unwrap();
    let cases = sentence_cases();
    for (truncation, implementation) in [
        (PairTruncation::Bert, "slow"),
        (PairTruncation::Huggingface, "fast"),
    ] {
        for (i, case) in cases.as_array().unwrap().iter().enumerate() {
            let seq_length = case["seq_length"].as_u64().unwrap() as usize;
            let encoded = tokenizer
                .encode(
                    case["a"].as_str().unwrap(),
                    case["b"].as_str(),
                    seq_length,
                    truncation,
                )
                .unwrap();
            let expected = &reference[implementation][i];
            let ids: Vec<u32> = serde_json::from_value(expected["input_ids"].clone()).unwrap();
            let types: Vec<u32> =
                serde_json::from_value(expected["token_type_ids"].clone()).unwrap();
            assert_eq!(
                encoded.input_word_ids, ids,
                "{truncation:?} case {i}: {case}"
            );
            assert_eq!(
                encoded.input_type_ids, types,
                "{truncation:?} case {i}: {case}"
            );
        }
    }
}

/// Grove's outputs on [`inputs`]: `mlm_logits`, `nsp_logits` and `sequence_output`, flat.
fn grove_outputs(model: &BertPretrainer) -> BTreeMap<&'static str, Vec<f32>> {
    let inputs = PretrainerInputs {
        input_word_ids: tensor("input_ids"),
        input_mask: tensor("attention_mask"),
        input_type_ids: tensor("token_type_ids"),
        masked_lm_positions: tensor("masked_positions"),
    };
    let outputs = model.forward(&inputs, None).unwrap();
    let sequence = model
        .encoder()
        .forward(
            &inputs.input_word_ids,
            &inputs.input_mask,
            &inputs.input_type_ids,
            None,
        )
        .unwrap();
    let flat = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    BTreeMap::from([
        ("mlm_logits", flat(&outputs.mlm_logits)),
        ("nsp_logits", flat(&outputs.cls_logits[0].1)),
        ("sequence_output", flat(&sequence)),
    ])
}

/// Asserts Grove's `keys` outputs are transformers' within 1e-5 (scaled by max(1, |x|)).
fn compare(grove: &BTreeMap<&str, Vec<f32>>, reference: &Value, keys: &[&str]) {
    for key in keys {
        let expected = flat_numbers(&reference[*key]);
        let difference = max_difference(&grove[key], &expected);
        println!("{key}: largest scaled difference {difference:e}");
        assert!(difference <= 1e-5, "{key} differs by {difference}");
    }
}

/// A Hugging Face BERT made by transformers (random, its biases and LayerNorms moved off
/// their initial values), written as a PyTorch-format checkpoint, loads into Grove's masked LM
/// pretrainer through `init_checkpoint_format: huggingface_bert`'s mapping with every variable
/// loaded, and gives the sequence output, MLM and next-sentence logits transformers gives from
/// that file.
#[test]
#[ignore = "needs Python with transformers, flax and jax: .ci/run makes a venv and runs it"]
fn a_hugging_face_bert_loads_into_grove_with_transformers_outputs() {
    use grove_core::init_checkpoint::load_renamed_init_checkpoint;
    use grove_core::vars::ModelVars;
    use grove_tasks::models::huggingface::huggingface_pretraining_name;

    let task = small_masked_lm();
    let bert = task.model.bert_encoder("task.model").unwrap();
    let bert_config = json!({
        "vocab_size": bert.vocab_size,
        "hidden_size": bert.hidden_size,
        "num_hidden_layers": bert.num_layers,
        "num_attention_heads": bert.num_attention_heads,
        "intermediate_size": bert.intermediate_size,
        "max_position_embeddings": bert.max_position_embeddings,
        "type_vocab_size": bert.type_vocab_size,
        "hidden_act": "gelu",
    });
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("bert.json");
    let inputs_file = dir.path().join("inputs.json");
    std::fs::write(&config_file, bert_config.to_string()).unwrap();
    std::fs::write(&inputs_file, inputs().to_string()).unwrap();
    let reference = run_script(
        "huggingface_random_bert.py",
        &[dir.path(), &config_file, &inputs_file],
    );

    let vars = ModelVars::new();
    let vb = vars.var_builder(0, DType::F32, &Device::Cpu);
    let model = BertPretrainer::new(&task.model, vb).unwrap();
    let file = dir.path().join("model.safetensors").display().to_string();
    let report = load_renamed_init_checkpoint(&file, &vars, &[], |name| {
        huggingface_pretraining_name(name, Some("next_sentence"))
    })
    .unwrap();
    assert!(
        report.kept.is_empty(),
        "kept at initial values: {:?}",
        report.kept
    );
    compare(
        &grove_outputs(&model),
        &reference,
        &["sequence_output", "mlm_logits", "nsp_logits"],
    );
}
