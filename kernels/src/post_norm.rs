//! The end of a post-LayerNorm sub-layer, `LayerNorm(residual + sublayer(x))`, fused into the
//! op that computes the sub-layer's last dense layer.
//!
//! As separate ops, the sub-layer's output and the residual sum are activation-sized tensors
//! that candle's graph holds to the end of the backward, and each gets a gradient accumulation
//! of its own. Fused, the op keeps only each row's `1/sqrt(var + eps)`: its backward recovers
//! the normalised rows from the op's own output, `x̂ = (y − β) / γ`, which the graph holds
//! anyway (apex's memory-efficient layer norm does the same). Where that division would lose
//! precision (a `γ` of zero, or small next to its `β`), or when a second backward finds the
//! row statistics taken, the backward recomputes the sum from the op's inputs instead.
//!
//! [`linear_add_layer_norm`] is the attention block's end (output projection, residual, norm);
//! [`super::feed_forward_add_layer_norm`] the feed-forward block's.

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::simd::vectorized;

use super::direct_gradients::Route;
use super::kept::Kept;
use super::layer_norm::{backward_in_place, layer_norm_primitive, normalize_in_place};
use super::linear::linear_primitive;
use super::packed_layer::{pack_normed, Layer};
use super::rows::{f32_inputs, fused, output_gradient, par_map, rows_per_task, with_f32, written};

/// `layer_norm(residual + x · wᵀ + b, gamma, beta, eps)` for `x` `(M, K)`, `w` `(N, K)`, `b`,
/// `gamma` and `beta` `(N,)` and `residual` `(M, N)`: a post-LayerNorm block's output
/// projection, residual sum and norm. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn linear_add_layer_norm(
    x: &Tensor,
    (w, b): (&Tensor, &Tensor),
    residual: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let fits = match (x.dims(), w.dims(), residual.dims()) {
        ([m, k], [n, k1], [m1, n1]) => {
            k == k1 && m == m1 && n == n1 && [b, gamma, beta].iter().all(|t| t.dims() == [*n])
        }
        _ => false,
    };
    if !fits {
        candle_core::bail!(
            "linear_add_layer_norm: x {:?}, w {:?}, b {:?}, residual {:?}, gamma {:?} and beta {:?} do not fit (want (M, K), (N, K), (N,), (M, N), (N,), (N,))",
            x.dims(),
            w.dims(),
            b.dims(),
            residual.dims(),
            gamma.dims(),
            beta.dims()
        );
    }
    if ![x, w, b, residual, gamma, beta].into_iter().all(fused) {
        return linear_add_layer_norm_primitive(x, (w, b), residual, (gamma, beta), eps);
    }
    let tracked = x.track_op() || residual.track_op();
    let packed = pack_normed((w, b), (gamma, beta), tracked)?;
    x.contiguous()?.apply_op3(
        &residual.contiguous()?,
        &packed.tensor,
        LinearAddLayerNorm {
            norm: PostNorm::new(eps),
            route: packed.route,
        },
    )
}

/// [`linear_add_layer_norm`] with candle's ops.
pub fn linear_add_layer_norm_primitive(
    x: &Tensor,
    (w, b): (&Tensor, &Tensor),
    residual: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let sum = (residual + linear_primitive(x, w, b)?)?;
    layer_norm_primitive(&sum, gamma, beta, eps)
}

/// The layer norm an op applies to the residual sum `s` it computed, with what its forward
/// leaves for the backward.
pub(super) struct PostNorm {
    eps: f32,
    /// Each row's `1/sqrt(var + eps)`, kept when `x̂` can be recovered from the output.
    rstd: Kept,
}

impl PostNorm {
    /// A norm with `eps` added to each row's variance; nothing kept yet.
    pub(super) fn new(eps: f64) -> Self {
        Self {
            eps: eps as f32,
            rstd: Kept::default(),
        }
    }

    /// Normalises the rows of `sum` in place into the op's output `y = x̂ · γ + β`.
    pub(super) fn forward(&self, sum: &mut [f32], gamma: &[f32], beta: &[f32]) {
        let rstd = normalize_in_place(sum, gamma.len(), Some((gamma, beta)), self.eps);
        if recoverable(gamma, beta) {
            self.rstd.keep(rstd);
        }
    }

    /// The gradient of the residual sum and `[dγ; dβ]`, from the op's output `y`, the output's
    /// gradient `grad` and the norm's parameters; `recompute_sum` gives the sum again when the
    /// normalised rows cannot be recovered from `y`.
    pub(super) fn backward(
        &self,
        (y, grad): (&[f32], &[f32]),
        (gamma, beta): (&[f32], &[f32]),
        recompute_sum: impl FnOnce() -> Vec<f32>,
    ) -> (Vec<f32>, Vec<f32>) {
        let h = gamma.len();
        let (mut xhat, rstd) = match self.rstd.take() {
            Some(rstd) => {
                let inverse: Vec<f32> = gamma.iter().map(|g| 1.0 / g).collect();
                let block = h * rows_per_task(h);
                // SAFETY: the blocks of `x̂` pair with the blocks of `y`, element by element.
                let xhat = unsafe {
                    written(y.len(), |xhat| {
                        xhat.par_chunks_mut(block)
                            .zip(y.par_chunks(block))
                            .for_each(|(xhat, y)| {
                                vectorized!({
                                    for (out, y) in xhat.chunks_mut(h).zip(y.chunks(h)) {
                                        let params = beta.iter().zip(&inverse);
                                        for ((o, y), (b, inv)) in out.iter_mut().zip(y).zip(params)
                                        {
                                            o.write((y - b) * inv);
                                        }
                                    }
                                })
                            })
                    })
                };
                (xhat, rstd)
            }
            None => {
                let mut sum = recompute_sum();
                let rstd = normalize_in_place(&mut sum, h, None, self.eps);
                (sum, rstd)
            }
        };
        let dnorm = backward_in_place(&mut xhat, &rstd, grad, gamma);
        (xhat, dnorm)
    }
}

/// Whether `x̂ = (y − β) / γ` keeps its precision for every column: `γ` is not zero and `β`
/// is at most 64 times its size, so the division's error stays within about 64 ulp of `x̂`.
fn recoverable(gamma: &[f32], beta: &[f32]) -> bool {
    gamma
        .iter()
        .zip(beta)
        .all(|(g, b)| g.is_normal() && b.abs() <= 64.0 * g.abs())
}

/// The op of [`linear_add_layer_norm`]: inputs `x`, `residual` and the packed
/// `[W | b | γ | β]`.
struct LinearAddLayerNorm {
    norm: PostNorm,
    /// Where the packed layer's gradient goes.
    route: Route,
}

impl CustomOp3 for LinearAddLayerNorm {
    fn name(&self) -> &'static str {
        "grove-linear-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, residual, packed] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], self.name())?;
        let (layer, (gamma, beta)) = Layer::normed(packed, l3.shape())?;
        let rows = l1.shape().dims2()?.0;
        let mut sum = layer.apply_onto(x, rows, par_map(residual, |v| v));
        self.norm.forward(&mut sum, &gamma, &beta);
        Ok((CpuStorage::F32(sum), Shape::from((rows, layer.out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        residual: &Tensor,
        packed: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let grad = output_gradient(grad, out, name)?;
        let rows = x.dim(0)?;
        let tensors = [x, residual, packed, out, &grad];
        let (dx, dsum, dpacked) = with_f32(tensors, name, |[x, residual, packed_values, y, g]| {
            let (layer, (gamma, beta)) = Layer::normed(packed_values, packed.shape())?;
            let (dsum, dnorm) = self.norm.backward((y, g), (&gamma, &beta), || {
                layer.apply_onto(x, rows, par_map(residual, |v| v))
            });
            let mut dpacked = layer.gradient(x, &dsum, rows);
            layer.set_norm_gradient(&mut dpacked, &dnorm);
            let dx = layer.input_gradient(&dsum, rows);
            Ok::<_, candle_core::Error>((dx, dsum, dpacked))
        })??;
        let [dx, dsum] = [(dx, x), (dsum, residual)]
            .map(|(d, t)| Tensor::from_vec(d, t.shape(), &Device::Cpu).map(Some));
        Ok((dx?, dsum?, self.route.gradient(dpacked, packed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four rows of eight values, the residual sum a post-norm op hands to its norm.
    fn sum() -> Vec<f32> {
        (0..32)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 3.0)
            .collect()
    }

    #[test]
    fn the_backward_recovers_x_hat_from_the_output_without_recomputing_the_sum() {
        let gamma: Vec<f32> = (0..8).map(|j| 0.6 + 0.1 * j as f32).collect();
        let beta: Vec<f32> = (0..8).map(|j| 0.05 * j as f32 - 0.2).collect();
        let grad: Vec<f32> = (0..32).map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0).collect();
        let norm = PostNorm::new(1e-12);
        let mut y = sum();
        norm.forward(&mut y, &gamma, &beta);
        let recovered = norm.backward((&y, &grad), (&gamma, &beta), || {
            panic!("the row statistics were kept: nothing to recompute")
        });
        // Nothing is kept any more: a second backward recomputes the sum.
        let recomputed = norm.backward((&y, &grad), (&gamma, &beta), sum);
        for (a, b) in recovered.0.iter().zip(&recomputed.0) {
            assert!((a - b).abs() <= 1e-5, "dx {a} against {b}");
        }
        for (a, b) in recovered.1.iter().zip(&recomputed.1) {
            assert!((a - b).abs() <= 1e-5, "dγ, dβ {a} against {b}");
        }
    }

    #[test]
    fn a_gamma_that_loses_x_hat_keeps_nothing_and_the_sum_is_recomputed() {
        let beta = vec![0.5f32; 8];
        for gamma in [vec![0.0f32; 8], vec![0.005f32; 8]] {
            let norm = PostNorm::new(1e-12);
            let mut y = sum();
            norm.forward(&mut y, &gamma, &beta);
            let mut recomputed = false;
            norm.backward((&y, &[0.5; 32]), (&gamma, &beta), || {
                recomputed = true;
                sum()
            });
            assert!(recomputed, "γ {gamma:?} cannot give x̂ back from y");
        }
    }
}
