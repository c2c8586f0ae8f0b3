//! `trainer:` — how long to train and at which cadence to log, evaluate and checkpoint.

use serde::{Deserialize, Serialize};

use super::cadence::Cadence;
use super::duration::ConfigDuration;
use super::optimization::OptimizationConfig;
use super::progressive::ProgressiveConfig;
use crate::error::{Error, Result};

/// Which direction of `best_checkpoint_eval_metric` is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricComparison {
    /// A larger value is better (accuracy).
    #[default]
    Higher,
    /// A smaller value is better (loss).
    Lower,
}

defaulted_config! {
    /// `trainer.early_stopping`: end `train_and_eval` when an evaluation metric stops improving.
    pub struct EarlyStoppingConfig {
        /// Evaluation metric to watch ("" disables early stopping); nested names as `a|b`.
        pub metric: String = String::new(),
        /// Whether a higher or lower value is better.
        pub comp: MetricComparison = MetricComparison::Higher,
        /// Evaluations in a row without improvement that end training.
        pub patience: u64 = 3,
        /// The least change that counts as an improvement.
        pub min_delta: f64 = 0.0,
    }
}

defaulted_config! {
    /// Model Garden's `TrainerConfig`: the keys and defaults of `official/core/config_definitions.py`.
    /// All step counts are global (absolute) steps; the step-valued keys also take
    /// `"N epochs"` (converted when the config is resolved; see the config module).
    pub struct TrainerConfig {
        /// Optimizer, learning-rate schedule and warmup.
        pub optimizer_config: OptimizationConfig = OptimizationConfig::default(),
        /// The global step at which training ends.
        pub train_steps: u64 = 0,
        /// The length of training in epochs of `task.train_data` (unset: `train_steps`
        /// says); when the config is resolved it sets `train_steps` to this many epochs'
        /// steps, and giving both is refused.
        pub train_epochs: Option<f64> = None,
        /// A budget of training time (`"30 minutes"`, `"2h"`; unset: none): training ends with
        /// a checkpoint at the first loop end after this much time was spent training.
        /// Evaluation and checkpointing do not count, and the time trained so far is
        /// checkpointed, so a resumed run goes on with what is left.
        pub max_duration: Option<ConfigDuration> = None,
        /// Steps per inner loop; values are read back to the host once per loop.
        pub steps_per_loop: u64 = 1000,
        /// Train summaries are written at loop ends where `global_step % summary_interval == 0`,
        /// or, given a duration (`"30s"`), at the first loop end after that much training time
        /// since the last ones.
        pub summary_interval: Cadence = Cadence::Steps(1000),
        /// Checkpoints are written at loop ends where `global_step % checkpoint_interval == 0`
        /// (and at `train_steps`), or, given a duration (`"1h"`), at the first loop end after
        /// that much training time since the last request; 0 disables checkpointing.
        pub checkpoint_interval: Cadence = Cadence::Steps(1000),
        /// How many regular checkpoints are kept (oldest removed first).
        pub max_to_keep: u64 = 5,
        /// Batches per evaluation; -1 evaluates the whole validation set.
        pub validation_steps: i64 = -1,
        /// `train_and_eval` evaluates at loop ends where `global_step % validation_interval ==
        /// 0`, or, given a duration (`"10 minutes"`), at the first loop end after that much
        /// training time since the last evaluation; and at the end.
        pub validation_interval: Cadence = Cadence::Steps(1000),
        /// Sub-directory of model_dir receiving the best checkpoint ("" disables the export).
        pub best_checkpoint_export_subdir: String = String::new(),
        /// Evaluation metric that decides the best checkpoint.
        pub best_checkpoint_eval_metric: String = String::new(),
        /// Whether a higher or lower `best_checkpoint_eval_metric` is better.
        pub best_checkpoint_metric_comp: MetricComparison = MetricComparison::Higher,
        /// How many of the best checkpoints the export keeps.
        pub best_checkpoint_max_to_keep: u64 = 1,
        /// Early stopping (off while its metric is empty).
        pub early_stopping: EarlyStoppingConfig = EarlyStoppingConfig::default(),
        /// A loop-mean training loss above this bound counts as a blow-up.
        pub loss_upper_bound: f64 = 1e6,
        /// Blow-ups before this global step are not checked against `loss_upper_bound`.
        pub recovery_begin_steps: u64 = 0,
        /// Blow-up recovery: -1 no checking, 0 fail on the first NaN or bound violation,
        /// k > 0 restore the latest checkpoint up to k times (the input moves past the span that
        /// blew up).
        pub recovery_max_trials: i64 = 0,
        /// Seconds `continuous_eval` waits for a new checkpoint.
        pub continuous_eval_timeout: u64 = 3600,
        /// Sub-directory of model_dir receiving validation summaries.
        pub validation_summary_subdir: String = "validation".to_string(),
        /// Registered actions run after every train loop, in order, after Grove's own (blow-up
        /// recovery, preemption); see grove-trainers' `register_action`.
        pub train_actions: Vec<String> = Vec::new(),
        /// Registered actions run after every evaluation, in order, after Grove's own
        /// (best-checkpoint export, moving-average checkpoints, early stopping).
        pub eval_actions: Vec<String> = Vec::new(),
        /// Progressive training stages; set, it selects the progressive trainer
        /// (docs/progressive_training.md).
        pub progressive: Option<ProgressiveConfig> = None,
        /// Progressive training: also save plain checkpoints to `model_dir/exported_ckpts`.
        pub export_checkpoint: bool = true,
        /// Progressive training: steps between exported checkpoints (unset: `checkpoint_interval`).
        pub export_checkpoint_interval: Option<u64> = None,
        /// Progressive training: exported checkpoints kept (unset: `max_to_keep`).
        pub export_max_to_keep: Option<u64> = None,
        /// Progressive training: export only while training the last stage.
        pub export_only_final_stage_ckpt: bool = true,
    }
}

impl TrainerConfig {
    /// Checks values and cross-field rules, and rejects settings whose behaviour is not built yet.
    pub fn validate(&self) -> Result<()> {
        self.optimizer_config.validate()?;
        positive("trainer.steps_per_loop", self.steps_per_loop)?;
        for (key, cadence) in [
            ("trainer.summary_interval", self.summary_interval),
            ("trainer.validation_interval", self.validation_interval),
            ("trainer.checkpoint_interval", self.checkpoint_interval),
        ] {
            match cadence {
                Cadence::Steps(steps) if key != "trainer.checkpoint_interval" => {
                    positive(key, steps)?
                }
                Cadence::Every(duration) if duration.0.is_zero() => {
                    return Err(Error::Config(format!(
                        "{key} = 0s: give a positive duration or a step count"
                    )))
                }
                _ => {}
            }
        }
        positive("trainer.max_to_keep", self.max_to_keep)?;
        let step_cadences = [
            ("trainer.summary_interval", self.summary_interval),
            ("trainer.checkpoint_interval", self.checkpoint_interval),
            ("trainer.validation_interval", self.validation_interval),
        ];
        for (key, interval) in step_cadences
            .into_iter()
            .filter_map(|(key, cadence)| Some((key, cadence.steps()?)))
        {
            if interval % self.steps_per_loop != 0 {
                return Err(Error::Config(format!(
                    "{key} = {interval} is not a multiple of trainer.steps_per_loop = {}: \
                     cadences act at loop ends only; set {key} to a multiple of steps_per_loop",
                    self.steps_per_loop
                )));
            }
        }
        if self.validation_steps == 0 || self.validation_steps < -1 {
            return Err(Error::Config(format!(
                "trainer.validation_steps = {} is invalid: use a positive number of batches, \
                 or -1 for the whole validation set",
                self.validation_steps
            )));
        }
        if self.recovery_max_trials < -1 {
            return Err(Error::Config(format!(
                "trainer.recovery_max_trials = {} is invalid: use -1 (off), 0 (fail on the \
                 first blow-up) or a positive count",
                self.recovery_max_trials
            )));
        }
        if self.loss_upper_bound.is_nan() {
            return Err(Error::Config(
                "trainer.loss_upper_bound is NaN: give a number (e.g. 1e6)".to_string(),
            ));
        }
        if self.best_checkpoint_export_subdir.is_empty()
            != self.best_checkpoint_eval_metric.is_empty()
        {
            return Err(Error::Config(format!(
                "trainer.best_checkpoint_export_subdir = {:?} and \
                 trainer.best_checkpoint_eval_metric = {:?}: set both to export the best \
                 checkpoint, or neither",
                self.best_checkpoint_export_subdir, self.best_checkpoint_eval_metric
            )));
        }
        positive(
            "trainer.best_checkpoint_max_to_keep",
            self.best_checkpoint_max_to_keep,
        )?;
        positive(
            "trainer.early_stopping.patience",
            self.early_stopping.patience,
        )?;
        if self.early_stopping.min_delta.is_nan() || self.early_stopping.min_delta < 0.0 {
            return Err(Error::Config(format!(
                "trainer.early_stopping.min_delta = {}: it must be a number >= 0",
                self.early_stopping.min_delta
            )));
        }
        if self.validation_summary_subdir.is_empty() || self.validation_summary_subdir == "train" {
            return Err(Error::Config(format!(
                "trainer.validation_summary_subdir = {:?} is invalid: give a directory name \
                 other than \"train\", e.g. \"validation\"",
                self.validation_summary_subdir
            )));
        }
        self.validate_progressive()
    }

    fn validate_progressive(&self) -> Result<()> {
        let Some(progressive) = &self.progressive else {
            return Ok(());
        };
        progressive.validate()?;
        if self.optimizer_config.ema.is_some() {
            // The stages build their own optimizers, without a moving average.
            return Err(not_supported(
                "trainer.optimizer_config.ema with trainer.progressive",
                "progressive stages train without a moving average of the weights; remove ema",
            ));
        }
        if let Some(interval) = self.export_checkpoint_interval {
            positive("trainer.export_checkpoint_interval", interval)?;
            if interval % self.steps_per_loop != 0 {
                return Err(Error::Config(format!(
                    "trainer.export_checkpoint_interval = {interval} is not a multiple of \
                     trainer.steps_per_loop = {}: exports happen at loop ends only",
                    self.steps_per_loop
                )));
            }
        }
        if let Some(keep) = self.export_max_to_keep {
            positive("trainer.export_max_to_keep", keep)?;
        }
        Ok(())
    }
}

fn positive(key: &str, value: u64) -> Result<()> {
    if value == 0 {
        return Err(Error::Config(format!(
            "{key} = 0 is invalid: it must be a positive number of steps"
        )));
    }
    Ok(())
}

/// The error for a config value whose behaviour is not built yet.
pub(crate) fn not_supported(what: &str, fix: &str) -> Error {
    Error::Config(format!("{what} is not supported yet: {fix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::optimization::EmaConfig;
    use crate::config::StackingStageConfig;

    #[test]
    fn a_moving_average_is_refused_with_progressive_stages_that_would_ignore_it() {
        let mut config = TrainerConfig {
            train_steps: 1000,
            progressive: Some(ProgressiveConfig {
                stage_list: vec![StackingStageConfig {
                    num_layers: 1,
                    num_steps: 1000,
                    ..StackingStageConfig::default()
                }],
            }),
            ..TrainerConfig::default()
        };
        assert!(config.validate().is_ok(), "{:?}", config.validate());
        config.optimizer_config.ema = Some(EmaConfig::default());
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains(
                "trainer.optimizer_config.ema with trainer.progressive is not supported yet"
            ),
            "{message}"
        );
    }
}
