//! `trainer.progressive` — stages of progressive training (Model Garden's
//! `ProgressiveConfig` with the stacking `stage_list` of `progressive_masked_lm`).

use crate::error::{Error, Result};

defaulted_config! {
    /// One stage of a stacking schedule (Model Garden's `StackingStageConfig`); `num_layers` and
    /// `num_steps` must be given.
    pub struct StackingStageConfig {
        /// Transformer layers of the encoder in this stage.
        pub num_layers: usize = 0,
        /// Training steps of this stage.
        pub num_steps: u64 = 0,
        /// Polynomial warmup steps at the start of the stage.
        pub warmup_steps: u64 = 10_000,
        /// Learning rate after warmup, decayed polynomially over `decay_steps`.
        pub initial_learning_rate: f64 = 1e-4,
        /// Learning rate reached after `decay_steps`.
        pub end_learning_rate: f64 = 0.0,
        /// Steps of the stage's polynomial decay.
        pub decay_steps: u64 = 1_000_000,
    }
}

defaulted_config! {
    /// `trainer.progressive`: present, it selects the progressive trainer.
    pub struct ProgressiveConfig {
        /// The stages in training order.
        pub stage_list: Vec<StackingStageConfig> = Vec::new(),
    }
}

impl ProgressiveConfig {
    /// Checks every stage; errors name `trainer.progressive.stage_list[i].<key>`.
    pub fn validate(&self) -> Result<()> {
        if self.stage_list.is_empty() {
            return Err(Error::Config(
                "trainer.progressive.stage_list is empty: give at least one stage \
                 {num_layers, num_steps, warmup_steps, initial_learning_rate, \
                 end_learning_rate, decay_steps}"
                    .to_string(),
            ));
        }
        for (index, stage) in self.stage_list.iter().enumerate() {
            let key = format!("trainer.progressive.stage_list[{index}]");
            for (name, value) in [
                ("num_layers", stage.num_layers as u64),
                ("num_steps", stage.num_steps),
                ("decay_steps", stage.decay_steps),
            ] {
                if value == 0 {
                    return Err(Error::Config(format!(
                        "{key}.{name} = 0: it must be positive"
                    )));
                }
            }
            for (name, value) in [
                ("initial_learning_rate", stage.initial_learning_rate),
                ("end_learning_rate", stage.end_learning_rate),
            ] {
                if !value.is_finite() || value < 0.0 {
                    return Err(Error::Config(format!(
                        "{key}.{name} = {value}: it must be a number >= 0"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_must_be_given_and_sized() {
        let empty = ProgressiveConfig::default().validate().unwrap_err();
        assert!(empty.to_string().contains("stage_list is empty"), "{empty}");
        let unsized_stage = ProgressiveConfig {
            stage_list: vec![StackingStageConfig::default()],
        };
        let error = unsized_stage.validate().unwrap_err().to_string();
        assert!(error.contains("stage_list[0].num_layers = 0"), "{error}");
        let stage = StackingStageConfig {
            num_layers: 3,
            num_steps: 10,
            ..StackingStageConfig::default()
        };
        let ok = ProgressiveConfig {
            stage_list: vec![stage],
        };
        ok.validate().unwrap();
    }
}
