//! `one_device`: the whole batch in one pass on the calling thread, whose ops split their
//! work over every compute thread.

use std::any::Any;

use grove_core::data::Batch;
use grove_core::error::Result;
use grove_core::optimization::NamedVar;
use grove_core::task::DynTask;

use super::{
    dropout_context, evaluate_shard, replica_step, ReplicatedStep, ShardOutputs, StepPosition,
    Strategy,
};

/// One replica: the batch unsplit.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneDevice;

impl Strategy for OneDevice {
    fn replica_count(&self) -> usize {
        1
    }

    fn train_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        _params: &[NamedVar],
        position: StepPosition,
    ) -> Result<ReplicatedStep> {
        let result = replica_step(task, model, batch, 1.0, dropout_context(position, 0, 1))?;
        Ok(ReplicatedStep {
            grads: result.grads,
            loss: result.loss,
            outputs: vec![result.outputs],
            stop_agreed: position.stop_requested,
        })
    }

    fn validation_step(
        &self,
        task: &dyn DynTask,
        model: &(dyn Any + Send + Sync),
        batch: &Batch,
        global_step: u64,
    ) -> Result<Vec<ShardOutputs>> {
        Ok(vec![ShardOutputs {
            outputs: evaluate_shard(task, model, batch, global_step)?,
            share: 1.0,
        }])
    }
}
