//! The VAE: an MLP encoder to the mean and log-variance of a diagonal Gaussian posterior, a
//! reparameterised sample, and an MLP decoder to Bernoulli pixel logits.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use super::config::VaeModelConfig;
use crate::models::layers::glorot_uniform_init;
use crate::models::Dense;

/// What one forward pass gives the loss.
pub struct VaeOutputs {
    /// Pixel logits (N, H·W·C).
    pub logits: Tensor,
    /// Posterior means (N, latent).
    pub mean: Tensor,
    /// Posterior log-variances (N, latent).
    pub log_variance: Tensor,
}

/// Dense layers with ReLU between `input` features and the last hidden width.
fn mlp(input: usize, sizes: &[usize], vb: VarBuilder) -> Result<(Vec<Dense>, usize)> {
    let mut layers = Vec::with_capacity(sizes.len());
    let mut width = input;
    for (i, &size) in sizes.iter().enumerate() {
        layers.push(Dense::new(
            width,
            size,
            glorot_uniform_init(width, size),
            vb.pp(i),
        )?);
        width = size;
    }
    Ok((layers, width))
}

fn relu_stack(layers: &[Dense], x: Tensor) -> Result<Tensor> {
    layers
        .iter()
        .try_fold(x, |x, layer| layer.forward(&x)?.relu())
}

/// The variational autoencoder `task.model` describes.
pub struct Vae {
    encoder: Vec<Dense>,
    mean: Dense,
    log_variance: Dense,
    decoder: Vec<Dense>,
    output: Dense,
    latent_dim: usize,
}

impl Vae {
    /// Creates `encoder.*`, `mean`, `log_variance`, `decoder.*` and `output` under `vb`.
    pub fn new(cfg: &VaeModelConfig, vb: VarBuilder) -> Result<Self> {
        let [h, w, c] = cfg.input_shape();
        let pixels = h * w * c;
        let latent = cfg.latent_dim;
        let (encoder, width) = mlp(pixels, &cfg.encoder_hidden_sizes, vb.pp("encoder"))?;
        let dense = |from: usize, to: usize, name: &str| {
            Dense::new(from, to, glorot_uniform_init(from, to), vb.pp(name))
        };
        let mean = dense(width, latent, "mean")?;
        let log_variance = dense(width, latent, "log_variance")?;
        let (decoder, width) = mlp(latent, &cfg.decoder_hidden_sizes, vb.pp("decoder"))?;
        let output = dense(width, pixels, "output")?;
        Ok(Vae {
            encoder,
            mean,
            log_variance,
            decoder,
            output,
            latent_dim: latent,
        })
    }

    /// Encodes images (N, C, H, W), samples `z = mean + exp(log_variance / 2)·ε` with `ε`
    /// drawn from `noise`, and decodes `z`.
    pub fn forward(&self, images: &Tensor, noise: &mut StdRng) -> Result<VaeOutputs> {
        let x = images.flatten_from(1)?;
        let hidden = relu_stack(&self.encoder, x)?;
        let mean = self.mean.forward(&hidden)?;
        let log_variance = self.log_variance.forward(&hidden)?;
        let rows = mean.dim(0)?;
        let epsilon: Vec<f32> = (0..rows * self.latent_dim)
            .map(|_| StandardNormal.sample(noise))
            .collect();
        let epsilon = Tensor::from_vec(epsilon, (rows, self.latent_dim), mean.device())?;
        let z = (&mean + (log_variance.affine(0.5, 0.0)?.exp()? * epsilon)?)?;
        let logits = self.output.forward(&relu_stack(&self.decoder, z)?)?;
        Ok(VaeOutputs {
            logits,
            mean,
            log_variance,
        })
    }
}
