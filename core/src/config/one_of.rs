//! Registry-typed one-of sub-configs: a field such as `task.model.encoder` holds
//! `{type: <name>, <name>: {...}}`, and the types a family accepts come from the registry
//! (`registry::register_config_type`), so a user's crate adds an encoder config without editing
//! Grove, as tfimm's `_class` keys do. The branch is typed strictly; switching `type` takes the
//! new type's defaults; only the selected branch is serialized.

use std::any::Any;
use std::fmt::Debug;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::{Mapping, Value};

use crate::registry::config_type;

/// A family of interchangeable sub-config types (encoders, heads, ...).
pub trait ConfigFamily: 'static {
    /// The family's name in messages and the registry (e.g. `encoder`).
    const NAME: &'static str;
}

/// What a sub-config type must be: typed, serializable, comparable.
pub trait SubConfig:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
}

impl<T: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static> SubConfig
    for T
{
}

/// The object-safe view of a [`SubConfig`].
pub trait ErasedSubConfig: Debug + Send + Sync {
    /// The concrete config, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The concrete config, mutably.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn ErasedSubConfig>;
    /// The config as a YAML value.
    fn to_yaml(&self) -> Value;
    /// Equality with another erased config (false when the types differ).
    fn eq_dyn(&self, other: &dyn ErasedSubConfig) -> bool;
}

impl<T: SubConfig> ErasedSubConfig for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn clone_box(&self) -> Box<dyn ErasedSubConfig> {
        Box::new(self.clone())
    }
    fn to_yaml(&self) -> Value {
        serde_yaml::to_value(self).expect("a config serializes to YAML")
    }
    fn eq_dyn(&self, other: &dyn ErasedSubConfig) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

/// Parses a branch of a registered type, or says where and why it is wrong: the path inside
/// the branch and serde's message.
pub type BranchParser = fn(Value) -> Result<Box<dyn ErasedSubConfig>, (String, String)>;

/// The [`BranchParser`] of type `T`.
pub fn parse_branch<T: SubConfig>(
    value: Value,
) -> Result<Box<dyn ErasedSubConfig>, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map(|config| Box::new(config) as Box<dyn ErasedSubConfig>)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

/// A sub-config of family `F` whose type is chosen by `type`.
pub struct OneOf<F> {
    kind: String,
    value: Box<dyn ErasedSubConfig>,
    family: PhantomData<fn() -> F>,
}

impl<F: ConfigFamily> OneOf<F> {
    /// The branch `kind` with this value.
    pub fn new<T: SubConfig>(kind: &str, value: T) -> Self {
        OneOf {
            kind: kind.to_string(),
            value: Box::new(value),
            family: PhantomData,
        }
    }

    /// The selected type's name (the `type` key).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The selected branch, if it is a `T`.
    pub fn get<T: SubConfig>(&self) -> Option<&T> {
        self.value.as_any().downcast_ref()
    }

    /// The selected branch mutably, if it is a `T`.
    pub fn get_mut<T: SubConfig>(&mut self) -> Option<&mut T> {
        self.value.as_any_mut().downcast_mut()
    }
}

impl<F> Clone for OneOf<F> {
    fn clone(&self) -> Self {
        OneOf {
            kind: self.kind.clone(),
            value: self.value.clone_box(),
            family: PhantomData,
        }
    }
}

impl<F> Debug for OneOf<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneOf")
            .field("type", &self.kind)
            .field("value", &self.value)
            .finish()
    }
}

impl<F> PartialEq for OneOf<F> {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.value.eq_dyn(other.value.as_ref())
    }
}

impl<F> Serialize for OneOf<F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", &self.kind)?;
        map.serialize_entry(&self.kind, &self.value.to_yaml())?;
        map.end()
    }
}

/// Prefix of a branch error: `at `<branch>.<path>`: <message>`, so a message can name the full
/// dotted key (see the config error descriptions).
pub(crate) const AT_PREFIX: &str = "at `";

impl<'de, F: ConfigFamily> Deserialize<'de> for OneOf<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mapping = Mapping::deserialize(deserializer)?;
        let kind = match mapping.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(other) => {
                let found = serde_yaml::to_string(other).unwrap_or_default();
                return Err(D::Error::custom(format!(
                    "{AT_PREFIX}type`: invalid type: {}, expected the name of a registered {} \
                     type",
                    found.trim_end(),
                    F::NAME
                )));
            }
            None => {
                return Err(D::Error::custom(format!(
                    "{AT_PREFIX}type`: missing; name the {} type to use",
                    F::NAME
                )))
            }
        };
        let parse = config_type(F::NAME, &kind).map_err(|e| D::Error::custom(e.to_string()))?;
        // Other branches are left out: their fields come from lower layers' selections (a user
        // setting one is reported by the layering's check for dropped values).
        let branch = mapping
            .get(kind.as_str())
            .cloned()
            .unwrap_or(Value::Mapping(Mapping::new()));
        let value = parse(branch).map_err(|(path, message)| {
            let at = if path == "." || path.is_empty() {
                kind.clone()
            } else {
                format!("{kind}.{path}")
            };
            D::Error::custom(format!("{AT_PREFIX}{at}`: {message}"))
        })?;
        Ok(OneOf {
            kind,
            value,
            family: PhantomData,
        })
    }
}
