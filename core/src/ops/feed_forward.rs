//! A transformer's feed-forward block, `gelu(x · W1ᵀ + b1) · W2ᵀ + b2`, as one op.
//!
//! As two ops, the block's widest activation, the `(rows, inner)` GELU output, is kept in
//! memory for the second product's backward and gets a gradient accumulation of its own
//! (candle adds every input's gradient to a fresh zero tensor). Here the op keeps only the
//! pre-activation and recomputes the GELU output in its backward, which costs one element-wise
//! pass. Each layer's weight and bias travel as one packed matrix (see
//! [`super::packed_layer`]).

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};

use super::gelu::{gelu_and_backward_in_place, gelu_values};
use super::kept::Kept;
use super::linear::{linear_gelu_primitive, linear_primitive};
use super::packed_layer::{pack, Layer};
use super::rows::{f32_inputs, fused, with_f32};

/// `gelu(x · w1ᵀ + b1) · w2ᵀ + b2` for `x` `(M, K)`, `w1` `(F, K)`, `b1` `(F,)`, `w2`
/// `(N, F)` and `b2` `(N,)`, giving `(M, N)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn feed_forward(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
) -> Result<Tensor> {
    let fits = match (x.dims(), w1.dims(), b1.dims(), w2.dims(), b2.dims()) {
        ([_, k], [f, k1], [f1], [n, f2], [n2]) => k == k1 && f == f1 && f == f2 && n == n2,
        _ => false,
    };
    if !fits {
        candle_core::bail!(
            "feed_forward: x {:?}, w1 {:?}, b1 {:?}, w2 {:?} and b2 {:?} do not chain (want (M, K), (F, K), (F,), (N, F), (N,))",
            x.dims(),
            w1.dims(),
            b1.dims(),
            w2.dims(),
            b2.dims()
        );
    }
    if ![x, w1, b1, w2, b2].into_iter().all(fused) {
        return feed_forward_primitive(x, (w1, b1), (w2, b2));
    }
    x.contiguous()?.apply_op3(
        &pack(&[(w1, b1)])?,
        &pack(&[(w2, b2)])?,
        FeedForward {
            pre_activation: Kept::default(),
        },
    )
}

/// [`feed_forward`] with candle's ops.
pub fn feed_forward_primitive(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
) -> Result<Tensor> {
    linear_primitive(&linear_gelu_primitive(x, w1, b1)?, w2, b2)
}

/// The op; the forward leaves the pre-activation `x · W1ᵀ + b1` for the backward.
struct FeedForward {
    pre_activation: Kept,
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
        let (first, second) = (Layer::of(w1, l2.shape())?, Layer::of(w2, l3.shape())?);
        let rows = l1.shape().dims2()?.0;
        let z = first.apply(x, rows);
        let out = second.apply(&gelu_values(&z), rows);
        self.pre_activation.keep(z);
        Ok((CpuStorage::F32(out), Shape::from((rows, second.out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        first: &Tensor,
        second: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let rows = x.dim(0)?;
        let tensors = [x, first, second, &grad];
        let (dx, d_first, d_second) = with_f32(tensors, self.name(), |[x_values, w1, w2, g]| {
            let first_layer = Layer::of(w1, first.shape())?;
            let second_layer = Layer::of(w2, second.shape())?;
            let mut z = self
                .pre_activation
                .take_or(|| first_layer.apply(x_values, rows));
            // ∂h = g · W2; then, in one pass, ∂z = ∂h ⊙ gelu'(z) and z becomes h = gelu(z).
            let mut dz = second_layer.input_gradient(g, rows);
            gelu_and_backward_in_place(&mut z, &mut dz);
            let d_second = second_layer.gradient(&z, g, rows);
            drop(z);
            let d_first = first_layer.gradient(x_values, &dz, rows);
            let dx = first_layer.input_gradient(&dz, rows);
            Ok::<_, candle_core::Error>((dx, d_first, d_second))
        })??;
        let cpu = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &cpu)?),
            Some(Tensor::from_vec(d_first, first.shape(), &cpu)?),
            Some(Tensor::from_vec(d_second, second.shape(), &cpu)?),
        ))
    }
}
