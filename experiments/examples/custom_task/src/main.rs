//! A user's own crate on top of Grove: it defines a Task (linear regression on seeded synthetic
//! data), its config, an experiment and an action ([`eval_report`]: a file per evaluation,
//! switched on with `trainer.eval_actions: [eval_report]`), registers them, and hands over to
//! Grove's `train` command line. Nothing in Grove is edited.
//!
//! ```text
//! cargo run --release -p grove-example-custom-task -- \
//!     --experiment=linear_regression/local --mode=train_and_eval --model_dir=runs/linear
//! ```

mod eval_report;

use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use grove_core::config::optimization::{OptimizerConfig, SgdConfig};
use grove_core::config::{Cadence, DataConfig, ExperimentConfig, TaskConfig, TrainerConfig};
use grove_core::data::{Batch, BatchSource, Dataset};
use grove_core::metrics::{Metric, WeightedMean};
use grove_core::registry::{register_experiment, register_task};
use grove_core::rng::{stream_rng, Stream};
use grove_core::task::{InputContext, StepContext, StepOutputs, Task, TrainOutputs};
use grove_core::{Error, Result};
use rand_distr::{Distribution, Normal};

/// Synthetic inputs of linear regression (made by the task: `input_path` stays empty).
fn synthetic_data(is_training: bool) -> DataConfig {
    DataConfig {
        global_batch_size: 32,
        is_training: Some(is_training),
        ..DataConfig::default()
    }
}

grove_core::defaulted_config! {
    /// `task:` of linear regression: y = x · w + b + noise, with w and b drawn from the seed.
    pub struct LinearRegressionConfig {
        /// Weights to start from ("" for none).
        pub init_checkpoint: String = String::new(),
        /// Input features per example.
        pub features: usize = 4,
        /// Standard deviation of the label noise.
        pub noise: f64 = 0.1,
        /// Batches in one pass over the validation set.
        pub validation_batches: usize = 8,
        /// Training inputs.
        pub train_data: DataConfig = synthetic_data(true),
        /// Validation inputs.
        pub validation_data: DataConfig = synthetic_data(false),
    }
}

impl TaskConfig for LinearRegressionConfig {
    type Data = DataConfig;
    fn train_data(&self) -> &DataConfig {
        &self.train_data
    }
    fn validation_data(&self) -> &DataConfig {
        &self.validation_data
    }
    fn init_checkpoint(&self) -> &str {
        &self.init_checkpoint
    }
    fn validate(&self) -> Result<()> {
        for (key, data) in [
            ("train_data", &self.train_data),
            ("validation_data", &self.validation_data),
        ] {
            if !data.input_path.is_empty() {
                return Err(Error::Config(format!(
                    "task.{key}.input_path = {:?}: this task makes its own synthetic data and \
                     reads no files; remove the key",
                    data.input_path
                )));
            }
        }
        Ok(())
    }
}

/// Seeded batches of (x, y); endless for training, `validation_batches` long otherwise.
struct RegressionSource {
    seed: u64,
    stream: Stream,
    next: u64,
    end: Option<u64>,
    batch_size: usize,
    weights: Vec<f32>,
    noise: f64,
}

impl BatchSource for RegressionSource {
    fn next_batch(&mut self) -> Option<Result<Batch>> {
        if self.end == Some(self.next) {
            return None;
        }
        let mut rng = stream_rng(self.seed, self.stream, self.next);
        self.next += 1;
        let features = self.weights.len() - 1;
        let unit = Normal::new(0.0f32, 1.0).expect("a valid normal");
        let noise = Normal::new(0.0f32, self.noise as f32).expect("a valid normal");
        let x: Vec<f32> = (0..self.batch_size * features)
            .map(|_| unit.sample(&mut rng))
            .collect();
        let y: Vec<f32> = x
            .chunks(features)
            .map(|row| {
                let dot: f32 = row.iter().zip(&self.weights).map(|(a, w)| a * w).sum();
                dot + self.weights[features] + noise.sample(&mut rng)
            })
            .collect();
        let mut batch = Batch::new();
        let tensors = Tensor::from_vec(x, (self.batch_size, features), &Device::Cpu)
            .and_then(|x| Ok((x, Tensor::from_vec(y, (self.batch_size, 1), &Device::Cpu)?)));
        match tensors {
            Ok((x, y)) => {
                batch.insert("x", x);
                batch.insert("y", y);
                Some(Ok(batch))
            }
            Err(e) => Some(Err(e.into())),
        }
    }

    fn is_endless(&self) -> bool {
        self.end.is_none()
    }
}

/// Linear regression with a mean-squared-error loss.
pub struct LinearRegressionTask {
    config: LinearRegressionConfig,
}

impl LinearRegressionTask {
    fn loss(&self, inputs: &Batch, model: &Linear) -> Result<TrainOutputs> {
        let prediction = model.forward(inputs.get("x")?)?;
        let error = (prediction - inputs.get("y")?)?;
        let mut outputs = TrainOutputs::new(error.sqr()?.mean_all()?);
        outputs.insert("abs_error", error.abs()?);
        Ok(outputs)
    }
}

impl Task for LinearRegressionTask {
    type Config = LinearRegressionConfig;
    type Model = Linear;

    fn from_config(config: &LinearRegressionConfig) -> Result<Self> {
        Ok(LinearRegressionTask {
            config: config.clone(),
        })
    }

    fn config(&self) -> &LinearRegressionConfig {
        &self.config
    }

    fn build_model(&self, vb: VarBuilder) -> Result<Linear> {
        Ok(candle_nn::linear(self.config.features, 1, vb.pp("linear"))?)
    }

    fn build_inputs(&self, data: &DataConfig, context: &InputContext) -> Result<Dataset> {
        let training = data.is_training == Some(true);
        let mut rng = stream_rng(context.seed, Stream::Data, u64::MAX);
        let unit = Normal::new(0.0f32, 1.0).expect("a valid normal");
        let weights = (0..=self.config.features)
            .map(|_| unit.sample(&mut rng))
            .collect();
        Ok(Dataset::prefetch(RegressionSource {
            seed: data.seed.unwrap_or(context.seed),
            stream: if training {
                Stream::Data
            } else {
                Stream::Validation
            },
            next: if training { context.start_batch } else { 0 },
            end: (!training).then_some(self.config.validation_batches as u64),
            batch_size: data.global_batch_size,
            weights,
            noise: self.config.noise,
        }))
    }

    fn build_metrics(&self, _training: bool) -> Vec<Box<dyn Metric>> {
        vec![Box::new(WeightedMean::new(
            "mean_absolute_error",
            "abs_error",
        ))]
    }

    fn train_step(
        &self,
        inputs: &Batch,
        model: &Linear,
        _: &mut StepContext,
    ) -> Result<TrainOutputs> {
        self.loss(inputs, model)
    }

    fn validation_step(
        &self,
        inputs: &Batch,
        model: &Linear,
        _: &mut StepContext,
    ) -> Result<StepOutputs> {
        self.loss(inputs, model).map(StepOutputs::from)
    }
}

/// `linear_regression/local`: 200 steps of SGD with momentum.
fn linear_regression_local() -> ExperimentConfig {
    let mut config = ExperimentConfig::new(LinearRegressionConfig::default());
    config.trainer = TrainerConfig {
        train_steps: 200,
        steps_per_loop: 20,
        summary_interval: Cadence::Steps(20),
        checkpoint_interval: Cadence::Steps(100),
        validation_interval: Cadence::Steps(100),
        ..TrainerConfig::default()
    };
    let optimizer = &mut config.trainer.optimizer_config.optimizer;
    *optimizer = OptimizerConfig::from(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    config
}

fn main() -> std::process::ExitCode {
    let registered = register_task::<LinearRegressionTask>("linear_regression")
        .and_then(|()| register_experiment("linear_regression/local", linear_regression_local))
        .and_then(|()| grove_trainers::register_action(eval_report::NAME, eval_report::build));
    if let Err(e) = registered {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(grove_experiments::cli::EXIT_RUN_FAILED);
    }
    grove_experiments::cli::main()
}
