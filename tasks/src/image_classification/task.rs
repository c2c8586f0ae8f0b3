//! The image classification task (Model Garden's `ImageClassificationTask`): cross-entropy
//! with optional label smoothing, accuracy and top-k accuracy.

use candle_nn::VarBuilder;
use grove_core::data::{Batch, Dataset};
use grove_core::metrics::{Metric, WeightedMean};
use grove_core::task::{InputContext, StepContext, Task, TrainOutputs};
use grove_core::Result;

use super::config::{ImageClassificationConfig, ImageDataConfig};
use super::inputs::{image_dataset, LoadedImages};
use super::loss::score;
use super::model::ImageClassifier;

/// Image classification.
pub struct ImageClassificationTask {
    config: ImageClassificationConfig,
    images: LoadedImages,
}

impl ImageClassificationTask {
    fn forward_and_loss(
        &self,
        inputs: &Batch,
        model: &ImageClassifier,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        let logits = model.forward(inputs.get("image")?, context.dropout.as_mut())?;
        let labels = inputs.get("label")?;
        let scores = score(
            &logits,
            labels,
            self.config.losses.label_smoothing,
            self.config.evaluation.top_k,
        )?;
        let mut step = TrainOutputs::new(scores.per_example_loss.mean_all()?);
        step.insert("correct", scores.correct);
        step.insert("top_k_correct", scores.top_k_correct);
        Ok(step)
    }
}

impl Task for ImageClassificationTask {
    type Config = ImageClassificationConfig;
    type Model = ImageClassifier;

    fn from_config(config: &ImageClassificationConfig) -> Result<Self> {
        Ok(ImageClassificationTask {
            config: config.clone(),
            images: LoadedImages::default(),
        })
    }

    fn config(&self) -> &ImageClassificationConfig {
        &self.config
    }

    fn build_model(&self, vb: VarBuilder) -> Result<ImageClassifier> {
        Ok(ImageClassifier::new(&self.config.model, vb)?)
    }

    fn build_inputs(&self, data: &ImageDataConfig, context: &InputContext) -> Result<Dataset> {
        let cfg = &self.config;
        let images = self
            .images
            .get(data, context, cfg.train_data.num_examples)?;
        let origin = format!("{} ({})", context.split.config_key(), data.input_path);
        images.check(
            Some(cfg.model.num_classes),
            cfg.model.input_shape(),
            &origin,
        )?;
        Ok(image_dataset(images, data, context))
    }

    fn build_metrics(&self, _training: bool) -> Vec<Box<dyn Metric>> {
        let top_k = format!("top_{}_accuracy", self.config.evaluation.top_k);
        vec![
            Box::new(WeightedMean::new("accuracy", "correct")),
            Box::new(WeightedMean::new(&top_k, "top_k_correct")),
        ]
    }

    fn train_step(
        &self,
        inputs: &Batch,
        model: &ImageClassifier,
        context: &mut StepContext,
    ) -> Result<TrainOutputs> {
        self.forward_and_loss(inputs, model, context)
    }
}
