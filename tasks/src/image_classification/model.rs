//! The image classifier: an MLP or a small CNN backbone, optional normalization, dropout and
//! a dense classification layer.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Module, VarBuilder};
use rand::rngs::StdRng;

use super::config::{BackboneType, ImageClassifierConfig, NormType, Pooling};
use crate::models::layers::{dropout_opt, glorot_uniform_init};
use crate::models::{Dense, LayerNorm};

/// Normalization of a hidden layer's features (dimension 1 of its output).
enum Norm {
    None,
    Batch(BatchNorm),
    Layer(LayerNorm),
}

impl Norm {
    fn new(kind: NormType, features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match kind {
            NormType::None => Norm::None,
            // Keras' moving-average momentum 0.99 is candle's 0.01.
            NormType::BatchNorm => Norm::Batch(candle_nn::batch_norm(
                features,
                BatchNormConfig {
                    eps: 1e-3,
                    momentum: 0.01,
                    ..BatchNormConfig::default()
                },
                vb.pp("batch_norm"),
            )?),
            NormType::LayerNorm => {
                Norm::Layer(LayerNorm::new(features, 1e-3, vb.pp("layer_norm"))?)
            }
        })
    }

    /// Normalizes `x` (N, F) or (N, C, H, W); batch norm uses batch statistics and updates its
    /// moving ones when `training`.
    fn forward(&self, x: &Tensor, training: bool) -> Result<Tensor> {
        match self {
            Norm::None => Ok(x.clone()),
            Norm::Batch(norm) => norm.forward_t(x, training),
            Norm::Layer(norm) if x.rank() == 4 => norm
                .forward(&x.permute((0, 2, 3, 1))?)?
                .permute((0, 3, 1, 2)),
            Norm::Layer(norm) => norm.forward(x),
        }
    }
}

/// One hidden layer.
enum Hidden {
    Dense(Dense, Norm),
    Conv(Conv2d, Norm, Pooling),
}

/// The classifier `task.model` describes.
pub struct ImageClassifier {
    hidden: Vec<Hidden>,
    head: Dense,
    dropout_rate: f64,
}

impl ImageClassifier {
    /// Creates the layers under `vb` (`backbone.<i>.*` and `head.*`).
    pub fn new(cfg: &ImageClassifierConfig, vb: VarBuilder) -> Result<Self> {
        let [height, width, channels] = cfg.input_shape();
        let mut hidden = Vec::new();
        let features = match cfg.backbone.kind {
            BackboneType::Mlp => {
                let mut features = height * width * channels;
                for (i, &size) in cfg.backbone.mlp().hidden_sizes.iter().enumerate() {
                    let vb = vb.pp(format!("backbone.{i}"));
                    let dense = Dense::new(
                        features,
                        size,
                        glorot_uniform_init(features, size),
                        vb.pp("dense"),
                    )?;
                    hidden.push(Hidden::Dense(dense, Norm::new(cfg.norm_type, size, vb)?));
                    features = size;
                }
                features
            }
            BackboneType::Cnn => {
                let cnn = cfg.backbone.cnn();
                let (mut c, mut h, mut w) = (channels, height, width);
                let conv = Conv2dConfig {
                    padding: 1,
                    ..Conv2dConfig::default()
                };
                for (i, &filters) in cnn.filters.iter().enumerate() {
                    let vb = vb.pp(format!("backbone.{i}"));
                    let layer = candle_nn::conv2d(c, filters, 3, conv, vb.pp("conv"))?;
                    let norm = Norm::new(cfg.norm_type, filters, vb)?;
                    hidden.push(Hidden::Conv(layer, norm, cnn.pooling));
                    (c, h, w) = (filters, h / 2, w / 2);
                }
                if h == 0 || w == 0 {
                    candle_core::bail!(
                        "task.model.backbone.cnn.filters: {} poolings shrink the {height}x{width} \
                         input below one pixel; use fewer layers",
                        cnn.filters.len()
                    );
                }
                c * h * w
            }
        };
        let classes = cfg.num_classes;
        let head = Dense::new(
            features,
            classes,
            glorot_uniform_init(features, classes),
            vb.pp("head"),
        )?;
        Ok(ImageClassifier {
            hidden,
            head,
            dropout_rate: cfg.dropout_rate,
        })
    }

    /// Logits (N, classes) of images (N, C, H, W); `dropout` is the step's stream in training,
    /// `None` in evaluation.
    pub fn forward(&self, images: &Tensor, dropout: Option<&mut StdRng>) -> Result<Tensor> {
        let training = dropout.is_some();
        let mut x = images.clone();
        for layer in &self.hidden {
            x = match layer {
                Hidden::Dense(dense, norm) => {
                    let flat = if x.rank() > 2 { x.flatten_from(1)? } else { x };
                    match norm {
                        Norm::None => dense.forward_relu(&flat)?,
                        _ => norm.forward(&dense.forward(&flat)?, training)?.relu()?,
                    }
                }
                Hidden::Conv(conv, norm, pooling) => {
                    let y = norm.forward(&conv.forward(&x)?, training)?.relu()?;
                    match pooling {
                        Pooling::Max => y.max_pool2d(2)?,
                        Pooling::Avg => y.avg_pool2d(2)?,
                    }
                }
            };
        }
        let x = if x.rank() > 2 { x.flatten_from(1)? } else { x };
        let x = dropout_opt(&x, self.dropout_rate, dropout)?;
        self.head.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use grove_core::vars::ModelVars;
    use rand::SeedableRng;

    use super::*;
    use crate::image_classification::config::{BackboneConfig, CnnConfig};

    /// Batch norm normalizes by the batch in training, updating its moving statistics (which
    /// get no gradient, so the optimizer leaves them alone), and by those statistics in
    /// evaluation, where each image's logits are independent of the rest of the batch.
    #[test]
    fn batch_norm_trains_on_batch_statistics_and_evaluates_on_moving_ones() {
        let mut backbone = BackboneConfig::selecting(BackboneType::Cnn);
        backbone.cnn = Some(CnnConfig {
            filters: vec![2],
            ..CnnConfig::default()
        });
        let cfg = ImageClassifierConfig {
            num_classes: 3,
            input_size: vec![4, 4, 1],
            norm_type: NormType::BatchNorm,
            backbone,
            ..ImageClassifierConfig::default()
        };
        let vars = ModelVars::new();
        let model =
            ImageClassifier::new(&cfg, vars.var_builder(3, DType::F32, &Device::Cpu)).unwrap();
        let pixels: Vec<f32> = (0..64).map(|i| ((i * 37) % 11) as f32 + 3.0).collect();
        let images = Tensor::from_vec(pixels, (4, 1, 4, 4), &Device::Cpu).unwrap();
        let first = images.narrow(0, 0, 1).unwrap();
        let row = |t: &Tensor| -> Vec<f32> { t.get(0).unwrap().to_vec1().unwrap() };
        let moving_mean = || -> Vec<f32> {
            let var = vars
                .named_vars()
                .into_iter()
                .find(|v| v.name == "backbone.0.batch_norm.running_mean")
                .expect("the moving mean is a model variable");
            var.var.as_tensor().to_vec1().unwrap()
        };

        let eval_batch = model.forward(&images, None).unwrap();
        assert_eq!(row(&eval_batch), row(&model.forward(&first, None).unwrap()));
        assert_eq!(moving_mean(), [0.0, 0.0]);

        let mut rng = StdRng::seed_from_u64(0);
        let train_batch = model.forward(&images, Some(&mut rng)).unwrap();
        let train_first = model.forward(&first, Some(&mut rng)).unwrap();
        assert_ne!(row(&train_batch), row(&train_first));
        assert!(moving_mean().iter().any(|&m| m != 0.0));

        let after = model.forward(&images, None).unwrap();
        assert_ne!(row(&after), row(&eval_batch));
        assert_eq!(row(&after), row(&model.forward(&first, None).unwrap()));

        let grads = train_batch.sum_all().unwrap().backward().unwrap();
        for v in vars.named_vars() {
            let has_grad = grads.get(v.var.as_tensor()).is_some();
            assert_eq!(has_grad, !v.name.contains("running_"), "{}", v.name);
        }
    }
}
