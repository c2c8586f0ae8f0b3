//! The Controller's own checkpoint state: the states of its actions (early-stopping counters,
//! recoveries, ...), saved beside the runner's in every checkpoint as
//! `controller_state.json`, one entry per action name.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::RunnerError;
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
        let json = serde_json::to_vec_pretty(&self.state)?;
        std::fs::write(dir.join(CONTROLLER_STATE_FILE), json)?;
        Ok(())
    }

    /// A checkpoint without the file restores no action state; `null` entries are no state.
    fn restore(&mut self, dir: &Path) -> Result<(), RunnerError> {
        self.runner.restore(dir)?;
        let path = dir.join(CONTROLLER_STATE_FILE);
        let mut state: ControllerState = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: malformed ({e})", path.display()))?,
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
