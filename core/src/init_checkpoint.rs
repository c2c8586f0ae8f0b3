//! Reading model weights for `task.init_checkpoint`: a safetensors file, a checkpoint directory,
//! or a model_dir (its newest `ckpt-<step>` directory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::vars::{list, set_checked, ModelVars};

/// File name of the model weights inside a checkpoint directory.
pub const MODEL_WEIGHTS_FILE: &str = "model.safetensors";

/// Prefix of checkpoint directory names (`ckpt-<global step>`).
pub const CHECKPOINT_PREFIX: &str = "ckpt-";

/// The weights file `path` designates: the file itself, `<dir>/model.safetensors`, or the
/// weights of the newest complete `ckpt-<step>` directory inside a model_dir.
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
    newest_checkpoint_weights(given)?.ok_or_else(|| {
        Error::Checkpoint(format!(
            "task.init_checkpoint = {path:?}: the directory holds neither {MODEL_WEIGHTS_FILE} \
             nor {CHECKPOINT_PREFIX}<step>/ checkpoints"
        ))
    })
}

fn newest_checkpoint_weights(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    let newest = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let step: u64 = name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()?;
            let weights = entry.path().join(MODEL_WEIGHTS_FILE);
            weights.is_file().then_some((step, weights))
        })
        .max_by_key(|(step, _)| *step);
    Ok(newest.map(|(_, weights)| weights))
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

/// What [`load_init_checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The weights file read.
    pub file: PathBuf,
    /// Model variables set from it.
    pub loaded: usize,
    /// Tensors of the file no model variable asked for.
    pub unused: usize,
}

/// Loads `task.init_checkpoint` into `vars`. `source_name` maps a model variable name to the
/// tensor name in the file, or `None` for a variable that keeps its initial value. Every mapped
/// tensor must exist with the variable's shape; extra tensors in the file are ignored.
pub fn load_init_checkpoint(
    path: &str,
    vars: &ModelVars,
    source_name: impl Fn(&str) -> Option<String>,
) -> Result<InitReport> {
    let file = resolve_weights_file(path)?;
    let tensors = read_weights(&file)?;
    let origin = format!("task.init_checkpoint {}", file.display());
    let mut missing = Vec::new();
    let mut loaded = 0;
    for var in vars.named_vars() {
        let Some(source) = source_name(&var.name) else {
            continue;
        };
        match tensors.get(&source) {
            Some(tensor) => {
                set_checked(&var, tensor, &origin)?;
                loaded += 1;
            }
            None => missing.push(source),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Checkpoint(format!(
            "{origin}: lacks tensors the model needs: {}",
            list(missing.iter().map(String::as_str))
        )));
    }
    let report = InitReport {
        unused: tensors.len() - loaded,
        file,
        loaded,
    };
    tracing::info!(
        "initialized {} variables from {} ({} tensors there unused)",
        report.loaded,
        report.file.display(),
        report.unused
    );
    Ok(report)
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

    #[test]
    fn resolves_files_checkpoint_dirs_and_model_dirs() {
        let dir = tempfile::tempdir().unwrap();
        for step in [5, 20, 10] {
            let ckpt = dir.path().join(format!("ckpt-{step}"));
            std::fs::create_dir(&ckpt).unwrap();
            write(&ckpt.join(MODEL_WEIGHTS_FILE), &["a"]);
        }
        std::fs::create_dir(dir.path().join("ckpt-30.tmp")).unwrap();
        let newest = dir.path().join("ckpt-20").join(MODEL_WEIGHTS_FILE);
        assert_eq!(
            resolve_weights_file(dir.path().to_str().unwrap()).unwrap(),
            newest
        );
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
        let report = load_init_checkpoint(file.to_str().unwrap(), &vars, |n| {
            n.starts_with("enc.").then(|| n.to_string())
        })
        .unwrap();
        assert_eq!((report.loaded, report.unused), (1, 1));
        assert_eq!(
            vars.tensors()[0].1.to_vec1::<f32>().unwrap(),
            vec![1.0, 1.0]
        );
        let err = load_init_checkpoint(file.to_str().unwrap(), &vars, |n| Some(n.to_string()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lacks tensors the model needs: other"),
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
