//! One batch of named feature tensors.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// One batch: named feature tensors (`input_word_ids`, `masked_lm_positions`, ...), as Model
/// Garden's input dicts.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    tensors: BTreeMap<String, Tensor>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a feature.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// The feature `name`; a missing feature is a data error naming it.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            Error::Data(format!(
                "the input batch has no feature `{name}` (it has: {})",
                self.tensors.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The number of examples: the leading dimension every feature shares. An error names
    /// the features that disagree, or one without a leading dimension.
    pub fn size(&self) -> Result<usize> {
        let mut size: Option<(&str, usize)> = None;
        for (name, tensor) in &self.tensors {
            let Some(&rows) = tensor.dims().first() else {
                return Err(Error::Data(format!(
                    "the input feature `{name}` is a scalar; every feature of a batch must \
                     have the examples along its first dimension"
                )));
            };
            match size {
                Some((first, expected)) if expected != rows => {
                    return Err(Error::Data(format!(
                        "the input features disagree on the batch size: `{first}` has {expected} \
                         rows, `{name}` has {rows}; every feature must have the examples along \
                         its first dimension"
                    )))
                }
                Some(_) => {}
                None => size = Some((name, rows)),
            }
        }
        Ok(size.map_or(0, |(_, rows)| rows))
    }

    /// The batch cut into at most `parts` shards of consecutive examples, in order; their
    /// sizes differ by one at most (the first ones are the larger). A batch of fewer than
    /// `parts` examples gives one shard per example.
    pub fn split(&self, parts: usize) -> Result<Vec<Batch>> {
        let size = self.size()?;
        let parts = parts.clamp(1, size.max(1));
        let (base, extra) = (size / parts, size % parts);
        let mut start = 0;
        (0..parts)
            .map(|part| {
                let rows = base + usize::from(part < extra);
                let tensors = self
                    .tensors
                    .iter()
                    .map(|(name, t)| Ok((name.clone(), t.narrow(0, start, rows)?)))
                    .collect::<Result<_>>()?;
                start += rows;
                Ok(Batch { tensors })
            })
            .collect()
    }

    /// The batch on `device` (a no-op when it is there already).
    pub fn to_device(&self, device: &Device) -> Result<Batch> {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.to_device(device)?)))
            .collect::<Result<_>>()?;
        Ok(Batch { tensors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(features: &[(&str, Vec<u32>, usize)]) -> Batch {
        let mut batch = Batch::new();
        for (name, values, cols) in features {
            let rows = values.len() / cols;
            batch.insert(
                *name,
                Tensor::from_vec(values.clone(), (rows, *cols), &Device::Cpu).unwrap(),
            );
        }
        batch
    }

    #[test]
    fn a_batch_splits_into_consecutive_shards_of_near_equal_size() {
        let batch = batch_of(&[
            ("ids", (0..10).collect(), 2),
            ("labels", (0..5).collect(), 1),
        ]);
        assert_eq!(batch.size().unwrap(), 5);
        let shards = batch.split(2).unwrap();
        let labels: Vec<Vec<u32>> = shards
            .iter()
            .map(|s| {
                s.get("labels")
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        assert_eq!(labels, vec![vec![0, 1, 2], vec![3, 4]]);
        let ids = shards[1].get("ids").unwrap().to_vec2::<u32>().unwrap();
        assert_eq!(ids, vec![vec![6, 7], vec![8, 9]]);
        assert_eq!(batch.split(8).unwrap().len(), 5);
        assert_eq!(batch.split(1).unwrap()[0].size().unwrap(), 5);
    }

    #[test]
    fn features_of_different_batch_sizes_cannot_split() {
        let batch = batch_of(&[
            ("ids", (0..6).collect(), 2),
            ("labels", (0..4).collect(), 1),
        ]);
        let err = batch.split(2).unwrap_err().to_string();
        assert!(err.contains("`ids` has 3 rows, `labels` has 4"), "{err}");
    }

    #[test]
    fn a_missing_feature_is_named() {
        let err = Batch::new().get("labels").unwrap_err().to_string();
        assert!(err.contains("no feature `labels`"), "{err}");
    }
}
