//! Training time as action state: `{"trained_seconds": <f64>}` in `controller_state.json`,
//! shared by the actions that count time ([`crate::TrainBudget`], [`crate::TrainTimer`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{OrbitError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainedSeconds {
    trained_seconds: f64,
}

/// `trained` as the state an action saves.
pub(crate) fn to_state(trained: Duration) -> Option<serde_json::Value> {
    let state = TrainedSeconds {
        trained_seconds: trained.as_secs_f64(),
    };
    serde_json::to_value(state).ok()
}

/// The training time in action `name`'s saved `state`; a malformed one is an error naming it.
pub(crate) fn from_state(name: &str, state: serde_json::Value) -> Result<Duration> {
    let state: TrainedSeconds = serde_json::from_value(state).map_err(|e| {
        OrbitError::InvalidSetting(format!("the checkpoint's {name} state is malformed ({e})"))
    })?;
    Duration::try_from_secs_f64(state.trained_seconds).map_err(|e| {
        OrbitError::InvalidSetting(format!(
            "the checkpoint's {name} state holds {} s ({e})",
            state.trained_seconds
        ))
    })
}

/// Runs `action` as after a train loop ending at `step` that trained `seconds`, for the
/// tests of the time-counting actions.
#[cfg(test)]
pub(crate) fn run_after_loop(
    action: &mut dyn crate::Action,
    step: u64,
    seconds: u64,
) -> crate::Directive {
    use crate::runner::Checkpointable;
    use crate::RunnerError;

    struct Stateless;

    impl Checkpointable for Stateless {
        fn save(&self, _: &std::path::Path) -> std::result::Result<(), RunnerError> {
            Ok(())
        }
        fn restore(&mut self, _: &std::path::Path) -> std::result::Result<(), RunnerError> {
            Ok(())
        }
    }

    let mut logs = crate::Logs::new();
    let context = crate::ActionContext {
        global_step: step,
        logs: &mut logs,
        state: &Stateless,
        train_time: Duration::from_secs(seconds),
    };
    action.run(context).unwrap()
}
