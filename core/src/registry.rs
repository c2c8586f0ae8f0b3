//! Registries: experiment name → config factory, task-config type → Task constructor, and
//! (family, type name) → sub-config type for registry-typed one-of configs.
//!
//! Registering is one call next to the definition; a binary calls each crate's `register()` once
//! at start-up. Registering a name or a config type twice is an error.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::sync::RwLock;

use once_cell::sync::Lazy;

use crate::config::one_of::{parse_branch, BranchParser, ConfigFamily, SubConfig};
use crate::config::{closest, AnyTaskConfig, ExperimentConfig};
use crate::error::{Error, Result};
use crate::task::{DynTask, Task};

/// Builds a fresh default config of one experiment.
pub type ExperimentFactory = fn() -> ExperimentConfig;

type TaskConstructor = fn(&dyn AnyTaskConfig) -> Result<Box<dyn DynTask>>;

/// Values registered under names, each name once (experiment factories here; grove-trainers
/// keeps its actions in one too).
pub struct NamedRegistry<V> {
    /// What a value is, for messages (`experiment`, `action`).
    what: &'static str,
    entries: RwLock<BTreeMap<String, V>>,
}

impl<V: Clone> NamedRegistry<V> {
    /// An empty registry of `what`s.
    pub const fn new(what: &'static str) -> Self {
        NamedRegistry {
            what,
            entries: RwLock::new(BTreeMap::new()),
        }
    }

    /// Registers `value` under `name`; a name registered before is an error.
    pub fn register(&self, name: &str, value: V) -> Result<()> {
        let mut entries = self.entries.write().expect("registry poisoned");
        if entries.contains_key(name) {
            return Err(Error::Registry(format!(
                "{} `{name}` is registered twice; give the second one another name",
                self.what
            )));
        }
        entries.insert(name.to_string(), value);
        Ok(())
    }

    /// The value of `name`, or the `did you mean ...? registered <what>s: ...` text for an
    /// unknown one.
    pub fn get(&self, name: &str) -> std::result::Result<V, String> {
        let entries = self.entries.read().expect("registry poisoned");
        entries.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = entries.keys().map(String::as_str).collect();
            suggest(name, &names, &format!("registered {}s", self.what))
        })
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let entries = self.entries.read().expect("registry poisoned");
        entries.keys().cloned().collect()
    }
}

static EXPERIMENTS: NamedRegistry<ExperimentFactory> = NamedRegistry::new("experiment");
/// A registered task: its name (for logs and messages) and its constructor.
struct RegisteredTask {
    name: String,
    construct: TaskConstructor,
}

static TASKS: Lazy<RwLock<BTreeMap<TypeId, RegisteredTask>>> = Lazy::new(Default::default);
static CONFIG_TYPES: Lazy<RwLock<BTreeMap<(&'static str, String), BranchParser>>> =
    Lazy::new(Default::default);

/// Runs a crate's `register_all` once per process and returns its outcome on every call, so a
/// crate's `register()` is safe to call more than once.
pub fn register_once(
    done: &'static std::sync::OnceLock<std::result::Result<(), String>>,
    register_all: fn() -> Result<()>,
) -> Result<()> {
    done.get_or_init(|| register_all().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Registry)
}

/// Registers an experiment factory under `name` (e.g. `bert/local`).
pub fn register_experiment(name: &str, factory: ExperimentFactory) -> Result<()> {
    EXPERIMENTS.register(name, factory)
}

/// A fresh default config of the experiment `name`. An unknown name is an error that lists the
/// registered names and the closest one.
pub fn get_experiment(name: &str) -> Result<ExperimentConfig> {
    let factory = EXPERIMENTS
        .get(name)
        .map_err(|names| Error::Registry(format!("unknown experiment `{name}`; {names}")))?;
    Ok(factory())
}

/// The registered experiment names, sorted.
pub fn experiment_names() -> Vec<String> {
    EXPERIMENTS.names()
}

/// Registers task `T`, named `name` in logs and messages (e.g. `masked_lm`), as the task of
/// its config type `T::Config`.
pub fn register_task<T: Task>(name: &str) -> Result<()> {
    let mut tasks = TASKS.write().expect("task registry poisoned");
    let id = TypeId::of::<T::Config>();
    if let Some(registered) = tasks.get(&id) {
        return Err(Error::Registry(format!(
            "task `{name}` is registered for config type {}, which task `{}` has already",
            std::any::type_name::<T::Config>(),
            registered.name
        )));
    }
    tasks.insert(
        id,
        RegisteredTask {
            name: name.to_string(),
            construct: construct::<T>,
        },
    );
    Ok(())
}

/// The registered name of the task of `config`'s type, if one is registered.
pub fn task_name(config: &dyn AnyTaskConfig) -> Option<String> {
    let tasks = TASKS.read().expect("task registry poisoned");
    let registered = tasks.get(&config.as_any().type_id())?;
    Some(registered.name.clone())
}

fn construct<T: Task>(config: &dyn AnyTaskConfig) -> Result<Box<dyn DynTask>> {
    let config = config
        .as_any()
        .downcast_ref::<T::Config>()
        .expect("the registry keys constructors by config type");
    Ok(Box::new(T::from_config(config)?))
}

/// Builds the Task registered for the type of `config`.
pub fn get_task(config: &dyn AnyTaskConfig) -> Result<Box<dyn DynTask>> {
    let tasks = TASKS.read().expect("task registry poisoned");
    let registered = tasks.get(&config.as_any().type_id()).ok_or_else(|| {
        Error::Registry(format!(
            "no task is registered for config type {}; call \
             `register_task::<YourTask>(\"your_task\")` at start-up",
            config.type_name()
        ))
    })?;
    (registered.construct)(config)
}

/// Registers `T` as the config of type `kind` in family `F` (e.g. `bert` in `encoder`), so a
/// `OneOf<F>` field accepts `{type: kind, kind: {...}}`.
pub fn register_config_type<F: ConfigFamily, T: SubConfig>(kind: &str) -> Result<()> {
    let mut types = CONFIG_TYPES.write().expect("config type registry poisoned");
    let key = (F::NAME, kind.to_string());
    if types.contains_key(&key) {
        return Err(Error::Registry(format!(
            "{} type `{kind}` is registered twice",
            F::NAME
        )));
    }
    types.insert(key, parse_branch::<T>);
    Ok(())
}

/// The parser of the config type `kind` of `family`; an unknown type is a config error listing
/// the family's registered types.
pub fn config_type(family: &str, kind: &str) -> Result<BranchParser> {
    let types = CONFIG_TYPES.read().expect("config type registry poisoned");
    if let Some(parser) = types.get(&(family, kind.to_string())) {
        return Ok(*parser);
    }
    let names: Vec<&str> = types
        .keys()
        .filter(|(f, _)| *f == family)
        .map(|(_, name)| name.as_str())
        .collect();
    Err(Error::Config(format!(
        "`type: {kind}` is not a registered {family} type; {}",
        suggest(kind, &names, "registered")
    )))
}

/// `did you mean `x`? <label>: a, b` for an unknown `name` among `names`: the closest name
/// when one is close enough to be a likely typo, then all of them.
fn suggest(name: &str, names: &[&str], label: &str) -> String {
    let hint = closest(name, names)
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default();
    let listed = if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    };
    format!("{hint}{label}: {listed}")
}
