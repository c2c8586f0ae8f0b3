//! The action registry: a user's crate registers an Orbit [`Action`] factory under a name
//! and switches it on from the config, `trainer.train_actions: [name, ...]` (run after every
//! train loop) or `trainer.eval_actions: [name, ...]` (after every evaluation). They run in
//! the listed order, after Grove's own actions (blow-up recovery and preemption; best
//! checkpoint export, moving-average checkpoints and early stopping), which their own
//! `trainer` keys switch on.

use std::path::Path;

use grove_core::config::ExperimentConfig;
use grove_core::error::{Error, Result};
use grove_core::registry::NamedRegistry;
use grove_orbit::Action;

/// What an action factory is given: the run's resolved config and its model_dir. A factory
/// must not write anything (the run may still fail its start-up checks); its action writes
/// when it runs.
pub struct ActionSetup<'a> {
    /// The resolved experiment config.
    pub config: &'a ExperimentConfig,
    /// The run's model_dir (it may not exist yet).
    pub model_dir: &'a Path,
}

/// Builds one action for a run.
pub type ActionFactory = fn(&ActionSetup<'_>) -> Result<Box<dyn Action>>;

static ACTIONS: NamedRegistry<ActionFactory> = NamedRegistry::new("action");

/// Registers `factory` under `name`, the name configs list it by. Registering a name twice is
/// an error.
pub fn register_action(name: &str, factory: ActionFactory) -> Result<()> {
    ACTIONS.register(name, factory)
}

/// The actions `names` (the config list at `key`) name, built for `setup`, in order. An
/// unregistered name is a config error naming the list entry, the closest registered name
/// and all of them.
pub(crate) fn build_actions(
    names: &[String],
    key: &str,
    setup: &ActionSetup<'_>,
) -> Result<Vec<Box<dyn Action>>> {
    names
        .iter()
        .enumerate()
        .map(|(index, name)| match ACTIONS.get(name) {
            Ok(factory) => factory(setup),
            Err(registered) => Err(Error::Config(format!(
                "`{key}[{index}]` = {name:?} is not a registered action; {registered}; register \
                 it with grove_trainers::register_action at start-up"
            ))),
        })
        .collect()
}
