//! Grove against Hugging Face transformers itself: a `bert/local` model exported with
//! `--mode=export` gives the same outputs in transformers as in Grove (the MLM logits at masked
//! positions and the next-sentence logits, on a batch with a sentence pair, padding and masked
//! positions; transformers' Flax BERT, `tasks/tests/huggingface_outputs.py`, reads the
//! PyTorch-format safetensors without torch), and Grove's WordPiece gives the ids of
//! transformers' BERT tokenizers, truncated pairs included (`tasks/tests/huggingface_tokens.py`).
//! Both need Python with transformers, flax and jax (`HUGGINGFACE_PYTHON`; `.ci/run` makes a
//! venv), so they are ignored in the default test run.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
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

/// `value` as a flat list of numbers.
fn numbers(value: &Value) -> Vec<f32> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(value.clone()).unwrap();
    rows.into_iter().flatten().map(|v| v as f32).collect()
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
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "needs Python with transformers, flax and jax: .ci/run makes a venv and runs it"]
fn an_exported_bert_gives_grove_s_outputs_in_transformers() {
    let python = std::env::var("HUGGINGFACE_PYTHON")
        .expect("set HUGGINGFACE_PYTHON to a Python with transformers, flax and jax");
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    train(&model_dir, "train");
    train(&model_dir, "export");

    // Grove's outputs, from the checkpoint the export was written from.
    let config = common::config("bert/local", &SMALL);
    let task = config
        .task
        .as_any()
        .downcast_ref::<MaskedLmConfig>()
        .unwrap();
    let weights = read_weights(&model_dir.join("ckpt-20/model.safetensors")).unwrap();
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    let model = BertPretrainer::new(&task.model, vb).unwrap();
    let outputs = model
        .forward(
            &PretrainerInputs {
                input_word_ids: tensor("input_ids"),
                input_mask: tensor("attention_mask"),
                input_type_ids: tensor("token_type_ids"),
                masked_lm_positions: tensor("masked_positions"),
            },
            None,
        )
        .unwrap();
    let grove_mlm: Vec<f32> = outputs.mlm_logits.flatten_all().unwrap().to_vec1().unwrap();
    let (_, nsp) = &outputs.cls_logits[0];
    let grove_nsp: Vec<f32> = nsp.flatten_all().unwrap().to_vec1().unwrap();

    // transformers' outputs, from the export.
    let inputs_file = dir.path().join("inputs.json");
    std::fs::write(&inputs_file, inputs().to_string()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tasks/tests/huggingface_outputs.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(model_dir.join("export/20"))
        .arg(&inputs_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reference["loading_warnings"], json!([]), "{reference}");
    let mlm = max_difference(&grove_mlm, &numbers(&reference["mlm_logits"]));
    let next_sentence = max_difference(&grove_nsp, &numbers(&reference["nsp_logits"]));
    println!(
        "largest scaled differences: MLM logits {mlm:e}, next-sentence logits {next_sentence:e}"
    );
    assert!(mlm <= 1e-5, "MLM logits differ by {mlm}");
    assert!(
        next_sentence <= 1e-5,
        "next-sentence logits differ by {next_sentence}"
    );
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

    let python = std::env::var("HUGGINGFACE_PYTHON")
        .expect("set HUGGINGFACE_PYTHON to a Python with transformers");
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.txt");
    let words = "[PAD] [UNK] [CLS] [SEP] [MASK] the quick brown fox jumped over lazy dog and \
                 cat ran home fast to a b c d e f hello world cafe naive sat on mat un ##aff \
                 ##able , . ! 中";
    let lines: String = words.split(' ').map(|w| format!("{w}\n")).collect();
    std::fs::write(&vocab, lines).unwrap();
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, sentence_cases().to_string()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tasks/tests/huggingface_tokens.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(&vocab)
        .arg(&cases_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference: Value = serde_json::from_slice(&output.stdout).unwrap();

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
