//! Config of the image classification task, with Model Garden's vision keys where a concept
//! matches (`task.model.num_classes`, `input_size`, `dropout_rate`, `task.losses.
//! label_smoothing`, `train_data.input_path`, `file_type`, `aug_rand_hflip`, ...).

use grove_core::config::{keyword, Branch, TaskConfig};
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::data::file_patterns::refuse_input_path_for_synthetic;
use crate::data::image_files::ImageFormat;

/// `file_type`: where a split's images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFileType {
    /// Files in MNIST's IDX format (raw or gzip).
    Idx,
    /// CIFAR-10's binary batches (raw or gzip).
    Cifar10,
    /// Grove's seeded MNIST-like images (no files).
    Synthetic,
}

impl ImageFileType {
    /// The on-disk format, `None` for synthetic images.
    pub fn format(self) -> Option<ImageFormat> {
        match self {
            ImageFileType::Idx => Some(ImageFormat::Idx),
            ImageFileType::Cifar10 => Some(ImageFormat::Cifar10),
            ImageFileType::Synthetic => None,
        }
    }
}

grove_core::defaulted_config! {
    /// `task.train_data` / `task.validation_data` of image classification.
    pub struct ImageDataConfig {
        /// A directory with the dataset's standard file names, or the images file itself
        /// (ignored for `synthetic`).
        pub input_path: String = String::new(),
        /// The IDX labels file when it is not beside the images under the standard name.
        pub label_path: String = String::new(),
        /// `idx`, `cifar10` or `synthetic`.
        pub file_type: ImageFileType = ImageFileType::Synthetic,
        /// Images per batch.
        pub global_batch_size: usize = 128,
        /// Training (shuffled per epoch, repeated, augmented) or evaluation (one pass in
        /// order); must be set.
        pub is_training: Option<bool> = None,
        /// Drop a last evaluation batch smaller than `global_batch_size`.
        pub drop_remainder: bool = false,
        /// Seed of the example order; unset uses `runtime.seed`.
        pub seed: Option<u64> = None,
        /// Examples of a `synthetic` split.
        pub num_examples: usize = 10_000,
        /// Per-channel mean subtracted from pixels scaled to [0, 1] (one value for all
        /// channels, or one per channel).
        pub mean: Vec<f64> = vec![0.5],
        /// Per-channel standard deviation pixels are divided by after the mean.
        pub stddev: Vec<f64> = vec![0.5],
        /// Flip training images left-right with probability 1/2.
        pub aug_rand_hflip: bool = false,
        /// Pad training images by this many pixels and crop back at a random offset (0: off).
        pub aug_crop_padding: usize = 0,
    }
}

grove_core::impl_data_spec!(ImageDataConfig, epoch_examples = examples);

impl ImageDataConfig {
    /// The images of the split: `num_examples` of a `synthetic` one, else the files' count
    /// (read: the standard datasets are tens of megabytes).
    fn examples(&self, key: &str) -> grove_core::Result<Option<usize>> {
        let Some(format) = self.file_type.format() else {
            return Ok(Some(self.num_examples));
        };
        let files = crate::data::image_files::ImageFiles {
            format,
            input_path: &self.input_path,
            label_path: &self.label_path,
            is_training: self.is_training == Some(true),
            key,
        };
        Ok(Some(files.read()?.labels.len()))
    }
}

grove_core::one_of_config! {
    /// The network before the classification layer: `{type: mlp, mlp: {...}}`.
    pub struct BackboneConfig;
    /// Backbone types (the `backbone.type` key).
    pub enum BackboneType;
    key = "task.model.backbone";
    default = Mlp;
    /// Fully connected layers on the flattened image.
    Mlp => mlp: MlpConfig,
    /// 3×3 convolutions, each followed by 2×2 pooling.
    Cnn => cnn: CnnConfig,
}

grove_core::defaulted_config! {
    /// A multi-layer perceptron.
    pub struct MlpConfig {
        /// Width of each hidden layer.
        pub hidden_sizes: Vec<usize> = vec![128],
    }
}

impl Branch for MlpConfig {
    fn validate(&self, key: &str) -> Result<()> {
        positive_sizes(&format!("{key}.hidden_sizes"), &self.hidden_sizes)
    }
}

/// Pooling after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// 2×2 max pooling.
    Max,
    /// 2×2 average pooling.
    Avg,
}

grove_core::defaulted_config! {
    /// A small convolutional network: per entry of `filters`, a 3×3 convolution (padding 1),
    /// normalization, ReLU and 2×2 pooling.
    pub struct CnnConfig {
        /// Output channels of each convolution.
        pub filters: Vec<usize> = vec![16, 32],
        /// The pooling after each convolution.
        pub pooling: Pooling = Pooling::Max,
    }
}

impl Branch for CnnConfig {
    fn validate(&self, key: &str) -> Result<()> {
        positive_sizes(&format!("{key}.filters"), &self.filters)?;
        if self.filters.is_empty() {
            return Err(Error::Config(format!(
                "{key}.filters is empty: give at least one"
            )));
        }
        Ok(())
    }
}

fn positive_sizes(key: &str, sizes: &[usize]) -> Result<()> {
    match sizes.iter().position(|&s| s == 0) {
        Some(i) => Err(Error::Config(format!(
            "{key}[{i}] = 0: sizes must be positive"
        ))),
        None => Ok(()),
    }
}

/// Normalization after each hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormType {
    /// None.
    None,
    /// Batch normalization (moving statistics for evaluation, momentum 0.99, as Keras).
    BatchNorm,
    /// Layer normalization over the features (the channels of a convolution).
    LayerNorm,
}

grove_core::defaulted_config! {
    /// `task.model`: the image classifier.
    pub struct ImageClassifierConfig {
        /// Number of classes.
        pub num_classes: usize = 10,
        /// Image height, width and channels.
        pub input_size: Vec<usize> = vec![28, 28, 1],
        /// The layers before the classifier.
        pub backbone: BackboneConfig = BackboneConfig::default(),
        /// Normalization after each hidden layer.
        pub norm_type: NormType = NormType::None,
        /// Dropout before the classification layer.
        pub dropout_rate: f64 = 0.0,
    }
}

grove_core::defaulted_config! {
    /// `task.losses`.
    pub struct ClassificationLossConfig {
        /// Label smoothing ε: the target is `1 − ε` on the label plus `ε / num_classes`
        /// everywhere.
        pub label_smoothing: f64 = 0.0,
    }
}

grove_core::defaulted_config! {
    /// `task.evaluation`.
    pub struct ClassificationEvalConfig {
        /// `k` of the `top_<k>_accuracy` metric.
        pub top_k: usize = 5,
    }
}

grove_core::defaulted_config! {
    /// `task:` of image classification.
    pub struct ImageClassificationConfig {
        /// Weights to start from when model_dir has no checkpoint ("" for none).
        pub init_checkpoint: String = String::new(),
        /// The classifier.
        pub model: ImageClassifierConfig = ImageClassifierConfig::default(),
        /// The loss.
        pub losses: ClassificationLossConfig = ClassificationLossConfig::default(),
        /// Evaluation metrics.
        pub evaluation: ClassificationEvalConfig = ClassificationEvalConfig::default(),
        /// Training inputs.
        pub train_data: ImageDataConfig = ImageDataConfig::default(),
        /// Validation inputs.
        pub validation_data: ImageDataConfig = ImageDataConfig::default(),
    }
}

impl ImageClassifierConfig {
    /// `input_size` as (height, width, channels).
    pub fn input_shape(&self) -> [usize; 3] {
        input_shape(&self.input_size)
    }
}

/// A validated `task.model.input_size` as (height, width, channels).
pub fn input_shape(input_size: &[usize]) -> [usize; 3] {
    [input_size[0], input_size[1], input_size[2]]
}

/// Checks `task.model.input_size`: three positive numbers.
pub fn check_input_size(input_size: &[usize]) -> Result<()> {
    if input_size.len() != 3 || input_size.contains(&0) {
        return Err(Error::Config(format!(
            "task.model.input_size = {input_size:?}: give [height, width, channels], all positive"
        )));
    }
    Ok(())
}

impl TaskConfig for ImageClassificationConfig {
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
        if model.num_classes < 2 {
            return Err(Error::Config(format!(
                "task.model.num_classes = {}: a classifier needs at least 2",
                model.num_classes
            )));
        }
        check_input_size(&model.input_size)?;
        model.backbone.validate()?;
        if !(0.0..1.0).contains(&model.dropout_rate) {
            return Err(Error::Config(format!(
                "task.model.dropout_rate = {}: must be in [0, 1)",
                model.dropout_rate
            )));
        }
        if !(0.0..1.0).contains(&self.losses.label_smoothing) {
            return Err(Error::Config(format!(
                "task.losses.label_smoothing = {}: must be in [0, 1)",
                self.losses.label_smoothing
            )));
        }
        if self.evaluation.top_k == 0 || self.evaluation.top_k > model.num_classes {
            return Err(Error::Config(format!(
                "task.evaluation.top_k = {}: must be between 1 and num_classes = {}",
                self.evaluation.top_k, model.num_classes
            )));
        }
        for (key, data) in [
            ("task.train_data", &self.train_data),
            ("task.validation_data", &self.validation_data),
        ] {
            data.validate(key, model.input_size[2])?;
        }
        Ok(())
    }
}

impl ImageDataConfig {
    /// Checks the values of the split at `key` (e.g. `task.train_data`) for images of
    /// `channels` channels.
    pub fn validate(&self, key: &str, channels: usize) -> Result<()> {
        validate_data(key, self, channels)
    }
}

fn validate_data(key: &str, data: &ImageDataConfig, channels: usize) -> Result<()> {
    let fail = |message: String| Err(Error::Config(format!("{key}.{message}")));
    match data.file_type {
        ImageFileType::Idx | ImageFileType::Cifar10 => {
            if data.input_path.is_empty() {
                return fail(format!(
                    "input_path is empty: give the directory holding the {} files or the \
                     images file (or file_type: synthetic for generated images)",
                    keyword(&data.file_type)
                ));
            }
        }
        ImageFileType::Synthetic => {
            refuse_input_path_for_synthetic(key, &data.input_path)?;
            if data.num_examples == 0 {
                return fail("num_examples = 0: it must be positive".to_string());
            }
        }
    }
    if data.global_batch_size == 0 {
        return fail("global_batch_size = 0: it must be positive".to_string());
    }
    for (name, values) in [("mean", &data.mean), ("stddev", &data.stddev)] {
        if values.len() != 1 && values.len() != channels {
            return fail(format!(
                "{name} has {} values: give one, or one per channel ({channels})",
                values.len()
            ));
        }
    }
    if data.stddev.iter().any(|&s| s.is_nan() || s <= 0.0) {
        return fail(format!(
            "stddev = {:?}: every value must be > 0",
            data.stddev
        ));
    }
    Ok(())
}
