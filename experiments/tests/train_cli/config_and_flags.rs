//! The command line and config layering: flags, overrides, --print_config, params.yaml, and the errors of bad input (exit 2, nothing written).

use super::*;

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

/// Without the `mpi` feature, `multi_worker_mirrored` is refused with the build command, and
/// the bucket size is checked like any value.
#[cfg(not(feature = "mpi"))]
#[test]
fn multi_worker_mirrored_without_the_mpi_feature_exits_2_naming_the_build_command() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let output = run_small(
        &model_dir,
        "train",
        &["runtime.distribution_strategy=multi_worker_mirrored"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--features mpi"),
        "{}",
        stderr(&output)
    );
    let output = run_small(&model_dir, "train", &["runtime.all_reduce_bucket_mb=-1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("runtime.all_reduce_bucket_mb = -1"),
        "{}",
        stderr(&output)
    );
    assert!(!model_dir.exists());
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

/// `file_type` is a keyword: a misspelt one gets the closest valid name, and generated data is
/// chosen by `file_type: synthetic` alone, so an `input_path` beside it (which would be
/// ignored), or masked LM's former `input_path: synthetic`, is refused before anything is
/// written; so are streaming keys on data that is not streamed, and streaming values Grove
/// does not run.
#[test]
fn file_type_keywords_and_synthetic_data_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let cases = [
        (
            "task.train_data.file_type=tfrecords",
            "did you mean \"tfrecord\"?",
        ),
        (
            "task.train_data.input_path=/data/train.tfrecord",
            "task.train_data.file_type = synthetic generates the data",
        ),
        (
            "task.train_data={input_path: synthetic, file_type: tfrecord}",
            "synthetic data is selected by file_type",
        ),
        (
            "runtime.loggers=[csv, jsonl, csv]",
            "runtime.loggers[2] = csv: listed twice",
        ),
        (
            "runtime.loggers=[tensorbord]",
            "did you mean \"tensorboard\"?",
        ),
        (
            "task.train_data.cycle_length=4",
            "task.train_data.cycle_length applies to streamed files (file_type: tfrecord)",
        ),
        (
            "task.train_data={input_path: /data/x, file_type: tfrecord, deterministic: false}",
            "task.train_data.deterministic = false is not supported",
        ),
        (
            "task.train_data={input_path: /data/x, file_type: tfrecord, shuffle_buffer_size: 0}",
            "task.train_data.shuffle_buffer_size = 0",
        ),
        (
            "task.train_data.compression_type=GZP",
            "is not one of: \"\", GZIP, gzip, ZLIB, zlib; did you mean \"GZIP\"?",
        ),
    ];
    for (setting, expected) in cases {
        let output = run_small(&model_dir, "train", &[setting]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{setting}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(message.contains(expected), "{setting}: {message}");
        assert!(!model_dir.exists());
    }
}

/// `trainer.train_epochs` and `"N epochs"` cadences on mnist_local: 1000 examples in batches
/// of 128 are 8 steps an epoch (7 with drop_remainder); the resolved steps show in
/// --print_config with their arithmetic, training ends after 3 epochs and the cosine decay
/// given as "3 epochs" reaches 0 there.
#[test]
fn epochs_count_steps_from_the_training_split_and_show_their_arithmetic() {
    const EPOCHS: &str = "trainer.train_epochs=3,task.train_data.num_examples=1000,\
        task.train_data.global_batch_size=128,task.validation_data.num_examples=256,\
        trainer.steps_per_loop=1 epoch,trainer.summary_interval=1 epoch,\
        trainer.checkpoint_interval=1 epoch,trainer.validation_interval=1 epoch,\
        trainer.optimizer_config.learning_rate.cosine.decay_steps=3 epochs";
    let dir = tempfile::tempdir().unwrap();
    let printed = train(&[
        "--experiment=image_classification/mnist_local",
        "--print_config",
        &format!("--params_override={EPOCHS}"),
    ])
    .output()
    .unwrap();
    assert_ok(&printed);
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(
        printed.contains(&format!(
            "  train_steps: 24  # --params_override \"{EPOCHS}\": 3 epochs of 8 steps per \
             epoch = ceil(1000 examples / batch 128)"
        )),
        "{printed}"
    );
    assert!(printed.contains("  steps_per_loop: 8  #"), "{printed}");

    for (drop_remainder, per_epoch) in [(false, 8u64), (true, 7)] {
        let model_dir = dir.path().join(format!("drop_{drop_remainder}"));
        let output = train(&[
            "--experiment=image_classification/mnist_local",
            "--mode=train_and_eval",
            &format!("--model_dir={}", model_dir.display()),
            &format!("--params_override={EPOCHS}"),
            &format!("task.train_data.drop_remainder={drop_remainder}"),
        ])
        .output()
        .unwrap();
        assert_ok(&output);
        let metrics = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
        let train_lines: Vec<serde_json::Value> = metrics
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|line| line["split"] == "train")
            .collect();
        let steps: Vec<u64> = train_lines
            .iter()
            .map(|line| line["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [per_epoch, 2 * per_epoch, 3 * per_epoch]);
        let rates: Vec<f64> = train_lines
            .iter()
            .map(|line| line["learning_rate"].as_f64().unwrap())
            .collect();
        // Cosine from 3e-3 over 3 epochs: a quarter of it after two, none after three.
        assert!((rates[1] - 7.5e-4).abs() < 1e-6, "{rates:?}");
        assert_eq!(rates[2], 0.0, "{rates:?}");
    }
}

/// Epochs of a streamed split (masked LM's TFRecord files) are refused with the fix, as are
/// both lengths at once.
#[test]
fn epochs_of_a_stream_or_with_train_steps_are_refused() {
    let refused = |experiment: &str, overrides: &str, expected: &str| {
        let output = train(&[
            &format!("--experiment={experiment}"),
            "--print_config",
            &format!("--params_override={overrides}"),
        ])
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    };
    refused(
        "bert/pretraining",
        "trainer.train_epochs=10,task.train_data.input_path=/data/wiki-*.tfrecord,\
         task.validation_data.input_path=/data/wiki-eval.tfrecord",
        "trainer.train_epochs is given in epochs, but the size of an epoch is unknown: \
         task.train_data is read as a stream",
    );
    refused(
        "image_classification/mnist_local",
        "trainer.train_epochs=2,trainer.train_steps=10",
        "both give the length of training; keep one",
    );
}
