//! Step counts given in epochs: `trainer.train_epochs: 3`, or `"N epochs"` as the value of a
//! step-valued trainer key (`validation_interval: "0.5 epochs"`, a schedule's
//! `decay_steps: "3 epochs"`, items of `boundaries`). An epoch is one pass over the training
//! split: `ceil(examples / global_batch_size)` steps, or `floor` with `drop_remainder`, where
//! the examples are the split's own count (a generated split's `num_examples`). Fractions of
//! epochs round to the nearest step.
//!
//! The conversion is a config layer above all others, one per converted key, named after the
//! layer that gave the epochs and the arithmetic, so params.yaml holds steps and
//! `--print_config` shows where each came from.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// The trainer keys that take `"N epochs"` besides the optimizer's `*_steps` and `boundaries`.
const STEP_KEYS: [&str; 7] = [
    "trainer.train_steps",
    "trainer.steps_per_loop",
    "trainer.summary_interval",
    "trainer.checkpoint_interval",
    "trainer.validation_interval",
    "trainer.recovery_begin_steps",
    "trainer.export_checkpoint_interval",
];

/// The key giving the length of training in epochs.
pub const TRAIN_EPOCHS_KEY: &str = "trainer.train_epochs";
/// The key it sets.
const TRAIN_STEPS_KEY: &str = "trainer.train_steps";

/// One pass over the training split, as its config describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochSize {
    /// The examples of the split, when known before training (`None`: a stream of unknown
    /// length).
    pub examples: Option<usize>,
    /// Examples per step.
    pub global_batch_size: usize,
    /// Whether a last batch smaller than `global_batch_size` is dropped.
    pub drop_remainder: bool,
}

impl EpochSize {
    /// Steps in one epoch, or why it cannot be known.
    pub fn steps(&self) -> std::result::Result<u64, String> {
        let Some(examples) = self.examples else {
            return Err(
                "the size of an epoch is unknown: task.train_data is read as a stream, \
                 whose examples are not counted before training (as tf.data's cardinality \
                 is unknown for TFRecord and text files); give the value in steps"
                    .to_string(),
            );
        };
        let batch = self.global_batch_size.max(1);
        let steps = if self.drop_remainder {
            examples / batch
        } else {
            examples.div_ceil(batch)
        };
        if steps == 0 {
            return Err(format!(
                "an epoch of task.train_data has no step: {examples} examples make no full \
                 batch of {batch} with drop_remainder"
            ));
        }
        Ok(steps as u64)
    }

    /// How one epoch's steps were counted, for provenance.
    fn arithmetic(&self, steps: u64) -> String {
        let rounding = if self.drop_remainder { "floor" } else { "ceil" };
        format!(
            "{steps} steps per epoch = {rounding}({} examples / batch {})",
            self.examples.unwrap_or(0),
            self.global_batch_size
        )
    }
}

/// One key set from epochs: its step value and a layer name saying how.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EpochValue {
    /// The dotted key.
    pub key: String,
    /// The value in steps (a number, or a list for `boundaries`).
    pub value: Value,
    /// `<layer>: 3 epochs × 469 steps per epoch = ceil(60000 examples / batch 128)`.
    pub layer: String,
}

/// The epoch counts of one value: a single count, or the items of a list.
enum EpochCounts {
    One(f64),
    Items(Vec<EpochItem>),
}

/// One item of a list that gives some of its items in epochs.
enum EpochItem {
    /// `"N epochs"`.
    Epochs(f64),
    /// An item given otherwise (in steps), kept as it is.
    Given(Value),
}

/// A layer as the conversion sees it: its name and its place among the layers (higher wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerOf {
    /// The layer's name.
    pub name: String,
    /// Its position in the order layers were merged (0: the experiment's defaults).
    pub rank: usize,
}

/// The keys of `merged` (the flat, merged config) given in epochs, in steps. `layer_of` tells
/// the layer that set a key; `epoch` gives the training split's size (asked only when a key
/// is in epochs). Fails naming the key when an epoch count is malformed or the epoch's size
/// is unknown, and when `trainer.train_steps` is set above the defaults by a layer no lower
/// than the one setting `trainer.train_epochs` (a later `train_epochs`, e.g. on the command
/// line over a Model Garden YAML's `train_steps`, wins).
pub(crate) fn epoch_values(
    merged: &BTreeMap<String, Value>,
    epoch: &mut dyn FnMut() -> Result<EpochSize>,
    layer_of: &mut dyn FnMut(&str) -> LayerOf,
    defaults_layer: &str,
) -> Result<Vec<EpochValue>> {
    let mut values = Vec::new();
    for (key, value) in merged {
        let counts = if key == TRAIN_EPOCHS_KEY {
            match value {
                Value::Null => continue,
                number => EpochCounts::One(epoch_number(key, number)?),
            }
        } else if takes_epochs(key) {
            match epochs_in(key, value)? {
                Some(counts) => counts,
                None => continue,
            }
        } else {
            continue;
        };
        let source = layer_of(key);
        let target = if key == TRAIN_EPOCHS_KEY {
            let steps_layer = layer_of(TRAIN_STEPS_KEY);
            if steps_layer.name != defaults_layer && steps_layer.rank >= source.rank {
                return Err(Error::Config(format!(
                    "{TRAIN_STEPS_KEY} (set by {}) and {TRAIN_EPOCHS_KEY} (set by {}) both \
                     give the length of training; keep one (or set {TRAIN_EPOCHS_KEY}=null)",
                    steps_layer.name, source.name
                )));
            }
            TRAIN_STEPS_KEY
        } else {
            key.as_str()
        };
        let epoch = epoch()?;
        let per_epoch = epoch
            .steps()
            .map_err(|why| Error::Config(format!("{key} is given in epochs, but {why}")))?;
        let (value, shown) = match counts {
            EpochCounts::Items(items) => {
                let mut shown = Vec::new();
                let steps = items
                    .into_iter()
                    .map(|item| match item {
                        EpochItem::Epochs(n) => {
                            shown.push(n.to_string());
                            steps_of(key, n, per_epoch).map(Value::from)
                        }
                        EpochItem::Given(value) => Ok(value),
                    })
                    .collect::<Result<Vec<Value>>>()?;
                (Value::Sequence(steps), shown.join(", "))
            }
            EpochCounts::One(n) => (Value::from(steps_of(key, n, per_epoch)?), n.to_string()),
        };
        let layer = format!(
            "{}: {shown} epochs of {}",
            source.name,
            epoch.arithmetic(per_epoch)
        );
        values.push(EpochValue {
            key: target.to_string(),
            value,
            layer,
        });
    }
    Ok(values)
}

/// Puts each value at its dotted key of a layer's mapping.
pub(crate) fn epoch_mapping(value: &EpochValue) -> Result<Mapping> {
    let mut mapping = Mapping::new();
    super::overrides::insert_dotted(&mut mapping, &value.key, value.value.clone())
        .map_err(Error::Config)?;
    Ok(mapping)
}

/// Whether `key` is a step-valued trainer key that takes `"N epochs"`.
fn takes_epochs(key: &str) -> bool {
    if STEP_KEYS.contains(&key) {
        return true;
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    key.starts_with("trainer.optimizer_config.")
        && (last.ends_with("_steps") || last == "boundaries")
}

/// The epoch counts in `value` (`"3 epochs"`, or items of a list), or `None` when it has none.
fn epochs_in(key: &str, value: &Value) -> Result<Option<EpochCounts>> {
    match value {
        Value::String(text) => Ok(parse_epochs(key, text)?.map(EpochCounts::One)),
        Value::Sequence(items) => {
            let items = items
                .iter()
                .map(|item| {
                    let epochs = match item {
                        Value::String(text) => parse_epochs(key, text)?,
                        _ => None,
                    };
                    Ok(epochs.map_or_else(|| EpochItem::Given(item.clone()), EpochItem::Epochs))
                })
                .collect::<Result<Vec<EpochItem>>>()?;
            let any = items
                .iter()
                .any(|item| matches!(item, EpochItem::Epochs(_)));
            Ok(any.then_some(EpochCounts::Items(items)))
        }
        _ => Ok(None),
    }
}

/// `"3 epochs"` / `"0.5 epoch"` as a count; `None` for text without the unit.
fn parse_epochs(key: &str, text: &str) -> Result<Option<f64>> {
    let trimmed = text.trim();
    let Some(number) = trimmed
        .strip_suffix("epochs")
        .or_else(|| trimmed.strip_suffix("epoch"))
    else {
        return Ok(None);
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(Some(n)),
        _ => Err(Error::Config(format!(
            "{key} = {text:?}: give a positive number of epochs, e.g. \"3 epochs\" or \"0.5 \
             epochs\""
        ))),
    }
}

/// A `train_epochs` number.
fn epoch_number(key: &str, value: &Value) -> Result<f64> {
    match value.as_f64() {
        Some(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(Error::Config(format!(
            "{key} = {}: give a positive number of epochs (e.g. 3), or leave it unset to \
             train trainer.train_steps steps",
            serde_yaml::to_string(value).unwrap_or_default().trim()
        ))),
    }
}

/// `epochs` × `per_epoch` rounded to the nearest step.
fn steps_of(key: &str, epochs: f64, per_epoch: u64) -> Result<u64> {
    let steps = (epochs * per_epoch as f64).round() as u64;
    if steps == 0 {
        return Err(Error::Config(format!(
            "{key} = {epochs} epochs is less than one step ({per_epoch} steps per epoch); give \
             more epochs or the value in steps"
        )));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = "experiment defaults";

    fn size(examples: Option<usize>, drop_remainder: bool) -> EpochSize {
        EpochSize {
            examples,
            global_batch_size: 128,
            drop_remainder,
        }
    }

    /// The converted values of `yaml` (flat keys), every key set by "file.yaml" (rank 1)
    /// unless `from_defaults` lists it, `trainer.train_epochs` by `later` (rank 2) if given.
    fn convert_with(
        yaml: &str,
        epoch: EpochSize,
        from_defaults: &[&str],
        later: Option<&str>,
    ) -> Result<Vec<(String, Value, String)>> {
        let flat: BTreeMap<String, Value> = serde_yaml::from_str(yaml).unwrap();
        let mut layer_of = |key: &str| match (key, later) {
            (TRAIN_EPOCHS_KEY, Some(name)) => LayerOf {
                name: name.to_string(),
                rank: 2,
            },
            _ if from_defaults.contains(&key) => LayerOf {
                name: DEFAULTS.to_string(),
                rank: 0,
            },
            _ => LayerOf {
                name: "file.yaml".to_string(),
                rank: 1,
            },
        };
        let values = epoch_values(&flat, &mut || Ok(epoch), &mut layer_of, DEFAULTS)?;
        Ok(values
            .into_iter()
            .map(|v| (v.key, v.value, v.layer))
            .collect())
    }

    fn convert(
        yaml: &str,
        epoch: EpochSize,
        from_defaults: &[&str],
    ) -> Result<Vec<(String, Value, String)>> {
        convert_with(yaml, epoch, from_defaults, None)
    }

    #[test]
    fn an_epoch_is_the_batches_of_one_pass() {
        assert_eq!(size(Some(1000), false).steps(), Ok(8));
        assert_eq!(size(Some(1000), true).steps(), Ok(7));
        assert_eq!(size(Some(1024), false).steps(), Ok(8));
        assert!(size(Some(100), true)
            .steps()
            .unwrap_err()
            .contains("no full batch"));
        assert!(size(None, false)
            .steps()
            .unwrap_err()
            .contains("give the value in steps"));
    }

    #[test]
    fn train_epochs_sets_train_steps_with_its_arithmetic() {
        let values = convert(
            "{trainer.train_epochs: 3, trainer.train_steps: 400}",
            size(Some(1000), false),
            &["trainer.train_steps"],
        )
        .unwrap();
        assert_eq!(
            values,
            [(
                "trainer.train_steps".to_string(),
                Value::from(24),
                "file.yaml: 3 epochs of 8 steps per epoch = ceil(1000 examples / batch 128)"
                    .to_string()
            )]
        );
    }

    #[test]
    fn step_keys_take_epochs_rounded_to_the_nearest_step() {
        let yaml = "{trainer.validation_interval: 0.5 epochs, \
                    trainer.optimizer_config.learning_rate.cosine.decay_steps: 3 epochs, \
                    trainer.optimizer_config.learning_rate.stepwise.boundaries: [1 epoch, 20], \
                    trainer.checkpoint_interval: 100, trainer.max_duration: 10 minutes, \
                    task.train_data.input_path: 3 epochs}";
        let values = convert(yaml, size(Some(1000), true), &[]).unwrap();
        let steps: Vec<(&str, &Value)> = values.iter().map(|(k, v, _)| (k.as_str(), v)).collect();
        let list: Value = serde_yaml::from_str("[7, 20]").unwrap();
        assert_eq!(
            steps,
            [
                (
                    "trainer.optimizer_config.learning_rate.cosine.decay_steps",
                    &Value::from(21)
                ),
                (
                    "trainer.optimizer_config.learning_rate.stepwise.boundaries",
                    &list
                ),
                ("trainer.validation_interval", &Value::from(4)),
            ]
        );
        assert!(values[0].2.contains("floor(1000 examples / batch 128)"));
    }

    #[test]
    fn bad_epoch_counts_and_double_lengths_are_refused_naming_the_key() {
        let refused = |yaml: &str, epoch: EpochSize, defaults: &[&str]| {
            convert(yaml, epoch, defaults).unwrap_err().to_string()
        };
        let known = size(Some(1000), false);
        let message = refused("{trainer.summary_interval: -2 epochs}", known, &[]);
        assert!(
            message.contains("trainer.summary_interval = \"-2 epochs\""),
            "{message}"
        );
        let message = refused("{trainer.train_epochs: 0}", known, &[]);
        assert!(message.contains("trainer.train_epochs = 0"), "{message}");
        let message = refused("{trainer.summary_interval: 0.01 epochs}", known, &[]);
        assert!(message.contains("less than one step"), "{message}");
        let message = refused(
            "{trainer.train_epochs: 2, trainer.train_steps: 10}",
            known,
            &[],
        );
        assert!(
            message.contains("both give the length of training"),
            "{message}"
        );
        // A later layer's train_epochs wins over a file's train_steps.
        let values = convert_with(
            "{trainer.train_epochs: 2, trainer.train_steps: 10}",
            known,
            &[],
            Some("argument"),
        )
        .unwrap();
        assert_eq!(values[0].1, Value::from(16));
        let message = refused(
            "{trainer.train_epochs: 2}",
            size(None, false),
            &["trainer.train_steps"],
        );
        assert!(
            message.contains("trainer.train_epochs is given in epochs, but the size of an epoch"),
            "{message}"
        );
    }

    #[test]
    fn nothing_in_epochs_asks_for_the_epoch_size() {
        let flat: BTreeMap<String, Value> =
            serde_yaml::from_str("{trainer.train_epochs: null, trainer.train_steps: 5}").unwrap();
        let mut never = || -> Result<EpochSize> { panic!("the epoch size was asked") };
        let mut layer_of = |_: &str| LayerOf {
            name: DEFAULTS.to_string(),
            rank: 0,
        };
        let values = epoch_values(&flat, &mut never, &mut layer_of, DEFAULTS).unwrap();
        assert!(values.is_empty());
    }
}
