//! Small building blocks over [`VarBuilder`]: dense, layer norm, embedding lookup and dropout.
//!
//! Everything here is written with candle's primitive ops, so every layer has a backward pass
//! (candle-nn's fused `LayerNorm` and `softmax_last_dim` have none). Weights are created through
//! the caller's `VarBuilder` with [`Init`] hints and never with candle's unseeded RNG; dropout
//! masks come from the caller's seeded [`StdRng`].

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::rngs::StdRng;
use rand::Rng;

/// A normal initializer with mean 0 and the given standard deviation.
pub fn normal_init(stddev: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: stddev,
    }
}

/// Keras' `glorot_uniform` initializer for a `(fan_out, fan_in)` weight.
pub fn glorot_uniform_init(fan_in: usize, fan_out: usize) -> Init {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    Init::Uniform {
        lo: -limit,
        up: limit,
    }
}

/// A fully connected layer `y = x · Wᵀ + b` with `weight` `(out, in)` and `bias` `(out,)`.
#[derive(Debug, Clone)]
pub struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    /// Creates `weight` (initialised with `weight_init`) and a zero `bias` under `vb`.
    pub fn new(in_dim: usize, out_dim: usize, weight_init: Init, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", weight_init)?;
        let bias = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }

    /// Creates a dense layer whose weight is drawn from `N(0, stddev²)`.
    pub fn normal(in_dim: usize, out_dim: usize, stddev: f64, vb: VarBuilder) -> Result<Self> {
        Self::new(in_dim, out_dim, normal_init(stddev), vb)
    }

    /// The weight, shaped `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, shaped `(out,)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// Applies the layer to the last dimension of `x` (`(..., in)` → `(..., out)`) with
    /// Grove's fused `linear` kernel on the CPU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, grove_kernels::linear)
    }

    /// [`Dense::forward`] followed by a ReLU, as one fused kernel on the CPU.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, grove_kernels::linear_relu)
    }

    /// [`Dense::forward`] followed by the exact GELU, as one fused kernel on the CPU.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, grove_kernels::linear_gelu)
    }

    /// A transformer's feed-forward block, `self(gelu(intermediate(x)))`, as one fused kernel
    /// on the CPU (`self` is the block's output layer).
    pub fn forward_feed_forward(&self, intermediate: &Dense, x: &Tensor) -> Result<Tensor> {
        let first = (&intermediate.weight, &intermediate.bias);
        self.apply(x, |x, w, b| grove_kernels::feed_forward(x, first, (w, b)))
    }

    /// `norm(residual + self(x))`, a post-LayerNorm block's output projection, residual sum
    /// and norm, as one fused kernel on the CPU; `x` is `(rows, in)` and `residual`
    /// `(rows, out)`.
    pub fn forward_add_layer_norm(
        &self,
        x: &Tensor,
        residual: &Tensor,
        norm: &LayerNorm,
    ) -> Result<Tensor> {
        grove_kernels::linear_add_layer_norm(
            x,
            (&self.weight, &self.bias),
            residual,
            (&norm.weight, &norm.bias),
            norm.eps,
        )
    }

    /// `norm(x + self(gelu(intermediate(x))))`, a post-LayerNorm block's feed-forward
    /// sub-layer with its residual sum and norm, as one fused kernel on the CPU; `x` is
    /// `(rows, hidden)`.
    pub fn forward_feed_forward_add_layer_norm(
        &self,
        intermediate: &Dense,
        x: &Tensor,
        norm: &LayerNorm,
    ) -> Result<Tensor> {
        grove_kernels::feed_forward_add_layer_norm(
            x,
            (&intermediate.weight, &intermediate.bias),
            (&self.weight, &self.bias),
            (&norm.weight, &norm.bias),
            norm.eps,
        )
    }

    /// Runs `op(x, weight, bias)` on `x`'s rows: `x` is flattened to `(rows, in)` and the
    /// result shaped back to `(..., out)`.
    fn apply(
        &self,
        x: &Tensor,
        op: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let (lead, in_dim) = match x.dims() {
            [] => (vec![], 1),
            [lead @ .., last] => (lead.to_vec(), *last),
        };
        let rows: usize = lead.iter().product();
        let y = op(&x.reshape((rows, in_dim))?, &self.weight, &self.bias)?;
        let mut out_dims = lead;
        out_dims.push(self.weight.dim(0)?);
        y.reshape(out_dims)
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Dense::forward(self, xs)
    }
}

/// Layer normalisation over the last dimension, with a backward (unlike candle-nn's).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// The epsilon Model Garden's BERT uses.
    pub const BERT_EPS: f64 = 1e-12;

    /// Creates `weight` (ones) and `bias` (zeros), both `(dim,)`, under `vb`.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    /// Normalises `x` over its last dimension, then scales by `weight` and shifts by `bias`
    /// (Grove's fused kernel on the CPU).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        grove_kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
    }

    /// [`LayerNorm::forward`] of `x + residual`, as one fused kernel on the CPU.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        grove_kernels::add_layer_norm(x, residual, &self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        LayerNorm::forward(self, xs)
    }
}

/// An embedding table `weight` `(num_embeddings, dim)` read with `index_select`.
#[derive(Debug, Clone)]
pub struct Embedding {
    table: Tensor,
}

impl Embedding {
    /// Creates the table under `vb` as `weight`, drawn from `N(0, stddev²)`.
    pub fn new(num_embeddings: usize, dim: usize, stddev: f64, vb: VarBuilder) -> Result<Self> {
        let table = vb.get_with_hints((num_embeddings, dim), "weight", normal_init(stddev))?;
        Ok(Self { table })
    }

    /// The table, shaped `(num_embeddings, dim)`.
    pub fn embeddings(&self) -> &Tensor {
        &self.table
    }

    /// Looks up integer `ids` of any shape (Grove's fused kernel for u32 ids on the CPU); the
    /// result has shape `ids.dims() + (dim,)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut dims = ids.dims().to_vec();
        dims.push(self.table.dim(1)?);
        grove_kernels::embedding(&self.table, &ids.flatten_all()?)?.reshape(dims)
    }
}

impl Module for Embedding {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Embedding::forward(self, xs)
    }
}

/// Inverted dropout: zeroes each element with probability `rate` and scales the rest by
/// `1 / (1 - rate)`.
///
/// The keep-mask is drawn on the host from `rng` (one `u32` per element, in row-major order),
/// so the same rng state gives the same mask on any device. `rate == 0` returns `x` unchanged
/// and draws nothing; a rate outside `[0, 1)` is an error.
pub fn dropout(x: &Tensor, rate: f64, rng: &mut StdRng) -> Result<Tensor> {
    if rate == 0.0 {
        return Ok(x.clone());
    }
    if !(0.0..1.0).contains(&rate) {
        candle_core::bail!("dropout rate must be in [0, 1), got {rate}");
    }
    // An element is dropped when its u32 draw falls below rate * 2^32.
    let threshold = (rate * 4_294_967_296.0) as u64;
    let scale = (1.0 / (1.0 - rate)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if u64::from(rng.random::<u32>()) < threshold {
                0.0
            } else {
                scale
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
    let mask = if x.dtype() == DType::F32 {
        mask
    } else {
        mask.to_dtype(x.dtype())?
    };
    x.mul(&mask)
}

/// Applies [`dropout`] when an rng is given (training) and returns `x` unchanged otherwise.
pub fn dropout_opt(x: &Tensor, rate: f64, rng: Option<&mut StdRng>) -> Result<Tensor> {
    match rng {
        Some(rng) => dropout(x, rate, rng),
        None => Ok(x.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;
    use rand::SeedableRng;

    fn vb(varmap: &VarMap) -> VarBuilder<'static> {
        VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu)
    }

    #[test]
    fn dense_maps_last_dim_and_names_params() -> Result<()> {
        let varmap = VarMap::new();
        let dense = Dense::normal(4, 3, 0.02, vb(&varmap).pp("fc"))?;
        let x = Tensor::ones((2, 5, 4), DType::F32, &Device::Cpu)?;
        assert_eq!(dense.forward(&x)?.dims(), &[2, 5, 3]);
        assert_eq!(dense.forward(&x.get(0)?)?.dims(), &[5, 3]);
        let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["fc.bias", "fc.weight"]);
        assert_eq!(dense.weight().dims(), &[3, 4]);
        assert_eq!(dense.bias().to_vec1::<f32>()?, vec![0.0; 3]);
        Ok(())
    }

    #[test]
    fn layer_norm_normalises_and_has_backward() -> Result<()> {
        let varmap = VarMap::new();
        let ln = LayerNorm::new(4, LayerNorm::BERT_EPS, vb(&varmap).pp("ln"))?;
        let x = Var::from_tensor(&Tensor::new(
            &[[1f32, 2., 3., 4.], [2., 2., 2., 6.]],
            &Device::Cpu,
        )?)?;
        let y = ln.forward(x.as_tensor())?;
        for row in y.to_vec2::<f32>()? {
            let mean: f32 = row.iter().sum::<f32>() / 4.0;
            let var: f32 = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{row:?}");
        }
        let weights = Tensor::new(&[1f32, -2., 3., 0.5], &Device::Cpu)?;
        let loss = y.broadcast_mul(&weights)?.sum_all()?;
        let grads = loss.backward()?;
        assert!(grads.get(x.as_tensor()).is_some());
        for (name, var) in varmap.data().lock().unwrap().iter() {
            assert!(grads.get(var.as_tensor()).is_some(), "no grad for {name}");
        }
        Ok(())
    }

    #[test]
    fn embedding_looks_up_rows() -> Result<()> {
        let varmap = VarMap::new();
        let emb = Embedding::new(5, 3, 0.02, vb(&varmap).pp("emb"))?;
        let ids = Tensor::new(&[[0u32, 4], [2, 2]], &Device::Cpu)?;
        let out = emb.forward(&ids)?;
        assert_eq!(out.dims(), &[2, 2, 3]);
        let row4 = emb.embeddings().get(4)?.to_vec1::<f32>()?;
        assert_eq!(out.get(0)?.get(1)?.to_vec1::<f32>()?, row4);
        Ok(())
    }

    #[test]
    fn dropout_is_seeded_scaled_and_identity_at_zero() -> Result<()> {
        let x = Tensor::ones((100, 100), DType::F32, &Device::Cpu)?;
        let a = dropout(&x, 0.25, &mut StdRng::seed_from_u64(7))?;
        let b = dropout(&x, 0.25, &mut StdRng::seed_from_u64(7))?;
        let c = dropout(&x, 0.25, &mut StdRng::seed_from_u64(8))?;
        let (a, b, c) = (
            a.flatten_all()?.to_vec1::<f32>()?,
            b.flatten_all()?.to_vec1::<f32>()?,
            c.flatten_all()?.to_vec1::<f32>()?,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.25).abs() < 0.03, "dropped {dropped}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));

        let mut rng = StdRng::seed_from_u64(1);
        let same = dropout(&x, 0.0, &mut rng)?;
        assert_eq!(same.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
        assert_eq!(rng, StdRng::seed_from_u64(1), "rate 0 must draw nothing");
        assert!(dropout(&x, 1.0, &mut rng).is_err());
        assert_eq!(
            dropout_opt(&x, 0.5, None)?.to_vec2::<f32>()?,
            x.to_vec2::<f32>()?
        );
        Ok(())
    }
}
