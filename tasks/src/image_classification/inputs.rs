//! Batches of images: read once into memory, shuffled per epoch and augmented for training,
//! normalized into `image` (N, C, H, W) f32 and `label` (N) u32 tensors.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use grove_core::data::{Batch, BatchSource, Dataset};
use grove_core::rng::{stream_rng, Stream};
use grove_core::task::InputContext;
use grove_core::Result;
use rand::Rng;

use super::config::ImageDataConfig;
use crate::data::image_files::ImageFiles;
use crate::data::image_set::ImageSet;
use crate::data::order::{Order, Sampler};
use crate::data::split_cache::SplitCache;
use crate::data::synthetic_images::synthetic_images;

/// The images of each split, read once per run.
#[derive(Default)]
pub struct LoadedImages {
    cache: SplitCache<ImageSet>,
}

impl LoadedImages {
    /// The images of split `context.split` as `data` names them; a synthetic validation split
    /// starts after the `train_examples` of the training split, so no example is in both.
    pub fn get(
        &self,
        data: &ImageDataConfig,
        context: &InputContext,
        train_examples: usize,
    ) -> Result<Arc<ImageSet>> {
        self.cache.get_or_load(&context.split, || {
            let format = match data.file_type.format() {
                Some(format) => format,
                None => {
                    let first = if context.split.is_train() {
                        0
                    } else {
                        train_examples
                    };
                    return Ok(synthetic_images(context.seed, first, data.num_examples));
                }
            };
            ImageFiles {
                format,
                input_path: &data.input_path,
                label_path: &data.label_path,
                is_training: data.is_training == Some(true),
                key: &context.split.config_key(),
            }
            .read()
        })
    }
}

/// The dataset of `images`: shuffled, repeated and augmented for training (seeking to
/// `context.start_batch`), one pass in order for evaluation.
pub fn image_dataset(
    images: Arc<ImageSet>,
    data: &ImageDataConfig,
    context: &InputContext,
) -> Dataset {
    let seed = data.seed.unwrap_or(context.seed);
    let (order, augmentation) = if data.is_training == Some(true) {
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
    Dataset::prefetch(ImageSource::new(images, order, data, augmentation))
}

/// Random flips and crops of training images.
#[derive(Debug, Clone, Copy)]
pub struct Augmentation {
    /// Seed of the augmentation stream.
    pub seed: u64,
    /// Flip left-right with probability 1/2.
    pub hflip: bool,
    /// Pad by this many zero pixels and crop back at a random offset.
    pub crop_padding: usize,
}

/// Batches from an in-memory [`ImageSet`].
pub struct ImageSource {
    images: Arc<ImageSet>,
    sampler: Sampler,
    batch_size: usize,
    drop_remainder: bool,
    mean: Vec<f32>,
    stddev: Vec<f32>,
    augmentation: Option<Augmentation>,
}

impl ImageSource {
    /// A source over `images` in `order`, normalized and batched as `data` says, augmented
    /// when `augmentation` is given.
    pub fn new(
        images: Arc<ImageSet>,
        order: Order,
        data: &ImageDataConfig,
        augmentation: Option<Augmentation>,
    ) -> Self {
        let per_channel = |values: &[f64]| -> Vec<f32> {
            (0..images.channels)
                .map(|c| values[c.min(values.len() - 1)] as f32)
                .collect()
        };
        ImageSource {
            sampler: Sampler::new(order, images.len()),
            mean: per_channel(&data.mean),
            stddev: per_channel(&data.stddev),
            images,
            batch_size: data.global_batch_size,
            drop_remainder: data.drop_remainder,
            augmentation,
        }
    }

    /// Image `index` as normalized channels-first floats, augmented with the draws of stream
    /// position `position`.
    fn example(&self, index: usize, position: u64, out: &mut Vec<f32>) {
        let set = &self.images;
        let (h, w, c) = (set.height, set.width, set.channels);
        let pixels = set.image(index);
        let (mut flip, mut dy, mut dx) = (false, 0isize, 0isize);
        if let Some(aug) = &self.augmentation {
            let mut rng = stream_rng(aug.seed, Stream::Augment, position);
            flip = aug.hflip && rng.random_bool(0.5);
            if aug.crop_padding > 0 {
                let p = aug.crop_padding as i64;
                dy = rng.random_range(-p..=p) as isize;
                dx = rng.random_range(-p..=p) as isize;
            }
        }
        for channel in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sy = y as isize + dy;
                    let sx = if flip { w - 1 - x } else { x } as isize + dx;
                    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                    let value = if inside {
                        f32::from(pixels[(sy as usize * w + sx as usize) * c + channel]) / 255.0
                    } else {
                        0.0
                    };
                    out.push((value - self.mean[channel]) / self.stddev[channel]);
                }
            }
        }
    }
}

impl BatchSource for ImageSource {
    fn next_batch(&mut self) -> Option<Result<Batch>> {
        let position = self.sampler.position();
        let indices = self
            .sampler
            .next_indices(self.batch_size, self.drop_remainder);
        if indices.is_empty() {
            return None;
        }
        let set = &self.images;
        let mut pixels = Vec::with_capacity(indices.len() * set.image_len());
        for (offset, &index) in indices.iter().enumerate() {
            self.example(index, position + offset as u64, &mut pixels);
        }
        let labels: Vec<u32> = indices.iter().map(|&i| set.labels[i]).collect();
        let shape = (indices.len(), set.channels, set.height, set.width);
        let batch = (|| {
            let mut batch = Batch::new();
            batch.insert("image", Tensor::from_vec(pixels, shape, &Device::Cpu)?);
            batch.insert(
                "label",
                Tensor::from_vec(labels, indices.len(), &Device::Cpu)?,
            );
            Ok(batch)
        })();
        Some(batch)
    }

    fn is_endless(&self) -> bool {
        self.sampler.is_endless()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic_images::synthetic_images;

    fn source(position: u64, hflip: bool, crop_padding: usize) -> ImageSource {
        let data = ImageDataConfig {
            global_batch_size: 4,
            ..ImageDataConfig::default()
        };
        let augmentation = Augmentation {
            seed: 3,
            hflip,
            crop_padding,
        };
        let order = Order::Shuffled { seed: 3, position };
        ImageSource::new(
            Arc::new(synthetic_images(1, 0, 10)),
            order,
            &data,
            Some(augmentation),
        )
    }

    fn images(source: &mut ImageSource) -> Vec<f32> {
        let batch = source.next_batch().unwrap().unwrap();
        batch
            .get("image")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn augmented_batches_are_seekable_and_vary_with_the_settings() {
        let mut from_start = source(0, true, 2);
        images(&mut from_start);
        let second = images(&mut from_start);
        assert_eq!(
            images(&mut source(4, true, 2)),
            second,
            "seeking by position"
        );
        let plain = images(&mut source(4, false, 0));
        assert_ne!(plain, second);
        // Without augmentation pixels are (x / 255 − 0.5) / 0.5, within [−1, 1].
        assert!(plain.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
