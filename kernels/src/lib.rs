//! grove-kernels: fused CPU kernels with their backward passes, for the ops a transformer's
//! step spends its time in: embedding lookups, dense layers (product and bias), the `a · bᵀ`
//! product of attention scores, self-attention, the feed-forward block, layer normalisation
//! (also with the residual sum, and at the end of a block's output projection or
//! feed-forward block), softmax, exact GELU, cross-entropy (also with the output layer before
//! it), and the split into attention heads and back.
//!
//! candle's own fused `layer_norm` / `softmax_last_dim` have no backward, and the primitive-op
//! versions allocate an output per op. Each function here runs one multi-threaded pass
//! forward and one backward (a candle `CustomOp` whose `bwd` calls the matching backward
//! kernel) on contiguous f32 CPU tensors, and falls back to the primitive-op formula (same
//! maths, differentiable by candle) on other devices and dtypes, so models run everywhere.
//!
//! It also owns what those kernels stand on: SIMD dispatch ([`vectorized!`]: each inner loop
//! compiled for AVX-512, AVX2 or the baseline, chosen at run time), in-place access to a
//! tensor's f32 elements ([`tensor_slices`], used by the optimizers too), the parameter
//! gradients that bypass candle's graph ([`DirectGradients`]) and how many threads a matrix
//! product may use ([`parallelism`]). It knows nothing of configs, tasks or training loops.

mod attention;
mod column_sums;
mod cross_entropy;
mod direct_gradients;
mod embedding;
mod fast_math;
mod feed_forward;
mod gelu;
mod heads;
mod kept;
mod layer_norm;
mod linear;
mod linear_cross_entropy;
mod matmul_nt;
mod packed_layer;
pub mod parallelism;
mod post_norm;
mod rows;
pub mod simd;
mod softmax;
pub mod tensor_slices;

pub use attention::{self_attention, self_attention_primitive, DenseParams};
pub use cross_entropy::{cross_entropy_rows, cross_entropy_rows_primitive};
pub use direct_gradients::DirectGradients;
pub use embedding::{embedding, embedding_primitive, embedding_sum, embedding_sum_primitive};
pub use feed_forward::{
    feed_forward, feed_forward_add_layer_norm, feed_forward_add_layer_norm_primitive,
    feed_forward_primitive,
};
pub use gelu::{gelu_erf, gelu_erf_primitive};
pub use heads::{merge_heads, merge_heads_primitive, split_heads, split_heads_primitive};
pub use layer_norm::{add_layer_norm, layer_norm, layer_norm_primitive};
pub use linear::{
    linear, linear_gelu, linear_gelu_primitive, linear_primitive, linear_relu,
    linear_relu_primitive,
};
pub use linear_cross_entropy::{linear_cross_entropy, linear_cross_entropy_primitive};
pub use matmul_nt::{matmul_nt, matmul_nt_primitive};
pub use post_norm::{linear_add_layer_norm, linear_add_layer_norm_primitive};
pub use softmax::{
    masked_softmax, masked_softmax_primitive, softmax_last_dim, softmax_last_dim_primitive,
};

#[cfg(test)]
mod tests;
