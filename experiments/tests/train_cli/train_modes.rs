//! `--mode`s and what each writes: the files of a run, evaluation, best-checkpoint export, early stopping, extra sets, EMA.

use super::*;

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
fn extra_validation_sets_are_evaluated_and_logged_under_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let extra = "{task: {extra_validation_data: {hard: {file_type: synthetic, is_training: \
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
    // Every evaluation also saved the averages as `ema_checkpoints/average_weights-<step>`;
    // training without evaluation saved none.
    let ema_export =
        tensors(&evaluated.join("ema_checkpoints/average_weights-20/model.safetensors"));
    assert_eq!(ema_export, exported);
    assert!(evaluated
        .join("ema_checkpoints/average_weights-40/model.safetensors")
        .is_file());
    assert!(!resumed.join("ema_checkpoints").exists());
    // --mode=export writes the averages of the exported step; a step never evaluated has
    // none, and the export says so.
    let flags = ["--export_format=grove"];
    assert_ok(&run_small_with_flags(
        &evaluated,
        "export",
        &flags,
        &[steps, ema, best],
    ));
    assert_eq!(
        tensors(&evaluated.join("export/40/model.safetensors")),
        tensors(&evaluated.join("ema_checkpoints/average_weights-40/model.safetensors"))
    );
    let unevaluated = run_small_with_flags(&resumed, "export", &flags, &[steps, ema]);
    assert_eq!(
        unevaluated.status.code(),
        Some(2),
        "{}",
        stderr(&unevaluated)
    );
    assert!(stderr(&unevaluated).contains("moving averages of step 40"));
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

/// `--mode=export`: bert/local's latest checkpoint as Hugging Face's BertForPreTraining (each
/// tensor under the name the Hugging Face import maps back to it, the bytes unchanged) that a
/// new run initializes every variable from; as Grove's own weights and params.yaml; an
/// untrained model_dir and a model Hugging Face's BERT cannot express are refused.
#[test]
fn export_writes_huggingface_and_grove_models_that_load_back() {
    use grove_tasks::models::huggingface::huggingface_pretraining_name;

    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let untrained = run_small(&model_dir, "export", &[]);
    assert_eq!(untrained.status.code(), Some(2), "{}", stderr(&untrained));
    assert!(stderr(&untrained).contains("needs a checkpoint"));
    assert_ok(&run_small(&model_dir, "train", &["trainer.train_steps=20"]));

    assert_ok(&run_small(
        &model_dir,
        "export",
        &["trainer.train_steps=20"],
    ));
    let export = model_dir.join("export/20");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["architectures"],
        serde_json::json!(["BertForPreTraining"])
    );
    assert_eq!(config["hidden_size"], 64);
    let exported = tensors(&export.join("model.safetensors"));
    let trained = tensors(&model_dir.join("ckpt-20/model.safetensors"));
    assert_eq!(exported.len(), trained.len());
    for (name, bytes) in &exported {
        let grove = huggingface_pretraining_name(name, Some("next_sentence")).unwrap();
        assert_eq!(bytes, &trained[&grove], "{name}");
    }
    let fresh = dir.path().join("fresh");
    let init = format!(
        "task.init_checkpoint={},task.init_checkpoint_format=huggingface_bert",
        export.join("model.safetensors").display()
    );
    let loaded = run_small(&fresh, "train", &["trainer.train_steps=10", &init]);
    assert_ok(&loaded);
    let log = stderr(&loaded);
    assert!(
        log.contains(&format!(
            "loaded {} variables, kept 0 at their initial values",
            trained.len()
        )),
        "{log}"
    );

    let flags = ["--export_format=grove", "--eval_checkpoint=latest"];
    assert_ok(&run_small_with_flags(&model_dir, "export", &flags, &[]));
    let grove = model_dir.join("export/20");
    assert_eq!(tensors(&grove.join("model.safetensors")), trained);
    assert!(std::fs::read_to_string(grove.join("params.yaml"))
        .unwrap()
        .contains("train_steps"));

    let rezero = run_small(
        &model_dir,
        "export",
        &["task.model.encoder.bert.use_rezero=true"],
    );
    assert_eq!(rezero.status.code(), Some(2), "{}", stderr(&rezero));
    assert!(
        stderr(&rezero).contains("use_rezero = true"),
        "{}",
        stderr(&rezero)
    );
    let flag = run_small_with_flags(&model_dir, "train", &["--export_format=grove"], &[]);
    assert_eq!(flag.status.code(), Some(2));
}

/// Sentence prediction exports as BertForSequenceClassification: its head's dense layer is
/// the pooler and its projection the classifier, with the labels in config.json.
#[test]
fn sentence_prediction_exports_as_sequence_classification() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let args = |mode: &str| {
        vec![
            "--experiment=bert/sentence_prediction_local".to_string(),
            format!("--mode={mode}"),
            format!("--model_dir={}", model_dir.display()),
            "trainer.train_steps=10".to_string(),
        ]
    };
    for mode in ["train", "export"] {
        let args = args(mode);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&train(&args).output().unwrap());
    }
    let export = model_dir.join("export/10");
    let names: Vec<String> = tensors(&export.join("model.safetensors"))
        .into_keys()
        .collect();
    for name in [
        "bert.pooler.dense.weight",
        "classifier.weight",
        "classifier.bias",
    ] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    assert_eq!(
        names.len(),
        tensors(&model_dir.join("ckpt-10/model.safetensors")).len()
    );
    let config = std::fs::read_to_string(export.join("config.json")).unwrap();
    assert!(config.contains("BertForSequenceClassification") && config.contains("LABEL_1"));
}
