//! Property tests of the config system: any valid config round-trips through YAML and through
//! the flat form; overriding any leaf with a value of its type succeeds, with another type
//! fails naming that leaf.

use std::collections::BTreeMap;

use grove_core::config::optimization::{OptimizerConfig, OptimizerType};
use grove_core::config::{flatten, resolve, unflatten, ConfigSources, ExperimentConfig};
use proptest::prelude::*;

mod common;
use common::{defaults, Head, ToyTask};

/// Valid configs: the toy experiment with random names, sizes, steps, seeds and optimizer.
fn configs() -> impl Strategy<Value = ExperimentConfig> {
    (
        // Any printable text but `$`: `${` always starts a reference.
        "[ -#%-~]{0,12}",
        8usize..64,
        prop::collection::vec(("[a-z]{1,6}", 1usize..9), 0..4),
        1u64..20,
        any::<u64>(),
        any::<bool>(),
        0.0f64..1.0,
    )
        .prop_map(|(name, hidden, heads, loops, seed, adamw, rate)| {
            let mut config = defaults();
            let heads = heads
                .into_iter()
                .map(|(name, size)| Head { name, size })
                .collect();
            config.task = Box::new(ToyTask {
                name,
                hidden,
                heads,
                ..ToyTask::default()
            });
            config.trainer.train_steps = loops * 10;
            config.runtime.seed = seed;
            let optimizer = &mut config.trainer.optimizer_config.optimizer;
            *optimizer = OptimizerConfig {
                kind: if adamw {
                    OptimizerType::Adamw
                } else {
                    OptimizerType::Sgd
                },
                ..OptimizerConfig::default()
            }
            .normalized();
            if adamw {
                optimizer
                    .adamw
                    .as_mut()
                    .expect("selected")
                    .weight_decay_rate = rate;
            }
            config
        })
}

fn from_file(text: &str) -> ExperimentConfig {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("params.yaml");
    std::fs::write(&file, text).unwrap();
    let sources = ConfigSources {
        config_files: vec![file],
        ..ConfigSources::default()
    };
    resolve(&defaults(), &sources).unwrap()
}

fn override_leaf(key: &str, value: &str) -> Result<ExperimentConfig, String> {
    let sources = ConfigSources {
        params_overrides: vec![format!("{key}={value}")],
        ..ConfigSources::default()
    };
    resolve(&defaults(), &sources).map_err(|e| e.to_string())
}

/// A leaf's value in override syntax: flow YAML, strings always quoted.
fn as_override_value(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        serde_yaml::Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(as_override_value).collect();
            format!("[{}]", items.join(","))
        }
        other => serde_yaml::to_string(other).unwrap().trim_end().to_string(),
    }
}

/// Leaves an override can address: not inside lists of sub-configs.
fn addressable_leaves() -> BTreeMap<String, serde_yaml::Value> {
    defaults()
        .to_flat()
        .into_iter()
        .filter(|(key, _)| !key.contains('['))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        // A fixed seed keeps the test run deterministic.
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_122),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_valid_config_round_trips_through_yaml(config in configs()) {
        prop_assert_eq!(from_file(&config.to_yaml_string()), config);
    }

    #[test]
    fn any_valid_config_round_trips_through_the_flat_form(config in configs()) {
        let nested = config.to_yaml_value();
        prop_assert_eq!(unflatten(&flatten(&nested)).unwrap(), nested);
    }

    #[test]
    fn overriding_a_leaf_with_its_own_type_succeeds_and_another_type_names_it(
        index in 0usize..1000,
        wrong_key in "[a-z]{1,5}",
    ) {
        let leaves = addressable_leaves();
        let (key, value) = leaves.iter().nth(index % leaves.len()).unwrap();
        let same = override_leaf(key, &as_override_value(value));
        prop_assert!(same.is_ok(), "{key}: {:?}", same.err());
        prop_assert_eq!(same.unwrap().to_flat()[key].clone(), value.clone());

        let wrong = override_leaf(key, &format!("{{{wrong_key}: 1}}")).unwrap_err();
        prop_assert!(wrong.contains(key.as_str()), "{key}: {wrong}");
    }
}
