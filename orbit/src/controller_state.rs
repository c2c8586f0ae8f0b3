//! The Controller's own checkpoint state: the states of its actions (early-stopping counters,
//! recoveries, ...), saved beside the runner's in every checkpoint as
//! `controller_state.json`, one entry per action name.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ErrorKind, RunnerError};
use crate::runner::Checkpointable;

/// File in a checkpoint directory holding the Controller's state.
pub const CONTROLLER_STATE_FILE: &str = "controller_state.json";

/// The key checkpoints written before recovery was an action keep its count under.
const LEGACY_RECOVERIES_KEY: &str = "recoveries";

/// Action name → the state it saved.
pub(crate) type ControllerState = BTreeMap<String, serde_json::Value>;

/// A runner and the Controller's state, saved and restored together.
pub(crate) struct WithControllerState<'a, R> {
    pub runner: &'a mut R,
    pub state: ControllerState,
}

impl<R: Checkpointable> Checkpointable for WithControllerState<'_, R> {
    fn save(&self, dir: &Path) -> Result<(), RunnerError> {
        self.runner.save(dir)?;
        let json = serde_json::to_vec_pretty(&self.state).map_err(RunnerError::run)?;
        std::fs::write(dir.join(CONTROLLER_STATE_FILE), json)?;
        Ok(())
    }

    /// A checkpoint without the file restores no action state; `null` entries are no state.
    fn restore(&mut self, dir: &Path) -> Result<(), RunnerError> {
        self.runner.restore(dir)?;
        let path = dir.join(CONTROLLER_STATE_FILE);
        let mut state: ControllerState = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                let message = format!(
                    "{}: malformed ({e}); restore the file from a backup or delete the \
                         checkpoint directory",
                    path.display()
                );
                RunnerError::new(ErrorKind::UserInput, message)
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ControllerState::new(),
            Err(e) => return Err(e.into()),
        };
        if let Some(count) = state.remove(LEGACY_RECOVERIES_KEY) {
            state.entry("recovery".to_string()).or_insert(count);
        }
        state.retain(|_, value| !value.is_null());
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner with no state of its own.
    struct Stateless;

    impl Checkpointable for Stateless {
        fn save(&self, _: &Path) -> Result<(), RunnerError> {
            Ok(())
        }
        fn restore(&mut self, _: &Path) -> Result<(), RunnerError> {
            Ok(())
        }
    }

    #[test]
    fn a_checkpoint_from_before_actions_restores_its_counters_under_the_action_names() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = r#"{"early_stopping": {"best": 2.5, "evaluations_without_improvement": 1},
                         "recoveries": 2}"#;
        std::fs::write(dir.path().join(CONTROLLER_STATE_FILE), legacy).unwrap();
        let mut runner = Stateless;
        let mut both = WithControllerState {
            runner: &mut runner,
            state: ControllerState::new(),
        };
        both.restore(dir.path()).unwrap();
        assert_eq!(both.state["recovery"], serde_json::json!(2));
        assert_eq!(both.state["early_stopping"]["best"], serde_json::json!(2.5));
        assert!(!both.state.contains_key("recoveries"));

        std::fs::write(
            dir.path().join(CONTROLLER_STATE_FILE),
            r#"{"early_stopping": null, "recoveries": 0}"#,
        )
        .unwrap();
        both.restore(dir.path()).unwrap();
        assert!(!both.state.contains_key("early_stopping"));
    }
}
