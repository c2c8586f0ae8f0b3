//! Data parallelism behind one seam (Model Garden's `distribution_strategy`): a [`Strategy`]
//! runs one training step of a task on a batch (forward, backward, the gradients of every
//! replica combined) and one evaluation step (each replica's outputs, for the metrics to fold
//! in), so the trainers never know how many replicas there are or where they run.
//!
//! - [`OneDevice`] (`one_device`, `off`): the whole batch in one pass whose ops use every
//!   compute thread.
//! - [`Mirrored`] (`mirrored`, the default): the batch split over replicas on the compute
//!   threads, their gradients summed.
//! - [`MultiWorkerMirrored`] (`multi_worker_mirrored`): the batch split over the processes of
//!   a job ([`grove_collective`]), then over each one's replicas, the workers' gradients
//!   all-reduced.
//!
//! As in Model Garden, a replica's loss is its shard's own loss (the task's mean over the
//! shard), scaled before the backward pass so that the combined gradient is the gradient of
//! the replicas' mean loss. Grove scales by the shard's share of the batch (`1 / replicas`
//! for the even split Model Garden requires), so a batch that does not split evenly still
//! weighs every example alike.

mod cross_worker;
mod mirrored;
mod multi_worker;
mod one_device;

use std::any::Any;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use grove_collective::Collective;
use grove_core::config::{DistributionStrategy, RuntimeConfig};
use grove_core::data::Batch;
use grove_core::error::{Error, Result};
use grove_core::optimization::NamedVar;
use grove_core::rng::{stream_rng, Stream};
use grove_core::task::{DynTask, StepContext, StepOutputs};
use grove_kernels::DirectGradients;

pub(crate) use cross_worker::{
    gather_aggregate, gather_all, reduce_metrics, reduce_sums, weights_checksum,
};
pub use mirrored::Mirrored;
pub(crate) use multi_worker::collective_error;
pub use multi_worker::MultiWorkerMirrored;
pub use one_device::OneDevice;

/// How a step's batch is split over replicas and their gradients combined.
pub trait Strategy: Send + Sync {
    /// The number of replicas a batch is split over in this process.
    fn replica_count(&self) -> usize;

    /// The workers the batch is split over beside this process's replicas (`None`: this
    /// process alone); their metrics and logs are reduced through it.
    fn workers(&self) -> Option<&dyn Collective> {
        None
    }

    /// The time spent in gradient all-reduces since the last call (`None` without workers).
    fn take_all_reduce_time(&self) -> Option<std::time::Duration> {
        None
    }

    /// One training step of `task` on `batch` at `position`: forward (`train_step`) and
    /// backward passes, and the gradient of the replicas' mean loss for every one of
    /// `params` that has one.
    fn train_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        params: &[NamedVar],
        position: StepPosition,
    ) -> Result<ReplicatedStep>;

    /// One evaluation step of `task` on `batch` at `global_step` (no dropout): each
    /// replica's outputs, in shard order, with its shard's share of the batch.
    fn validation_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        global_step: u64,
    ) -> Result<Vec<ShardOutputs>>;
}

/// The strategy `runtime.distribution_strategy` names, for a model on `device`; called on
/// the compute threads (`mirrored` makes one replica per compute thread on the CPU, one on
/// a GPU). `multi_worker_mirrored` runs on the worker group this process joined
/// ([`grove_collective::joined`]). A strategy Grove does not run is an error.
pub fn build_strategy(runtime: &RuntimeConfig, device: &Device) -> Result<Box<dyn Strategy>> {
    use DistributionStrategy as S;
    let local = || -> Result<Box<dyn Strategy>> {
        if device.is_cpu() {
            Ok(Box::new(Mirrored::new(rayon::current_num_threads())?))
        } else {
            Ok(Box::new(OneDevice))
        }
    };
    match runtime.distribution_strategy {
        S::Mirrored => local(),
        S::OneDevice | S::Off => Ok(Box::new(OneDevice)),
        S::MultiWorkerMirrored => {
            let workers = grove_collective::joined().ok_or_else(|| {
                Error::Config(
                    "runtime.distribution_strategy = multi_worker_mirrored needs the process \
                     to be a worker of a job: launch `train` (built with `--features mpi`) \
                     under mpirun or srun; a library caller joins with \
                     grove_collective::join first"
                        .to_string(),
                )
            })?;
            Ok(Box::new(MultiWorkerMirrored::new(
                workers,
                local()?,
                runtime.all_reduce_bucket_mb,
            )?))
        }
        unbuilt @ (S::ParameterServer | S::Tpu) => Err(unbuilt.not_built()),
    }
}

/// Where a training step starts: the run's seed and the global step (they key the replicas'
/// dropout streams).
#[derive(Debug, Clone, Copy)]
pub struct StepPosition {
    /// `runtime.seed`.
    pub seed: u64,
    /// The global step being computed.
    pub global_step: u64,
    /// Whether this process was asked to stop (SIGTERM): the workers agree on it within the
    /// step, so that every one stops after the same step.
    pub stop_requested: bool,
    /// This process's replicas among the job's (the default: they are all of them).
    pub replicas: ReplicaSpan,
    /// `Some(n)`: the batch is already this worker's part of a global batch of `n` examples
    /// (its input read the worker's shard of the data); `None`: the batch is the global one.
    pub worker_batch_of: Option<usize>,
}

/// Where a process's replicas stand among a multi-worker job's, so that every replica of the
/// job draws its own dropout stream, the same one a single process with as many replicas
/// would give it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaSpan {
    /// The job-wide index of this process's first replica.
    pub first: usize,
    /// The job's replicas (0: this process's replicas are the job's).
    pub job_total: usize,
}

/// What one training step produced.
pub struct ReplicatedStep {
    /// The gradient of the replicas' mean loss for every variable that has one.
    pub grads: GradStore,
    /// Each replica's outputs, in shard order (metrics are updated from each).
    pub outputs: Vec<StepOutputs>,
    /// The replicas' losses averaged with the shards' shares of the batch (detached).
    pub loss: Tensor,
    /// Whether any worker was asked to stop during the step (every worker stops after it).
    pub stop_agreed: bool,
}

/// What one replica's evaluation of its shard produced.
pub struct ShardOutputs {
    /// The task's `validation_step` outputs for the shard.
    pub outputs: StepOutputs,
    /// The shard's share of the batch's examples (1 for an unsplit batch).
    pub share: f64,
}

/// One replica's part of a training step.
struct ReplicaResult {
    grads: GradStore,
    outputs: StepOutputs,
    loss: Tensor,
}

/// The step context of `replica` of this process's `count`: its own dropout stream, keyed by
/// its index among the job's replicas (a single replica's is the global step's).
fn dropout_context(position: StepPosition, replica: usize, count: usize) -> StepContext {
    let span = position.replicas;
    let (first, total) = if span.job_total == 0 {
        (0, count)
    } else {
        (span.first, span.job_total)
    };
    let index = position.global_step * total as u64 + (first + replica) as u64;
    StepContext {
        global_step: position.global_step,
        dropout: Some(stream_rng(position.seed, Stream::Dropout, index)),
    }
}

/// The forward and backward pass of one replica on `shard`, its loss scaled by `share`
/// before the backward pass.
fn replica_step(
    task: &dyn DynTask,
    model: &(dyn Any + Send + Sync),
    shard: &Batch,
    share: f64,
    mut context: StepContext,
) -> Result<ReplicaResult> {
    // The fused ops' parameter gradients bypass candle's graph from here to the backward
    // (grove_kernels::DirectGradients); the scope is this thread's.
    let direct = DirectGradients::start();
    let outputs = task.train_step(shard, model, &mut context)?;
    let loss = outputs.loss().clone();
    let scaled = if share == 1.0 {
        loss.clone()
    } else {
        loss.affine(share, 0.0)?
    };
    let grads = direct.backward(&scaled)?;
    Ok(ReplicaResult {
        grads,
        outputs: StepOutputs::from(outputs).detach(),
        loss: loss.detach(),
    })
}

/// The evaluation of one shard (or a whole batch) at `global_step`, without dropout.
fn evaluate_shard(
    task: &dyn DynTask,
    model: &(dyn Any + Send + Sync),
    shard: &Batch,
    global_step: u64,
) -> Result<StepOutputs> {
    let mut context = StepContext {
        global_step,
        dropout: None,
    };
    task.validation_step(shard, model, &mut context)
}
