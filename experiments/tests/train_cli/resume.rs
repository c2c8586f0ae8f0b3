//! Resume and robustness: killed, preempted and crashed runs, config drift, the model_dir lock, init_checkpoint, blow-ups, a full disk.

use super::*;

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

/// Runs `command` and kills it (SIGKILL) once the checkpoint index of `model_dir` lists a
/// checkpoint past `after`; the step of the newest checkpoint then, or `None` if the run
/// ended first.
fn kill_after_checkpoint(mut command: Command, model_dir: &Path, after: u64) -> Option<u64> {
    let mut child = command.stderr(std::process::Stdio::null()).spawn().unwrap();
    let newest = || -> Option<u64> {
        let index = std::fs::read_to_string(model_dir.join("checkpoint")).ok()?;
        index
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
            .filter_map(|word| word.strip_prefix("ckpt-")?.parse().ok())
            .max()
    };
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if let Some(step) = newest().filter(|&step| step > after) {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(step);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_streaming_run_killed_several_times_ends_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    // 4 shards of 30 records: with batches of 8 an epoch is 15 steps, so 120 steps are 8
    // epochs; the shuffle buffer, the interleave and two decoders are all in play.
    for shard in 0..4 {
        let path = dir.path().join(format!("train-{shard:05}.tfrecord"));
        write_pretraining_tfrecord(&path, false, shard * 30, 30);
    }
    let data = format!(
        "task.train_data={{input_path: {}, file_type: tfrecord, shuffle_buffer_size: 16, \
         cycle_length: 2, block_length: 2}}",
        dir.path().join("train-*").display()
    );
    let overrides = [
        data.as_str(),
        "trainer.train_steps=120",
        "runtime.input_threads=2",
    ];
    // The uninterrupted run decodes on the reader thread: the number of decoders changes no
    // batch.
    let straight = dir.path().join("straight");
    let one_thread = [&overrides[..2], &["runtime.input_threads=0"]].concat();
    assert_ok(&run_small(&straight, "train", &one_thread));

    let resumed = dir.path().join("resumed");
    let mut last = 0;
    for _ in 0..3 {
        match kill_after_checkpoint(
            small_command(&resumed, "train", &[], &overrides),
            &resumed,
            last,
        ) {
            Some(step) => last = step,
            None => break,
        }
    }
    assert!(last < 120, "the runs ended before the kills");
    let again = run_small(&resumed, "train", &overrides);
    assert_ok(&again);
    assert!(stderr(&again).contains("restored from checkpoint"));
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        let a = std::fs::read(straight.join("ckpt-120").join(file)).unwrap();
        let b = std::fs::read(resumed.join("ckpt-120").join(file)).unwrap();
        assert!(a == b, "{file} differs");
    }
    // The input stream's position is part of the checkpoint: the last of the 8 epochs drawn.
    let state = std::fs::read_to_string(straight.join("ckpt-120/state.json")).unwrap();
    assert!(
        state.contains("\"input_position\"") && state.contains("\"epoch\": 7"),
        "{state}"
    );
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
