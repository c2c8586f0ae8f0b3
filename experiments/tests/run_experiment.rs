//! `run_experiment` in process, as a user's own program calls it: the preemption handle it is
//! given, and registered actions switched on from the config.

mod common;

use std::sync::Mutex;

use common::config;
use grove_orbit::{Action, ActionContext, Directive, ErrorKind, Preemption};
use grove_trainers::{register_action, run_experiment, ActionSetup};
use grove_trainers::{Mode, RunOptions};

/// mnist_local cut to 20 steps in loops of 5 over 512 digits, checkpoints every 10.
const SHORT: [&str; 6] = [
    "task.train_data.num_examples=512",
    "trainer.train_steps=20",
    "trainer.steps_per_loop=5",
    "trainer.summary_interval=5",
    "trainer.checkpoint_interval=10",
    "runtime.num_threads=1",
];

/// mnist_local as [`SHORT`] sets it, with `extra` overrides after.
fn short(extra: &[&str]) -> grove_core::config::ExperimentConfig {
    let overrides: Vec<&str> = SHORT.iter().chain(extra).copied().collect();
    config("image_classification/mnist_local", &overrides)
}

/// Runs [`short`] with `extra` in `train_and_eval` mode in a fresh model_dir and returns the
/// lines of its `metrics.jsonl` (the temporary directory lives as long as the first value).
fn train_and_eval(
    extra: &[&str],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<serde_json::Value>,
) {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    run_experiment(
        &short(extra),
        Mode::TrainAndEval,
        &model_dir,
        RunOptions::default(),
    )
    .unwrap();
    let jsonl = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
    let lines = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (dir, model_dir, lines)
}

#[test]
fn a_preemption_handed_in_stops_the_run_with_a_checkpoint_and_a_new_handle_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let config = short(&[]);
    let preemption = Preemption::new();
    preemption.request();
    let options = RunOptions {
        preemption,
        ..RunOptions::default()
    };
    let err = run_experiment(&config, Mode::Train, &model_dir, options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Preempted, "{err}");
    assert!(model_dir.join("ckpt-0").is_dir());

    run_experiment(&config, Mode::Train, &model_dir, RunOptions::default()).unwrap();
    assert!(model_dir.join("ckpt-20").is_dir());
}

/// The (action, global step) pairs the recording actions saw, in order.
static SEEN: Mutex<Vec<(&str, u64)>> = Mutex::new(Vec::new());

/// A train action that records the loops it sees under `name`.
struct Record(&'static str);

impl Action for Record {
    fn name(&self) -> &str {
        self.0
    }

    fn run(&mut self, context: ActionContext<'_>) -> grove_orbit::Result<Directive> {
        assert!(context.logs.contains_key("training_loss"));
        SEEN.lock().unwrap().push((self.0, context.global_step));
        Ok(Directive::Continue)
    }
}

fn first(_: &ActionSetup<'_>) -> grove_core::Result<Box<dyn Action>> {
    Ok(Box::new(Record("first")))
}

fn second(_: &ActionSetup<'_>) -> grove_core::Result<Box<dyn Action>> {
    Ok(Box::new(Record("second")))
}

#[test]
fn registered_train_actions_run_after_every_loop_in_the_listed_order() {
    register_action("record_first", first).unwrap();
    register_action("record_second", second).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = SHORT.to_vec();
    overrides.push("trainer.train_actions=[record_second, record_first]");
    let config = config("image_classification/mnist_local", &overrides);
    run_experiment(&config, Mode::Train, dir.path(), RunOptions::default()).unwrap();
    let seen = SEEN.lock().unwrap().clone();
    let expected: Vec<(&str, u64)> = [5, 10, 15, 20]
        .into_iter()
        .flat_map(|step| [("second", step), ("first", step)])
        .collect();
    assert_eq!(seen, expected);
}

/// One summary value: split, step, name, value.
type Scalar = (String, u64, String, f64);

/// Every value of `metrics.jsonl`'s `lines`, sorted by split, step and name.
fn jsonl_scalars(lines: &[serde_json::Value]) -> Vec<Scalar> {
    let mut scalars = Vec::new();
    for entry in lines {
        let split = entry["split"].as_str().unwrap().to_string();
        let step = entry["step"].as_u64().unwrap();
        for (name, value) in entry.as_object().unwrap() {
            if name != "split" && name != "step" {
                scalars.push((split.clone(), step, name.clone(), value.as_f64().unwrap()));
            }
        }
    }
    sorted(scalars)
}

fn sorted(mut scalars: Vec<Scalar>) -> Vec<Scalar> {
    scalars.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    scalars
}

/// `scalars` as TensorBoard holds them: f32, its value type.
fn as_f32(scalars: &[Scalar]) -> Vec<(String, u64, String, f32)> {
    scalars
        .iter()
        .map(|(split, step, name, value)| (split.clone(), *step, name.clone(), *value as f32))
        .collect()
}

/// With `runtime.loggers` naming all three sinks, the CSV files, `metrics.jsonl` and the
/// TensorBoard event files hold the same numbers (TensorBoard's as f32, its value type).
#[test]
fn the_csv_jsonl_and_tensorboard_sinks_hold_the_same_numbers() {
    let (_dir, model_dir, lines) = train_and_eval(&["runtime.loggers=[tensorboard, jsonl, csv]"]);
    let from_jsonl = jsonl_scalars(&lines);
    let mut from_csv = Vec::new();
    for split in ["train", "validation"] {
        let text = std::fs::read_to_string(model_dir.join(format!("{split}.csv"))).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header[0], "step");
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let step: u64 = cells[0].parse().unwrap();
            for (name, cell) in header[1..].iter().zip(&cells[1..]) {
                if !cell.is_empty() {
                    let value = cell.parse().unwrap();
                    from_csv.push((split.to_string(), step, name.to_string(), value));
                }
            }
        }
    }
    let mut from_tensorboard = Vec::new();
    for split in ["train", "validation"] {
        for file in grove_orbit::summary::event_files(&model_dir.join(split)).unwrap() {
            for (step, name, value) in grove_orbit::summary::read_scalars(&file).unwrap() {
                from_tensorboard.push((split.to_string(), step, name, value));
            }
        }
    }
    from_tensorboard.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    assert!(from_jsonl.len() > 20, "{from_jsonl:?}");
    assert_eq!(sorted(from_csv), from_jsonl);
    assert_eq!(from_tensorboard, as_f32(&from_jsonl));
}

/// TensorBoard's own reader (its EventAccumulator, `orbit/tests/tensorboard_scalars.py`)
/// returns the numbers of metrics.jsonl from the event files.
#[test]
#[ignore = "needs Python with the tensorboard package: .ci/run makes a venv and runs it"]
fn tensorboards_own_reader_returns_the_jsonl_numbers() {
    let (_dir, model_dir, lines) = train_and_eval(&[]);
    let python = std::env::var("TENSORBOARD_PYTHON")
        .expect("set TENSORBOARD_PYTHON to a Python that has the tensorboard package");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../orbit/tests/tensorboard_scalars.py"
    );
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(&model_dir)
        .args(["train", "validation"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<(String, u64, String, f64)> = serde_json::from_slice(&output.stdout).unwrap();
    let mut from_tensorboard: Vec<(String, u64, String, f32)> = read
        .into_iter()
        .map(|(split, step, name, value)| (split, step, name, value as f32))
        .collect();
    from_tensorboard.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    let from_jsonl = jsonl_scalars(&lines);
    assert!(from_jsonl.len() > 20, "{from_jsonl:?}");
    assert_eq!(from_tensorboard, as_f32(&from_jsonl));
}

/// The training time spent so far, as the checkpoint at `dir` saved it.
fn trained_seconds(dir: &std::path::Path) -> f64 {
    let state = std::fs::read_to_string(dir.join("controller_state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    state["max_duration"]["trained_seconds"].as_f64().unwrap()
}

/// `trainer.max_duration` ends training with a checkpoint at the first loop end past the
/// budget (a zero budget: the first loop), and a rerun with a larger budget goes on from the
/// time already spent.
#[test]
fn a_spent_training_budget_stops_with_a_checkpoint_and_a_rerun_goes_on_with_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("run");
    let with_budget = |budget: &str| short(&[&format!("trainer.max_duration={budget}")]);
    run_experiment(
        &with_budget("0s"),
        Mode::Train,
        &model_dir,
        RunOptions::default(),
    )
    .unwrap();
    assert!(model_dir.join("ckpt-5").is_dir());
    assert!(!model_dir.join("ckpt-10").exists());
    let spent = trained_seconds(&model_dir.join("ckpt-5"));
    assert!(spent > 0.0);

    let more = with_budget("1h");
    run_experiment(&more, Mode::Train, &model_dir, RunOptions::default()).unwrap();
    assert!(trained_seconds(&model_dir.join("ckpt-20")) > spent);
}

/// `trainer.validation_interval` given as a duration evaluates at the first loop end after
/// that much training time: with one nanosecond, after every loop (each trains longer).
#[test]
fn a_validation_interval_in_time_evaluates_at_the_loop_ends_it_has_passed() {
    let (_dir, _, lines) = train_and_eval(&["trainer.validation_interval=1ns"]);
    let evaluated: Vec<u64> = lines
        .iter()
        .filter(|entry| entry["split"] == "validation")
        .map(|entry| entry["step"].as_u64().unwrap())
        .collect();
    assert_eq!(evaluated, [5, 10, 15, 20]);
}

/// `trainer.summary_interval` and `trainer.checkpoint_interval` given as durations act at the
/// first loop end after that much training time: with one nanosecond, at every loop end; with
/// a day, only at the end of training.
#[test]
fn summary_and_checkpoint_intervals_in_time_act_at_the_loop_ends_they_have_passed() {
    for (interval, expected) in [("1ns", vec![5, 10, 15, 20]), ("24h", vec![20])] {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join("run");
        let overrides: Vec<String> = SHORT
            .iter()
            .map(|o| o.to_string())
            .chain([
                format!("trainer.summary_interval={interval}"),
                format!("trainer.checkpoint_interval={interval}"),
                "trainer.max_to_keep=10".to_string(),
            ])
            .collect();
        let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
        let config = config("image_classification/mnist_local", &overrides);
        run_experiment(&config, Mode::Train, &model_dir, RunOptions::default()).unwrap();
        let metrics = std::fs::read_to_string(model_dir.join("metrics.jsonl")).unwrap();
        let summarized: Vec<u64> = metrics
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(summarized, expected, "{interval}");
        let saved: Vec<u64> = expected
            .iter()
            .copied()
            .filter(|step| model_dir.join(format!("ckpt-{step}")).is_dir())
            .collect();
        assert_eq!(saved, expected, "{interval}");
        let all = std::fs::read_dir(&model_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("ckpt-")
            })
            .count();
        assert_eq!(all, expected.len(), "{interval}");
    }
}
