//! Keys of Model Garden configs that only mean something to TensorFlow (XLA, TPUs, tf.data,
//! tf.function). A Model Garden YAML loads unchanged: these keys are dropped from each layer
//! and reported in one warning line; any other unknown key stays an error. A tf.data key that
//! the experiment's own data config declares (a streamed input's `cycle_length`, say) is kept.

use serde_yaml::{Mapping, Value};

/// `trainer.<key>` keys of TensorFlow's loop machinery.
const TRAINER_KEYS: &[&str] = &[
    "train_tf_while_loop",
    "train_tf_function",
    "eval_tf_function",
    "eval_tf_while_loop",
    "allow_tpu_summary",
];

/// `runtime.<key>` keys of TensorFlow's distribution and device setup.
const RUNTIME_KEYS: &[&str] = &[
    "enable_xla",
    "gpu_thread_mode",
    "dataset_num_private_threads",
    "per_gpu_thread_count",
    "tpu",
    "num_gpus",
    "worker_hosts",
    "task_index",
    "all_reduce_alg",
    "num_packs",
    "loss_scale",
    "run_eagerly",
    "batchnorm_spatial_persistent",
    "tpu_enable_xla_dynamic_padder",
    "num_cores_per_replica",
    "default_shard_dim",
    "use_tpu_mp_strategy",
];

/// `task.<split>_data.<key>` keys of tf.data, TFDS and TF's record feature naming.
const DATA_KEYS: &[&str] = &[
    "tfds_name",
    "tfds_split",
    "tfds_data_dir",
    "tfds_as_supervised",
    "tfds_skip_decoding_feature",
    "cache",
    "cycle_length",
    "block_length",
    "ram_budget",
    "deterministic",
    "sharding",
    "enable_tf_data_service",
    "tf_data_service_address",
    "tf_data_service_job_name",
    "enable_shared_tf_data_service_between_parallel_trainers",
    "apply_tf_data_service_before_batching",
    "prefetch_buffer_size",
    "autotune_algorithm",
    "trainer_id",
];

/// Data keys that are dropped only with their Model Garden default (another value changes the
/// model's inputs, which Grove does not build yet, so it stays an error).
const DATA_KEYS_AT_DEFAULT: &[(&str, bool)] = &[("use_position_id", false)];

/// Task keys that are dropped only when empty, their Model Garden default: a TF Hub module is
/// a TensorFlow SavedModel, which Grove cannot load, so a URL stays an error.
const TASK_KEYS_WHEN_EMPTY: &[&str] = &["hub_module_url"];

/// Removes TensorFlow-only keys from a layer and returns their dotted paths; a data key for
/// which `declared(dotted path)` is true is a key of the config and stays.
pub fn strip_tensorflow_keys(layer: &mut Mapping, declared: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut removed = Vec::new();
    strip_section(layer, "trainer", TRAINER_KEYS, &mut removed);
    strip_section(layer, "runtime", RUNTIME_KEYS, &mut removed);
    let Some(Value::Mapping(task)) = layer.get_mut("task") else {
        return removed;
    };
    for key in TASK_KEYS_WHEN_EMPTY {
        if task.get(*key).and_then(Value::as_str) == Some("") {
            task.remove(*key);
            removed.push(format!("task.{key}"));
        }
    }
    for (split, data) in task.iter_mut() {
        let (Some(split), Value::Mapping(data)) = (split.as_str(), data) else {
            continue;
        };
        if !split.ends_with("_data") {
            continue;
        }
        let prefix = format!("task.{split}");
        let undeclared: Vec<&str> = DATA_KEYS
            .iter()
            .copied()
            .filter(|key| !declared(&format!("{prefix}.{key}")))
            .collect();
        remove_keys(data, &prefix, &undeclared, &mut removed);
        for (key, default) in DATA_KEYS_AT_DEFAULT {
            if data.get(*key) == Some(&Value::Bool(*default)) {
                data.remove(*key);
                removed.push(format!("{prefix}.{key}"));
            }
        }
    }
    removed
}

fn strip_section(layer: &mut Mapping, section: &str, keys: &[&str], removed: &mut Vec<String>) {
    if let Some(Value::Mapping(mapping)) = layer.get_mut(section) {
        remove_keys(mapping, section, keys, removed);
    }
}

fn remove_keys(mapping: &mut Mapping, prefix: &str, keys: &[&str], removed: &mut Vec<String>) {
    for key in keys {
        if mapping.remove(*key).is_some() {
            removed.push(format!("{prefix}.{key}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_data_keys_are_kept() {
        let mut layer: Mapping =
            serde_yaml::from_str("{task: {train_data: {cycle_length: 2, cache: true}}}").unwrap();
        let removed = strip_tensorflow_keys(&mut layer, &|key| key.ends_with("cycle_length"));
        assert_eq!(removed, vec!["task.train_data.cache"]);
        let expected: Mapping =
            serde_yaml::from_str("{task: {train_data: {cycle_length: 2}}}").unwrap();
        assert_eq!(layer, expected);
    }

    #[test]
    fn tensorflow_keys_are_removed_and_listed() {
        let mut layer: Mapping = serde_yaml::from_str(
            "{trainer: {train_tf_function: true, train_steps: 5}, runtime: {enable_xla: true}, \
             task: {train_data: {cycle_length: 2, use_position_id: false, seq_length: 8}, \
             validation_data: {use_position_id: true}}}",
        )
        .unwrap();
        let removed = strip_tensorflow_keys(&mut layer, &|key| key == "task.train_data.seq_length");
        assert_eq!(
            removed,
            vec![
                "trainer.train_tf_function",
                "runtime.enable_xla",
                "task.train_data.cycle_length",
                "task.train_data.use_position_id",
            ]
        );
        let expected: Mapping = serde_yaml::from_str(
            "{trainer: {train_steps: 5}, runtime: {}, task: {train_data: {seq_length: 8}, \
             validation_data: {use_position_id: true}}}",
        )
        .unwrap();
        assert_eq!(layer, expected);
    }
}
