//! Host-side data sources of the shipped tasks: the synthetic text corpus, image files in the
//! MNIST (IDX) and CIFAR-10 binary formats (raw or gzip), and seeded synthetic images.

pub mod cifar10;
pub mod file_patterns;
pub mod gzip;
pub mod idx;
pub mod image_files;
pub mod image_set;
pub mod mlm_masking;
pub mod order;
pub mod rows;
pub mod split_cache;
pub mod stream;
pub mod synthetic_corpus;
pub mod synthetic_images;
