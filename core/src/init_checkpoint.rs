//! Reading model weights for `task.init_checkpoint`: a safetensors file, a checkpoint directory,
//! or a model_dir (the latest checkpoint its index names: grove-orbit's checkpoint module owns
//! the directory layout, this module only the name of the weights file inside a checkpoint).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use grove_orbit::{latest_checkpoint_in, INDEX_FILE};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::vars::{list, set_checked, ModelVars};

/// File name of the model weights inside a checkpoint directory.
pub const MODEL_WEIGHTS_FILE: &str = "model.safetensors";

/// The weights file `path` designates: the file itself, `<dir>/model.safetensors`, or the
/// weights of the latest checkpoint of a model_dir (as its checkpoint index names it).
pub fn resolve_weights_file(path: &str) -> Result<PathBuf> {
    let given = Path::new(path);
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    if !given.is_dir() {
        return Err(Error::Checkpoint(format!(
            "task.init_checkpoint = {path:?}: no such file or directory; give a safetensors \
             file, a checkpoint directory or a model_dir"
        )));
    }
    let direct = given.join(MODEL_WEIGHTS_FILE);
    if direct.is_file() {
        return Ok(direct);
    }
    let latest = latest_checkpoint_in(given)
        .map_err(|e| Error::Checkpoint(format!("task.init_checkpoint = {path:?}: {e}")))?;
    let Some(latest) = latest else {
        return Err(Error::Checkpoint(format!(
            "task.init_checkpoint = {path:?}: the directory holds neither {MODEL_WEIGHTS_FILE} \
             nor a checkpoint index ({INDEX_FILE}); give a safetensors file, a checkpoint \
             directory or a model_dir that has saved a checkpoint"
        )));
    };
    let weights = latest.join(MODEL_WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(Error::Checkpoint(format!(
            "task.init_checkpoint = {path:?}: the latest checkpoint its index names, {}, has no \
             {MODEL_WEIGHTS_FILE}",
            latest.display()
        )));
    }
    Ok(weights)
}

/// Reads every tensor of a safetensors file onto the CPU.
pub fn read_weights(file: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(file, &Device::Cpu).map_err(|e| {
        Error::Checkpoint(format!(
            "{}: not a readable safetensors file ({}); was it truncated?",
            file.display(),
            first_line(&e.to_string())
        ))
    })
}

/// One rule of a task's `init_checkpoint_rules`: model variables whose name starts with `model`
/// are loaded from the tensor named `checkpoint` followed by the rest of the name
/// (`{model: "encoder.", checkpoint: "bert."}` loads `encoder.x` from `bert.x`). With rules, a
/// variable no rule matches keeps its initial value; without rules every variable is loaded
/// under its own name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitCheckpointRule {
    /// Prefix of the model variable names the rule covers.
    pub model: String,
    /// What replaces that prefix in the checkpoint's tensor names.
    pub checkpoint: String,
}

/// The tensor name the rules give model variable `name`, or `None` to keep its initial value.
pub fn checkpoint_name_for(rules: &[InitCheckpointRule], name: &str) -> Option<String> {
    if rules.is_empty() {
        return Some(name.to_string());
    }
    rules.iter().find_map(|rule| {
        name.strip_prefix(&rule.model)
            .map(|rest| format!("{}{rest}", rule.checkpoint))
    })
}

/// What [`load_init_checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The weights file read.
    pub file: PathBuf,
    /// Model variables set from it.
    pub loaded: Vec<String>,
    /// Model variables no rule covers (they keep their initial values).
    pub kept: Vec<String>,
    /// Tensors of the file no model variable was loaded from.
    pub unexpected: Vec<String>,
}

/// Loads `task.init_checkpoint` into `vars` by `rules` and reports what was loaded, kept and
/// left unused. A mapped tensor that is missing or has another shape is an error listing every
/// such tensor; nothing is loaded then.
pub fn load_init_checkpoint(
    path: &str,
    vars: &ModelVars,
    rules: &[InitCheckpointRule],
) -> Result<InitReport> {
    load_renamed_init_checkpoint(path, vars, rules, |name| Some(name.to_string()))
}

/// [`load_init_checkpoint`] for a file whose tensor names another library chose: `rename`
/// gives each tensor's Grove name (`None` leaves the tensor unused), before the rules apply.
/// Tasks ship name maps for formats they read, e.g. Hugging Face BERT checkpoints.
pub fn load_renamed_init_checkpoint(
    path: &str,
    vars: &ModelVars,
    rules: &[InitCheckpointRule],
    rename: impl Fn(&str) -> Option<String>,
) -> Result<InitReport> {
    let file = resolve_weights_file(path)?;
    let mut tensors = HashMap::new();
    let mut foreign = Vec::new();
    for (name, tensor) in read_weights(&file)? {
        match rename(&name) {
            Some(grove_name) => {
                tensors.insert(grove_name, tensor);
            }
            None => foreign.push(name),
        }
    }
    let origin = format!("task.init_checkpoint {}", file.display());
    let mut plan = Vec::new();
    let mut kept = Vec::new();
    let mut problems = Vec::new();
    for var in vars.named_vars() {
        let Some(source) = checkpoint_name_for(rules, &var.name) else {
            kept.push(var.name);
            continue;
        };
        match tensors.get(&source) {
            None => problems.push(format!("`{source}` (for `{}`) is missing", var.name)),
            Some(t) if t.shape() != var.var.shape() => problems.push(format!(
                "`{source}` has shape {:?}, `{}` needs {:?}",
                t.dims(),
                var.name,
                var.var.dims()
            )),
            Some(t) => plan.push((var, source, t)),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Checkpoint(format!(
            "{origin}: cannot initialize the model: {}",
            list(problems.iter().map(String::as_str))
        )));
    }
    let mut loaded = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (var, source, tensor) in plan {
        set_checked(&var, tensor, &origin)?;
        used.insert(source);
        loaded.push(var.name);
    }
    let mut unexpected: Vec<String> = tensors.into_keys().filter(|n| !used.contains(n)).collect();
    unexpected.extend(foreign);
    unexpected.sort();
    let report = InitReport {
        file,
        loaded,
        kept,
        unexpected,
    };
    tracing::info!(
        "init_checkpoint {}: loaded {} variables, kept {} at their initial values{}, {} \
         tensors there unused{}",
        report.file.display(),
        report.loaded.len(),
        report.kept.len(),
        preview(&report.kept),
        report.unexpected.len(),
        preview(&report.unexpected)
    );
    Ok(report)
}

/// ` (a, b, …)` for a non-empty list.
fn preview(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", list(names.iter().map(String::as_str)))
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::Init;

    fn vars_with(names: &[&str]) -> ModelVars {
        let vars = ModelVars::new();
        let vb = vars.var_builder(0, DType::F32, &Device::Cpu);
        for name in names {
            vb.get_with_hints(2, name, Init::Const(0.0)).unwrap();
        }
        vars
    }

    fn write(path: &Path, names: &[&str]) {
        let tensors: HashMap<String, Tensor> = names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Tensor::ones(2, DType::F32, &Device::Cpu).unwrap(),
                )
            })
            .collect();
        candle_core::safetensors::save(&tensors, path).unwrap();
    }

    /// Model weights saved as a checkpoint the manager indexes.
    struct Weights;

    impl grove_orbit::Checkpointable for Weights {
        fn save(&self, dir: &Path) -> std::result::Result<(), grove_orbit::RunnerError> {
            write(&dir.join(MODEL_WEIGHTS_FILE), &["a"]);
            Ok(())
        }
        fn restore(&mut self, _: &Path) -> std::result::Result<(), grove_orbit::RunnerError> {
            Ok(())
        }
    }

    #[test]
    fn resolves_files_checkpoint_dirs_and_model_dirs_by_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().to_str().unwrap();
        let err = resolve_weights_file(model_dir).unwrap_err().to_string();
        assert!(
            err.contains("neither model.safetensors nor a checkpoint index"),
            "{err}"
        );
        let mut manager = grove_orbit::CheckpointManager::new(dir.path(), 5, 1).unwrap();
        for step in [5, 10, 20] {
            manager.save(step, &Weights, false).unwrap();
        }
        // A directory the index does not name (here a newer half-written one) is not read.
        std::fs::create_dir(dir.path().join("ckpt-30")).unwrap();
        let newest = dir.path().join("ckpt-20").join(MODEL_WEIGHTS_FILE);
        assert_eq!(resolve_weights_file(model_dir).unwrap(), newest);
        let ckpt = dir.path().join("ckpt-5");
        assert_eq!(
            resolve_weights_file(ckpt.to_str().unwrap()).unwrap(),
            ckpt.join(MODEL_WEIGHTS_FILE)
        );
        assert_eq!(
            resolve_weights_file(newest.to_str().unwrap()).unwrap(),
            newest
        );
        let err = resolve_weights_file("/no/such/place")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such file or directory"), "{err}");
    }

    #[test]
    fn loads_mapped_tensors_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.safetensors");
        write(&file, &["enc.a", "head.b"]);
        let vars = vars_with(&["enc.a", "other"]);
        let only_encoder = [InitCheckpointRule {
            model: "enc.".to_string(),
            checkpoint: "enc.".to_string(),
        }];
        let report = load_init_checkpoint(file.to_str().unwrap(), &vars, &only_encoder).unwrap();
        assert_eq!(report.loaded, vec!["enc.a"]);
        assert_eq!(report.kept, vec!["other"]);
        assert_eq!(report.unexpected, vec!["head.b"]);
        let values = vars.tensors()[0].1.to_vec1::<f32>().unwrap();
        assert_eq!(values, vec![1.0, 1.0]);
        let err = load_init_checkpoint(file.to_str().unwrap(), &vars, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`other` (for `other`) is missing"), "{err}");
    }

    #[test]
    fn rules_rename_prefixes_and_shape_mismatches_are_reported() {
        let rules = [InitCheckpointRule {
            model: "encoder.".to_string(),
            checkpoint: "bert.".to_string(),
        }];
        assert_eq!(
            checkpoint_name_for(&rules, "encoder.x.w"),
            Some("bert.x.w".to_string())
        );
        assert_eq!(checkpoint_name_for(&rules, "head.w"), None);
        assert_eq!(
            checkpoint_name_for(&[], "head.w"),
            Some("head.w".to_string())
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.safetensors");
        let tensors = HashMap::from([(
            "bert.a".to_string(),
            Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
        )]);
        candle_core::safetensors::save(&tensors, &file).unwrap();
        let vars = vars_with(&["encoder.a"]);
        let err = load_init_checkpoint(file.to_str().unwrap(), &vars, &rules)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`bert.a` has shape [3], `encoder.a` needs [2]"),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.safetensors");
        std::fs::write(&file, b"\x10\x00\x00").unwrap();
        let err = read_weights(&file).unwrap_err().to_string();
        assert!(err.contains("not a readable safetensors file"), "{err}");
    }
}
