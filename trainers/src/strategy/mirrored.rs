//! `mirrored` on the CPU (Model Garden's `MirroredStrategy`): the global batch of a step is
//! split over replicas that share the model's variables, each replica runs the task's forward
//! and backward pass on its shard on a compute thread of its own, and the replicas' gradients
//! are summed before the one optimizer update. Evaluation batches are split the same way, and
//! each replica's outputs are folded into the metrics in shard order.
//!
//! The replicas run on the compute threads themselves, one replica per thread
//! (`rayon::broadcast`); a replica's matrix products run on its own thread
//! ([`grove_kernels::parallelism::with_serial_products`]), so the cores work on different
//! replicas instead of meeting at every op of a step, and a thread whose replica is done
//! helps the others with their element-wise passes. On small models, whose ops are too short
//! to split well, this is where the second core pays.

use std::any::Any;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use grove_core::data::Batch;
use grove_core::error::{Error, Result};
use grove_core::optimization::NamedVar;
use grove_core::runtime::reclaim_freed_memory;
use grove_core::task::DynTask;
use grove_kernels::parallelism::with_serial_products;
use grove_kernels::tensor_slices::add_into;

use super::one_device::OneDevice;
use super::{
    dropout_context, evaluate_shard, replica_step, ReplicatedStep, ShardOutputs, StepPosition,
    Strategy,
};

/// The replicas a trainer splits its training and evaluation batches over.
#[derive(Debug)]
pub struct Mirrored {
    count: usize,
}

impl Mirrored {
    /// `count` replicas (at least one), at most one per compute thread.
    pub fn new(count: usize) -> Result<Self> {
        let threads = rayon::current_num_threads();
        if count > threads {
            return Err(Error::Config(format!(
                "{count} replicas need as many compute threads, but there are {threads}; \
                 raise runtime.num_threads or use runtime.distribution_strategy=one_device"
            )));
        }
        Ok(Self {
            count: count.max(1),
        })
    }

    /// `batch` cut into one shard per replica (fewer when it holds fewer examples), with each
    /// shard's share of the batch's examples.
    fn shards(&self, batch: &Batch) -> Result<(Vec<Batch>, Vec<f64>)> {
        let shards = batch.split(self.count)?;
        let sizes = shards.iter().map(Batch::size).collect::<Result<Vec<_>>>()?;
        let total = sizes.iter().sum::<usize>() as f64;
        let shares = sizes.iter().map(|&size| size as f64 / total).collect();
        Ok((shards, shares))
    }

    /// `work(replica)` for replicas `0..count`, each on a compute thread of its own, all at
    /// once; the results in replica order.
    fn run_each<R: Send>(&self, count: usize, work: impl Fn(usize) -> R + Sync) -> Vec<R> {
        let mut results: Vec<Option<R>> = rayon::broadcast(|context| {
            let replica = context.index();
            (replica < count).then(|| {
                reclaim_freed_memory();
                with_serial_products(|| work(replica))
            })
        });
        results.truncate(count);
        results
            .into_iter()
            .map(|result| result.expect("every replica ran"))
            .collect()
    }
}

impl Strategy for Mirrored {
    fn replica_count(&self) -> usize {
        self.count
    }

    /// The batch split into one shard per replica, each replica's forward pass
    /// (`train_step`) and backward pass on its own thread, and the replicas' gradients of
    /// `params` summed, each replica's thread summing a share of them.
    fn train_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        params: &[NamedVar],
        position: StepPosition,
    ) -> Result<ReplicatedStep> {
        if self.count == 1 {
            return OneDevice.train_step(task, model, batch, params, position);
        }
        let (shards, shares) = self.shards(batch)?;
        let count = shards.len();
        let results = self.run_each(count, |replica| {
            let context = dropout_context(position, replica, count);
            replica_step(task, model, &shards[replica], shares[replica], context)
        });
        let results = results.into_iter().collect::<Result<Vec<_>>>()?;
        let mut loss: Option<Tensor> = None;
        for (result, share) in results.iter().zip(&shares) {
            let weighted = result.loss.affine(*share, 0.0)?;
            loss = Some(match loss {
                Some(sum) => (sum + weighted)?,
                None => weighted,
            });
        }
        let loss = loss.expect("a batch splits into at least one shard");
        let mut stores = Vec::with_capacity(count);
        let mut outputs = Vec::with_capacity(count);
        for result in results {
            stores.push(result.grads);
            outputs.push(result.outputs);
        }
        // Each replica's thread sums its share of the parameters: the sums reuse memory the
        // replicas' activations just freed there.
        let shares = share_out(params, count);
        let sums = self.run_each(count, |replica| sum_gradients(&shares[replica], &stores));
        drop(stores);
        let mut grads = GradStore::default();
        for sums in sums {
            for (var, sum) in sums? {
                grads.insert(&var, sum);
            }
        }
        Ok(ReplicatedStep {
            grads,
            outputs,
            loss,
            stop_agreed: position.stop_requested,
        })
    }

    /// The batch split as for training, each replica's `validation_step` on its shard on its
    /// own thread; the metrics fold the shards in one by one, as Model Garden's mirrored
    /// evaluation updates them per replica.
    fn validation_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        global_step: u64,
    ) -> Result<Vec<ShardOutputs>> {
        if self.count == 1 {
            return OneDevice.validation_step(task, model, batch, global_step);
        }
        let (shards, shares) = self.shards(batch)?;
        let results = self.run_each(shards.len(), |replica| {
            evaluate_shard(task, model, &shards[replica], global_step)
        });
        results
            .into_iter()
            .zip(shares)
            .map(|(outputs, share)| {
                Ok(ShardOutputs {
                    outputs: outputs?,
                    share,
                })
            })
            .collect()
    }
}

/// `params` dealt out to `count` replicas in shares of about equal element counts (the
/// largest first, each to the share with the fewest elements so far).
fn share_out(params: &[NamedVar], count: usize) -> Vec<Vec<&NamedVar>> {
    let mut by_size: Vec<&NamedVar> = params.iter().collect();
    by_size.sort_by_key(|param| std::cmp::Reverse(param.var.elem_count()));
    let mut shares: Vec<(usize, Vec<&NamedVar>)> = vec![(0, Vec::new()); count];
    for param in by_size {
        let lightest = shares
            .iter_mut()
            .min_by_key(|(elements, _)| *elements)
            .expect("at least one replica");
        lightest.0 += param.var.elem_count();
        lightest.1.push(param);
    }
    shares.into_iter().map(|(_, share)| share).collect()
}

/// The sum over `stores` of the gradient of each of `params` that has one, added into the
/// first store's gradient where that is a contiguous CPU tensor (a replica's gradients are
/// its own: nothing else holds them).
fn sum_gradients(params: &[&NamedVar], stores: &[GradStore]) -> Result<Vec<(Tensor, Tensor)>> {
    let mut sums = Vec::with_capacity(params.len());
    for param in params {
        let var = param.var.as_tensor();
        let mut grads = stores.iter().filter_map(|store| store.get(var));
        let Some(first) = grads.next() else { continue };
        let mut sum = first.clone();
        for grad in grads {
            if !add_into(&sum, grad)? {
                sum = (sum + grad)?;
            }
        }
        sums.push((var.clone(), sum));
    }
    Ok(sums)
}
