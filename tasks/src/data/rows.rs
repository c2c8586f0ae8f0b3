//! Stacking per-example rows of equal length into one `(examples, width)` host tensor.

use candle_core::{Device, Tensor, WithDType};
use grove_core::Result;

/// The rows `row(item)` of `items`, each as long as the first, stacked into a
/// `(items.len(), width)` tensor on the CPU.
pub fn stack_rows<I, T: WithDType>(items: &[I], row: impl Fn(&I) -> &[T]) -> Result<Tensor> {
    let width = items.first().map_or(0, |item| row(item).len());
    let flat: Vec<T> = items
        .iter()
        .flat_map(|item| row(item).iter().copied())
        .collect();
    Ok(Tensor::from_vec(flat, (items.len(), width), &Device::Cpu)?)
}
