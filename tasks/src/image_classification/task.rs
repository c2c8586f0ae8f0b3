//! The image classification task (Model Garden's `ImageClassificationTask`): cross-entropy
//! with optional label smoothing, accuracy and top-k accuracy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_nn::VarBuilder;
use grove_core::data::{Batch, Dataset};
use grove_core::metrics::{Metric, WeightedMean};
use grove_core::task::{InputContext, StepContext, StepOutputs, Task};
use grove_core::Result;

use super::config::{
    ImageClassificationConfig, ImageDataConfig, CIFAR10_FILES, IDX_FILES, SYNTHETIC_IMAGES,
};
use super::inputs::{Augmentation, ImageSource};
use super::loss::score;
use super::model::ImageClassifier;
use crate::data::image_files::{ImageFiles, ImageFormat};
use crate::data::image_set::ImageSet;
use crate::data::order::Order;
use crate::data::synthetic_images::synthetic_images;

/// Image classification.
pub struct ImageClassificationTask {
    config: ImageClassificationConfig,
    /// Images read per split, so an evaluation does not re-read its files.
    loaded: Mutex<HashMap<usize, Arc<ImageSet>>>,
}

impl ImageClassificationTask {
    /// The images of split `context.split` (read once).
    fn images(&self, data: &ImageDataConfig, context: &InputContext) -> Result<Arc<ImageSet>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = loaded.get(&context.split) {
            return Ok(set.clone());
        }
        let key = if context.split == 0 {
            "task.train_data"
        } else {
            "task.validation_data"
        };
        let training = data.is_training == Some(true);
        let format = match data.file_type.as_str() {
            IDX_FILES => Some(ImageFormat::Idx),
            CIFAR10_FILES => Some(ImageFormat::Cifar10),
            _ => None,
        };
        let set = match format {
            Some(format) => ImageFiles {
                format,
                input_path: &data.input_path,
                label_path: &data.label_path,
                is_training: training,
                key,
            }
            .read()?,
            None => {
                debug_assert_eq!(data.file_type, SYNTHETIC_IMAGES);
                // Each split's examples follow the previous split's, so splits never share one.
                let first = if context.split == 0 {
                    0
                } else {
                    self.config.train_data.num_examples
                };
                synthetic_images(context.seed, first, data.num_examples)
            }
        };
        let origin = format!("{key} ({})", data.input_path);
        set.check(
            self.config.model.num_classes,
            self.config.model.input_shape(),
            &origin,
        )?;
        let set = Arc::new(set);
        loaded.insert(context.split, set.clone());
        Ok(set)
    }

    fn forward_and_loss(
        &self,
        inputs: &Batch,
        model: &ImageClassifier,
        context: &mut StepContext,
    ) -> Result<StepOutputs> {
        let logits = model.forward(inputs.get("image")?, context.dropout.as_mut())?;
        let labels = inputs.get("label")?;
        let scores = score(
            &logits,
            labels,
            self.config.losses.label_smoothing,
            self.config.evaluation.top_k,
        )?;
        let mut step = StepOutputs::with_loss(scores.per_example_loss.mean_all()?);
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
            loaded: Mutex::new(HashMap::new()),
        })
    }

    fn config(&self) -> &ImageClassificationConfig {
        &self.config
    }

    fn build_model(&self, vb: VarBuilder) -> Result<ImageClassifier> {
        Ok(ImageClassifier::new(&self.config.model, vb)?)
    }

    fn build_inputs(&self, data: &ImageDataConfig, context: &InputContext) -> Result<Dataset> {
        let images = self.images(data, context)?;
        let training = data.is_training == Some(true);
        let seed = data.seed.unwrap_or(context.seed);
        let (order, augmentation) = if training {
            let position = context.start_batch * data.global_batch_size as u64;
            let augmentation = Augmentation {
                seed,
                hflip: data.aug_rand_hflip,
                crop_padding: data.aug_crop_padding,
            };
            (Order::Shuffled { seed, position }, Some(augmentation))
        } else {
            let count = images.len();
            (Order::Sequential { first: 0, count }, None)
        };
        Ok(Dataset::prefetch(ImageSource::new(
            images,
            order,
            data,
            augmentation,
        )))
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
    ) -> Result<StepOutputs> {
        self.forward_and_loss(inputs, model, context)
    }

    fn validation_step(
        &self,
        inputs: &Batch,
        model: &ImageClassifier,
        context: &mut StepContext,
    ) -> Result<StepOutputs> {
        self.forward_and_loss(inputs, model, context)
    }
}
