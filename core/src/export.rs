//! What `--mode=export` asks of a task: its model in another framework's layout. The trainers
//! read a checkpoint's variables and write the files; the task says what the tensors are
//! called there, which config file describes the model, and which other files go with it
//! (e.g. the vocabulary). A task that cannot express its model in a format refuses, naming why.

use serde::{Deserialize, Serialize};

/// A framework layout a model can be exported in (besides Grove's own, which every task has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Hugging Face `transformers`: `config.json`, `model.safetensors` under its tensor names.
    Huggingface,
}

/// How a task's variables are written in an [`ExportFormat`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportPlan {
    /// `(Grove variable, exported tensor name)`, one pair per variable, each variable once.
    pub tensors: Vec<(String, String)>,
    /// Other files of the export: `(file name, contents)` (e.g. `config.json`, `vocab.txt`).
    pub files: Vec<(String, Vec<u8>)>,
}
