//! Controller behaviour with a counting fake runner: loop sizes, cadences, resume.

use std::path::Path;

use grove_orbit::summary::{read_scalars, SummaryManager};
use grove_orbit::{
    Action, ActionContext, CheckpointManager, Checkpointable, Controller, ControllerOptions,
    Directive, Evaluator, Logs, OrbitError, Preemption, RunnerError, Trainer,
};

/// Counts steps; its "loss" is the global step so means are checkable. With `stop_at`, it
/// requests preemption when it reaches that step and stops there, as a signal would.
#[derive(Default)]
struct Counting {
    step: u64,
    loops: Vec<u64>,
    evals_at: Vec<u64>,
    stop_at: Option<(u64, Preemption)>,
    /// The loop ending at this step reports a NaN loss until inputs were skipped.
    blow_up_at: Option<u64>,
    skipped: u64,
}

impl Trainer for Counting {
    fn train(&mut self, num_steps: u64) -> Result<Logs, RunnerError> {
        self.loops.push(num_steps);
        for _ in 0..num_steps {
            if let Some((at, preemption)) = &self.stop_at {
                if self.step == *at {
                    preemption.request();
                }
                if preemption.requested() {
                    break;
                }
            }
            self.step += 1;
        }
        if self.blow_up_at == Some(self.step) && self.skipped == 0 {
            return Ok(Logs::from([("training_loss".to_string(), f64::NAN)]));
        }
        Ok(Logs::from([
            ("training_loss".to_string(), self.step as f64),
            ("learning_rate".to_string(), self.step as f64 / 1000.0),
        ]))
    }
    fn global_step(&self) -> u64 {
        self.step
    }
    fn skip_inputs(&mut self, batches: u64) -> Result<(), RunnerError> {
        self.skipped += batches;
        Ok(())
    }
}

impl Evaluator for Counting {
    fn evaluate(&mut self, _num_steps: i64) -> Result<Logs, RunnerError> {
        self.evals_at.push(self.step);
        Ok(Logs::from([("validation_loss".to_string(), 1.0)]))
    }
}

impl Checkpointable for Counting {
    fn save(&self, dir: &Path) -> Result<(), RunnerError> {
        std::fs::write(dir.join("step"), self.step.to_string())?;
        Ok(())
    }
    fn restore(&mut self, dir: &Path) -> Result<(), RunnerError> {
        self.step = std::fs::read_to_string(dir.join("step"))?
            .parse()
            .map_err(RunnerError::run)?;
        Ok(())
    }
}

fn options(dir: &Path, spl: u64, summary: u64, ckpt: u64, keep: usize) -> ControllerOptions {
    ControllerOptions {
        steps_per_loop: spl,
        summary_interval: summary,
        checkpoint_manager: Some(CheckpointManager::new(dir, keep, ckpt).unwrap()),
        train_summaries: SummaryManager::new(dir, "train").unwrap(),
        eval_summaries: SummaryManager::new(dir, "validation").unwrap(),
        train_actions: Vec::new(),
        eval_actions: Vec::new(),
    }
}

fn controller(dir: &Path, spl: u64, summary: u64, ckpt: u64, keep: usize) -> Controller<Counting> {
    let mut c =
        Controller::new(Counting::default(), options(dir, spl, summary, ckpt, keep)).unwrap();
    c.restore_or_initialize(|_| Ok(())).unwrap();
    c
}

fn train_scalars(dir: &Path, tag: &str) -> Vec<(u64, f32)> {
    let files = grove_orbit::summary::event_files(&dir.join("train")).unwrap();
    files
        .iter()
        .flat_map(|f| read_scalars(f).unwrap())
        .filter(|(_, t, _)| t == tag)
        .map(|(s, _, v)| (s, v))
        .collect()
}

#[test]
fn train_to_ten_with_steps_per_loop_four_runs_loops_of_4_4_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), 4, 4, 4, 5);
    c.train(10).unwrap();
    assert_eq!(c.runner().loops, vec![4, 4, 2]);
    assert_eq!(c.runner().step, 10);
    let steps = c.checkpoint_manager().unwrap().checkpoint_steps();
    assert_eq!(steps, vec![4, 8, 10]);
}

#[test]
fn summary_interval_not_a_multiple_of_steps_per_loop_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = Controller::new(Counting::default(), options(dir.path(), 4, 6, 4, 5))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("summary_interval = 6"), "{err}");
    let err = Controller::new(Counting::default(), options(dir.path(), 4, 4, 6, 5))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("checkpoint_interval = 6"), "{err}");
}

#[test]
fn train_and_evaluate_evaluates_and_checkpoints_at_interval_multiples() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), 5, 5, 5, 5);
    let last = c.train_and_evaluate(10, 2, Some(5)).unwrap();
    assert!(last.is_some());
    assert_eq!(c.runner().evals_at, vec![5, 10]);
    assert_eq!(
        c.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![5, 10]
    );
}

#[test]
fn max_to_keep_keeps_only_the_newest_and_interval_zero_disables_saving() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), 1, 1, 1, 2);
    c.train(6).unwrap();
    assert_eq!(
        c.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![5, 6]
    );
    let other = tempfile::tempdir().unwrap();
    let mut c = controller(other.path(), 1, 1, 0, 2);
    c.train(3).unwrap();
    assert!(!other.path().join("checkpoint").exists());
}

#[test]
fn resumed_runs_keep_absolute_cadences_and_finished_runs_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), 3, 6, 3, 10);
    c.train(7).unwrap(); // loops 3, 3, 1; checkpoints 3, 6, 7
    assert_eq!(c.runner().loops, vec![3, 3, 1]);

    let mut resumed = controller(dir.path(), 3, 6, 3, 10);
    assert_eq!(resumed.runner().step, 7);
    resumed.train_and_evaluate(13, 1, Some(6)).unwrap();
    // From 7 the first loop ends at the multiple 9, evaluations at 12 and 13.
    assert_eq!(resumed.runner().loops, vec![2, 3, 1]);
    assert_eq!(resumed.runner().evals_at, vec![12, 13]);
    assert_eq!(
        resumed.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![3, 6, 7, 9, 12, 13]
    );

    let mut finished = controller(dir.path(), 3, 6, 3, 10);
    assert!(finished
        .train_and_evaluate(13, 1, Some(6))
        .unwrap()
        .is_none());
    finished.train(13).unwrap();
    assert!(finished.runner().loops.is_empty());
    assert_eq!(
        finished
            .checkpoint_manager()
            .unwrap()
            .checkpoint_steps()
            .len(),
        6
    );
}

#[test]
fn train_summaries_are_step_weighted_means_at_interval_multiples_and_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), 2, 4, 4, 5);
    c.train(10).unwrap(); // loops end at 2, 4, 6, 8, 10 with losses 2, 4, 6, 8, 10
    assert_eq!(
        train_scalars(dir.path(), "training_loss"),
        vec![(4, 3.0), (8, 7.0), (10, 10.0)]
    );
    assert_eq!(
        train_scalars(dir.path(), "learning_rate"),
        vec![(4, 0.004), (8, 0.008), (10, 0.01)]
    );
    let jsonl = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 3);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["split"], "train");
    assert_eq!(first["step"], 4);
}

#[test]
fn evaluate_rejects_zero_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), 1, 1, 1, 1);
    assert!(c.evaluate(0).is_err());
    assert!(c.evaluate(-1).is_ok());
}

#[test]
fn preemption_stops_after_the_current_step_with_a_checkpoint_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), 4, 4, 4, 10);
    let preemption = Preemption::new();
    options.train_actions.push(Box::new(preemption.clone()));
    let runner = Counting {
        stop_at: Some((6, preemption)),
        ..Counting::default()
    };
    let mut c = Controller::new(runner, options).unwrap();
    let err = c.train(20).unwrap_err();
    assert!(matches!(err, OrbitError::Preempted { step: 6 }), "{err}");
    assert_eq!(
        c.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![4, 6]
    );

    // The same command resumes at 6 and returns to loops ending at multiples of 4.
    let mut resumed = controller(dir.path(), 4, 4, 4, 10);
    resumed.train(12).unwrap();
    assert_eq!(resumed.runner().loops, vec![2, 4]);
}

#[test]
fn early_stopping_ends_training_and_its_counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stopping = |patience| -> Box<dyn Action> {
        Box::new(
            grove_orbit::EarlyStopping::new(
                "validation_loss",
                grove_orbit::Comparison::Lower,
                patience,
                0.0,
            )
            .unwrap(),
        )
    };
    let mut first_options = options(dir.path(), 5, 5, 5, 10);
    first_options.eval_actions.push(stopping(2));
    let mut first = Controller::new(Counting::default(), first_options).unwrap();
    first.restore_or_initialize(|_| Ok(())).unwrap();
    first.train_and_evaluate(100, 1, Some(5)).unwrap();
    // The constant loss improves once (at 5), then fails to twice.
    assert_eq!(first.runner().evals_at, vec![5, 10, 15]);
    assert_eq!(
        first.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![5, 10, 15]
    );
    assert!(dir.path().join("ckpt-15/controller_state.json").is_file());

    let mut resumed_options = options(dir.path(), 5, 5, 5, 10);
    resumed_options.eval_actions.push(stopping(3));
    let mut resumed = Controller::new(Counting::default(), resumed_options).unwrap();
    resumed.restore_or_initialize(|_| Ok(())).unwrap();
    resumed.train_and_evaluate(100, 1, Some(5)).unwrap();
    assert_eq!(resumed.runner().evals_at, vec![20]);
}

#[test]
fn a_blow_up_restores_the_latest_checkpoint_moves_the_input_on_and_counts_the_trial() {
    // A controller whose trainer reports NaN at step 15 until it skips inputs.
    let blowing_up = |dir: &Path, max_trials| {
        let mut options = options(dir, 5, 5, 5, 10);
        let guard = grove_orbit::LossGuard {
            loss_upper_bound: 1e6,
            recovery_begin_steps: 0,
            max_trials,
        };
        options
            .train_actions
            .push(Box::new(grove_orbit::Recovery::new(guard)));
        let runner = Counting {
            blow_up_at: Some(15),
            ..Counting::default()
        };
        let mut c = Controller::new(runner, options).unwrap();
        c.restore_or_initialize(|_| Ok(())).unwrap();
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = blowing_up(dir.path(), 1);
    c.train(20).unwrap();
    // Loops 5, 5, 5 (NaN at 15: back to ckpt-10, 5 batches skipped), then 5, 5.
    assert_eq!(c.runner().loops, vec![5, 5, 5, 5, 5]);
    assert_eq!(c.runner().skipped, 5);
    let state = std::fs::read_to_string(dir.path().join("ckpt-20/controller_state.json")).unwrap();
    assert!(state.contains("\"recovery\": 1"), "{state}");

    let other = tempfile::tempdir().unwrap();
    let mut c = blowing_up(other.path(), 0);
    let err = c.train(20).unwrap_err().to_string();
    assert!(
        err.contains("NaN") && err.contains("after 0 recoveries"),
        "{err}"
    );
}

/// A user's action: records every evaluation it sees into a file of its own, adds a log
/// entry, and stops training once the step reaches `stop_at`.
struct Recorder {
    file: std::path::PathBuf,
    stop_at: u64,
}

impl Action for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn run(&mut self, context: ActionContext<'_>) -> grove_orbit::Result<Directive> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .unwrap();
        writeln!(file, "{}", context.global_step).unwrap();
        context.logs.insert("recorded".to_string(), 1.0);
        Ok(match context.global_step >= self.stop_at {
            true => Directive::StopTraining {
                reason: "enough".to_string(),
            },
            false => Directive::Continue,
        })
    }
}

#[test]
fn a_user_eval_action_runs_after_each_evaluation_and_can_stop_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recorded.txt");
    let mut options = options(dir.path(), 5, 5, 5, 10);
    options.eval_actions.push(Box::new(Recorder {
        file: file.clone(),
        stop_at: 10,
    }));
    let mut c = Controller::new(Counting::default(), options).unwrap();
    c.restore_or_initialize(|_| Ok(())).unwrap();
    let last = c.train_and_evaluate(30, 1, Some(5)).unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "5\n10\n");
    assert_eq!(last.get("recorded"), Some(&1.0));
    assert_eq!(c.runner().global_step(), 10);
    assert_eq!(
        c.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![5, 10]
    );
}

#[test]
fn a_train_action_stop_ends_training_with_a_checkpoint_of_that_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), 3, 3, 30, 10);
    options.train_actions.push(Box::new(Recorder {
        file: dir.path().join("loops.txt"),
        stop_at: 6,
    }));
    let mut c = Controller::new(Counting::default(), options).unwrap();
    c.restore_or_initialize(|_| Ok(())).unwrap();
    c.train(30).unwrap();
    assert_eq!(c.runner().global_step(), 6);
    assert_eq!(c.checkpoint_manager().unwrap().checkpoint_steps(), vec![6]);
}

#[test]
fn two_actions_of_one_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), 1, 1, 1, 1);
    options.train_actions.push(Box::new(Preemption::new()));
    options.eval_actions.push(Box::new(Preemption::new()));
    let err = Controller::new(Counting::default(), options)
        .err()
        .expect("a duplicate name")
        .to_string();
    assert!(err.contains("`preemption`"), "{err}");
}

/// A train action named `name` asking for `ask` at the loop ends of `at`.
struct AskAt {
    name: &'static str,
    ask: Directive,
    at: Vec<u64>,
}

impl AskAt {
    fn evaluation(at: Vec<u64>) -> Box<Self> {
        Box::new(AskAt {
            name: "evaluate_at",
            ask: Directive::Evaluate,
            at,
        })
    }
}

impl Action for AskAt {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&mut self, context: ActionContext<'_>) -> grove_orbit::Result<Directive> {
        Ok(match self.at.contains(&context.global_step) {
            true => self.ask.clone(),
            false => Directive::Continue,
        })
    }
}

#[test]
fn a_train_action_asking_for_evaluation_gets_one_at_that_loop_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut timed = options(dir.path(), 5, 5, 20, 10);
    timed.train_actions.push(AskAt::evaluation(vec![10, 25]));
    let mut c = Controller::new(Counting::default(), timed).unwrap();
    c.restore_or_initialize(|_| Ok(())).unwrap();
    c.train_and_evaluate(30, 1, None).unwrap().unwrap();
    assert_eq!(c.runner().evals_at, vec![10, 25, 30]);
    assert_eq!(
        c.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![20, 30]
    );
    // Training without evaluation ignores the request.
    let other = tempfile::tempdir().unwrap();
    let mut untimed = options(other.path(), 5, 5, 20, 10);
    untimed.train_actions.push(AskAt::evaluation(vec![10]));
    let mut c = Controller::new(Counting::default(), untimed).unwrap();
    c.restore_or_initialize(|_| Ok(())).unwrap();
    c.train(20).unwrap();
    assert!(c.runner().evals_at.is_empty());
}

/// Requests combine: at one loop end an evaluation and a checkpoint, at another a checkpoint
/// and a summary; with no step cadence for summaries (0) and checkpoints (an on-request
/// manager) those are all there is, besides the end of training.
#[test]
fn evaluation_summary_and_checkpoint_requests_combine_at_a_loop_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut on_request = options(dir.path(), 5, 0, 0, 10);
    on_request.checkpoint_manager = Some(CheckpointManager::on_request(dir.path(), 10).unwrap());
    on_request.train_actions.extend([
        AskAt::evaluation(vec![10]),
        Box::new(AskAt {
            name: "checkpoint_at",
            ask: Directive::Checkpoint,
            at: vec![10, 15],
        }),
        Box::new(AskAt {
            name: "summarize_at",
            ask: Directive::Summarize,
            at: vec![15],
        }) as Box<dyn Action>,
    ]);
    let mut c = Controller::new(Counting::default(), on_request).unwrap();
    c.restore_or_initialize(|_| Ok(())).unwrap();
    c.train_and_evaluate(30, 1, None).unwrap().unwrap();
    assert_eq!(c.runner().evals_at, vec![10, 30]);
    assert_eq!(
        c.checkpoint_manager().unwrap().checkpoint_steps(),
        vec![10, 15, 30]
    );
    let summarized: Vec<u64> = train_scalars(dir.path(), "training_loss")
        .into_iter()
        .map(|(step, _)| step)
        .collect();
    assert_eq!(summarized, [15, 30]);
}
