//! Moving-average checkpoints (Model Garden's `EMACheckpointing` eval action): after every
//! evaluation, the runner's export state — with a moving average of the weights, the averaged
//! weights in place of the raw ones ([`Checkpointable::save_export`]) — is saved as
//! `<directory>/average_weights-<step>`, with its own index and retention, apart from the
//! training checkpoints. They are exports to read (e.g. as `task.init_checkpoint`), never
//! restored by a run.

use std::path::{Path, PathBuf};

use crate::action::{Action, ActionContext, Directive};
use crate::checkpoint::CheckpointManager;
use crate::error::{ErrorKind, Result, RunnerError};
use crate::runner::Checkpointable;

/// Name prefix of the moving-average checkpoints, as Model Garden names them.
pub const AVERAGE_WEIGHTS_PREFIX: &str = "average_weights";

/// Saves the averaged weights after every evaluation.
#[derive(Debug)]
pub struct EmaCheckpointing {
    manager: CheckpointManager,
}

impl EmaCheckpointing {
    /// Saves into `directory`, keeping the newest `max_to_keep`. Reads an existing index.
    pub fn new(directory: &Path, max_to_keep: usize) -> Result<Self> {
        let manager = CheckpointManager::new(directory, max_to_keep, 1)?
            .with_name_prefix(AVERAGE_WEIGHTS_PREFIX);
        Ok(EmaCheckpointing { manager })
    }

    /// The newest moving-average checkpoint, if any.
    pub fn latest(&self) -> Option<PathBuf> {
        self.manager.latest_checkpoint()
    }
}

/// A runner's export state, saved by a [`CheckpointManager`] as if it were the full state.
struct ExportState<'a>(&'a dyn Checkpointable);

impl Checkpointable for ExportState<'_> {
    fn save(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
        self.0.save_export(dir)
    }

    fn restore(&mut self, dir: &Path) -> std::result::Result<(), RunnerError> {
        Err(RunnerError::new(
            ErrorKind::UserInput,
            format!(
                "{} is a moving-average export, which a run does not restore; read it as an \
                 initial checkpoint instead",
                dir.display()
            ),
        ))
    }
}

impl Action for EmaCheckpointing {
    fn name(&self) -> &str {
        "ema_checkpointing"
    }

    fn run(&mut self, context: ActionContext<'_>) -> Result<Directive> {
        let state = ExportState(context.state);
        self.manager.save(context.global_step, &state, false)?;
        Ok(Directive::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Logs;

    /// Writes which of its two states was saved.
    struct Averaged;

    impl Checkpointable for Averaged {
        fn save(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
            std::fs::write(dir.join("weights"), "raw")?;
            Ok(())
        }
        fn save_export(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
            std::fs::write(dir.join("weights"), "averaged")?;
            Ok(())
        }
        fn restore(&mut self, _: &Path) -> std::result::Result<(), RunnerError> {
            Ok(())
        }
    }

    #[test]
    fn saves_the_export_state_as_numbered_average_weights_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut action = EmaCheckpointing::new(dir.path(), 2).unwrap();
        for step in [10, 20, 30] {
            let mut logs = Logs::new();
            let context = ActionContext {
                global_step: step,
                logs: &mut logs,
                state: &Averaged,
                train_time: std::time::Duration::ZERO,
            };
            assert_eq!(action.run(context).unwrap(), Directive::Continue);
        }
        let latest = dir.path().join("average_weights-30");
        assert_eq!(action.latest(), Some(latest.clone()));
        assert_eq!(
            std::fs::read_to_string(latest.join("weights")).unwrap(),
            "averaged"
        );
        assert!(dir.path().join("average_weights-20").is_dir());
        assert!(!dir.path().join("average_weights-10").exists());
        // A restarted run finds the retained exports in the index.
        let reopened = EmaCheckpointing::new(dir.path(), 2).unwrap();
        assert_eq!(reopened.latest(), Some(latest));
    }
}
