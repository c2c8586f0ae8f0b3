//! The VAE task: the negative ELBO (Bernoulli reconstruction plus `beta` times the KL
//! divergence to a standard normal prior) on grey images.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use grove_core::data::{Batch, Dataset};
use grove_core::metrics::{Metric, WeightedMean};
use grove_core::rng::{stream_rng, Stream};
use grove_core::task::{InputContext, StepContext, Task, TrainOutputs};
use grove_core::Result;

use super::config::VaeConfig;
use super::model::Vae;
use crate::image_classification::inputs::{image_dataset, LoadedImages};
use crate::image_classification::ImageDataConfig;

/// A variational autoencoder on images.
pub struct VaeTask {
    config: VaeConfig,
    images: LoadedImages,
}

/// Per-example `Σ_pixels` sigmoid cross-entropy of `logits` against targets in [0, 1]:
/// `max(x, 0) − x·t + log(1 + exp(−|x|))`.
fn bernoulli_nll(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * targets)? + softplus)?.sum(D::Minus1)
}

/// Per-example KL divergence of `N(mean, exp(log_variance))` from `N(0, 1)`.
fn kl_to_standard_normal(mean: &Tensor, log_variance: &Tensor) -> candle_core::Result<Tensor> {
    let terms = ((log_variance.exp()? + mean.sqr()?)? - log_variance)?;
    (terms - 1.0)?.sum(D::Minus1)?.affine(0.5, 0.0)
}

impl VaeTask {
    fn forward_and_loss(
        &self,
        inputs: &Batch,
        model: &Vae,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        let images = inputs.get("image")?;
        // Training samples with the step's stream; evaluation with a fixed one per step.
        let mut evaluation_noise = stream_rng(0, Stream::Validation, context.global_step);
        let noise = context.dropout.as_mut().unwrap_or(&mut evaluation_noise);
        let outputs = model.forward(images, noise)?;
        let targets = images.flatten_from(1)?;
        let reconstruction = bernoulli_nll(&outputs.logits, &targets)?;
        let kl = kl_to_standard_normal(&outputs.mean, &outputs.log_variance)?;
        let loss = (&reconstruction + kl.affine(self.config.beta, 0.0)?)?.mean_all()?;
        let mut step = TrainOutputs::new(loss);
        step.insert("elbo", (&reconstruction + &kl)?.neg()?.detach());
        step.insert("reconstruction_loss", reconstruction.detach());
        step.insert("kl_divergence", kl.detach());
        Ok(step)
    }
}

impl Task for VaeTask {
    type Config = VaeConfig;
    type Model = Vae;

    fn from_config(config: &VaeConfig) -> Result<Self> {
        Ok(VaeTask {
            config: config.clone(),
            images: LoadedImages::default(),
        })
    }

    fn config(&self) -> &VaeConfig {
        &self.config
    }

    fn build_model(&self, vb: VarBuilder) -> Result<Vae> {
        Ok(Vae::new(&self.config.model, vb)?)
    }

    fn build_inputs(&self, data: &ImageDataConfig, context: &InputContext) -> Result<Dataset> {
        let images = self
            .images
            .get(data, context, self.config.train_data.num_examples)?;
        let origin = format!("{} ({})", context.split.config_key(), data.input_path);
        images.check(None, self.config.model.input_shape(), &origin)?;
        Ok(image_dataset(images, data, context))
    }

    fn build_metrics(&self, _training: bool) -> Vec<Box<dyn Metric>> {
        ["elbo", "reconstruction_loss", "kl_divergence"]
            .into_iter()
            .map(|name| Box::new(WeightedMean::new(name, name)) as Box<dyn Metric>)
            .collect()
    }

    fn train_step(
        &self,
        inputs: &Batch,
        model: &Vae,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        self.forward_and_loss(inputs, model, context)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn loss_terms_match_their_formulas() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[0.0f32, 2.0]], &dev).unwrap();
        let targets = Tensor::new(&[[1.0f32, 0.25]], &dev).unwrap();
        let nll: Vec<f32> = bernoulli_nll(&logits, &targets).unwrap().to_vec1().unwrap();
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let bce = |x: f64, t: f64| -(t * sigmoid(x).ln() + (1.0 - t) * (1.0 - sigmoid(x)).ln());
        assert!((f64::from(nll[0]) - (bce(0.0, 1.0) + bce(2.0, 0.25))).abs() < 1e-5);

        let mean = Tensor::new(&[[0.5f32, 0.0]], &dev).unwrap();
        let log_variance = Tensor::new(&[[0.0f32, 1.0]], &dev).unwrap();
        let kl: Vec<f32> = kl_to_standard_normal(&mean, &log_variance)
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = 0.5 * (0.25 + (1f64.exp() - 1.0 - 1.0));
        assert!((f64::from(kl[0]) - want).abs() < 1e-5);
    }
}
