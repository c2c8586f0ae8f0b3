//! Logs: the scalar outputs of a train loop or an evaluation.

use std::collections::BTreeMap;

/// Named scalar outputs of one train loop or one evaluation (`training_loss`, `learning_rate`,
/// task metrics, ...). Sorted by name so logs, summaries and JSON lines read the same every run.
pub type Logs = BTreeMap<String, f64>;
