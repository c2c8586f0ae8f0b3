//! Data parallelism behind one seam (Model Garden's `distribution_strategy`): a [`Strategy`]
//! runs one training step of a task on a batch (forward, backward, the gradients of every
//! replica combined) and one evaluation step (each replica's outputs, for the metrics to fold
//! in), so the trainers never know how many replicas there are or where they run.
//!
//! - [`OneDevice`] (`one_device`, `off`): the whole batch in one pass whose ops use every
//!   compute thread.
//! - [`Mirrored`] (`mirrored`, the default): the batch split over replicas on the compute
//!   threads, their gradients summed.
//!
//! As in Model Garden, a replica's loss is its shard's own loss (the task's mean over the
//! shard), scaled before the backward pass so that the combined gradient is the gradient of
//! the replicas' mean loss. Grove scales by the shard's share of the batch (`1 / replicas`
//! for the even split Model Garden requires), so a batch that does not split evenly still
//! weighs every example alike.

mod mirrored;
mod one_device;

use std::any::Any;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use grove_core::config::{DistributionStrategy, RuntimeConfig};
use grove_core::data::Batch;
use grove_core::error::Result;
use grove_core::optimization::NamedVar;
use grove_core::rng::{stream_rng, Stream};
use grove_core::task::{DynTask, StepContext, StepOutputs};
use grove_kernels::DirectGradients;

pub use mirrored::Mirrored;
pub use one_device::OneDevice;

/// How a step's batch is split over replicas and their gradients combined.
pub trait Strategy: Send + Sync {
    /// The number of replicas a batch is split over in this process.
    fn replica_count(&self) -> usize;

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
/// a GPU). A strategy Grove does not run is an error.
pub fn build_strategy(runtime: &RuntimeConfig, device: &Device) -> Result<Box<dyn Strategy>> {
    use DistributionStrategy as S;
    match runtime.distribution_strategy {
        S::Mirrored if device.is_cpu() => {
            Ok(Box::new(Mirrored::new(rayon::current_num_threads())?))
        }
        S::Mirrored | S::OneDevice | S::Off => Ok(Box::new(OneDevice)),
        unbuilt @ (S::MultiWorkerMirrored | S::ParameterServer | S::Tpu) => {
            Err(unbuilt.not_built())
        }
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
}

/// What one training step produced.
pub struct ReplicatedStep {
    /// The gradient of the replicas' mean loss for every variable that has one.
    pub grads: GradStore,
    /// Each replica's outputs, in shard order (metrics are updated from each).
    pub outputs: Vec<StepOutputs>,
    /// The replicas' losses averaged with the shards' shares of the batch (detached).
    pub loss: Tensor,
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

/// The step context of `replica` of `count`: its own dropout stream (a single replica's is
/// the global step's).
fn dropout_context(position: StepPosition, replica: usize, count: usize) -> StepContext {
    let index = position.global_step * count as u64 + replica as u64;
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
