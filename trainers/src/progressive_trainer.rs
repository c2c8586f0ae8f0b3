//! ProgressiveTrainer (Model Garden's `progressive/trainer.py`): trains a
//! [`ProgressivePolicy`]'s stages one after the other, growing the model and restarting the
//! optimizer at each stage switch. See docs/progressive_training.md.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::Device;
use grove_core::config::{Cadence, ExperimentConfig, TrainerConfig};
use grove_core::progressive::ProgressivePolicy;
use grove_core::vars::ModelVars;
use grove_core::{Error, Result};
use grove_orbit::{
    CheckpointManager, Checkpointable, Evaluator, Logs, Preemption, RunnerError, Trainer,
};

use crate::checkpoint_files::read_state;
use crate::default_trainer::{DefaultTrainer, Roles};
use crate::stage_task::StageTask;

/// Sub-directory of model_dir receiving the exported (plain) checkpoints.
pub const EXPORT_SUBDIR: &str = "exported_ckpts";

/// Where and when plain checkpoints are exported.
struct Exports {
    manager: CheckpointManager,
    only_final_stage: bool,
    train_steps: u64,
}

/// Trains the stages of a progressive policy; exposed to Orbit as trainer, evaluator and
/// checkpointable state. Steps, inputs and checkpoint files are the inner
/// [`DefaultTrainer`]'s; this type adds the stage.
pub struct ProgressiveTrainer {
    inner: DefaultTrainer,
    policy: Arc<dyn ProgressivePolicy>,
    stage: Arc<AtomicUsize>,
    seed: u64,
    exports: Option<Exports>,
}

impl ProgressiveTrainer {
    /// Builds stage 0's model and optimizer and opens the inputs `roles` asks for. A training
    /// run exports plain checkpoints to `model_dir/exported_ckpts` as `trainer.export_*` say.
    pub fn new(
        policy: Box<dyn ProgressivePolicy>,
        config: &ExperimentConfig,
        device: Device,
        roles: Roles,
        model_dir: &Path,
    ) -> crate::Result<Self> {
        let policy: Arc<dyn ProgressivePolicy> = Arc::from(policy);
        let seed = config.runtime.seed;
        let vars = ModelVars::new();
        let model = policy.get_model(0, None, &vars, seed, &device)?;
        let optimizer = policy.get_optimizer(0)?;
        let stage = Arc::new(AtomicUsize::new(0));
        let task = StageTask {
            policy: policy.clone(),
            stage: stage.clone(),
        };
        let inner = DefaultTrainer::from_parts(
            Box::new(task),
            (model, vars),
            optimizer,
            config,
            device,
            roles,
        )?;
        let exports = match roles.train {
            true => exports(&config.trainer, model_dir)?,
            false => None,
        };
        Ok(ProgressiveTrainer {
            inner,
            policy,
            stage,
            seed,
            exports,
        })
    }

    /// See [`DefaultTrainer::with_agreed_stop`].
    pub fn with_agreed_stop(mut self, agreed: Preemption) -> Self {
        self.inner = self.inner.with_agreed_stop(agreed);
        self
    }

    /// Stops training loops after the current step once `preemption` is requested.
    pub fn with_preemption(mut self, preemption: Preemption) -> Self {
        self.inner = self.inner.with_preemption(preemption);
        self
    }

    /// The stage being trained.
    pub fn stage(&self) -> usize {
        self.stage.load(Ordering::Relaxed)
    }

    /// The trainer of the current stage (model, variables, optimizer).
    pub fn current(&self) -> &DefaultTrainer {
        &self.inner
    }

    /// Runs the task's `initialize` on stage 0's model (e.g. `task.init_checkpoint`).
    pub fn initialize(&mut self) -> Result<()> {
        self.inner.initialize()
    }

    /// Makes `stage` current: its model (grown from the current one when `grow`, else freshly
    /// initialised, to be loaded from a checkpoint), a fresh optimizer, and its inputs at the
    /// current position.
    fn enter_stage(&mut self, stage: usize, grow: bool) -> Result<()> {
        let vars = ModelVars::new();
        let old = grow.then(|| self.inner.vars());
        let device = self.inner.device().clone();
        let model = self
            .policy
            .get_model(stage, old, &vars, self.seed, &device)?;
        let optimizer = self.policy.get_optimizer(stage)?;
        self.inner.replace_model(model, vars, optimizer);
        self.stage.store(stage, Ordering::Relaxed);
        let position = self.inner.train_input_position();
        self.inner.reposition_train_inputs(position)
    }

    /// Model Garden's `train_loop_end`: switches stage when the global step has crossed a
    /// stage boundary, then exports a plain checkpoint when one is due.
    fn train_loop_end(&mut self) -> crate::Result<()> {
        let step = self.inner.global_step();
        let next = self.policy.stage_of(step);
        let current = self.stage();
        if next != current {
            tracing::info!(
                "progressive training: stage {current} -> stage {next} at global step {step}"
            );
            self.enter_stage(next, true)?;
        }
        let last_stage = self.stage() + 1 >= self.policy.num_stages();
        let Some(exports) = self.exports.as_mut() else {
            return Ok(());
        };
        if exports.only_final_stage && !last_stage {
            return Ok(());
        }
        let forced = step == exports.train_steps;
        exports.manager.save(step, &self.inner, !forced)?;
        Ok(())
    }

    fn restore_from(&mut self, dir: &Path) -> Result<()> {
        let state = read_state(dir)?;
        let stage = state
            .stage
            .unwrap_or_else(|| self.policy.stage_of(state.global_step));
        if stage >= self.policy.num_stages() {
            return Err(Error::Checkpoint(format!(
                "{}: stage {stage} does not exist, trainer.progressive.stage_list has {} \
                 stages; was it written by another experiment?",
                dir.display(),
                self.policy.num_stages()
            )));
        }
        self.enter_stage(stage, false)?;
        self.inner.restore_from(dir)
    }
}

/// The export of plain checkpoints `trainer` asks for, if any.
fn exports(trainer: &TrainerConfig, model_dir: &Path) -> crate::Result<Option<Exports>> {
    if !trainer.export_checkpoint {
        return Ok(None);
    }
    let interval = match (
        trainer.export_checkpoint_interval,
        trainer.checkpoint_interval,
    ) {
        (Some(steps), _) | (None, Cadence::Steps(steps)) => steps,
        (None, Cadence::Every(_)) => {
            return Err(grove_core::Error::Config(
                "trainer.checkpoint_interval is a duration, and progressive training exports \
                 by steps: set trainer.export_checkpoint_interval"
                    .to_string(),
            )
            .into())
        }
    };
    let manager = CheckpointManager::new(
        &model_dir.join(EXPORT_SUBDIR),
        trainer.export_max_to_keep.unwrap_or(trainer.max_to_keep) as usize,
        interval,
    )?;
    Ok(Some(Exports {
        manager,
        only_final_stage: trainer.export_only_final_stage_ckpt,
        train_steps: trainer.train_steps,
    }))
}

impl Trainer for ProgressiveTrainer {
    /// Trains `num_steps` steps of the current stage; at the end of a complete loop the stage
    /// may switch (so a boundary inside a loop is overshot by the old stage, as in Model
    /// Garden). The logs carry the `stage` that trained the loop.
    fn train(&mut self, num_steps: u64) -> std::result::Result<Logs, RunnerError> {
        let before = self.inner.global_step();
        let stage = self.stage();
        let mut logs = self.inner.train(num_steps)?;
        logs.insert("stage".to_string(), stage as f64);
        if self.inner.global_step() == before + num_steps {
            self.train_loop_end().map_err(RunnerError::from)?;
        }
        Ok(logs)
    }

    fn global_step(&self) -> u64 {
        self.inner.global_step()
    }

    fn skip_inputs(&mut self, batches: u64) -> std::result::Result<(), RunnerError> {
        self.inner.skip_inputs(batches)
    }
}

impl Evaluator for ProgressiveTrainer {
    fn evaluate(&mut self, num_steps: i64) -> std::result::Result<Logs, RunnerError> {
        self.inner.evaluate(num_steps)
    }
}

impl Checkpointable for ProgressiveTrainer {
    fn save(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
        self.inner
            .save_to(dir, Some(self.stage()), false)
            .map_err(RunnerError::from)
    }

    fn restore(&mut self, dir: &Path) -> std::result::Result<(), RunnerError> {
        self.restore_from(dir).map_err(RunnerError::from)
    }
}
