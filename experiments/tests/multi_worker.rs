//! `multi_worker_mirrored` end to end: the `train` binary (built with the `mpi` feature) run
//! as the workers of an MPI job under `mpirun`, compared with one-process runs of the same
//! global batch. Faults are injected into one worker at a time (`GROVE_FAULT_INJECT`).
#![cfg(feature = "mpi")]

use cli_support::{assert_ok, stderr, write_pretraining_tfrecord};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod cli_support;

/// A small bert/local: 8 sequences of 32 tokens per batch (3 workers split it 3 + 3 + 2),
/// with dropout, a checkpoint every 10 steps.
const SMALL: &str = "task.model.encoder.bert.dropout_rate=0.1,trainer.steps_per_loop=5,\
    trainer.summary_interval=5,trainer.checkpoint_interval=10,trainer.validation_interval=20,\
    trainer.train_steps=40,trainer.validation_steps=3,\
    task.train_data.global_batch_size=8,task.validation_data.global_batch_size=8,\
    task.train_data.seq_length=32,task.validation_data.seq_length=32,\
    task.train_data.max_predictions_per_seq=5,task.validation_data.max_predictions_per_seq=5,\
    task.train_data.num_examples=256,task.validation_data.num_examples=24";

/// `train`'s arguments for a `train_and_eval` run of [`SMALL`] on `model_dir` with
/// `overrides`.
fn train_args(model_dir: &Path, overrides: &str) -> Vec<String> {
    mode_args("train_and_eval", model_dir, overrides)
}

/// `train`'s arguments for a run of [`SMALL`] in `mode` on `model_dir` with `overrides`.
fn mode_args(mode: &str, model_dir: &Path, overrides: &str) -> Vec<String> {
    vec![
        env!("CARGO_BIN_EXE_train").to_string(),
        "--experiment=bert/local".to_string(),
        format!("--mode={mode}"),
        format!("--model_dir={}", model_dir.display()),
        format!("--params_override={SMALL}"),
        format!("--params_override={overrides}"),
    ]
}

/// A `train_and_eval` job of one worker per entry of `faults` (the fault injected into that
/// worker, if any), each with one compute thread; their scratch directories go under
/// `scratch`.
fn job(model_dir: &Path, scratch: &Path, faults: &[Option<&str>], overrides: &str) -> Command {
    job_in_mode("train_and_eval", model_dir, scratch, faults, overrides)
}

/// [`job`] in `mode`.
fn job_in_mode(
    mode: &str,
    model_dir: &Path,
    scratch: &Path,
    faults: &[Option<&str>],
    overrides: &str,
) -> Command {
    std::fs::create_dir_all(scratch).unwrap();
    let mut command = Command::new("mpirun");
    command.args(["--allow-run-as-root", "--oversubscribe"]);
    let overrides = format!(
        "runtime.distribution_strategy=multi_worker_mirrored,runtime.num_threads=1,{overrides}"
    );
    for (rank, fault) in faults.iter().enumerate() {
        if rank > 0 {
            command.arg(":");
        }
        command.args(["-np", "1", "env"]);
        command.arg(format!("GROVE_FAULT_INJECT={}", fault.unwrap_or("")));
        command.args(mode_args(mode, model_dir, &overrides));
    }
    command
        .env("TMPDIR", scratch)
        .env("RAYON_NUM_THREADS", "1")
        .env("GROVE_LOG", "info");
    command
}

/// One process with `threads` compute threads (as many `mirrored` replicas).
fn alone(model_dir: &Path, threads: usize, overrides: &str) -> Output {
    let args = train_args(
        model_dir,
        &format!("runtime.num_threads={threads},{overrides}"),
    );
    Command::new(&args[0])
        .args(&args[1..])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .unwrap()
}

/// `(step, split, metric) -> value` of a model_dir's metrics.jsonl, failing on a step logged
/// twice for one split.
fn metrics(model_dir: &Path) -> BTreeMap<(u64, String, String), f64> {
    let text = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let step = record["step"].as_u64().unwrap();
        let split = record["split"].as_str().unwrap().to_string();
        assert!(
            seen.insert((step, split.clone())),
            "step {step} of {split} logged twice"
        );
        for (name, value) in record.as_object().unwrap() {
            if let (false, Some(value)) = (name == "step", value.as_f64()) {
                values.insert((step, split.clone(), name.clone()), value);
            }
        }
    }
    values
}

/// Every tensor of the final checkpoint's weights, as f32 values by name.
fn final_weights(model_dir: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(model_dir.join("ckpt-40/model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

/// The final weights of `a` and `b`: the same tensors, every value within float summation
/// tolerance.
fn assert_weights_close(a: &Path, b: &Path) {
    let (a, b) = (final_weights(a), final_weights(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, values) in &a {
        for (x, y) in values.iter().zip(&b[name]) {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{name}: {x} vs {y}"
            );
        }
    }
}

/// The names under `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every logged loss of `a` whose name contains `loss` within `tolerance` (relative) of
/// `b`'s, and the same keys.
fn assert_losses_close(a: &Path, b: &Path, loss: &str, tolerance: f64) {
    let (a, b) = (metrics(a), metrics(b));
    let keys = |m: &BTreeMap<(u64, String, String), f64>| -> Vec<(u64, String, String)> {
        m.keys()
            .filter(|(_, _, name)| !name.ends_with("_fraction") && name != "steps_per_second")
            .cloned()
            .collect()
    };
    assert_eq!(keys(&a), keys(&b));
    for key in keys(&a) {
        if key.2.contains(loss) {
            let (x, y) = (a[&key], b[&key]);
            assert!((x - y).abs() <= tolerance * y.abs(), "{key:?}: {x} vs {y}");
        }
    }
}

#[test]
fn two_workers_of_one_thread_train_what_one_process_of_two_threads_trains_and_only_the_chief_writes(
) {
    let dir = tempfile::tempdir().unwrap();
    let (job_dir, alone_dir, scratch) = (
        dir.path().join("job"),
        dir.path().join("alone"),
        dir.path().join("tmp"),
    );
    // A checkpoint after every update: each save first checks that the workers' weights agree.
    let every_step = "trainer.steps_per_loop=1,trainer.summary_interval=1,\
        trainer.checkpoint_interval=1,trainer.max_to_keep=2";
    let output = job(&job_dir, &scratch, &[None, None], every_step)
        .output()
        .unwrap();
    assert_ok(&output);
    assert!(
        stderr(&output).contains("weights and step agree"),
        "{}",
        stderr(&output)
    );
    assert_ok(&alone(&alone_dir, 2, every_step));

    assert_losses_close(&job_dir, &alone_dir, "loss", 1e-5);
    assert_weights_close(&job_dir, &alone_dir);
    // The chief wrote what one process writes (event files named by their time and pid);
    // the other worker left nothing behind.
    let filtered = |dir: &Path| -> Vec<String> {
        entries(dir)
            .into_iter()
            .filter(|n| !n.starts_with("ckpt-"))
            .map(|n| match n.starts_with("events.out.tfevents.") {
                true => "events.out.tfevents.*".to_string(),
                false => n,
            })
            .collect()
    };
    assert_eq!(filtered(&job_dir), filtered(&alone_dir));
    assert_eq!(entries(&scratch), Vec::<String>::new());
}

#[test]
fn evaluation_only_modes_are_refused_under_workers_and_a_resume_with_another_count_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (model_dir, scratch) = (dir.path().join("job"), dir.path().join("tmp"));
    let output = job(
        &model_dir,
        &scratch,
        &[None, None],
        "trainer.train_steps=10",
    )
    .output()
    .unwrap();
    assert_ok(&output);
    let output = job_in_mode("eval", &model_dir, &scratch, &[None, None], "")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("runs in one process"),
        "{}",
        stderr(&output)
    );

    let output = job(
        &model_dir,
        &scratch,
        &[None, None, None],
        "trainer.train_steps=20",
    )
    .output()
    .unwrap();
    assert_ok(&output);
    assert!(
        stderr(&output).contains("written by 2 worker(s) and this run has 3"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn three_workers_weigh_an_uneven_split_of_the_batch_by_its_shares() {
    let dir = tempfile::tempdir().unwrap();
    let (job_dir, alone_dir, scratch) = (
        dir.path().join("job"),
        dir.path().join("alone"),
        dir.path().join("tmp"),
    );
    // The batch of 8 splits 3 + 3 + 2 over the workers, as over one process's 3 replicas.
    let output = job(&job_dir, &scratch, &[None, None, None], "")
        .output()
        .unwrap();
    assert_ok(&output);
    assert_ok(&alone(&alone_dir, 3, ""));
    assert_losses_close(&job_dir, &alone_dir, "loss", 1e-5);
    assert_weights_close(&job_dir, &alone_dir);
}

#[test]
fn a_job_killed_mid_run_and_rerun_ends_with_the_weights_of_an_uninterrupted_job() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("tmp");
    let (straight, killed) = (dir.path().join("straight"), dir.path().join("killed"));
    assert_ok(
        &job(&straight, &scratch, &[None, None], "")
            .output()
            .unwrap(),
    );

    // Worker 1 dies as from kill -9 at its 25th step; the job ends at once, failed.
    let started = Instant::now();
    let output = job(&killed, &scratch, &[None, Some("train_step:25")], "")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(killed.join("ckpt-20").is_dir());
    assert!(!killed.join("ckpt-30").exists());

    // The same command resumes from step 20.
    let output = job(&killed, &scratch, &[None, None], "").output().unwrap();
    assert_ok(&output);
    assert!(
        stderr(&output).contains("restored from checkpoint"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read(straight.join("ckpt-40/model.safetensors")).unwrap(),
        std::fs::read(killed.join("ckpt-40/model.safetensors")).unwrap()
    );
}

#[test]
fn a_worker_that_hangs_takes_the_job_down_within_the_collective_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("tmp");
    let started = Instant::now();
    let output = job(
        &dir.path().join("job"),
        &scratch,
        &[None, Some("train_step:7:hang")],
        "runtime.collective_timeout=2s",
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(60));
    let errors = stderr(&output);
    assert!(
        errors.contains("worker 0 of 2: collective all_reduce timed out"),
        "{errors}"
    );
}

#[test]
fn sigterm_to_one_worker_stops_every_worker_after_the_same_step_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("tmp");
    let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));
    assert_ok(
        &job(&straight, &scratch, &[None, None], "")
            .output()
            .unwrap(),
    );

    // Only worker 1 is signalled, during its 13th step.
    let output = job(
        &stopped,
        &scratch,
        &[None, Some("train_step:13:sigterm")],
        "",
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(75), "{}", stderr(&output));
    let index = std::fs::read_to_string(stopped.join("checkpoint")).unwrap();
    assert!(index.contains("\"latest\": \"ckpt-13\""), "{index}");

    let output = job(&stopped, &scratch, &[None, None], "").output().unwrap();
    assert_ok(&output);
    assert_eq!(
        std::fs::read(straight.join("ckpt-40/model.safetensors")).unwrap(),
        std::fs::read(stopped.join("ckpt-40/model.safetensors")).unwrap()
    );
    assert_eq!(entries(&scratch), Vec::<String>::new());
}

#[test]
fn workers_streaming_tfrecords_read_a_shard_each_and_resume_each_where_it_stood() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("tmp");
    // 4 files of 30 records: each of 2 workers reads 2 of them, 4 examples a step.
    for file in 0..4 {
        let path = dir.path().join(format!("train-{file:05}.tfrecord"));
        write_pretraining_tfrecord(&path, false, file * 30, 30);
    }
    let data = format!(
        "task.train_data={{input_path: {}, file_type: tfrecord, shuffle_buffer_size: 16, \
         cycle_length: 2, block_length: 2}}",
        dir.path().join("train-*").display()
    );
    let (straight, killed) = (dir.path().join("straight"), dir.path().join("killed"));
    assert_ok(
        &job(&straight, &scratch, &[None, None], &data)
            .output()
            .unwrap(),
    );
    let state = std::fs::read_to_string(straight.join("ckpt-40/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let positions = state["worker_input_positions"].as_array().unwrap();
    assert_eq!(positions.len(), 2, "{state}");
    assert_ne!(positions[0], positions[1]);
    assert!(state.get("input_position").is_none(), "{state}");

    let output = job(&killed, &scratch, &[None, Some("train_step:25")], &data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let output = job(&killed, &scratch, &[None, None], &data)
        .output()
        .unwrap();
    assert_ok(&output);
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        let a = std::fs::read(straight.join("ckpt-40").join(file)).unwrap();
        let b = std::fs::read(killed.join("ckpt-40").join(file)).unwrap();
        assert!(a == b, "{file} differs");
    }

    // Another worker count cannot split the shards' positions anew.
    let more = format!("{data},trainer.train_steps=50");
    let output = job(&killed, &scratch, &[None, None, None], &more)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds the input positions of 2 workers"),
        "{}",
        stderr(&output)
    );
}
