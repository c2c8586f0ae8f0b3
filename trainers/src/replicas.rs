//! Model Garden's `mirrored` distribution on the CPU: the global batch of a training step is
//! split over replicas that share the model's variables, each replica runs the task's forward
//! and backward pass on its shard on a compute thread of its own, and the replicas' gradients
//! are summed before the one optimizer update. Evaluation batches are split the same way, and
//! each replica's outputs are folded into the metrics in shard order.
//!
//! As in Model Garden, a replica's loss is its shard's own loss (the task's mean over the
//! shard), scaled before the backward pass so that the summed gradient is the gradient of the
//! replicas' mean loss. Grove scales by the shard's share of the batch (`1 / replicas` for the
//! even split Model Garden requires), so a batch that does not split evenly still weighs every
//! example alike.
//!
//! The replicas run on the compute threads themselves, one replica per thread
//! (`rayon::broadcast`); a replica's matrix products run on its own thread
//! ([`grove_kernels::parallelism::with_serial_products`]), so the cores work on different replicas instead of meeting at every op of a
//! step, and a thread whose replica is done helps the others with their element-wise passes.
//! On small models, whose ops are too short to split well, this is where the second core pays
//! (benches/RESULTS.md).

use std::any::Any;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use grove_core::data::Batch;
use grove_core::error::{Error, Result};
use grove_core::optimization::NamedVar;
use grove_core::rng::{stream_rng, Stream};
use grove_core::runtime::reclaim_freed_memory;
use grove_core::task::{DynTask, StepContext, StepOutputs};
use grove_kernels::parallelism::with_serial_products;
use grove_kernels::tensor_slices::add_into;
use grove_kernels::DirectGradients;

/// The replicas a trainer splits its training and evaluation batches over.
pub struct Replicas {
    count: usize,
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

/// What one replicated training step produced.
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

/// One replica's part of a step.
struct ReplicaResult {
    grads: GradStore,
    outputs: StepOutputs,
    loss: Tensor,
}

impl Replicas {
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

    /// The number of replicas.
    pub fn count(&self) -> usize {
        self.count
    }

    /// One training step of `task` on `batch`: the batch split into one shard per replica,
    /// each replica's forward pass (`train_step`) and backward pass on its own thread, and the
    /// replicas' gradients of `params` summed.
    pub fn train_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        params: &[NamedVar],
        position: StepPosition,
    ) -> Result<ReplicatedStep> {
        if self.count == 1 {
            let result = replica_step(task, model, batch, 1.0, dropout_context(position, 0, 1))?;
            return Ok(ReplicatedStep {
                grads: result.grads,
                loss: result.loss,
                outputs: vec![result.outputs],
            });
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
        })
    }

    /// One evaluation step of `task` on `batch` at `global_step`: the batch split as for
    /// training, each replica's `validation_step` on its shard on its own thread (no dropout).
    /// Each shard's outputs come back in shard order with the shard's share of the batch, for
    /// the metrics to fold in one by one, as Model Garden's mirrored evaluation updates them
    /// per replica.
    pub fn validation_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        global_step: u64,
    ) -> Result<Vec<ShardOutputs>> {
        let evaluate = |shard: &Batch| {
            let mut context = StepContext {
                global_step,
                dropout: None,
            };
            task.validation_step(shard, model, &mut context)
        };
        if self.count == 1 {
            let outputs = evaluate(batch)?;
            return Ok(vec![ShardOutputs {
                outputs,
                share: 1.0,
            }]);
        }
        let (shards, shares) = self.shards(batch)?;
        let results = self.run_each(shards.len(), |replica| evaluate(&shards[replica]));
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
    let loss = outputs
        .loss
        .clone()
        .ok_or_else(|| Error::Run("the task's train_step returned no loss".to_string()))?;
    let scaled = if share == 1.0 {
        loss.clone()
    } else {
        loss.affine(share, 0.0)?
    };
    let grads = direct.backward(&scaled)?;
    Ok(ReplicaResult {
        grads,
        outputs: outputs.detach(),
        loss: loss.detach(),
    })
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
