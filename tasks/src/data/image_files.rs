//! Finding and reading the image files an image data config names: `input_path` is either a
//! directory holding the dataset's standard file names or the images file itself.

use std::path::{Path, PathBuf};

use grove_core::{Error, Result};

use super::cifar10::read_cifar10;
use super::idx::read_idx;
use super::image_set::ImageSet;

/// The on-disk formats (Model Garden's `file_type` values for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// MNIST's IDX files (raw or gzip).
    Idx,
    /// CIFAR-10's binary batches (raw or gzip).
    Cifar10,
}

/// Where a split's files are, as its data config gives them.
#[derive(Debug, Clone, Copy)]
pub struct ImageFiles<'a> {
    /// The format.
    pub format: ImageFormat,
    /// `input_path`: a directory or the images file.
    pub input_path: &'a str,
    /// `label_path`: the IDX labels file when it is not beside the images ("" to find it).
    pub label_path: &'a str,
    /// Training split (`train-*`, `data_batch_*`) or evaluation split (`t10k-*`,
    /// `test_batch.bin`) when `input_path` is a directory.
    pub is_training: bool,
    /// The config key of the split (e.g. `task.train_data`), for messages.
    pub key: &'a str,
}

impl ImageFiles<'_> {
    /// Reads the split.
    pub fn read(&self) -> Result<ImageSet> {
        let path = Path::new(self.input_path);
        if self.input_path.is_empty() {
            return Err(Error::Config(format!(
                "{}.input_path is empty: give the dataset directory or its images file",
                self.key
            )));
        }
        if !path.exists() {
            return Err(Error::Data(format!(
                "{}.input_path = {:?}: no such file or directory",
                self.key, self.input_path
            )));
        }
        match self.format {
            ImageFormat::Idx => {
                let (images, labels) = self.idx_files(path)?;
                read_idx_pair(&images, &labels)
            }
            ImageFormat::Cifar10 => read_cifar10(&self.cifar_files(path)?),
        }
    }

    fn idx_files(&self, path: &Path) -> Result<(PathBuf, PathBuf)> {
        if path.is_dir() {
            let prefix = if self.is_training { "train" } else { "t10k" };
            let images = self.standard_file(path, &format!("{prefix}-images-idx3-ubyte"))?;
            let labels = self.standard_file(path, &format!("{prefix}-labels-idx1-ubyte"))?;
            return Ok((images, labels));
        }
        if !self.label_path.is_empty() {
            return Ok((path.to_path_buf(), PathBuf::from(self.label_path)));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains("images-idx3") {
            return Err(Error::Config(format!(
                "{}.input_path = {:?} is not named like an MNIST images file \
                 (`*-images-idx3-ubyte[.gz]`), so its labels cannot be found beside it: set \
                 {}.label_path",
                self.key, self.input_path, self.key
            )));
        }
        let labels = path.with_file_name(name.replace("images-idx3", "labels-idx1"));
        if !labels.is_file() {
            return Err(Error::Data(format!(
                "{}: the labels file {} beside the images does not exist; set {}.label_path",
                self.key,
                labels.display(),
                self.key
            )));
        }
        Ok((path.to_path_buf(), labels))
    }

    /// `dir/name`, or `dir/name.gz`.
    fn standard_file(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        present(dir, name).ok_or_else(|| {
            Error::Data(format!(
                "{}.input_path = {:?}: the directory holds neither {name} nor {name}.gz",
                self.key, self.input_path
            ))
        })
    }

    fn cifar_files(&self, path: &Path) -> Result<Vec<PathBuf>> {
        if path.is_file() {
            return Ok(vec![path.to_path_buf()]);
        }
        let names: Vec<String> = if self.is_training {
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
        } else {
            vec!["test_batch.bin".to_string()]
        };
        let files: Vec<PathBuf> = names.iter().filter_map(|n| present(path, n)).collect();
        if files.is_empty() {
            return Err(Error::Data(format!(
                "{}.input_path = {:?}: the directory holds none of {} (each raw or with .gz \
                 appended)",
                self.key,
                self.input_path,
                names.join(", ")
            )));
        }
        Ok(files)
    }
}

/// The file `dir/name`, else `dir/name.gz`, if either exists.
fn present(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// An IDX images file (N × rows × columns) and its labels file (N).
fn read_idx_pair(images: &Path, labels: &Path) -> Result<ImageSet> {
    let pixels = read_idx(images, 3)?;
    let classes = read_idx(labels, 1)?;
    if pixels.dims[0] != classes.dims[0] {
        return Err(Error::Data(format!(
            "{} holds {} images but {} holds {} labels",
            images.display(),
            pixels.dims[0],
            labels.display(),
            classes.dims[0]
        )));
    }
    Ok(ImageSet {
        height: pixels.dims[1],
        width: pixels.dims[2],
        channels: 1,
        pixels: pixels.data,
        labels: classes.data.into_iter().map(u32::from).collect(),
    })
}
