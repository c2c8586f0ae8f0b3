//! Layering: factory defaults, config files in order, overrides in order; strict keys and types
//! in every layer, with errors naming the key and the layer.

use std::path::PathBuf;

use grove_core::config::{explain, resolve, resolve_explained, unflatten, ConfigSources};

mod common;
use common::{defaults, Large, Small, ToyTask};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn sources(files: Vec<PathBuf>, overrides: &[&str]) -> ConfigSources {
    ConfigSources {
        config_files: files,
        params_overrides: overrides.iter().map(|s| s.to_string()).collect(),
        ..ConfigSources::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_layer_stacks_in_order_and_each_value_knows_its_layer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("device")).unwrap();
    write(
        &dir,
        "device/box.yaml",
        "runtime: {num_threads: 3, seed: 1}\ntask: {name: profile}\n",
    );
    let file = write(
        &dir,
        "exp.yaml",
        "runtime: {seed: 2}\ntrainer: {max_to_keep: 9}\n",
    );
    let all = ConfigSources {
        config_files: vec![file.clone()],
        params_overrides: strings(&["trainer.train_steps=300,task.hidden=64"]),
        trailing_overrides: strings(&["task.hidden=128"]),
        environment: vec![
            ("GROVE_DEVICE".to_string(), "box".to_string()),
            (
                "GROVE_CONFIG_DIR".to_string(),
                dir.path().display().to_string(),
            ),
            ("GROVE_TRAINER__TRAIN_STEPS".to_string(), "200".to_string()),
            ("GROVE_TRAINER__MAX_TO_KEEP".to_string(), "4".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ],
    };
    let resolved = resolve_explained(&defaults(), &all).unwrap();
    let config = &resolved.config;
    let task = config.task_as::<ToyTask>().unwrap();
    assert_eq!(config.runtime.num_threads, 3); // profile over defaults
    assert_eq!(task.name, "profile");
    assert_eq!(config.runtime.seed, 2); // file over profile
    assert_eq!(config.trainer.max_to_keep, 4); // environment over file
    assert_eq!(config.trainer.train_steps, 300); // --params_override over environment
    assert_eq!(task.hidden, 128); // trailing argument over --params_override
    let layer = |key: &str| resolved.provenance[key].clone();
    let profile = dir.path().join("device/box.yaml");
    assert_eq!(
        layer("runtime.num_threads"),
        format!("{}:1", profile.display())
    );
    assert_eq!(layer("runtime.seed"), format!("{}:1", file.display()));
    assert_eq!(
        layer("trainer.max_to_keep"),
        "environment GROVE_TRAINER__MAX_TO_KEEP"
    );
    assert!(layer("trainer.train_steps").starts_with("--params_override"));
    assert_eq!(layer("task.hidden"), "argument \"task.hidden=128\"");
    assert_eq!(layer("trainer.steps_per_loop"), "experiment defaults");
    let printed = explain(&resolved);
    assert!(
        printed.contains("  hidden: 128  # argument \"task.hidden=128\"\n"),
        "{printed}"
    );
}

#[test]
fn an_environment_typo_names_the_variable() {
    let environment = vec![("GROVE_TRAINER__TRAIN_STEP".to_string(), "5".to_string())];
    let err = resolve(
        &defaults(),
        &ConfigSources {
            environment,
            ..ConfigSources::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("environment GROVE_TRAINER__TRAIN_STEP"),
        "{err}"
    );
    assert!(err.contains("did you mean `trainer.train_steps`"), "{err}");
}

#[test]
fn trailing_arguments_must_be_key_value_pairs() {
    let trailing = ConfigSources {
        trailing_overrides: strings(&["train_steps"]),
        ..ConfigSources::default()
    };
    let err = resolve(&defaults(), &trailing).unwrap_err().to_string();
    assert!(err.contains("must be key=value"), "{err}");
}

#[test]
fn an_override_may_name_a_yaml_file_or_index_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "o.yaml", "trainer: {train_steps: 77}\n");
    let config = resolve(
        &defaults(),
        &sources(
            vec![],
            &[
                file.to_str().unwrap(),
                "trainer.optimizer_config.optimizer.type=adamw",
                "trainer.optimizer_config.optimizer.adamw.exclude_from_weight_decay[1]=norm,\
                 trainer.optimizer_config.optimizer.adamw.exclude_from_weight_decay[0]=bias",
            ],
        ),
    )
    .unwrap();
    assert_eq!(config.trainer.train_steps, 77);
    let adamw = config.trainer.optimizer_config.optimizer.adamw();
    assert_eq!(
        adamw.exclude_from_weight_decay,
        Some(strings(&["bias", "norm"]))
    );
}

#[test]
fn the_flat_form_round_trips() {
    let config = resolve(&defaults(), &sources(vec![], &[])).unwrap();
    let flat = config.to_flat();
    assert_eq!(flat["trainer.train_steps"], serde_yaml::Value::from(100));
    assert_eq!(unflatten(&flat).unwrap(), config.to_yaml_value());
}

#[test]
fn two_files_and_two_overrides_stack_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        &dir,
        "first.yaml",
        "task: {hidden: 16, name: first}\ntrainer: {train_steps: 200, max_to_keep: 2}\n",
    );
    let second = write(
        &dir,
        "second.yaml",
        "task:\n  hidden: 32\ntrainer:\n  train_steps: 300\n",
    );
    let config = resolve(
        &defaults(),
        &sources(
            vec![first, second],
            &[
                "trainer.train_steps=400,runtime.seed=7",
                "{trainer: {train_steps: 500}}",
            ],
        ),
    )
    .unwrap();
    let task = config.task_as::<ToyTask>().unwrap();
    assert_eq!(task.hidden, 32); // second file beats first
    assert_eq!(task.name, "first"); // first file beats the factory
    assert_eq!(config.trainer.max_to_keep, 2);
    assert_eq!(config.trainer.train_steps, 500); // last override wins
    assert_eq!(config.runtime.seed, 7);
    assert_eq!(config.trainer.steps_per_loop, 10); // factory value kept
}

#[test]
fn an_unknown_key_names_the_path_the_layer_and_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "typo.yaml", "task:\n  hiden: 16\n");
    let err = resolve(&defaults(), &sources(vec![file.clone()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}:2", file.display())), "{err}");
    assert!(err.contains("unknown key `task.hiden`"), "{err}");
    assert!(err.contains("did you mean `task.hidden`?"), "{err}");

    let err = resolve(&defaults(), &sources(vec![], &["trainer.train_step=5"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--params_override \"trainer.train_step=5\""),
        "{err}"
    );
    assert!(err.contains("unknown key `trainer.train_step`"), "{err}");

    let err = resolve(&defaults(), &sources(vec![], &["tasks.hidden=5"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `tasks`"), "{err}");
}

#[test]
fn a_wrong_type_names_the_path_the_expected_type_and_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "bad.yaml", "trainer:\n  train_steps: lots\n");
    let err = resolve(&defaults(), &sources(vec![file.clone()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}:2", file.display())), "{err}");
    assert!(err.contains("`trainer.train_steps` expects"), "{err}");
    assert!(err.contains("lots"), "{err}");

    let err = resolve(&defaults(), &sources(vec![], &["task.hidden=[1,2]"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--params_override"), "{err}");
    assert!(err.contains("`task.hidden` expects"), "{err}");
}

#[test]
fn a_missing_config_file_is_reported_as_such() {
    let err = resolve(&defaults(), &sources(vec!["/no/such.yaml".into()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such.yaml: cannot read it"), "{err}");
}

#[test]
fn switching_a_one_of_type_takes_the_branch_defaults_and_drops_the_others() {
    let config = resolve(
        &defaults(),
        &sources(vec![], &["trainer.optimizer_config.optimizer.type=adamw"]),
    )
    .unwrap();
    let yaml = config.to_yaml_string();
    assert!(yaml.contains("adamw:"), "{yaml}");
    assert!(!yaml.contains("sgd:"), "{yaml}");
    assert_eq!(
        config.trainer.optimizer_config.optimizer.adamw().beta_1,
        0.9
    );
}

#[test]
fn settings_not_built_yet_are_rejected() {
    for (text, what) in [
        (
            "runtime.mixed_precision_dtype=bfloat16",
            "mixed_precision_dtype",
        ),
        ("runtime.distribution_strategy=tpu", "distribution_strategy"),
    ] {
        let err = resolve(&defaults(), &sources(vec![], &[text]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(what) && err.contains("not supported yet"),
            "{err}"
        );
    }
}

#[test]
fn the_resolved_config_round_trips_through_yaml() {
    let config = resolve(&defaults(), &sources(vec![], &["task.name='a, b'"])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "params.yaml", &config.to_yaml_string());
    let again = resolve(&defaults(), &sources(vec![file], &[])).unwrap();
    assert_eq!(config, again);
    assert_eq!(again.task_as::<ToyTask>().unwrap().name, "a, b");
}

#[test]
fn a_field_of_an_unselected_one_of_branch_is_an_error() {
    let err = resolve(
        &defaults(),
        &sources(
            vec![],
            &["trainer.optimizer_config.optimizer.adamw.beta_1=0.8"],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`trainer.optimizer_config.optimizer.adamw.beta_1`"),
        "{err}"
    );
    assert!(
        err.contains("`trainer.optimizer_config.optimizer.type` selects sgd"),
        "{err}"
    );
    // Selecting the branch in the same layers makes the same key valid.
    let config = resolve(
        &defaults(),
        &sources(
            vec![],
            &[
                "trainer.optimizer_config.optimizer.adamw.beta_1=0.8",
                "trainer.optimizer_config.optimizer.type=adamw",
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        config.trainer.optimizer_config.optimizer.adamw().beta_1,
        0.8
    );
}

#[test]
fn a_same_length_list_edits_items_in_place_and_another_length_replaces_it() {
    let edited = resolve(
        &defaults(),
        &sources(vec![], &["{task: {heads: [{size: 20}, {}]}}"]),
    )
    .unwrap();
    let heads = &edited.task_as::<ToyTask>().unwrap().heads;
    assert_eq!((heads[0].name.as_str(), heads[0].size), ("a", 20));
    assert_eq!((heads[1].name.as_str(), heads[1].size), ("b", 3));

    let replaced = resolve(
        &defaults(),
        &sources(vec![], &["{task: {heads: [{size: 20}]}}"]),
    )
    .unwrap();
    let heads = &replaced.task_as::<ToyTask>().unwrap().heads;
    assert_eq!(heads.len(), 1);
    assert_eq!((heads[0].name.as_str(), heads[0].size), ("head", 20));

    let err = resolve(
        &defaults(),
        &sources(vec![], &["{task: {heads: [{sise: 2}, {}]}}"]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sise"), "{err}");
}

#[test]
fn a_yaml_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "broken.yaml",
        "trainer:\n  train_steps: 5\n   bad: [\n",
    );
    let err = resolve(&defaults(), &sources(vec![file.clone()], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn restrictions_are_checked_after_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "big.yaml",
        "task: {train_data: {global_batch_size: 16}}\n",
    );
    let err = resolve(&defaults(), &sources(vec![file.clone()], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("task.train_data.global_batch_size = 16, task.hidden = 8"),
        "{err}"
    );
    assert!(resolve(&defaults(), &sources(vec![file], &["task.hidden=16"])).is_ok());
}

#[test]
fn references_resolve_after_layering_and_are_typed_where_they_land() {
    let environment = vec![("RUN".to_string(), "seven".to_string())];
    let resolved = resolve_explained(
        &defaults(),
        &ConfigSources {
            params_overrides: strings(&["trainer.train_steps=${trainer.checkpoint_interval}"]),
            trailing_overrides: strings(&["task.name=run-${env:RUN}-${task.hidden}"]),
            environment,
            ..ConfigSources::default()
        },
    )
    .unwrap();
    let config = &resolved.config;
    assert_eq!(config.trainer.train_steps, 10);
    assert_eq!(config.task_as::<ToyTask>().unwrap().name, "run-seven-8");
    assert_eq!(resolved.provenance["trainer.train_steps"], "interpolation");
    let unresolved = config.to_unresolved_yaml_string();
    assert!(
        unresolved.contains("train_steps: ${trainer.checkpoint_interval}"),
        "{unresolved}"
    );
    assert!(config.to_yaml_string().contains("train_steps: 10"));

    let err = resolve(
        &defaults(),
        &sources(vec![], &["trainer.train_steps=${task.name}"]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`trainer.train_steps` expects"), "{err}");
    assert!(err.contains("factory"), "{err}");
}

#[test]
fn registry_typed_one_ofs_switch_type_take_defaults_and_reject_strangers() {
    let config = resolve(&defaults(), &sources(vec![], &[])).unwrap();
    let encoder = &config.task_as::<ToyTask>().unwrap().encoder;
    assert_eq!(encoder.get::<Small>(), Some(&Small { width: 4 }));

    let switched = resolve(
        &defaults(),
        &sources(
            vec![],
            &["task.encoder.type=large,task.encoder.large.depth=5"],
        ),
    )
    .unwrap();
    let encoder = &switched.task_as::<ToyTask>().unwrap().encoder;
    assert_eq!(encoder.kind(), "large");
    assert_eq!(
        encoder.get::<Large>(),
        Some(&Large {
            width: 64,
            depth: 5
        })
    );
    let yaml = switched.to_yaml_string();
    assert!(
        yaml.contains("large:") && !yaml.contains("small:"),
        "{yaml}"
    );

    let check = |text: &str, expected: &str| {
        let err = resolve(&defaults(), &sources(vec![], &[text]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{text}: {err}");
    };
    check(
        "task.encoder.type=medium",
        "`type: medium` is not a registered toy encoder type",
    );
    check("task.encoder.type=larg", "did you mean `large`?");
    check(
        "task.encoder.small.widht=2",
        "did you mean `task.encoder.small.width`?",
    );
    check(
        "task.encoder.small.width=wide",
        "`task.encoder.small.width` expects",
    );
    check(
        "task.encoder.large.depth=2",
        "`task.encoder.type` selects small",
    );
}

#[test]
fn a_misspelt_keyword_names_the_valid_ones_and_the_closest() {
    let err = resolve(
        &defaults(),
        &sources(vec![], &["runtime.distribution_strategy=mirorred"]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("runtime.distribution_strategy"), "{err}");
    assert!(err.contains("one_device"), "{err}");
    assert!(err.contains("did you mean \"mirrored\"?"), "{err}");
}

/// A credential given through the environment trains with its value but is written as `***`
/// wherever the config is saved or shown; a value typed into the config is not masked.
#[test]
fn credentials_from_the_environment_are_masked_in_saved_configs() {
    let from_env = ConfigSources {
        trailing_overrides: strings(&["task.service_token=${env:SERVICE_TOKEN}"]),
        environment: vec![("SERVICE_TOKEN".to_string(), "s3cr3t".to_string())],
        ..ConfigSources::default()
    };
    let resolved = resolve_explained(&defaults(), &from_env).unwrap();
    let config = &resolved.config;
    assert_eq!(config.task_as::<ToyTask>().unwrap().service_token, "s3cr3t");
    for shown in [config.to_yaml_string(), explain(&resolved)] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("service_token: '***'"), "{shown}");
    }
    assert!(config
        .to_unresolved_yaml_string()
        .contains("service_token: ${env:SERVICE_TOKEN}"));

    let typed = resolve(&defaults(), &sources(vec![], &["task.service_token=plain"])).unwrap();
    assert!(typed.to_yaml_string().contains("service_token: plain"));
}
