//! Labelled images held in memory as bytes, the common form of every image reader.

use grove_core::{Error, Result};

/// `len()` images of `height × width × channels` bytes each (row-major, channels last) and
/// one label per image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Pixel rows.
    pub height: usize,
    /// Pixel columns.
    pub width: usize,
    /// Channels per pixel (1 for MNIST, 3 for CIFAR-10).
    pub channels: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u32>,
}

impl ImageSet {
    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// Checks that the image shape is `expected` (height, width, channels) and, when given,
    /// that every label is below `num_classes`; `origin` names the files in the error.
    pub fn check(
        &self,
        num_classes: Option<usize>,
        expected: [usize; 3],
        origin: &str,
    ) -> Result<()> {
        let shape = [self.height, self.width, self.channels];
        if shape != expected {
            return Err(Error::Data(format!(
                "{origin}: images are {shape:?} (height, width, channels) but \
                 task.model.input_size is {expected:?}"
            )));
        }
        let Some(num_classes) = num_classes else {
            return Ok(());
        };
        if let Some((index, label)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &label)| label as usize >= num_classes)
        {
            return Err(Error::Data(format!(
                "{origin}: label {label} of image {index} is not below \
                 task.model.num_classes = {num_classes}"
            )));
        }
        Ok(())
    }
}
