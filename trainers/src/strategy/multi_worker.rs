//! `multi_worker_mirrored` (Model Garden's `MultiWorkerMirroredStrategy`): one process per
//! worker, each running `mirrored` replicas on its compute threads.
//!
//! Every worker reads the same global batch (the input stream is the same on every worker,
//! from the same seed) and keeps its own part of it: the batch is cut into one shard per
//! worker, as `mirrored` cuts it into one per replica, and the worker splits its shard over its
//! replicas. A worker's gradient is its shard's mean-loss gradient times the shard's share of
//! the global batch; the workers' gradients are summed by one all-reduce per bucket of
//! `runtime.all_reduce_bucket_mb`, so every worker applies the update of the whole global
//! batch, with the same bits. The all-reduce runs after the backward pass: candle's backward
//! returns every gradient at once, so there is nothing to overlap it with.
//!
//! Two more numbers travel with the gradients: the step's loss and whether any worker was
//! asked to stop (a signal reaches the workers at different moments; they must stop at the
//! same step).

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use grove_collective::Collective;
use grove_core::data::Batch;
use grove_core::error::{Error, Result};
use grove_core::optimization::NamedVar;
use grove_core::task::DynTask;

use super::{ReplicaSpan, ReplicatedStep, ShardOutputs, StepPosition, Strategy};

/// A worker of a multi-worker job.
pub struct MultiWorkerMirrored {
    workers: Arc<dyn Collective>,
    local: Box<dyn Strategy>,
    replicas: ReplicaSpan,
    bucket_elements: usize,
    /// Time spent in gradient all-reduces since it was last taken.
    all_reduce_time: Mutex<Duration>,
}

impl MultiWorkerMirrored {
    /// This process's part of the job `workers`, running `local` (its replicas) on its
    /// shards; gradients are all-reduced in buckets of `bucket_mb` MiB (0: all at once).
    /// Every worker calls it at once: the workers exchange their replica counts.
    pub fn new(
        workers: Arc<dyn Collective>,
        local: Box<dyn Strategy>,
        bucket_mb: f64,
    ) -> Result<Self> {
        let count = local.replica_count() as u64;
        let counts: Vec<u64> = workers
            .all_gather(&count.to_le_bytes())
            .map_err(collective_error)?
            .iter()
            .map(|bytes| u64::from_le_bytes(bytes.as_slice().try_into().unwrap_or([0; 8])))
            .collect();
        let replicas = ReplicaSpan {
            first: counts[..workers.rank()].iter().sum::<u64>() as usize,
            job_total: counts.iter().sum::<u64>() as usize,
        };
        let bucket_elements = (bucket_mb * 1024.0 * 1024.0 / 4.0) as usize;
        Ok(MultiWorkerMirrored {
            workers,
            local,
            replicas,
            bucket_elements,
            all_reduce_time: Mutex::default(),
        })
    }

    /// This worker's shard of `batch` and the shard's share of the batch (`None` when the batch
    /// holds fewer examples than there are workers and this one gets none).
    fn worker_shard(&self, batch: &Batch) -> Result<Option<(Batch, f64)>> {
        let size = batch.size()?;
        let mut shards = batch.split(self.workers.size())?;
        let rank = self.workers.rank();
        if rank >= shards.len() {
            return Ok(None);
        }
        let shard = shards.swap_remove(rank);
        let share = shard.size()? as f64 / size as f64;
        Ok(Some((shard, share)))
    }

    /// Sums `values` over the workers, one bucket at a time.
    fn all_reduce(&self, values: &mut [f32]) -> Result<()> {
        let bucket = if self.bucket_elements == 0 {
            values.len().max(1)
        } else {
            self.bucket_elements
        };
        let started = Instant::now();
        for chunk in values.chunks_mut(bucket) {
            self.workers
                .all_reduce_sum(chunk)
                .map_err(collective_error)?;
        }
        *self
            .all_reduce_time
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += started.elapsed();
        Ok(())
    }
}

/// A collective's failure as a run error.
pub(crate) fn collective_error(error: grove_collective::CollectiveError) -> Error {
    Error::Run(format!("multi_worker_mirrored: {error}"))
}

impl Strategy for MultiWorkerMirrored {
    fn replica_count(&self) -> usize {
        self.local.replica_count()
    }

    fn workers(&self) -> Option<&dyn Collective> {
        Some(self.workers.as_ref())
    }

    fn take_all_reduce_time(&self) -> Option<Duration> {
        let mut time = self
            .all_reduce_time
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(std::mem::take(&mut *time))
    }

    fn train_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        params: &[NamedVar],
        position: StepPosition,
    ) -> Result<ReplicatedStep> {
        let part = match position.worker_batch_of {
            Some(global) => Some((batch.clone(), batch.size()? as f64 / global as f64)),
            None => self.worker_shard(batch)?,
        };
        let (local, share) = match part {
            Some((shard, share)) => {
                let position = StepPosition {
                    replicas: self.replicas,
                    ..position
                };
                let step = self
                    .local
                    .train_step(task, model, &shard, params, position)?;
                (Some(step), share)
            }
            None => (None, 0.0),
        };
        // Layout: every variable's gradient (zeros where this worker has none), one flag per
        // variable saying whether this worker has its gradient, the loss, the stop flag.
        let sizes: Vec<usize> = params.iter().map(|p| p.var.elem_count()).collect();
        let total: usize = sizes.iter().sum();
        let mut buffer = Vec::with_capacity(total + params.len() + 2);
        let mut present = Vec::with_capacity(params.len());
        for (param, &size) in params.iter().zip(&sizes) {
            match local
                .as_ref()
                .and_then(|step| step.grads.get(param.var.as_tensor()))
            {
                Some(grad) => {
                    let grad = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                    buffer.extend(grad.iter().map(|g| g * share as f32));
                    present.push(1.0);
                }
                None => {
                    buffer.resize(buffer.len() + size, 0.0);
                    present.push(0.0);
                }
            }
        }
        buffer.extend(present);
        let loss = match &local {
            Some(step) => step.loss.to_dtype(DType::F32)?.to_scalar::<f32>()? * share as f32,
            None => 0.0,
        };
        buffer.push(loss);
        buffer.push(if position.stop_requested { 1.0 } else { 0.0 });
        self.all_reduce(&mut buffer)?;

        let mut grads = GradStore::default();
        let mut offset = 0;
        for (index, (param, &size)) in params.iter().zip(&sizes).enumerate() {
            if buffer[total + index] > 0.0 {
                let var = param.var.as_tensor();
                let grad =
                    Tensor::from_slice(&buffer[offset..offset + size], var.shape(), var.device())?
                        .to_dtype(var.dtype())?;
                grads.insert(var, grad);
            }
            offset += size;
        }
        let flags = &buffer[total + params.len()..];
        let device = params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        Ok(ReplicatedStep {
            grads,
            outputs: local.map(|step| step.outputs).unwrap_or_default(),
            loss: Tensor::new(flags[0], &device)?,
            stop_agreed: flags[1] > 0.0,
        })
    }

    fn validation_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        global_step: u64,
    ) -> Result<Vec<ShardOutputs>> {
        let Some((shard, share)) = self.worker_shard(batch)? else {
            return Ok(Vec::new());
        };
        let outputs = self
            .local
            .validation_step(task, model, &shard, global_step)?;
        Ok(outputs
            .into_iter()
            .map(|o| ShardOutputs {
                outputs: o.outputs,
                share: o.share * share,
            })
            .collect())
    }
}
