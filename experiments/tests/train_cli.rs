//! End-to-end runs of the `train` binary: files of a run, resume, init_checkpoint, errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use grove_orbit::summary::{event_files, read_scalars};

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

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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

#[test]
fn train_and_eval_writes_every_file_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(
        &model_dir,
        "train_and_eval",
        &["trainer.train_steps=40"],
    ));
    for file in ["params.yaml", "checkpoint", "metrics.jsonl"] {
        assert!(model_dir.join(file).is_file(), "{file}");
    }
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(model_dir.join("ckpt-40").join(file).is_file(), "{file}");
    }
    let model = tensors(&model_dir.join("ckpt-40/model.safetensors"));
    assert!(model.contains_key("encoder.layer.0.attention.query.weight"));
    let optimizer = tensors(&model_dir.join("ckpt-40/optimizer.safetensors"));
    assert!(optimizer.contains_key("encoder.layer.0.attention.query.weight/m"));

    let train_events = event_files(&model_dir.join("train")).unwrap();
    let scalars = read_scalars(&train_events[0]).unwrap();
    for tag in [
        "training_loss",
        "learning_rate",
        "steps_per_second",
        "masked_lm_accuracy",
    ] {
        assert!(
            scalars.iter().any(|(s, t, _)| t == tag && *s == 40),
            "{tag}"
        );
    }
    let validation_events = event_files(&model_dir.join("validation")).unwrap();
    let scalars = read_scalars(&validation_events[0]).unwrap();
    assert!(scalars
        .iter()
        .any(|(s, t, _)| t == "validation_loss" && *s == 20));
    assert_eq!(
        metric(&model_dir, "validation", "validation_loss")
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        vec![20, 40]
    );
    assert_eq!(metric(&model_dir, "train", "training_loss").len(), 4);
    let params = std::fs::read_to_string(model_dir.join("params.yaml")).unwrap();
    assert!(params.contains("train_steps: 40"), "{params}");
}

#[test]
fn rerunning_a_finished_run_trains_nothing_and_writes_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(
        &model_dir,
        "train_and_eval",
        &["trainer.train_steps=20"],
    ));
    let before = listing(&model_dir);
    let index = std::fs::read(model_dir.join("checkpoint")).unwrap();
    let metrics = std::fs::read(model_dir.join("metrics.jsonl")).unwrap();
    let again = run_small(&model_dir, "train_and_eval", &["trainer.train_steps=20"]);
    assert_ok(&again);
    assert!(
        stderr(&again).contains("restored from checkpoint"),
        "{}",
        stderr(&again)
    );
    assert_eq!(listing(&model_dir), before);
    assert_eq!(std::fs::read(model_dir.join("checkpoint")).unwrap(), index);
    assert_eq!(
        std::fs::read(model_dir.join("metrics.jsonl")).unwrap(),
        metrics
    );
}

#[test]
fn a_killed_run_resumes_where_it_stood_and_ends_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let resumed = dir.path().join("resumed");
    let steps = "trainer.train_steps=200";
    assert_ok(&run_small(&straight, "train", &[steps]));

    // Start the same run, kill -9 it once a checkpoint exists, then run the same command again.
    let mut child = train(&[
        "--experiment=bert/local",
        "--mode=train",
        &format!("--model_dir={}", resumed.display()),
        &format!("--params_override={SMALL}"),
        &format!("--params_override={steps}"),
    ])
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    while !resumed.join("checkpoint").exists() {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let index = std::fs::read_to_string(resumed.join("checkpoint")).unwrap();
    assert!(
        !index.contains("ckpt-200"),
        "the run ended before the kill: {index}"
    );

    let again = run_small(&resumed, "train", &[steps]);
    assert_ok(&again);
    assert!(stderr(&again).contains("restored from checkpoint"));
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        let a = straight.join("ckpt-200").join(file);
        let b = resumed.join("ckpt-200").join(file);
        // The files themselves are byte-identical, not only their tensors.
        let same = std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap();
        assert!(same, "{file} differs");
    }
    // The losses logged after the resume point match the uninterrupted run's.
    let straight_losses = metric(&straight, "train", "training_loss");
    let resumed_losses = metric(&resumed, "train", "training_loss");
    let last_resumed = resumed_losses.last().unwrap();
    assert_eq!(straight_losses.last().unwrap(), last_resumed);
    for (step, loss) in resumed_losses.iter().rev().take(5) {
        assert!(straight_losses.contains(&(*step, *loss)), "step {step}");
    }
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

#[test]
fn init_checkpoint_is_loaded_only_when_model_dir_has_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let pretrained = pretrain(dir.path());

    // Fresh model_dir: the weights come from init_checkpoint (learning rate 0 keeps them).
    let finetuned = dir.path().join("finetuned");
    let init = format!("task.init_checkpoint={}", pretrained.display());
    let first = run_small(
        &finetuned,
        "train",
        &[FROZEN, &init, "trainer.train_steps=10"],
    );
    assert_ok(&first);
    assert!(
        stderr(&first).contains("variables, kept"),
        "{}",
        stderr(&first)
    );
    assert_eq!(
        tensors(&finetuned.join("ckpt-10/model.safetensors")),
        tensors(&pretrained.join("ckpt-20/model.safetensors"))
    );

    // With a checkpoint in model_dir, init_checkpoint is not even opened.
    let missing = "task.init_checkpoint=/no/such/checkpoint";
    let second = run_small(
        &finetuned,
        "train",
        &[FROZEN, missing, "trainer.train_steps=20"],
    );
    assert_ok(&second);
    assert!(!stderr(&second).contains("variables, kept"));

    // Without one, a bad init_checkpoint is an input error and creates no model_dir.
    let fresh = dir.path().join("fresh");
    let third = run_small(&fresh, "train", &[missing]);
    assert_eq!(third.status.code(), Some(2), "{}", stderr(&third));
    assert!(stderr(&third).contains("/no/such/checkpoint"));
    assert!(!fresh.exists());
}

#[test]
fn config_errors_exit_2_and_leave_model_dir_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=10"]));
    let before = snapshot(&model_dir);

    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(&bad_file, "trainer:\n  train_stepz: 5\n").unwrap();
    let typo = train(&[
        "--experiment=bert/local",
        "--mode=train",
        &format!("--model_dir={}", model_dir.display()),
        &format!("--config_file={}", bad_file.display()),
    ])
    .output()
    .unwrap();
    assert_eq!(typo.status.code(), Some(2));
    let message = stderr(&typo);
    assert!(
        message.contains("bad.yaml") && message.contains("trainer.train_stepz"),
        "{message}"
    );
    assert!(
        message.contains("did you mean `trainer.train_steps`"),
        "{message}"
    );

    let wrong_type = run_small(&model_dir, "train", &["trainer.train_steps=many"]);
    assert_eq!(wrong_type.status.code(), Some(2));
    let message = stderr(&wrong_type);
    assert!(message.contains("--params_override") && message.contains("trainer.train_steps"));

    assert_eq!(before, snapshot(&model_dir));

    let fresh = dir.path().join("fresh");
    let unknown = run_small(&fresh, "train", &["task.model.encoder.bert.num_layer=1"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("task.model.encoder.bert.num_layer"));
    assert!(!fresh.exists());
}

#[test]
fn flag_and_name_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = format!("--model_dir={}", dir.path().join("m").display());
    let unknown = train(&["--experiment=bert/locl", "--mode=train", &model_dir])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let message = stderr(&unknown);
    assert!(message.contains("did you mean `bert/local`"), "{message}");
    assert!(message.contains("bert/pretraining"), "{message}");

    let bad_mode = train(&["--experiment=bert/local", "--mode=fly", &model_dir])
        .output()
        .unwrap();
    assert_eq!(bad_mode.status.code(), Some(2));

    let eval = train(&["--experiment=bert/local", "--mode=eval", &model_dir])
        .output()
        .unwrap();
    assert_eq!(eval.status.code(), Some(2));
    assert!(
        stderr(&eval).contains("needs a checkpoint"),
        "{}",
        stderr(&eval)
    );
}

#[test]
fn list_experiments_prints_the_registered_names() {
    let output = train(&["--list_experiments"]).output().unwrap();
    assert_ok(&output);
    let names = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        vec![
            "bert/local",
            "bert/pretraining",
            "bert/progressive",
            "bert/progressive_local",
            "bert/sentence_prediction",
            "bert/sentence_prediction_local",
            "image_classification/cifar10",
            "image_classification/mnist",
            "image_classification/mnist_local",
            "vae/mnist_local",
        ]
    );
}

#[test]
fn eval_mode_evaluates_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=20"]));
    let eval = run_small(&model_dir, "eval", &["trainer.train_steps=20"]);
    assert_ok(&eval);
    assert!(
        stderr(&eval).contains("eval | step: 20"),
        "{}",
        stderr(&eval)
    );
    assert_eq!(metric(&model_dir, "validation", "validation_loss").len(), 1);
}

#[test]
fn dummy_input_needs_bounded_validation_steps() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let dummy = "task.validation_data.input_path=dummy";
    let unbounded = run_small(&model_dir, "train_and_eval", &[dummy]);
    assert_eq!(unbounded.status.code(), Some(2));
    assert!(stderr(&unbounded).contains("trainer.validation_steps"));
    assert!(!model_dir.exists());
    let bounded = run_small(
        &model_dir,
        "train_and_eval",
        &[dummy, "trainer.validation_steps=2,trainer.train_steps=20"],
    );
    assert_ok(&bounded);
}

#[test]
fn bert_local_as_the_readme_runs_it_halves_its_training_loss() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = train(&[
        "--experiment=bert/local",
        "--mode=train_and_eval",
        &format!("--model_dir={}", model_dir.display()),
    ])
    .output()
    .unwrap();
    assert_ok(&output);
    let losses = metric(&model_dir, "train", "training_loss");
    let (first, last) = (losses[0].1, losses.last().unwrap().1);
    assert!(last <= first / 2.0, "first {first}, last {last}");
    assert_eq!(metric(&model_dir, "validation", "validation_loss").len(), 4);
}

#[test]
fn print_config_shows_each_values_layer_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = train(&[
        "--experiment=bert/local",
        "--print_config",
        &format!("--model_dir={}", model_dir.display()),
        "--params_override=trainer.train_steps=7",
        "runtime.seed=5",
    ])
    .env("GROVE_TRAINER__MAX_TO_KEEP", "2")
    .output()
    .unwrap();
    assert_ok(&output);
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("  train_steps: 7  # --params_override \"trainer.train_steps=7\""));
    assert!(
        printed.contains("  seed: 5  # argument \"runtime.seed=5\""),
        "{printed}"
    );
    assert!(printed.contains("  max_to_keep: 2  # environment GROVE_TRAINER__MAX_TO_KEEP"));
    assert!(printed.contains("  steps_per_loop: 20  # experiment defaults"));
    assert!(!model_dir.exists());
}

#[test]
fn a_resumed_run_with_a_changed_config_stops_unless_the_change_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=10"]));
    let before = snapshot(&model_dir);

    // A cadence change (train_steps) is fine; a change of what is trained is not.
    let changed = [
        "trainer.train_steps=20",
        "task.model.encoder.bert.dropout_rate=0.2",
    ];
    let refused = run_small(&model_dir, "train", &changed);
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains("task.model.encoder.bert.dropout_rate: 0.1 -> 0.2"),
        "{message}"
    );
    let error = message.split("error:").nth(1).unwrap();
    assert!(!error.contains("trainer.train_steps"), "{message}");
    assert!(message.contains("config change on resume: trainer.train_steps: 10 -> 20"));
    assert_eq!(before, snapshot(&model_dir));

    let allowed = run_small_with_flags(&model_dir, "train", &["--allow_config_change"], &changed);
    assert_ok(&allowed);
    let record = std::fs::read_to_string(model_dir.join("config_changes.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
    assert_eq!(line["global_step"], 10);
    assert_eq!(
        line["changes"]["task.model.encoder.bert.dropout_rate"]["new"],
        0.2
    );
    assert!(model_dir.join("ckpt-20").is_dir());
}

#[test]
fn trailing_key_value_arguments_override_last() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = run_small(&model_dir, "train", &["trainer.train_steps=30"]);
    assert_ok(&output);
    let trailing = train(&[
        "--experiment=bert/local",
        "--mode=train",
        &format!("--model_dir={}", model_dir.display()),
        &format!("--params_override={SMALL}"),
        "--params_override=trainer.train_steps=40",
        "trainer.train_steps=10",
    ])
    .output()
    .unwrap();
    assert_ok(&trailing);
    assert!(
        stderr(&trailing).contains("nothing to train"),
        "{}",
        stderr(&trailing)
    );
}

#[test]
fn params_yaml_is_resolved_and_params_unresolved_yaml_keeps_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = run_small(
        &model_dir,
        "train",
        &["trainer.train_steps=${trainer.checkpoint_interval}"],
    );
    assert_ok(&output);
    let params = std::fs::read_to_string(model_dir.join("params.yaml")).unwrap();
    assert!(params.contains("train_steps: 20"), "{params}");
    let unresolved = std::fs::read_to_string(model_dir.join("params.unresolved.yaml")).unwrap();
    assert!(
        unresolved.contains("train_steps: ${trainer.checkpoint_interval}"),
        "{unresolved}"
    );
    assert!(model_dir.join("ckpt-20").is_dir());
}

#[test]
fn a_model_garden_pretraining_yaml_loads_into_bert_pretraining() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/experiments/bert_pretraining_model_garden.yaml"
    );
    let output = train(&[
        "--experiment=bert/pretraining",
        "--print_config",
        &format!("--config_file={file}"),
    ])
    .output()
    .unwrap();
    assert_ok(&output);
    let message = stderr(&output);
    assert!(message.contains("ignoring keys that only mean something to TensorFlow"));
    assert!(
        message.contains("trainer.train_tf_function") && message.contains("runtime.enable_xla")
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("validation_steps: 64  #"), "{printed}");
    assert!(
        printed.contains("checkpoint_interval: 20000  #"),
        "{printed}"
    );
}

#[test]
fn sigterm_saves_the_current_step_exits_75_and_the_same_command_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let preempted = dir.path().join("preempted");
    let steps = "trainer.train_steps=200";
    assert_ok(&run_small(&straight, "train", &[steps]));

    let child = train(&[
        "--experiment=bert/local",
        "--mode=train",
        &format!("--model_dir={}", preempted.display()),
        &format!("--params_override={SMALL}"),
        &format!("--params_override={steps}"),
    ])
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    while !preempted.join("checkpoint").exists() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(75), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("preempted at step"), "{message}");
    assert!(
        message.contains("run the same command to resume"),
        "{message}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(preempted.join("checkpoint")).unwrap())
            .unwrap();
    let latest = state["latest"].as_str().unwrap().to_string();
    assert_ne!(latest, "ckpt-200", "the run ended before the signal");

    assert_ok(&run_small(&preempted, "train", &[steps]));
    assert_eq!(
        tensors(&straight.join("ckpt-200/model.safetensors")),
        tensors(&preempted.join("ckpt-200/model.safetensors"))
    );
}

#[test]
fn a_second_training_process_on_a_model_dir_is_refused_while_evaluation_may_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=20"]));
    let held = grove_trainers::model_dir_lock::lock_model_dir(&model_dir).unwrap();
    let second = run_small(&model_dir, "train", &["trainer.train_steps=40"]);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert!(stderr(&second).contains("being trained by another process"));
    assert!(!model_dir.join("ckpt-40").exists());
    assert_ok(&run_small(&model_dir, "eval", &["trainer.train_steps=20"]));
    drop(held);
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=40"]));
}

fn validation_steps(model_dir: &Path) -> Vec<u64> {
    metric(model_dir, "validation", "validation_loss")
        .into_iter()
        .map(|(step, _)| step)
        .collect()
}

#[test]
fn train_and_post_eval_trains_then_evaluates_once() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(
        &model_dir,
        "train_and_post_eval",
        &["trainer.train_steps=40"],
    ));
    assert_eq!(validation_steps(&model_dir), vec![40]);
}

#[test]
fn eval_checkpoint_selects_latest_all_or_one_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=40"]));
    let all = run_small_with_flags(&model_dir, "eval", &["--eval_checkpoint=all"], &[]);
    assert_ok(&all);
    assert_eq!(validation_steps(&model_dir), vec![20, 40]);
    let one = format!("--eval_checkpoint={}", model_dir.join("ckpt-20").display());
    assert_ok(&run_small_with_flags(&model_dir, "eval", &[&one], &[]));
    assert_eq!(validation_steps(&model_dir), vec![20, 40, 20]);
    let missing = format!("--eval_checkpoint={}", model_dir.join("ckpt-7").display());
    let bad = run_small_with_flags(&model_dir, "eval", &[&missing], &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let misplaced = run_small_with_flags(&model_dir, "train", &["--eval_checkpoint=all"], &[]);
    assert_eq!(misplaced.status.code(), Some(2));
}

#[test]
fn continuous_eval_beside_a_trainer_evaluates_every_checkpoint_in_order_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let args = |mode: &str| {
        vec![
            "--experiment=bert/local".to_string(),
            format!("--mode={mode}"),
            format!("--model_dir={}", model_dir.display()),
            format!("--params_override={SMALL}"),
            "--params_override=trainer.train_steps=100,trainer.max_to_keep=10,\
             trainer.continuous_eval_timeout=60"
                .to_string(),
        ]
    };
    let spawn = |mode: &str| {
        let args = args(mode);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        train(&refs)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let evaluator = spawn("continuous_eval");
    let trainer = spawn("train");
    assert_ok(&trainer.wait_with_output().unwrap());
    assert_ok(&evaluator.wait_with_output().unwrap());
    assert_eq!(validation_steps(&model_dir), vec![20, 40, 60, 80, 100]);
}

#[test]
fn continuous_eval_gives_up_after_its_timeout_without_a_new_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=20"]));
    let waiting = run_small(
        &model_dir,
        "continuous_eval",
        &["trainer.train_steps=1000,trainer.continuous_eval_timeout=1"],
    );
    assert_ok(&waiting);
    assert!(
        stderr(&waiting).contains("no new checkpoint"),
        "{}",
        stderr(&waiting)
    );
    assert_eq!(validation_steps(&model_dir), vec![20]);
}

#[test]
fn the_best_checkpoint_is_exported_and_survives_max_to_keep() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let best = "trainer.best_checkpoint_export_subdir=best,\
                trainer.best_checkpoint_eval_metric=validation_loss,\
                trainer.best_checkpoint_metric_comp=lower,trainer.max_to_keep=1";
    let output = run_small(
        &model_dir,
        "train_and_eval",
        &["trainer.train_steps=60", best],
    );
    assert_ok(&output);
    let losses = metric(&model_dir, "validation", "validation_loss");
    let (best_step, best_loss) = losses
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let reported = metric(&model_dir, "validation", "best_validation_loss");
    assert_eq!(reported.last().unwrap().1, best_loss);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("best/info.json")).unwrap())
            .unwrap();
    assert_eq!(info["checkpoints"][0]["step"], best_step);
    assert!(model_dir
        .join(format!("best/ckpt-{best_step}/model.safetensors"))
        .is_file());
    let index = std::fs::read_to_string(model_dir.join("checkpoint")).unwrap();
    assert!(
        index.contains("ckpt-60") && !index.contains("ckpt-20"),
        "{index}"
    );
}

#[test]
fn early_stopping_ends_train_and_eval_when_the_metric_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let stopping = "trainer.early_stopping={metric: validation_loss, comp: lower, patience: 1, \
                    min_delta: 100.0}";
    let output = run_small(
        &model_dir,
        "train_and_eval",
        &["trainer.train_steps=200", stopping],
    );
    assert_ok(&output);
    assert!(
        stderr(&output).contains("early stopping at step 40"),
        "{}",
        stderr(&output)
    );
    assert_eq!(validation_steps(&model_dir), vec![20, 40]);
    let index = std::fs::read_to_string(model_dir.join("checkpoint")).unwrap();
    assert!(index.contains("\"latest\": \"ckpt-40\""), "{index}");
}

#[test]
fn evaluation_does_not_change_the_training_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let evaluated = dir.path().join("evaluated");
    let plain = dir.path().join("plain");
    assert_ok(&run_small(
        &evaluated,
        "train_and_eval",
        &["trainer.train_steps=60"],
    ));
    assert_ok(&run_small(&plain, "train", &["trainer.train_steps=60"]));
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert_eq!(
            tensors(&evaluated.join("ckpt-60").join(file)),
            tensors(&plain.join("ckpt-60").join(file)),
            "{file}"
        );
    }
    assert_eq!(
        metric(&evaluated, "train", "training_loss"),
        metric(&plain, "train", "training_loss")
    );
}

#[test]
fn a_truncated_latest_checkpoint_is_reported_and_the_previous_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let damaged = dir.path().join("damaged");
    assert_ok(&run_small(&straight, "train", &["trainer.train_steps=60"]));
    assert_ok(&run_small(&damaged, "train", &["trainer.train_steps=40"]));
    let weights = damaged.join("ckpt-40/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();

    let resumed = run_small(&damaged, "train", &["trainer.train_steps=60"]);
    assert_ok(&resumed);
    let message = stderr(&resumed);
    assert!(message.contains("ckpt-40 is damaged"), "{message}");
    assert!(message.contains("restored from checkpoint") && message.contains("ckpt-20"));
    assert!(damaged.join("ckpt-40.damaged").is_dir());
    assert_eq!(
        tensors(&straight.join("ckpt-60/model.safetensors")),
        tensors(&damaged.join("ckpt-60/model.safetensors"))
    );
}

#[test]
fn twenty_injected_crashes_always_resume_from_a_complete_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let crashed = dir.path().join("crashed");
    let run = "trainer.train_steps=400,trainer.checkpoint_interval=10,trainer.max_to_keep=3";
    assert_ok(&run_small(&straight, "train", &[run]));

    let points = [
        "train_step",
        "checkpoint_files_written",
        "checkpoint_manifest_written",
        "checkpoint_renamed",
        "checkpoint_indexed",
    ];
    // A seeded schedule (xorshift) of fault points and occurrences.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut crashes = 0;
    while crashes < 20 {
        let point = points[(next() % points.len() as u64) as usize];
        let occurrence = 1 + next() % if point == "train_step" { 25 } else { 3 };
        let output = small_command(&crashed, "train", &[], &[run])
            .env("GROVE_FAULT_INJECT", format!("{point}:{occurrence}"))
            .output()
            .unwrap();
        match output.status.code() {
            None => crashes += 1,
            Some(0) => panic!("training finished after only {crashes} crashes"),
            Some(code) => panic!("exit {code} after a crash: {}", stderr(&output)),
        }
        // Whatever the index names is complete.
        if let Ok(index) = std::fs::read_to_string(crashed.join("checkpoint")) {
            let index: serde_json::Value = serde_json::from_str(&index).unwrap();
            for entry in index["checkpoints"].as_array().unwrap() {
                let name = entry["name"].as_str().unwrap();
                grove_orbit::checkpoint::verify_checkpoint(&crashed.join(name)).unwrap();
            }
        }
    }
    let finish = run_small(&crashed, "train", &[run]);
    assert_ok(&finish);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert_eq!(
            tensors(&straight.join("ckpt-400").join(file)),
            tensors(&crashed.join("ckpt-400").join(file)),
            "{file}"
        );
    }
}

#[test]
fn init_checkpoint_rules_load_only_the_encoder_and_report_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let pretrained = pretrain(dir.path());
    let finetuned = dir.path().join("finetuned");
    let init = format!(
        "{{task: {{init_checkpoint: '{}', init_checkpoint_rules: [{{model: encoder., \
         checkpoint: encoder.}}]}}}}",
        pretrained.display()
    );
    let output = run_small(
        &finetuned,
        "train",
        &[FROZEN, &init, "trainer.train_steps=10"],
    );
    assert_ok(&output);
    let message = stderr(&output);
    assert!(
        message.contains("kept") && message.contains("masked_lm.dense.weight"),
        "{message}"
    );
    let before = tensors(&pretrained.join("ckpt-20/model.safetensors"));
    let after = tensors(&finetuned.join("ckpt-10/model.safetensors"));
    for (name, bytes) in &after {
        assert_eq!(
            name.starts_with("encoder."),
            &before[name] == bytes,
            "{name}"
        );
    }
}

#[test]
fn extra_validation_sets_are_evaluated_and_logged_under_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let extra = "{task: {extra_validation_data: {hard: {input_path: synthetic, is_training: \
                 false, global_batch_size: 8, seq_length: 32, max_predictions_per_seq: 5, \
                 num_examples: 16}}}, trainer: {best_checkpoint_export_subdir: best, \
                 best_checkpoint_eval_metric: 'hard|masked_lm_accuracy'}}";
    let output = run_small(
        &model_dir,
        "train_and_eval",
        &["trainer.train_steps=20", extra],
    );
    assert_ok(&output);
    let hard = metric(&model_dir, "validation", "hard/validation_loss");
    let main = metric(&model_dir, "validation", "validation_loss");
    assert_eq!(hard.len(), 1);
    assert_eq!(main.len(), 1);
    assert_ne!(hard[0].1, main[0].1);
    assert!(!metric(&model_dir, "validation", "best_hard/masked_lm_accuracy").is_empty());

    let clash = run_small(
        &model_dir,
        "train_and_eval",
        &["{task: {extra_validation_data: {validation: {is_training: false}}}}"],
    );
    assert_eq!(clash.status.code(), Some(2), "{}", stderr(&clash));
    assert!(stderr(&clash).contains("task.extra_validation_data.validation: a set name"));
}

#[test]
fn blow_ups_are_recovered_from_the_latest_checkpoint_up_to_max_trials_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    // Every loop from step 30 on exceeds a bound of 0: two recoveries, then the run fails.
    let blow_up = "trainer.train_steps=60,trainer.loss_upper_bound=0.0,\
                   trainer.recovery_begin_steps=30,trainer.recovery_max_trials=2";
    let output = run_small(&model_dir, "train", &[blow_up]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("recovery 1 of 2") && message.contains("recovery 2 of 2"));
    assert!(message.contains("after 2 recoveries"), "{message}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir.join("ckpt-20/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["input_offset"], 0);
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_earlier_checkpoints_intact() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = small_command(&model_dir, "train", &[], &["trainer.train_steps=60"])
        .env("GROVE_FAULT_INJECT", "checkpoint_files_written:3:enospc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("cannot write") && message.contains("ckpt-60.tmp"),
        "{message}"
    );
    assert!(message.contains("No space left on device"), "{message}");
    let index = std::fs::read_to_string(model_dir.join("checkpoint")).unwrap();
    assert!(index.contains("\"latest\": \"ckpt-40\""), "{index}");
    for step in [20, 40] {
        let checkpoint = model_dir.join(format!("ckpt-{step}"));
        grove_orbit::checkpoint::verify_checkpoint(&checkpoint).unwrap();
    }
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=60"]));
    assert!(!model_dir.join("ckpt-60.tmp").exists());
}

#[test]
fn ema_evaluates_and_exports_averaged_weights_and_trains_on_raw_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ema = "trainer.optimizer_config.ema={average_decay: 0.9}";
    let best = "trainer.best_checkpoint_export_subdir=best,\
                trainer.best_checkpoint_eval_metric=validation_loss,\
                trainer.best_checkpoint_metric_comp=higher";
    let steps = "trainer.train_steps=40";
    let evaluated = dir.path().join("evaluated");
    assert_ok(&run_small(
        &evaluated,
        "train_and_eval",
        &[steps, ema, best],
    ));
    // Training in two processes, without evaluation, ends with the same files: evaluation
    // swapped the raw weights back, and the averages were checkpointed and restored.
    let resumed = dir.path().join("resumed");
    assert_ok(&run_small(
        &resumed,
        "train",
        &["trainer.train_steps=20", ema],
    ));
    assert_ok(&run_small(&resumed, "train", &[steps, ema]));
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert_eq!(
            tensors(&evaluated.join("ckpt-40").join(file)),
            tensors(&resumed.join("ckpt-40").join(file)),
            "{file}"
        );
    }
    // The averages are optimizer slots; the best export (here the first evaluation, at step
    // 20, since a higher loss is "better") holds them as its model weights.
    let optimizer = tensors(&evaluated.join("ckpt-20/optimizer.safetensors"));
    let exported = tensors(&evaluated.join("best/ckpt-20/model.safetensors"));
    let raw = tensors(&evaluated.join("ckpt-20/model.safetensors"));
    for (name, value) in &exported {
        assert_eq!(&optimizer[&format!("{name}/average")], value, "{name}");
        assert_ne!(&raw[name], value, "{name}");
    }
    // Evaluation used the averages: the losses differ from a run without EMA, and
    // re-evaluating the checkpoint gives the same loss as during training.
    let plain = dir.path().join("plain");
    assert_ok(&run_small(&plain, "train_and_eval", &[steps]));
    let with_ema = metric(&evaluated, "validation", "validation_loss");
    assert_ne!(with_ema, metric(&plain, "validation", "validation_loss"));
    assert_eq!(
        metric(&evaluated, "train", "training_loss"),
        metric(&plain, "train", "training_loss")
    );
    let output = run_small_with_flags(
        &evaluated,
        "eval",
        &["--eval_checkpoint=all"],
        &[steps, ema, best],
    );
    assert_ok(&output);
    let again = metric(&evaluated, "validation", "validation_loss");
    assert_eq!(&again[again.len() - 2..], &with_ema[..], "{again:?}");
}

#[test]
fn image_classification_mnist_local_reaches_95_percent_validation_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = train(&[
        "--experiment=image_classification/mnist_local",
        "--mode=train_and_eval",
        &format!("--model_dir={}", model_dir.display()),
    ])
    .output()
    .unwrap();
    assert_ok(&output);
    let accuracy = metric(&model_dir, "validation", "accuracy");
    let (step, last) = *accuracy.last().unwrap();
    assert_eq!(step, 600);
    assert!(last >= 0.95, "validation accuracy {accuracy:?}");
    assert!(accuracy[0].1 < last, "{accuracy:?}");
}

/// Writes `count` synthetic digits as MNIST's `<prefix>-{images,labels}` IDX files in `dir`.
fn write_idx_digits(dir: &Path, prefix: &str, first: usize, count: usize) {
    use grove_tasks::data::idx::{encode_idx, IdxArray};
    let set = grove_tasks::data::synthetic_images::synthetic_images(5, first, count);
    let images = IdxArray {
        dims: vec![count, set.height, set.width],
        data: set.pixels,
    };
    let labels = IdxArray {
        dims: vec![count],
        data: set.labels.iter().map(|&l| l as u8).collect(),
    };
    std::fs::write(
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        encode_idx(&images),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{prefix}-labels-idx1-ubyte")),
        encode_idx(&labels),
    )
    .unwrap();
}

#[test]
fn image_classification_trains_a_batch_norm_cnn_on_idx_files_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    write_idx_digits(&data, "train", 0, 256);
    write_idx_digits(&data, "t10k", 256, 64);
    let model_dir = dir.path().join("run");
    let path = data.display().to_string();
    let settings = [
        "--experiment=image_classification/mnist".to_string(),
        "--mode=train_and_eval".to_string(),
        format!("--model_dir={}", model_dir.display()),
        format!("task.train_data.input_path={path}"),
        format!("task.validation_data.input_path={path}"),
        "task.model.backbone={type: cnn, cnn: {filters: [4, 8]}}".to_string(),
        "task.model.norm_type=batch_norm".to_string(),
        "task.train_data.global_batch_size=16".to_string(),
        "task.validation_data.global_batch_size=32".to_string(),
        "trainer.train_steps=20".to_string(),
        "trainer.steps_per_loop=10".to_string(),
        "trainer.summary_interval=10".to_string(),
        "trainer.checkpoint_interval=20".to_string(),
        "trainer.validation_interval=20".to_string(),
    ];
    let args: Vec<&str> = settings.iter().map(String::as_str).collect();
    assert_ok(&train(&args).output().unwrap());
    let validation = metric(&model_dir, "validation", "accuracy");
    assert_eq!(validation.len(), 1, "{validation:?}");
    // Batch norm's moving statistics are checkpointed variables, updated by training.
    let weights = tensors(&model_dir.join("ckpt-20/model.safetensors"));
    let running_mean = &weights["backbone.0.batch_norm.running_mean"];
    assert!(
        running_mean.iter().any(|&b| b != 0),
        "moving mean never updated"
    );

    std::fs::write(
        data.join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 9, 1],
    )
    .unwrap();
    let fresh = dir.path().join("fresh");
    let mut args: Vec<String> = settings.to_vec();
    args[2] = format!("--model_dir={}", fresh.display());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = train(&args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("t10k-labels-idx1-ubyte") && message.contains("truncated"),
        "{message}"
    );
    assert!(!fresh.join("ckpt-20").exists());
}

/// The file-reading experiments' defaults are valid configs whose only gap is the data: the
/// run stops before creating anything and says which key to set.
#[test]
fn file_experiments_ask_for_their_input_paths() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [("mnist", "idx"), ("cifar10", "cifar10")] {
        let model_dir = dir.path().join(name);
        let output = train(&[
            &format!("--experiment=image_classification/{name}"),
            "--mode=train_and_eval",
            &format!("--model_dir={}", model_dir.display()),
        ])
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let message = stderr(&output);
        assert!(
            message.contains("task.train_data.input_path is empty")
                && message.contains(&format!("{format} files")),
            "{message}"
        );
        assert!(!model_dir.exists());
    }
}

#[test]
fn vae_mnist_local_improves_its_elbo_and_reports_both_terms() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = train(&[
        "--experiment=vae/mnist_local",
        "--mode=train_and_eval",
        &format!("--model_dir={}", model_dir.display()),
        "trainer.train_steps=200",
        "trainer.validation_interval=100",
        "trainer.checkpoint_interval=100",
    ])
    .output()
    .unwrap();
    assert_ok(&output);
    let elbo = metric(&model_dir, "validation", "elbo");
    assert_eq!(elbo.iter().map(|e| e.0).collect::<Vec<_>>(), [100, 200]);
    // An untrained decoder scores about 784·ln 2 ≈ 543 nats per image.
    assert!(elbo[0].1 > -400.0 && elbo[1].1 > elbo[0].1, "{elbo:?}");
    for term in ["reconstruction_loss", "kl_divergence"] {
        let values = metric(&model_dir, "validation", term);
        assert!(values.iter().all(|v| v.1 > 0.0), "{term}: {values:?}");
    }
}

/// Writes `count` examples of the synthetic corpus as a TFRecord file of Model Garden's BERT
/// pretraining `tf.train.Example`s (v1 or v2 feature names), sized as [`SMALL`].
fn write_pretraining_tfrecord(path: &Path, v2: bool, first: usize, count: usize) {
    use grove_records::example::{encode_example, Example, FeatureValues};
    use grove_records::tfrecord::frame_record;
    use grove_tasks::data::synthetic_corpus::{SyntheticCorpus, SyntheticCorpusSpec};
    let corpus = SyntheticCorpus::new(SyntheticCorpusSpec {
        seed: 11,
        num_examples: first + count,
        seq_length: 32,
        max_predictions_per_seq: 5,
        vocab_size: 512,
        use_next_sentence_label: true,
    })
    .unwrap();
    let ints = |v: &[u32]| FeatureValues::Int64(v.iter().map(|&x| i64::from(x)).collect());
    let (word_ids, type_ids) = if v2 {
        ("input_word_ids", "input_type_ids")
    } else {
        ("input_ids", "segment_ids")
    };
    let mut bytes = Vec::new();
    for index in first..first + count {
        let e = corpus.example(index);
        let mut example = Example::new();
        example.insert(word_ids.into(), ints(&e.input_word_ids));
        example.insert("input_mask".into(), ints(&e.input_mask));
        example.insert(type_ids.into(), ints(&e.input_type_ids));
        example.insert("masked_lm_positions".into(), ints(&e.masked_lm_positions));
        example.insert("masked_lm_ids".into(), ints(&e.masked_lm_ids));
        example.insert(
            "masked_lm_weights".into(),
            FeatureValues::Float(e.masked_lm_weights.clone()),
        );
        example.insert(
            "next_sentence_labels".into(),
            ints(&[e.next_sentence_label]),
        );
        bytes.extend(frame_record(&encode_example(&example)));
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn model_garden_pretraining_tfrecords_train_bert_local() {
    let dir = tempfile::tempdir().unwrap();
    let train_file = dir.path().join("train-00000.tfrecord");
    let eval_file = dir.path().join("eval.tfrecord");
    write_pretraining_tfrecord(&train_file, false, 0, 256);
    write_pretraining_tfrecord(&eval_file, true, 256, 24);
    let train_pattern = format!(
        "task.train_data.input_path={}",
        dir.path().join("train-*").display()
    );
    let eval_path = format!("task.validation_data.input_path={}", eval_file.display());
    let model_dir = dir.path().join("run");
    let steps = "trainer.train_steps=60";
    let v2 = "task.validation_data.use_v2_feature_names=true";
    let output = run_small(
        &model_dir,
        "train_and_eval",
        &[steps, &train_pattern, &eval_path, v2],
    );
    assert_ok(&output);
    let losses = metric(&model_dir, "train", "training_loss");
    assert!(losses.last().unwrap().1 < losses[0].1, "{losses:?}");
    assert_eq!(metric(&model_dir, "validation", "validation_loss").len(), 3);

    // The v2 file read with v1 names names the missing feature, the file and the record.
    let fresh = dir.path().join("fresh");
    let v1_eval = format!("task.train_data.input_path={}", eval_file.display());
    let output = run_small(&fresh, "train", &[steps, &v1_eval, &eval_path, v2]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("eval.tfrecord: record 0") && message.contains("`input_ids` is missing"),
        "{message}"
    );
    // Records of 32 tokens read as 16-token sequences: the feature, its length and the record.
    let train_file_only = format!("task.train_data.input_path={}", train_file.display());
    let short = "task.train_data.seq_length=16";
    let output = run_small(
        &fresh,
        "train",
        &[steps, &train_file_only, &eval_path, v2, short],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("train-00000.tfrecord: record 0")
            && message.contains("feature `input_ids` has 32 values, expected 16"),
        "{message}"
    );
    // A flipped byte fails the CRC check of its record.
    let mut bytes = std::fs::read(&eval_file).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&eval_file, bytes).unwrap();
    let output = run_small(
        &fresh,
        "train_and_eval",
        &[steps, &train_pattern, &eval_path, v2],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("record 23") && message.contains("record data CRC mismatch"),
        "{message}"
    );
    let nothing = format!(
        "task.train_data.input_path={}",
        dir.path().join("none-*").display()
    );
    let output = run_small(&fresh, "train", &[steps, &nothing, &eval_path, v2]);
    assert!(
        stderr(&output).contains("matches no file"),
        "{}",
        stderr(&output)
    );
    assert!(!fresh.join("ckpt-20").exists());
}

#[test]
fn sentence_prediction_local_fine_tunes_a_bert_local_checkpoint_past_the_majority_class() {
    let dir = tempfile::tempdir().unwrap();
    let pretrained = dir.path().join("pretrained");
    assert_ok(
        &train(&[
            "--experiment=bert/local",
            "--mode=train",
            &format!("--model_dir={}", pretrained.display()),
            "trainer.train_steps=200",
        ])
        .output()
        .unwrap(),
    );
    let model_dir = dir.path().join("fine_tuned");
    let output = train(&[
        "--experiment=bert/sentence_prediction_local",
        "--mode=train_and_eval",
        &format!("--model_dir={}", model_dir.display()),
        &format!("task.init_checkpoint={}", pretrained.display()),
        "task.metric_type=f1",
        "trainer.train_steps=100",
        "task.validation_data.num_examples=256",
    ])
    .output()
    .unwrap();
    assert_ok(&output);
    let log = stderr(&output);
    assert!(
        log.contains("ckpt-200/model.safetensors: loaded 39 variables")
            && log.contains("kept 2 at their initial values (sentence_prediction.out_proj"),
        "{log}"
    );
    // Labels are balanced (B continues A or not), so the majority class scores about 0.5.
    let accuracy = metric(&model_dir, "validation", "cls_accuracy");
    let f1 = metric(&model_dir, "validation", "f1");
    assert!(accuracy.last().unwrap().1 > 0.75, "{accuracy:?}");
    assert!(f1.last().unwrap().1 > 0.7, "{f1:?}");
}

#[test]
fn a_model_garden_glue_yaml_fine_tunes_bert_sentence_prediction_on_tsv_files() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.txt");
    std::fs::write(
        &vocab,
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\ndog\nran\n",
    )
    .unwrap();
    let tsv = dir.path().join("mnli.tsv");
    let rows: String = (0..12)
        .map(|i| format!("the cat sat\tthe dog ran\t{}\n", i % 3))
        .collect();
    std::fs::write(&tsv, format!("premise\thypothesis\tlabel\n{rows}")).unwrap();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/experiments/bert_glue_model_garden.yaml"
    );
    let model_dir = dir.path().join("run");
    let data = |split: &str| {
        format!(
            "task.{split}={{input_path: {}, vocab_file: {}, text_fields: [premise, hypothesis], \
             global_batch_size: 4, seq_length: 16}}",
            tsv.display(),
            vocab.display()
        )
    };
    let tiny = "task.model.encoder.bert={vocab_size: 9, hidden_size: 8, num_layers: 1, \
                num_attention_heads: 1, intermediate_size: 16, max_position_embeddings: 16}";
    let settings = [
        "--experiment=bert/sentence_prediction".to_string(),
        "--mode=train_and_eval".to_string(),
        format!("--model_dir={}", model_dir.display()),
        format!("--config_file={file}"),
        format!("--params_override={}", data("train_data")),
        format!("--params_override={}", data("validation_data")),
        format!("--params_override={tiny}"),
        "trainer.train_steps=4".to_string(),
        "trainer.validation_steps=2".to_string(),
    ];
    let args: Vec<&str> = settings.iter().map(String::as_str).collect();
    let output = train(&args).output().unwrap();
    assert_ok(&output);
    let log = stderr(&output);
    assert!(
        log.contains("task.hub_module_url") && log.contains("trainer.train_tf_function"),
        "{log}"
    );
    assert_eq!(metric(&model_dir, "validation", "cls_accuracy").len(), 1);
    let params = std::fs::read_to_string(model_dir.join("params.yaml")).unwrap();
    assert!(params.contains("num_classes: 3"), "{params}");
}

#[test]
fn plain_text_tokenized_with_a_vocab_file_trains_bert_local() {
    let dir = tempfile::tempdir().unwrap();
    let words = [
        "the", "cat", "dog", "sat", "ran", "on", "mat", "home", "fast", "slow",
    ];
    let vocab: String = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]
        .iter()
        .chain(&words)
        .map(|w| format!("{w}\n"))
        .collect();
    std::fs::write(dir.path().join("vocab.txt"), vocab).unwrap();
    let mut text = String::new();
    for document in 0..40 {
        for sentence in 0..4 {
            let pick = |k: usize| words[(document * 7 + sentence * 3 + k) % words.len()];
            text.push_str(&format!(
                "{} {} {} {}.\n",
                pick(0),
                pick(1),
                pick(2),
                pick(5)
            ));
        }
        text.push('\n');
    }
    std::fs::write(dir.path().join("corpus.txt"), text).unwrap();
    let data = |split: &str| {
        format!(
            "task.{split}={{input_path: {}, file_type: text, vocab_file: {}}}",
            dir.path().join("corpus.txt").display(),
            dir.path().join("vocab.txt").display()
        )
    };
    let model_dir = dir.path().join("run");
    let output = run_small(
        &model_dir,
        "train_and_eval",
        &[
            "trainer.train_steps=40",
            &data("train_data"),
            &data("validation_data"),
        ],
    );
    assert_ok(&output);
    let losses = metric(&model_dir, "train", "training_loss");
    assert!(losses.last().unwrap().1 < losses[0].1, "{losses:?}");
}

/// bert/progressive_local with [`SMALL`]: 1 → 2 → 4 layers over 25 + 25 + 30 steps (the first
/// boundary inside a 10-step loop).
const PROGRESSIVE: &str = "trainer.train_steps=80,trainer.progressive.stage_list=[\
    {num_layers: 1, num_steps: 25, warmup_steps: 5, initial_learning_rate: 0.003, end_learning_rate: 0.001, decay_steps: 25},\
    {num_layers: 2, num_steps: 25, warmup_steps: 5, initial_learning_rate: 0.003, end_learning_rate: 0.001, decay_steps: 25},\
    {num_layers: 4, num_steps: 30, warmup_steps: 5, initial_learning_rate: 0.003, end_learning_rate: 0.0, decay_steps: 30}]";

fn progressive_command(model_dir: &Path) -> Command {
    experiment_command(
        "bert/progressive_local",
        model_dir,
        "train",
        &[],
        &[PROGRESSIVE],
    )
}

#[test]
fn a_killed_progressive_run_resumes_in_its_stage_and_exports_loadable_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let resumed = dir.path().join("resumed");
    let first = progressive_command(&straight).output().unwrap();
    assert_ok(&first);
    let log = stderr(&first);
    assert!(
        log.contains("stage 0 -> stage 1 at global step 30"),
        "{log}"
    );
    assert!(
        log.contains("stage 1 -> stage 2 at global step 50"),
        "{log}"
    );
    let stages: Vec<(u64, f64)> = metric(&straight, "train", "stage");
    let expected: Vec<(u64, f64)> = [0., 0., 0., 1., 1., 2., 2., 2.]
        .into_iter()
        .enumerate()
        .map(|(i, stage)| (10 * (i as u64 + 1), stage))
        .collect();
    assert_eq!(stages, expected);
    // ckpt-40 is in stage 1: a 2-layer model whose optimizer started at step 30.
    let state = std::fs::read_to_string(straight.join("ckpt-40/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        (
            state["stage"].as_u64(),
            state["optimizer_iterations"].as_u64()
        ),
        (Some(1), Some(10))
    );
    let model = tensors(&straight.join("ckpt-40/model.safetensors"));
    assert!(model.keys().any(|n| n.starts_with("encoder.layer.1.")));
    assert!(!model.keys().any(|n| n.starts_with("encoder.layer.2.")));

    // Kill -9 once ckpt-40 (stage 1) exists, then run the same command again.
    let mut child = progressive_command(&resumed)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let index = resumed.join("checkpoint");
    while !std::fs::read_to_string(&index).is_ok_and(|i| i.contains("ckpt-40")) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = std::fs::read_to_string(&index).unwrap();
    assert!(
        !at_kill.contains("ckpt-80"),
        "the run ended before the kill"
    );
    let again = progressive_command(&resumed).output().unwrap();
    assert_ok(&again);
    assert!(stderr(&again).contains("restored from checkpoint"));
    for ckpt in ["ckpt-80", "exported_ckpts/ckpt-80"] {
        for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
            let a = std::fs::read(straight.join(ckpt).join(file)).unwrap();
            let b = std::fs::read(resumed.join(ckpt).join(file)).unwrap();
            assert!(a == b, "{ckpt}/{file} differs");
        }
    }

    // Exports: only in the last stage, every checkpoint_interval, plain (no stage).
    let exported = straight.join("exported_ckpts");
    assert!(exported.join("ckpt-60").exists() && !exported.join("ckpt-40").exists());
    let state = std::fs::read_to_string(exported.join("ckpt-80/state.json")).unwrap();
    assert!(!state.contains("stage"), "{state}");
    // An exported checkpoint initializes a 4-layer bert/local masked LM run.
    let finetuned = dir.path().join("finetuned");
    let init = format!(
        "task.init_checkpoint={}",
        exported.join("ckpt-80").display()
    );
    let layers = "task.model.encoder.bert.num_layers=4";
    let rezero = "task.model.encoder.bert.use_rezero=true";
    let run = run_small(
        &finetuned,
        "train",
        &[FROZEN, &init, layers, rezero, "trainer.train_steps=10"],
    );
    assert_ok(&run);
    assert_eq!(
        tensors(&finetuned.join("ckpt-10/model.safetensors")),
        tensors(&exported.join("ckpt-80/model.safetensors"))
    );
    // And a 4-layer sentence prediction fine-tune starts from its encoder and pooler.
    let classifier = dir.path().join("classifier");
    let output = train(&[
        "--experiment=bert/sentence_prediction_local",
        "--mode=train",
        &format!("--model_dir={}", classifier.display()),
        &format!("task.init_checkpoint={}", exported.display()),
        layers,
        rezero,
        "trainer.train_steps=10",
        "trainer.steps_per_loop=10",
        "trainer.summary_interval=10",
        "trainer.checkpoint_interval=10",
    ])
    .output()
    .unwrap();
    assert_ok(&output);
    let log = stderr(&output);
    assert!(
        log.contains("exported_ckpts/ckpt-80/model.safetensors: loaded 59 variables")
            && log.contains("kept 2 at their initial values (sentence_prediction.out_proj"),
        "{log}"
    );
}
