//! Each shipped task end to end on its data: image classification, the VAE, masked LM on TFRecord and text, sentence prediction, progressive training.

use super::*;

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

/// An epoch of an IDX split is its files' image count: 200 images in batches of 16 are 13
/// steps; a missing file is reported when the epochs are counted.
#[test]
fn epochs_of_idx_files_count_their_images() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_digits(dir.path(), "train", 0, 200);
    let path = dir.path().display().to_string();
    let print = |train_path: &str| {
        train(&[
            "--experiment=image_classification/mnist",
            "--print_config",
            &format!(
                "--params_override=trainer.train_epochs=2,task.train_data.global_batch_size=16,\
                 task.train_data.input_path={train_path},task.validation_data.input_path={path}"
            ),
        ])
        .output()
        .unwrap()
    };
    let output = print(&path);
    assert_ok(&output);
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("2 epochs of 13 steps per epoch = ceil(200 examples / batch 16)"),
        "{printed}"
    );
    assert!(printed.contains("  train_steps: 26  #"), "{printed}");
    let missing = print("/no/such/mnist");
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("/no/such/mnist"),
        "{}",
        stderr(&missing)
    );
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

#[test]
fn model_garden_pretraining_tfrecords_train_bert_local() {
    let dir = tempfile::tempdir().unwrap();
    let train_file = dir.path().join("train-00000.tfrecord");
    let eval_file = dir.path().join("eval.tfrecord");
    write_pretraining_tfrecord(&train_file, false, 0, 256);
    write_pretraining_tfrecord(&eval_file, true, 256, 24);
    let train_pattern = format!(
        "task.train_data={{input_path: {}, file_type: tfrecord}}",
        dir.path().join("train-*").display()
    );
    let eval_path = format!(
        "task.validation_data={{input_path: {}, file_type: tfrecord}}",
        eval_file.display()
    );
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
    let v1_eval = format!(
        "task.train_data={{input_path: {}, file_type: tfrecord}}",
        eval_file.display()
    );
    let output = run_small(&fresh, "train", &[steps, &v1_eval, &eval_path, v2]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("eval.tfrecord: record 0") && message.contains("`input_ids` is missing"),
        "{message}"
    );
    // Records of 32 tokens read as 16-token sequences: the feature, its length and the record.
    let train_file_only = format!(
        "task.train_data={{input_path: {}, file_type: tfrecord}}",
        train_file.display()
    );
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
    // A flipped byte fails the CRC check of its record, found when the first evaluation
    // streams that far (a mid-run data error exits with the user-input code).
    let mut bytes = std::fs::read(&eval_file).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&eval_file, bytes).unwrap();
    let output = run_small(
        &dir.path().join("damaged"),
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
        "task.train_data={{input_path: {}, file_type: tfrecord}}",
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

    // An epoch of the TSV split is its 12 rows: 3 batches of 4 (the YAML drops remainders),
    // and train_epochs on the command line wins over the YAML's train_steps.
    let mut by_epochs = settings[..7].to_vec();
    by_epochs[1] = "--print_config".to_string();
    by_epochs.push("trainer.train_epochs=2".to_string());
    let args: Vec<&str> = by_epochs.iter().map(String::as_str).collect();
    let output = train(&args).output().unwrap();
    assert_ok(&output);
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("2 epochs of 3 steps per epoch = floor(12 examples / batch 4)"),
        "{printed}"
    );
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
