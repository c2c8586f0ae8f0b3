//! `runtime:` — where and how a run executes: device, threads, seed, precision, distribution.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use grove_orbit::summary::{SummarySink, DEFAULT_SINKS};

use super::duration::ConfigDuration;
use super::keyword;
use super::trainer::not_supported;
use crate::error::{Error, Result};

defaulted_config! {
    /// Model Garden's `RuntimeConfig`, reduced to what Grove runs on, plus `device`, `num_threads`
    /// and `seed`.
    pub struct RuntimeConfig {
        /// `cpu` or `cuda:N` (the latter needs the `cuda` cargo feature).
        pub device: String = "cpu".to_string(),
        /// Compute threads; 0 keeps candle's default (one per physical core).
        pub num_threads: usize = 0,
        /// Threads that decode input (parse records, mask, stack batches) beside the thread
        /// that reads files in order; 0 decodes on the reader thread.
        pub input_threads: usize = 1,
        /// Root seed of every random stream of the run (initialisation, data order, masking, dropout).
        pub seed: u64 = 0,
        /// Floating point policy; only `float32` (or unset) is built.
        pub mixed_precision_dtype: Option<String> = None,
        /// How a step is split over replicas (Model Garden's names; see [`DistributionStrategy`]).
        pub distribution_strategy: DistributionStrategy = DistributionStrategy::Mirrored,
        /// Where summaries go, several at once: `tensorboard` (event files per split),
        /// `jsonl` (`metrics.jsonl`), `csv` (`<split>.csv`), `mlflow` (the tracking server
        /// of `runtime.mlflow`); empty writes none.
        pub loggers: Vec<SummarySink> = DEFAULT_SINKS.to_vec(),
        /// The MLflow tracking server a run with `mlflow` in `loggers` reports to.
        pub mlflow: MlflowConfig = MlflowConfig::default(),
        /// `multi_worker_mirrored`: how long one collective operation (an all-reduce, a
        /// broadcast) may wait for the other workers before the job is aborted; `0s` waits
        /// for ever.
        pub collective_timeout: ConfigDuration = ConfigDuration(Duration::from_secs(300)),
        /// `multi_worker_mirrored`: the size of the gradient buckets all-reduced one after
        /// another, in MiB (PyTorch DDP's `bucket_cap_mb`); 0 sends all gradients at once.
        pub all_reduce_bucket_mb: f64 = 25.0,
    }
}

defaulted_config! {
    /// `runtime.mlflow`: where a run with `mlflow` in `runtime.loggers` sends its params and
    /// metrics. Each empty value falls back to MLflow's own environment variable, as MLflow's
    /// clients do.
    pub struct MlflowConfig {
        /// The tracking server's address (`http://127.0.0.1:5000`); empty reads
        /// `MLFLOW_TRACKING_URI`.
        pub tracking_uri: String = String::new(),
        /// The experiment the run goes to, created when missing; empty reads
        /// `MLFLOW_EXPERIMENT_NAME`, else MLflow's `Default`.
        pub experiment_name: String = String::new(),
        /// The MLflow run's name; empty names it after model_dir's last component.
        pub run_name: String = String::new(),
        /// A bearer token for servers that ask for one; empty reads `MLFLOW_TRACKING_TOKEN`
        /// (servers with basic auth: `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`).
        /// Given as `${env:...}`, it is masked in params.yaml and the tracker's params.
        pub api_token: String = String::new(),
    }
}

/// `runtime.distribution_strategy`, with Model Garden's names. The strategies Grove runs are
/// built by grove-trainers' `strategy` module; the others are refused by
/// [`RuntimeConfig::validate`] with a message saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DistributionStrategy {
    /// The default, as in Model Garden: each batch is split over replicas that share the
    /// variables, one per compute thread on the CPU (one on a GPU), and their gradients are
    /// summed.
    #[default]
    Mirrored,
    /// The whole batch in one pass whose ops use every compute thread.
    OneDevice,
    /// Model Garden's "no strategy": the same as `one_device` here.
    Off,
    /// Model Garden's multi-worker data parallelism: one process per worker (an MPI job;
    /// the `mpi` cargo feature), each splitting its part of the batch over `mirrored`
    /// replicas, the workers' gradients all-reduced before every update.
    MultiWorkerMirrored,
    /// Model Garden's parameter servers (not built).
    ParameterServer,
    /// Model Garden's TPU strategy (not built).
    Tpu,
}

impl DistributionStrategy {
    /// The error for a strategy Grove does not run (yet).
    pub fn not_built(self) -> Error {
        not_supported(
            &format!("runtime.distribution_strategy = {:?}", keyword(&self)),
            "use mirrored (replicas on the compute threads), one_device, or \
             multi_worker_mirrored (MPI workers)",
        )
    }
}

impl std::fmt::Display for DistributionStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&keyword(self))
    }
}

/// A parsed `runtime.device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl RuntimeConfig {
    /// Parses `device`.
    pub fn device_spec(&self) -> Result<DeviceSpec> {
        let device = self.device.trim();
        if device == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        let ordinal = device
            .strip_prefix("cuda")
            .map(|rest| rest.strip_prefix(':').unwrap_or(rest))
            .map(|n| if n.is_empty() { Ok(0) } else { n.parse() });
        match ordinal {
            Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
            _ => Err(Error::Config(format!(
                "runtime.device = {:?} is invalid: use \"cpu\" or \"cuda:N\" (e.g. cuda:0)",
                self.device
            ))),
        }
    }

    /// Checks values and rejects settings whose behaviour is not built yet.
    pub fn validate(&self) -> Result<()> {
        self.device_spec()?;
        match self.mixed_precision_dtype.as_deref() {
            None | Some("float32") => {}
            Some(other) => {
                return Err(not_supported(
                    &format!("runtime.mixed_precision_dtype = {other:?}"),
                    "leave it unset or use float32",
                ))
            }
        }
        for (i, sink) in self.loggers.iter().enumerate() {
            if self.loggers[..i].contains(sink) {
                return Err(Error::Config(format!(
                    "runtime.loggers[{i}] = {}: listed twice; give each logger once",
                    keyword(sink)
                )));
            }
        }
        if !(self.all_reduce_bucket_mb.is_finite() && self.all_reduce_bucket_mb >= 0.0) {
            return Err(Error::Config(format!(
                "runtime.all_reduce_bucket_mb = {}: give a size in MiB, 0 or more (0 sends \
                 all gradients at once)",
                self.all_reduce_bucket_mb
            )));
        }
        use DistributionStrategy::*;
        match self.distribution_strategy {
            Mirrored | OneDevice | Off | MultiWorkerMirrored => Ok(()),
            unbuilt @ (ParameterServer | Tpu) => Err(unbuilt.not_built()),
        }
    }
}
