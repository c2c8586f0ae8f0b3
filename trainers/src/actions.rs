//! The action registry: a user's crate registers an Orbit [`Action`] factory under a name
//! and switches it on from the config, `trainer.train_actions: [name, ...]` (run after every
//! train loop) or `trainer.eval_actions: [name, ...]` (after every evaluation). They run in
//! the listed order, after Grove's own actions (blow-up recovery and preemption; best
//! checkpoint export and early stopping), which their own `trainer` keys switch on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

use grove_core::config::ExperimentConfig;
use grove_core::error::{Error, Result};
use grove_core::registry::suggest;
use grove_orbit::Action;
use once_cell::sync::Lazy;

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

static ACTIONS: Lazy<RwLock<BTreeMap<String, ActionFactory>>> = Lazy::new(Default::default);

/// Registers `factory` under `name`, the name configs list it by. Registering a name twice is
/// an error.
pub fn register_action(name: &str, factory: ActionFactory) -> Result<()> {
    let mut actions = ACTIONS.write().expect("action registry poisoned");
    if actions.contains_key(name) {
        return Err(Error::Registry(format!(
            "action `{name}` is registered twice; give the second one another name"
        )));
    }
    actions.insert(name.to_string(), factory);
    Ok(())
}

/// The actions `names` (the config list at `key`) name, built for `setup`, in order. An
/// unregistered name is a config error naming the list entry, the closest registered name
/// and all of them.
pub(crate) fn build_actions(
    names: &[String],
    key: &str,
    setup: &ActionSetup<'_>,
) -> Result<Vec<Box<dyn Action>>> {
    let actions = ACTIONS.read().expect("action registry poisoned");
    let registered: Vec<&str> = actions.keys().map(String::as_str).collect();
    names
        .iter()
        .enumerate()
        .map(|(index, name)| match actions.get(name) {
            Some(factory) => factory(setup),
            None => Err(Error::Config(format!(
                "`{key}[{index}]` = {name:?} is not a registered action; {}; register it \
                 with grove_trainers::register_action at start-up",
                suggest(name, &registered, "registered actions")
            ))),
        })
        .collect()
}
