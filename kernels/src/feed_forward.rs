//! A transformer's feed-forward block, `gelu(x · W1ᵀ + b1) · W2ᵀ + b2`, as one op.
//!
//! As two ops, the block's widest activation, the `(rows, inner)` GELU output, is kept in
//! memory for the second product's backward and gets a gradient accumulation of its own
//! (candle adds every input's gradient to a fresh zero tensor). Here the op keeps only the
//! pre-activation and recomputes the GELU output in its backward, which costs one element-wise
//! pass. Each layer's weight and bias travel as one packed matrix (see
//! [`super::packed_layer`]). [`feed_forward_add_layer_norm`] also takes in the post-LayerNorm
//! block's residual sum and norm (see [`super::post_norm`]).

use std::borrow::Cow;

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::direct_gradients::Route;
use super::gelu::{gelu_and_backward_in_place, gelu_values};
use super::kept::Kept;
use super::layer_norm::layer_norm_primitive;
use super::linear::{linear_gelu_primitive, linear_primitive};
use super::packed_layer::{pack, pack_normed, Layer, NormParams, Packed};
use super::post_norm::PostNorm;
use super::rows::{f32_inputs, fused, output_gradient, par_map, rows_per_task, with_f32};

/// `gelu(x · w1ᵀ + b1) · w2ᵀ + b2` for `x` `(M, K)`, `w1` `(F, K)`, `b1` `(F,)`, `w2`
/// `(N, F)` and `b2` `(N,)`, giving `(M, N)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn feed_forward(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
) -> Result<Tensor> {
    check_shapes(x, (w1, b1), (w2, b2), false)?;
    if ![x, w1, b1, w2, b2].into_iter().all(fused) {
        return feed_forward_primitive(x, (w1, b1), (w2, b2));
    }
    let tracked = x.track_op();
    let (first, second) = (pack(&[(w1, b1)], tracked)?, pack(&[(w2, b2)], tracked)?);
    FeedForward::apply(x, first, second, None)
}

/// [`feed_forward`] with candle's ops.
pub fn feed_forward_primitive(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
) -> Result<Tensor> {
    linear_primitive(&linear_gelu_primitive(x, w1, b1)?, w2, b2)
}

/// `layer_norm(x + feed_forward(x), gamma, beta, eps)`, a post-LayerNorm block's
/// feed-forward sub-layer with its residual sum and norm; shapes as for [`feed_forward`] with
/// `N = K` and `gamma`, `beta` `(N,)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn feed_forward_add_layer_norm(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    check_shapes(x, (w1, b1), (w2, b2), true)?;
    if [gamma, beta].iter().any(|t| t.dims() != b2.dims()) {
        candle_core::bail!(
            "feed_forward_add_layer_norm: gamma {:?} and beta {:?} must have b2's shape {:?}",
            gamma.dims(),
            beta.dims(),
            b2.dims()
        );
    }
    if ![x, w1, b1, w2, b2, gamma, beta].into_iter().all(fused) {
        return feed_forward_add_layer_norm_primitive(x, (w1, b1), (w2, b2), (gamma, beta), eps);
    }
    let tracked = x.track_op();
    let first = pack(&[(w1, b1)], tracked)?;
    let second = pack_normed((w2, b2), (gamma, beta), tracked)?;
    FeedForward::apply(x, first, second, Some(PostNorm::new(eps)))
}

/// [`feed_forward_add_layer_norm`] with candle's ops.
pub fn feed_forward_add_layer_norm_primitive(
    x: &Tensor,
    first: (&Tensor, &Tensor),
    second: (&Tensor, &Tensor),
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let sum = (x + feed_forward_primitive(x, first, second)?)?;
    layer_norm_primitive(&sum, gamma, beta, eps)
}

/// Checks that the layers chain from `x`, and (`residual`) that the output has `x`'s width.
fn check_shapes(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
    residual: bool,
) -> Result<()> {
    let fits = match (x.dims(), w1.dims(), b1.dims(), w2.dims(), b2.dims()) {
        ([_, k], [f, k1], [f1], [n, f2], [n2]) => {
            k == k1 && f == f1 && f == f2 && n == n2 && (!residual || n == k)
        }
        _ => false,
    };
    if !fits {
        candle_core::bail!(
            "feed_forward: x {:?}, w1 {:?}, b1 {:?}, w2 {:?} and b2 {:?} do not chain (want (M, K), (F, K), (F,), (N, F), (N,){})",
            x.dims(),
            w1.dims(),
            b1.dims(),
            w2.dims(),
            b2.dims(),
            if residual { " with N = K" } else { "" }
        );
    }
    Ok(())
}

/// The op; the forward leaves the pre-activation `x · W1ᵀ + b1` for the backward. With a
/// `norm`, the second layer's packed matrix carries the norm's `γ` and `β`, and the output is
/// the norm of `x` plus the block's output.
struct FeedForward {
    pre_activation: Kept,
    norm: Option<PostNorm>,
    /// Where the two packed layers' gradients go.
    routes: [Route; 2],
}

impl FeedForward {
    /// The op on `x` with its two packed layers.
    fn apply(x: &Tensor, first: Packed, second: Packed, norm: Option<PostNorm>) -> Result<Tensor> {
        let op = FeedForward {
            pre_activation: Kept::default(),
            norm,
            routes: [first.route, second.route],
        };
        x.contiguous()?.apply_op3(&first.tensor, &second.tensor, op)
    }

    /// The second layer and, with a norm, the norm's `(γ, β)`.
    fn second_layer<'a>(
        &self,
        values: &'a [f32],
        shape: &Shape,
    ) -> Result<(Layer<'a>, Option<NormParams>)> {
        Ok(match self.norm {
            None => (Layer::of(values, shape)?, None),
            Some(_) => {
                let (layer, params) = Layer::normed(values, shape)?;
                (layer, Some(params))
            }
        })
    }

    /// The block's output before the norm: `h · W2ᵀ + b2`, plus `x` with a norm.
    fn second_output(&self, second: &Layer, h: &[f32], x: &[f32], rows: usize) -> Vec<f32> {
        match self.norm {
            None => second.apply(h, rows),
            Some(_) => second.apply_onto(h, rows, par_map(x, |v| v)),
        }
    }
}

impl CustomOp3 for FeedForward {
    fn name(&self) -> &'static str {
        "grove-feed-forward"
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
        let name = self.name();
        let [x, w1, w2] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], name)?;
        let first = Layer::of(w1, l2.shape())?;
        let (second, norm_params) = self.second_layer(w2, l3.shape())?;
        let rows = l1.shape().dims2()?.0;
        let z = first.apply(x, rows);
        let mut out = self.second_output(&second, &gelu_values(&z), x, rows);
        self.pre_activation.keep(z);
        if let (Some(norm), Some((gamma, beta))) = (&self.norm, &norm_params) {
            norm.forward(&mut out, gamma, beta);
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, second.out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        first: &Tensor,
        second: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let grad = output_gradient(grad, out, name)?;
        let rows = x.dim(0)?;
        let tensors = [x, first, second, out, &grad];
        let (dx, d_first, d_second) = with_f32(tensors, name, |[x_values, w1, w2, y, g]| {
            let first_layer = Layer::of(w1, first.shape())?;
            let (second_layer, norm_params) = self.second_layer(w2, second.shape())?;
            let mut z = self
                .pre_activation
                .take_or(|| first_layer.apply(x_values, rows));
            // The gradient of the second layer's output (with a norm, of the residual sum).
            let (g, dnorm) = match (&self.norm, &norm_params) {
                (Some(norm), Some((gamma, beta))) => {
                    let (dsum, dnorm) = norm.backward((y, g), (gamma, beta), || {
                        self.second_output(&second_layer, &gelu_values(&z), x_values, rows)
                    });
                    (Cow::Owned(dsum), Some(dnorm))
                }
                _ => (Cow::Borrowed(g), None),
            };
            // ∂h = g · W2; then, in one pass, ∂z = ∂h ⊙ gelu'(z) and z becomes h = gelu(z).
            let mut dz = second_layer.input_gradient(&g, rows);
            gelu_and_backward_in_place(&mut z, &mut dz);
            let mut d_second = second_layer.gradient(&z, &g, rows);
            drop(z);
            if let Some(dnorm) = dnorm {
                second_layer.set_norm_gradient(&mut d_second, &dnorm);
            }
            let d_first = first_layer.gradient(x_values, &dz, rows);
            let mut dx = first_layer.input_gradient(&dz, rows);
            if self.norm.is_some() {
                // x is also the residual: its gradient is the sum's as well.
                dx.par_iter_mut()
                    .zip(g.par_iter())
                    .with_min_len(rows_per_task(1))
                    .for_each(|(d, g)| *d += g);
            }
            Ok::<_, candle_core::Error>((dx, d_first, d_second))
        })??;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?),
            self.routes[0].gradient(d_first, first)?,
            self.routes[1].gradient(d_second, second)?,
        ))
    }
}
