//! End-to-end runs of the `train` binary, one module per concern ([`train_modes`], [`resume`],
//! [`config_and_flags`], [`tasks`]); the helpers they share are here.
//!
//! The test harness starts tests in name order; with `train_modes` last, no multi-second test
//! (the README's `bert/local` run, the injected crashes, sentence fine-tuning) starts late and
//! runs on after the others have finished (about 1.5 s of wall time on 2 cores).

use cli_support::{assert_ok, stderr, write_pretraining_tfrecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use grove_orbit::summary::{event_files, read_scalars};

#[path = "../cli_support/mod.rs"]
mod cli_support;
mod config_and_flags;
mod resume;
mod tasks;
mod train_modes;

/// A small bert/local: 8 sequences of 32 tokens per batch, loops of 10 steps, with dropout (so
/// resume tests cover the dropout stream).
const SMALL: &str = "task.model.encoder.bert.dropout_rate=0.1,trainer.steps_per_loop=10,trainer.summary_interval=10,\
    trainer.checkpoint_interval=20,trainer.validation_interval=20,\
    task.train_data.global_batch_size=8,task.validation_data.global_batch_size=8,\
    task.train_data.seq_length=32,task.validation_data.seq_length=32,\
    task.train_data.max_predictions_per_seq=5,task.validation_data.max_predictions_per_seq=5,\
    task.train_data.num_examples=256,task.validation_data.num_examples=24";

fn train(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_train"));
    command
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env("GROVE_LOG", "info");
    command
}

fn run_small(model_dir: &Path, mode: &str, overrides: &[&str]) -> Output {
    run_small_with_flags(model_dir, mode, &[], overrides)
}

/// bert/local with [`SMALL`], extra `flags`, then each of `overrides` as a --params_override.
fn run_small_with_flags(
    model_dir: &Path,
    mode: &str,
    flags: &[&str],
    overrides: &[&str],
) -> Output {
    small_command(model_dir, mode, flags, overrides)
        .output()
        .unwrap()
}

/// The command [`run_small_with_flags`] runs.
fn small_command(model_dir: &Path, mode: &str, flags: &[&str], overrides: &[&str]) -> Command {
    experiment_command("bert/local", model_dir, mode, flags, overrides)
}

/// `experiment` with [`SMALL`], extra `flags`, then each of `overrides` as a --params_override.
fn experiment_command(
    experiment: &str,
    model_dir: &Path,
    mode: &str,
    flags: &[&str],
    overrides: &[&str],
) -> Command {
    let mut args = vec![
        format!("--experiment={experiment}"),
        format!("--mode={mode}"),
        format!("--model_dir={}", model_dir.display()),
        format!("--params_override={SMALL}"),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.extend(overrides.iter().map(|a| format!("--params_override={a}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    train(&refs)
}

/// Every tensor of a safetensors file, as raw bytes by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

/// `(step, value)` of `name` in the `split` lines of metrics.jsonl.
fn metric(model_dir: &Path, split: &str, name: &str) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["split"] == split)
        .filter_map(|v| Some((v["step"].as_u64()?, v[name].as_f64()?)))
        .collect()
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = walk(dir);
    entries.sort();
    entries
}

/// Every path below `dir` with the bytes of the files.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    listing(dir)
        .into_iter()
        .map(|p| {
            let bytes = if p.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (p, bytes)
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let path = e.unwrap().path();
            let mut below = if path.is_dir() {
                walk(&path)
            } else {
                Vec::new()
            };
            below.push(path);
            below
        })
        .collect()
}

/// A learning rate of 0 (and no warmup): training leaves the weights as they were loaded.
const FROZEN: &str = "trainer.optimizer_config.learning_rate={type: constant, constant: \
                      {learning_rate: 0.0}},trainer.optimizer_config.warmup.type=null";

/// A 20-step bert/local run in `dir/pretrained`, to initialize from.
fn pretrain(dir: &Path) -> PathBuf {
    let pretrained = dir.join("pretrained");
    assert_ok(&run_small(
        &pretrained,
        "train",
        &["trainer.train_steps=20"],
    ));
    pretrained
}
