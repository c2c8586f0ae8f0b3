//! A user's own action: after every evaluation it writes the evaluation's metrics to
//! `model_dir/eval_reports/step-<global step>.json`, e.g. for a dashboard that polls files.
//! Switched on from the config with `trainer.eval_actions: [eval_report]`.

use std::path::PathBuf;

use grove_orbit::{Action, ActionContext, Directive, OrbitError};
use grove_trainers::ActionSetup;

/// The name configs list the action by.
pub const NAME: &str = "eval_report";

/// Writes one JSON file per evaluation.
pub struct EvalReport {
    directory: PathBuf,
}

/// The registered factory: reports go under the run's model_dir.
pub fn build(setup: &ActionSetup<'_>) -> grove_core::Result<Box<dyn Action>> {
    Ok(Box::new(EvalReport {
        directory: setup.model_dir.join("eval_reports"),
    }))
}

impl Action for EvalReport {
    fn name(&self) -> &str {
        NAME
    }

    fn run(&mut self, context: ActionContext<'_>) -> grove_orbit::Result<Directive> {
        let path = self
            .directory
            .join(format!("step-{}.json", context.global_step));
        std::fs::create_dir_all(&self.directory)
            .map_err(|e| OrbitError::io("cannot create", &self.directory, e))?;
        let json = serde_json::to_vec_pretty(&*context.logs)
            .map_err(|e| OrbitError::InvalidSetting(format!("cannot encode the metrics: {e}")))?;
        grove_orbit::write_atomically(&path, &json)?;
        Ok(Directive::Continue)
    }
}
