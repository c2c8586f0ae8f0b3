//! The IDX and CIFAR-10 readers on files the tests write: raw and gzip, a directory with the
//! standard names or the images file itself, and the errors bad files give.

use std::io::Write;
use std::path::Path;

use grove_tasks::data::cifar10::{read_cifar10, RECORD_LEN};
use grove_tasks::data::idx::{encode_idx, IdxArray};
use grove_tasks::data::image_files::{ImageFiles, ImageFormat};
use grove_tasks::data::image_set::ImageSet;

/// Three 2×3 images with distinct pixels and labels 0, 1, 2.
fn images_and_labels() -> (IdxArray, IdxArray) {
    let images = IdxArray {
        dims: vec![3, 2, 3],
        data: (0..18).collect(),
    };
    let labels = IdxArray {
        dims: vec![3],
        data: vec![0, 1, 2],
    };
    (images, labels)
}

fn write(path: &Path, bytes: &[u8], gzip: bool) {
    let bytes = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    } else {
        bytes.to_vec()
    };
    std::fs::write(path, bytes).unwrap();
}

fn write_mnist(dir: &Path, prefix: &str, gzip: bool) {
    let (images, labels) = images_and_labels();
    let ext = if gzip { ".gz" } else { "" };
    write(
        &dir.join(format!("{prefix}-images-idx3-ubyte{ext}")),
        &encode_idx(&images),
        gzip,
    );
    write(
        &dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
        &encode_idx(&labels),
        gzip,
    );
}

fn files<'a>(
    format: ImageFormat,
    input_path: &'a str,
    label_path: &'a str,
    training: bool,
) -> ImageFiles<'a> {
    ImageFiles {
        format,
        input_path,
        label_path,
        is_training: training,
        key: "task.train_data",
    }
}

fn read(
    format: ImageFormat,
    input_path: &Path,
    label_path: &str,
    training: bool,
) -> grove_core::Result<ImageSet> {
    files(format, input_path.to_str().unwrap(), label_path, training).read()
}

fn expected_mnist() -> ImageSet {
    ImageSet {
        height: 2,
        width: 3,
        channels: 1,
        pixels: (0..18).collect(),
        labels: vec![0, 1, 2],
    }
}

fn message(result: grove_core::Result<ImageSet>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn idx_directories_hold_the_standard_names_raw_or_gzip() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), "train", gzip);
        write_mnist(dir.path(), "t10k", !gzip);
        assert_eq!(
            read(ImageFormat::Idx, dir.path(), "", true).unwrap(),
            expected_mnist()
        );
        assert_eq!(
            read(ImageFormat::Idx, dir.path(), "", false).unwrap(),
            expected_mnist()
        );
    }
}

#[test]
fn an_idx_images_file_finds_its_labels_beside_it_or_by_label_path() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), "t10k", true);
    let images = dir.path().join("t10k-images-idx3-ubyte.gz");
    assert_eq!(
        read(ImageFormat::Idx, &images, "", true).unwrap(),
        expected_mnist()
    );

    let renamed = dir.path().join("digits.idx");
    std::fs::copy(&images, &renamed).unwrap();
    let msg = message(read(ImageFormat::Idx, &renamed, "", true));
    assert!(msg.contains("task.train_data.label_path"), "{msg}");
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    let set = read(ImageFormat::Idx, &renamed, labels.to_str().unwrap(), true).unwrap();
    assert_eq!(set, expected_mnist());
}

#[test]
fn bad_idx_files_are_reported_with_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), "train", false);
    let images = dir.path().join("train-images-idx3-ubyte");
    let full = std::fs::read(&images).unwrap();

    std::fs::write(&images, &full[..full.len() - 4]).unwrap();
    let msg = message(read(ImageFormat::Idx, dir.path(), "", true));
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("truncated"),
        "{msg}"
    );

    let mut wrong = full.clone();
    wrong[0] = 0x42;
    std::fs::write(&images, &wrong).unwrap();
    let msg = message(read(ImageFormat::Idx, dir.path(), "", true));
    assert!(msg.contains("wrong magic number"), "{msg}");

    std::fs::write(&images, &full).unwrap();
    let labels = IdxArray {
        dims: vec![2],
        data: vec![0, 1],
    };
    write(
        &dir.path().join("train-labels-idx1-ubyte"),
        &encode_idx(&labels),
        false,
    );
    let msg = message(read(ImageFormat::Idx, dir.path(), "", true));
    assert!(
        msg.contains("holds 3 images") && msg.contains("2 labels"),
        "{msg}"
    );

    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
    let msg = message(read(ImageFormat::Idx, dir.path(), "", true));
    assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");

    let gz = dir.path().join("t10k-images-idx3-ubyte.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0]).unwrap();
    let msg = message(read(ImageFormat::Idx, &gz, "x", true));
    assert!(msg.contains("gzip"), "{msg}");

    let msg = message(read(
        ImageFormat::Idx,
        &dir.path().join("nowhere"),
        "",
        true,
    ));
    assert!(msg.contains("no such file"), "{msg}");
}

/// One CIFAR-10 record with `label` whose red, green and blue planes hold 1, 2 and 3.
fn cifar_record(label: u8) -> Vec<u8> {
    let mut record = vec![label];
    for value in [1u8, 2, 3] {
        record.extend(std::iter::repeat_n(value, 32 * 32));
    }
    assert_eq!(record.len(), RECORD_LEN);
    record
}

#[test]
fn cifar10_batches_are_read_channels_last_from_a_directory_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data_batch_1.bin"), cifar_record(3)).unwrap();
    std::fs::write(
        dir.path().join("data_batch_2.bin"),
        [cifar_record(7), cifar_record(9)].concat(),
    )
    .unwrap();
    std::fs::write(dir.path().join("test_batch.bin"), cifar_record(0)).unwrap();
    let train = read(ImageFormat::Cifar10, dir.path(), "", true).unwrap();
    assert_eq!(train.labels, [3, 7, 9]);
    assert_eq!((train.height, train.width, train.channels), (32, 32, 3));
    assert_eq!(&train.image(1)[..6], &[1, 2, 3, 1, 2, 3]);
    let test = read(ImageFormat::Cifar10, dir.path(), "", false).unwrap();
    assert_eq!(test.labels, [0]);
    let one = read(
        ImageFormat::Cifar10,
        &dir.path().join("data_batch_2.bin"),
        "",
        true,
    )
    .unwrap();
    assert_eq!(one.labels, [7, 9]);

    // Gzip-compressed batches: found as `<name>.gz` in a directory, or given directly.
    let zipped = tempfile::tempdir().unwrap();
    let batch_1 = zipped.path().join("data_batch_1.bin.gz");
    write(&batch_1, &[cifar_record(5), cifar_record(6)].concat(), true);
    write(
        &zipped.path().join("data_batch_3.bin"),
        &cifar_record(8),
        false,
    );
    write(
        &zipped.path().join("test_batch.bin.gz"),
        &cifar_record(4),
        true,
    );
    let train = read(ImageFormat::Cifar10, zipped.path(), "", true).unwrap();
    assert_eq!(train.labels, [5, 6, 8]);
    assert_eq!(&train.image(2)[..6], &[1, 2, 3, 1, 2, 3]);
    let test = read(ImageFormat::Cifar10, zipped.path(), "", false).unwrap();
    assert_eq!(test.labels, [4]);
    assert_eq!(
        read(ImageFormat::Cifar10, &batch_1, "", true)
            .unwrap()
            .labels,
        [5, 6]
    );

    let truncated = dir.path().join("bad.bin");
    std::fs::write(&truncated, &cifar_record(1)[..100]).unwrap();
    let msg = read_cifar10(&[&truncated]).unwrap_err().to_string();
    assert!(
        msg.contains("bad.bin") && msg.contains("3073-byte"),
        "{msg}"
    );
    std::fs::write(&truncated, cifar_record(12)).unwrap();
    let msg = read_cifar10(&[&truncated]).unwrap_err().to_string();
    assert!(msg.contains("record 0 has label 12"), "{msg}");
    let empty = tempfile::tempdir().unwrap();
    let msg = message(read(ImageFormat::Cifar10, empty.path(), "", true));
    assert!(
        msg.contains("data_batch_1.bin") && msg.contains("data_batch_5.bin"),
        "{msg}"
    );
}
