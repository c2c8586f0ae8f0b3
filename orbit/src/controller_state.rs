//! The Controller's own checkpoint state (early-stopping counters, recoveries), saved beside the runner's
//! in every checkpoint as `controller_state.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::early_stopping::EarlyStoppingState;
use crate::error::RunnerError;
use crate::runner::Checkpointable;

/// File in a checkpoint directory holding the Controller's state.
pub const CONTROLLER_STATE_FILE: &str = "controller_state.json";

/// What the Controller keeps across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ControllerState {
    pub early_stopping: Option<EarlyStoppingState>,
    /// Blow-up recoveries so far.
    #[serde(default)]
    pub recoveries: u64,
}

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

    /// A checkpoint without the file (written without early stopping) restores default state.
    fn restore(&mut self, dir: &Path) -> Result<(), RunnerError> {
        self.runner.restore(dir)?;
        let path = dir.join(CONTROLLER_STATE_FILE);
        self.state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: malformed ({e})", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ControllerState::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(())
    }
}
