//! The task a [`crate::ProgressiveTrainer`] hands its inner [`crate::DefaultTrainer`]: the
//! policy's task for steps and metrics, the current stage's datasets for inputs.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_nn::VarBuilder;
use grove_core::data::{Batch, Dataset};
use grove_core::export::{ExportFormat, ExportPlan};
use grove_core::metrics::Metric;
use grove_core::progressive::ProgressivePolicy;
use grove_core::task::{
    Aggregate, DynTask, InputContext, Split, StepContext, StepOutputs, TrainOutputs,
};
use grove_core::vars::ModelVars;
use grove_core::Result;

/// Delegates to the policy's task, except that inputs come from
/// [`ProgressivePolicy::get_train_dataset`] / [`ProgressivePolicy::get_eval_dataset`] of the
/// stage in `stage`.
pub(crate) struct StageTask {
    pub(crate) policy: Arc<dyn ProgressivePolicy>,
    pub(crate) stage: Arc<AtomicUsize>,
}

impl StageTask {
    fn task(&self) -> &dyn DynTask {
        self.policy.task()
    }

    fn stage(&self) -> usize {
        self.stage.load(Ordering::Relaxed)
    }
}

impl DynTask for StageTask {
    fn build_model(&self, vb: VarBuilder) -> Result<Box<dyn Any + Send + Sync>> {
        self.task().build_model(vb)
    }
    fn build_train_inputs(&self, context: &InputContext) -> Result<Dataset> {
        self.policy.get_train_dataset(self.stage(), context)
    }
    fn validation_splits(&self) -> Vec<Split> {
        self.task().validation_splits()
    }
    fn build_validation_inputs(&self, context: &InputContext) -> Result<Dataset> {
        self.policy.get_eval_dataset(self.stage(), context)
    }
    fn build_metrics(&self, training: bool) -> Vec<Box<dyn Metric>> {
        self.task().build_metrics(training)
    }
    fn train_step(
        &self,
        inputs: &Batch,
        model: &(dyn Any + Send + Sync),
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        self.task().train_step(inputs, model, context)
    }
    fn validation_step(
        &self,
        inputs: &Batch,
        model: &(dyn Any + Send + Sync),
        context: &mut StepContext,
    ) -> Result<StepOutputs> {
        self.task().validation_step(inputs, model, context)
    }
    fn aggregate_logs(
        &self,
        state: Option<Aggregate>,
        outputs: &StepOutputs,
    ) -> Result<Option<Aggregate>> {
        self.task().aggregate_logs(state, outputs)
    }
    fn reduce_aggregated_logs(
        &self,
        state: Aggregate,
        global_step: u64,
    ) -> Result<BTreeMap<String, f64>> {
        self.task().reduce_aggregated_logs(state, global_step)
    }
    fn initialize(&self, model: &(dyn Any + Send + Sync), vars: &ModelVars) -> Result<()> {
        self.task().initialize(model, vars)
    }
    fn train_batch_size(&self) -> usize {
        self.task().train_batch_size()
    }
    fn export(&self, format: ExportFormat, variables: &[String]) -> Result<ExportPlan> {
        self.task().export(format, variables)
    }
}
