//! Config of the variational autoencoder task.

use grove_core::config::TaskConfig;
use grove_core::{Error, Result};

use crate::image_classification::config::{
    check_input_size, input_shape, ImageDataConfig, ImageFileType,
};

grove_core::defaulted_config! {
    /// `task.model`: MLP encoder to a diagonal Gaussian posterior, MLP decoder to Bernoulli
    /// pixel logits.
    pub struct VaeModelConfig {
        /// Image height, width and channels.
        pub input_size: Vec<usize> = vec![28, 28, 1],
        /// Widths of the encoder's hidden layers.
        pub encoder_hidden_sizes: Vec<usize> = vec![256],
        /// Dimensions of the latent code.
        pub latent_dim: usize = 8,
        /// Widths of the decoder's hidden layers.
        pub decoder_hidden_sizes: Vec<usize> = vec![256],
    }
}

/// Pixels in [0, 1], as the Bernoulli likelihood needs.
fn unnormalized(training: bool) -> ImageDataConfig {
    ImageDataConfig {
        is_training: Some(training),
        mean: vec![0.0],
        stddev: vec![1.0],
        ..ImageDataConfig::default()
    }
}

grove_core::defaulted_config! {
    /// `task:` of the VAE.
    pub struct VaeConfig {
        /// Weights to start from when model_dir has no checkpoint ("" for none).
        pub init_checkpoint: String = String::new(),
        /// The encoder and decoder.
        pub model: VaeModelConfig = VaeModelConfig::default(),
        /// Weight of the KL term (β-VAE; 1 is the ELBO).
        pub beta: f64 = 1.0,
        /// Training images (`idx` or `synthetic`; labels are read but not used).
        pub train_data: ImageDataConfig = unnormalized(true),
        /// Validation images.
        pub validation_data: ImageDataConfig = unnormalized(false),
    }
}

impl VaeModelConfig {
    /// `input_size` as (height, width, channels).
    pub fn input_shape(&self) -> [usize; 3] {
        input_shape(&self.input_size)
    }
}

impl TaskConfig for VaeConfig {
    type Data = ImageDataConfig;

    fn train_data(&self) -> &ImageDataConfig {
        &self.train_data
    }
    fn validation_data(&self) -> &ImageDataConfig {
        &self.validation_data
    }
    fn init_checkpoint(&self) -> &str {
        &self.init_checkpoint
    }

    fn validate(&self) -> Result<()> {
        let model = &self.model;
        check_input_size(&model.input_size)?;
        let sizes = [
            ("encoder_hidden_sizes", &model.encoder_hidden_sizes),
            ("decoder_hidden_sizes", &model.decoder_hidden_sizes),
        ];
        for (name, sizes) in sizes {
            if let Some(i) = sizes.iter().position(|&s| s == 0) {
                return Err(Error::Config(format!(
                    "task.model.{name}[{i}] = 0: sizes must be positive"
                )));
            }
        }
        if model.latent_dim == 0 {
            return Err(Error::Config(
                "task.model.latent_dim = 0: it must be positive".into(),
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::Config(format!(
                "task.beta = {}: must be a finite number >= 0",
                self.beta
            )));
        }
        for (key, data) in [
            ("task.train_data", &self.train_data),
            ("task.validation_data", &self.validation_data),
        ] {
            data.validate(key, model.input_size[2])?;
            if data.file_type == ImageFileType::Cifar10 {
                return Err(Error::Config(format!(
                    "{key}.file_type = cifar10: the VAE reads grey images (idx or \
                     synthetic)"
                )));
            }
            let unit = |values: &[f64], value: f64| values.iter().all(|&v| v == value);
            if !unit(&data.mean, 0.0) || !unit(&data.stddev, 1.0) {
                return Err(Error::Config(format!(
                    "{key}: mean = {:?}, stddev = {:?}; the VAE's Bernoulli likelihood needs \
                     pixels in [0, 1]: set mean [0] and stddev [1]",
                    data.mean, data.stddev
                )));
            }
        }
        Ok(())
    }
}
