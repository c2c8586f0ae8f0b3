//! Batches for masked LM: examples of the synthetic corpus or of pretraining files (shuffled
//! and repeated for training, one pass in order for evaluation) and Model Garden's `dummy`
//! zero batches.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use grove_core::data::{Batch, BatchSource};
use grove_core::Result;

use crate::data::order::{Order, Sampler};
use crate::data::rows::stack_rows;
use crate::data::synthetic_corpus::{MlmExample, SyntheticCorpus};

use super::config::MaskedLmDataConfig;

/// Masked LM examples by index.
pub trait MlmExamples: Send + 'static {
    /// Number of examples.
    fn len(&self) -> usize;
    /// Whether there is no example.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Example `index` (below `len()`).
    fn example(&self, index: usize) -> MlmExample;
}

impl MlmExamples for SyntheticCorpus {
    fn len(&self) -> usize {
        SyntheticCorpus::len(self)
    }
    fn example(&self, index: usize) -> MlmExample {
        SyntheticCorpus::example(self, index)
    }
}

impl MlmExamples for Arc<Vec<MlmExample>> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn example(&self, index: usize) -> MlmExample {
        self[index].clone()
    }
}

/// Batches of masked LM examples.
pub struct ExampleSource<E> {
    examples: E,
    sampler: Sampler,
    batch_size: usize,
    drop_remainder: bool,
    with_nsp_labels: bool,
}

impl<E: MlmExamples> ExampleSource<E> {
    /// A source over `examples` in `order`.
    pub fn new(examples: E, order: Order, data: &MaskedLmDataConfig) -> Self {
        ExampleSource {
            sampler: Sampler::new(order, examples.len()),
            examples,
            batch_size: data.global_batch_size,
            drop_remainder: data.drop_remainder,
            with_nsp_labels: data.use_next_sentence_label,
        }
    }
}

impl<E: MlmExamples> BatchSource for ExampleSource<E> {
    fn next_batch(&mut self) -> Option<Result<Batch>> {
        let indices = self
            .sampler
            .next_indices(self.batch_size, self.drop_remainder);
        if indices.is_empty() {
            return None;
        }
        let examples: Vec<MlmExample> = indices.iter().map(|&i| self.examples.example(i)).collect();
        Some(to_batch(&examples, self.with_nsp_labels))
    }

    fn is_endless(&self) -> bool {
        self.sampler.is_endless()
    }
}

/// Model Garden's `dummy` input: endless batches of zeros (mask and weights ones).
pub struct DummySource {
    batch: Batch,
}

impl DummySource {
    /// Zero batches shaped by `data`.
    pub fn new(data: &MaskedLmDataConfig) -> Result<Self> {
        let example = MlmExample {
            input_word_ids: vec![0; data.seq_length],
            input_mask: vec![1; data.seq_length],
            input_type_ids: vec![0; data.seq_length],
            masked_lm_positions: vec![0; data.max_predictions_per_seq],
            masked_lm_ids: vec![0; data.max_predictions_per_seq],
            masked_lm_weights: vec![1.0; data.max_predictions_per_seq],
            next_sentence_label: 0,
        };
        let examples = vec![example; data.global_batch_size];
        Ok(DummySource {
            batch: to_batch(&examples, data.use_next_sentence_label)?,
        })
    }
}

impl BatchSource for DummySource {
    fn next_batch(&mut self) -> Option<Result<Batch>> {
        Some(Ok(self.batch.clone()))
    }

    fn is_endless(&self) -> bool {
        true
    }
}

/// Stacks examples into the features of Model Garden's BERT pretraining input.
pub(crate) fn to_batch(examples: &[MlmExample], with_nsp_labels: bool) -> Result<Batch> {
    let mut batch = Batch::new();
    batch.insert(
        "input_word_ids",
        stack_rows(examples, |e| &e.input_word_ids)?,
    );
    batch.insert("input_mask", stack_rows(examples, |e| &e.input_mask)?);
    batch.insert(
        "input_type_ids",
        stack_rows(examples, |e| &e.input_type_ids)?,
    );
    let positions = stack_rows(examples, |e| &e.masked_lm_positions)?;
    batch.insert("masked_lm_positions", positions);
    batch.insert("masked_lm_ids", stack_rows(examples, |e| &e.masked_lm_ids)?);
    let weights = stack_rows(examples, |e| &e.masked_lm_weights)?;
    batch.insert("masked_lm_weights", weights);
    if with_nsp_labels {
        let labels: Vec<u32> = examples.iter().map(|e| e.next_sentence_label).collect();
        let rows = labels.len();
        batch.insert(
            "next_sentence_labels",
            Tensor::from_vec(labels, rows, &Device::Cpu)?,
        );
    }
    Ok(batch)
}
