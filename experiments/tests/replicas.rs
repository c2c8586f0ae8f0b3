//! Model Garden's `mirrored` strategy on the CPU: a step's batch split over replicas on the
//! compute threads gives the gradient of the replicas' mean loss, weighs uneven shards by their
//! size, matches one device where the loss is a mean over examples (in training and in
//! evaluation), and trains deterministically.

mod common;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use common::config;
use grove_core::config::ExperimentConfig;
use grove_core::data::Batch;
use grove_core::optimization::NamedVar;
use grove_core::registry::get_task;
use grove_core::task::{DynTask, InputContext, Split};
use grove_core::vars::ModelVars;
use grove_orbit::{Evaluator, Logs, Trainer};
use grove_trainers::strategy::{
    Mirrored, MultiWorkerMirrored, ReplicatedStep, StepPosition, Strategy,
};
use grove_trainers::{DefaultTrainer, Roles};

/// A small bert/local: 1 layer, sequences of 16 tokens, 4 masked positions, no dropout in the
/// next-sentence head either (a replica's dropout stream is not a lone shard's).
const SMALL_BERT: [&str; 7] = [
    "task.model.cls_heads=[{inner_dim: 64, num_classes: 2, dropout_rate: 0.0, name: next_sentence}]",
    "task.model.encoder.bert.num_layers=1",
    "task.train_data.seq_length=16",
    "task.train_data.max_predictions_per_seq=4",
    "task.train_data.num_examples=64",
    "task.validation_data.num_examples=8",
    "trainer.export_checkpoint=false",
];

/// Runs `work` on a pool of two compute threads, as a run with `runtime.num_threads=2` does.
fn on_two_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| rayon::scope(|_| work()))
}

/// A task of `config`, its model, the model's variables and the first training batch.
struct Problem {
    task: Box<dyn DynTask>,
    model: Box<dyn std::any::Any + Send + Sync>,
    vars: ModelVars,
    batch: Batch,
}

impl Problem {
    fn new(config: &ExperimentConfig) -> Self {
        let task = get_task(config.task.as_ref()).unwrap();
        let vars = ModelVars::new();
        let model = task
            .build_model(vars.var_builder(config.runtime.seed, DType::F32, &Device::Cpu))
            .unwrap();
        let context = InputContext::new(config.runtime.seed, Split::Train);
        let batch = task
            .build_train_inputs(&context)
            .unwrap()
            .next_batch()
            .unwrap()
            .unwrap();
        Problem {
            task,
            model,
            vars,
            batch,
        }
    }

    /// One step of `batch` over `replicas` replicas.
    fn step(&self, replicas: usize, batch: &Batch) -> ReplicatedStep {
        self.step_with(&Mirrored::new(replicas).unwrap(), batch)
    }

    /// One step of `batch` with `strategy`.
    fn step_with(&self, strategy: &dyn Strategy, batch: &Batch) -> ReplicatedStep {
        let params = self.vars.named_vars();
        let position = StepPosition {
            seed: 1,
            global_step: 0,
            stop_requested: false,
            replicas: Default::default(),
            worker_batch_of: None,
        };
        strategy
            .train_step(
                self.task.as_ref(),
                self.model.as_ref(),
                batch,
                &params,
                position,
            )
            .unwrap()
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn scalar(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32).unwrap().to_scalar().unwrap()
}

/// `Σ weight · gradient of var` over `stores`, if any store has a gradient of `var`.
fn weighted_sum(var: &Tensor, stores: &[(f32, &GradStore)]) -> Option<Vec<f32>> {
    let mut sum: Option<Vec<f32>> = None;
    for (weight, store) in stores {
        let Some(part) = store.get(var) else { continue };
        let sum = sum.get_or_insert_with(|| vec![0f32; var.elem_count()]);
        for (s, p) in sum.iter_mut().zip(values(part)) {
            *s += weight * p;
        }
    }
    sum
}

/// Asserts that every parameter's gradient in `actual` is `Σ weight · gradient` of the
/// `expected` stores, to 1e-5 of that gradient's largest magnitude, or of a thousandth of the
/// largest magnitude of any gradient where that is more: the attention key bias's gradient is
/// zero but for rounding (softmax ignores a shift shared by all of a query's scores).
fn assert_weighted_sum(params: &[NamedVar], actual: &GradStore, expected: &[(f32, &GradStore)]) {
    let expected: Vec<(&NamedVar, Option<Vec<f32>>)> = params
        .iter()
        .map(|param| (param, weighted_sum(param.var.as_tensor(), expected)))
        .collect();
    let largest = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let floor = 1e-3
        * expected
            .iter()
            .filter_map(|(_, sum)| sum.as_deref().map(largest))
            .fold(0f32, f32::max);
    let mut compared = 0;
    for (param, sum) in expected {
        let grad = actual.get(param.var.as_tensor());
        let (Some(grad), Some(sum)) = (grad, sum.as_ref()) else {
            assert!(
                grad.is_none() && sum.is_none(),
                "`{}`: gradient missing",
                param.name
            );
            continue;
        };
        let scale = largest(sum).max(floor);
        let worst = values(grad)
            .iter()
            .zip(sum)
            .map(|(a, b)| (a - b).abs() / scale)
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "`{}`: relative error {worst}", param.name);
        compared += 1;
    }
    assert!(compared > 4, "only {compared} gradients compared");
}

#[test]
fn mirrored_gradients_are_those_of_the_replicas_mean_loss() {
    let problem = Problem::new(&config("bert/local", &SMALL_BERT));
    on_two_threads(|| {
        let shards = problem.batch.split(2).unwrap();
        let mirrored = problem.step(2, &problem.batch);
        let first = problem.step(1, &shards[0]);
        let second = problem.step(1, &shards[1]);
        assert_eq!(mirrored.outputs.len(), 2);
        let params = problem.vars.named_vars();
        assert_weighted_sum(
            &params,
            &mirrored.grads,
            &[(0.5, &first.grads), (0.5, &second.grads)],
        );
        let mean = 0.5 * (scalar(&first.loss) + scalar(&second.loss));
        assert!((scalar(&mirrored.loss) - mean).abs() <= 1e-5 * mean.abs());
    });
}

/// `multi_worker_mirrored`'s own work (the flat buffer of gradients, the bucketed all-reduce,
/// the gradients rebuilt from it) in a job of one worker, with buckets far smaller than a
/// variable: the gradients and loss are the local replicas' own, bit for bit.
#[test]
fn a_job_of_one_worker_all_reducing_in_tiny_buckets_gives_its_replicas_gradients() {
    let problem = Problem::new(&config("bert/local", &SMALL_BERT));
    on_two_threads(|| {
        let alone = problem.step(2, &problem.batch);
        let workers = std::sync::Arc::new(grove_collective::SingleProcess);
        let bucket_mb = 1e-3; // 262 values a bucket
        let job = MultiWorkerMirrored::new(workers, Box::new(Mirrored::new(2).unwrap()), bucket_mb)
            .unwrap();
        let step = problem.step_with(&job, &problem.batch);
        assert_eq!(scalar(&step.loss), scalar(&alone.loss));
        assert!(!step.stop_agreed);
        for param in problem.vars.named_vars() {
            let var = param.var.as_tensor();
            let (got, want) = (step.grads.get(var), alone.grads.get(var));
            assert_eq!(got.is_some(), want.is_some(), "{}", param.name);
            if let (Some(got), Some(want)) = (got, want) {
                assert_eq!(values(got), values(want), "{}", param.name);
            }
        }
    });
}

#[test]
fn an_uneven_batch_weighs_each_shard_by_its_size() {
    let mut overrides = SMALL_BERT.to_vec();
    overrides.push("task.train_data.global_batch_size=5");
    let problem = Problem::new(&config("bert/local", &overrides));
    on_two_threads(|| {
        let shards = problem.batch.split(2).unwrap();
        assert_eq!(shards[0].size().unwrap(), 3);
        assert_eq!(shards[1].size().unwrap(), 2);
        let mirrored = problem.step(2, &problem.batch);
        let first = problem.step(1, &shards[0]);
        let second = problem.step(1, &shards[1]);
        let params = problem.vars.named_vars();
        assert_weighted_sum(
            &params,
            &mirrored.grads,
            &[(0.6, &first.grads), (0.4, &second.grads)],
        );
        let mean = 0.6 * scalar(&first.loss) + 0.4 * scalar(&second.loss);
        assert!((scalar(&mirrored.loss) - mean).abs() <= 1e-5 * mean.abs());
    });
}

#[test]
fn with_a_loss_averaged_over_examples_mirrored_matches_one_device() {
    let problem = Problem::new(&config(
        "image_classification/mnist_local",
        &["task.train_data.global_batch_size=32"],
    ));
    on_two_threads(|| {
        let mirrored = problem.step(2, &problem.batch);
        let one_device = problem.step(1, &problem.batch);
        let params = problem.vars.named_vars();
        assert_weighted_sum(&params, &mirrored.grads, &[(1.0, &one_device.grads)]);
        let loss = scalar(&one_device.loss);
        assert!((scalar(&mirrored.loss) - loss).abs() <= 1e-5 * loss.abs());
    });
}

/// The logs of evaluating 3 batches of mnist_local (7 images each, so the two replicas get
/// shards of 4 and 3) under `strategy`, after one training step.
fn mnist_evaluation(strategy: &str) -> Logs {
    let config = config(
        "image_classification/mnist_local",
        &[
            &format!("runtime.distribution_strategy={strategy}"),
            "task.train_data.global_batch_size=8",
            "task.validation_data.global_batch_size=7",
        ],
    );
    on_two_threads(|| {
        let task = get_task(config.task.as_ref()).unwrap();
        let roles = Roles {
            train: true,
            evaluate: true,
        };
        let mut trainer = DefaultTrainer::new(task, &config, Device::Cpu, roles).unwrap();
        trainer.train(1).unwrap();
        trainer.evaluate(3).unwrap()
    })
}

#[test]
fn mirrored_evaluation_of_uneven_shards_matches_one_device() {
    let mirrored = mnist_evaluation("mirrored");
    let one_device = mnist_evaluation("one_device");
    assert!(mirrored.contains_key("validation_loss"), "{mirrored:?}");
    assert!(mirrored.contains_key("accuracy"), "{mirrored:?}");
    assert_eq!(
        mirrored.keys().collect::<Vec<_>>(),
        one_device.keys().collect::<Vec<_>>()
    );
    for (key, expected) in &one_device {
        let actual = mirrored[key];
        assert!(
            (actual - expected).abs() <= 1e-5 * expected.abs().max(1.0),
            "{key}: mirrored {actual}, one device {expected}"
        );
    }
}

/// Every variable of a 6-step mirrored run of the small bert/local with dropout.
fn mirrored_run() -> Vec<(String, Vec<f32>)> {
    let mut overrides = SMALL_BERT.to_vec();
    overrides.extend([
        "task.model.cls_heads=[{inner_dim: 64, num_classes: 2, dropout_rate: 0.1, name: next_sentence}]",
        "task.model.encoder.bert.dropout_rate=0.1",
        "task.model.encoder.bert.attention_dropout_rate=0.1",
        "task.train_data.global_batch_size=6",
    ]);
    let config = config("bert/local", &overrides);
    assert_eq!(
        config.runtime.distribution_strategy,
        grove_core::config::DistributionStrategy::Mirrored
    );
    on_two_threads(|| {
        let task = get_task(config.task.as_ref()).unwrap();
        let roles = Roles {
            train: true,
            evaluate: false,
        };
        let mut trainer = DefaultTrainer::new(task, &config, Device::Cpu, roles).unwrap();
        assert_eq!(trainer.replica_count(), 2);
        let logs = trainer.train(6).unwrap();
        assert!(logs["training_loss"].is_finite());
        trainer
            .vars()
            .tensors()
            .into_iter()
            .map(|(name, t)| (name, values(&t)))
            .collect()
    })
}

#[test]
fn a_mirrored_run_with_dropout_is_bit_identical_when_repeated() {
    let first = mirrored_run();
    assert!(!first.is_empty());
    assert_eq!(first, mirrored_run());
}

#[test]
fn one_device_keeps_one_replica_and_too_many_replicas_are_refused() {
    let config = config("bert/local", &["runtime.distribution_strategy=one_device"]);
    on_two_threads(|| {
        let task = get_task(config.task.as_ref()).unwrap();
        let roles = Roles {
            train: false,
            evaluate: false,
        };
        let trainer = DefaultTrainer::new(task, &config, Device::Cpu, roles).unwrap();
        assert_eq!(trainer.replica_count(), 1);
        let err = Mirrored::new(3).expect_err("3 replicas on 2 threads");
        let message = err.to_string();
        assert!(message.contains("runtime.num_threads"), "{message}");
        assert!(message.contains("one_device"), "{message}");
    });
}
