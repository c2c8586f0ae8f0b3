//! Data a task reads once per split and run (an evaluation does not re-read its files).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use grove_core::task::Split;
use grove_core::Result;

/// Per-split values, loaded on first use.
pub struct SplitCache<T> {
    by_split: Mutex<HashMap<Split, Arc<T>>>,
}

impl<T> Default for SplitCache<T> {
    fn default() -> Self {
        SplitCache {
            by_split: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> SplitCache<T> {
    /// The value of `split`, loaded by `load` the first time.
    pub fn get_or_load(&self, split: &Split, load: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
        let mut loaded = self.by_split.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = loaded.get(split) {
            return Ok(value.clone());
        }
        let value = Arc::new(load()?);
        loaded.insert(split.clone(), value.clone());
        Ok(value)
    }
}
