//! The sums of a matrix's columns, a bias's gradient: parallel row blocks whose partial sums
//! are added in order (candle reduces over rows on one thread), so the result has the same
//! bits every run.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

use crate::simd::vectorized;

use super::rows::{f32_slice, row_len, rows_per_task};

/// The sums of the columns of a `(…, N)` tensor: `(N,)`.
pub(super) struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "grove-column-sums"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(storage, layout, self.name())?;
        let n = row_len(layout, self.name())?;
        let sums = column_sums(g, n);
        Ok((CpuStorage::F32(sums), Shape::from(n)))
    }
}

/// The sums of the columns of the rows of `n` elements in `g`.
pub(super) fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = g
        .par_chunks(n * rows_per_task(n))
        .map(|block| {
            vectorized!({
                let mut sums = vec![0f32; n];
                for row in block.chunks(n) {
                    sums.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                }
                sums
            })
        })
        .collect();
    let mut sums = vec![0f32; n];
    for partial in partials {
        sums.iter_mut().zip(partial).for_each(|(s, x)| *s += x);
    }
    sums
}
