//! The streamed record reader against tf.data's semantics: every record once per epoch, file
//! order and buffer mixing, exact resume without reading consumed data, sharding, compression,
//! cache, and each kind of bad data named by file and byte offset.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use grove_core::data::Shard;
use grove_records::tfrecord::frame_record;
use grove_tasks::data::stream::{
    CompressionType, FileSet, Location, Record, RecordStream, StreamKeys, StreamOptions,
};

/// Records per file of the test sets (uneven, so files end at different times).
const SIZES: [usize; 5] = [23, 7, 31, 1, 18];

fn payload(file: usize, record: usize) -> Vec<u8> {
    format!("file {file} record {record}").into_bytes()
}

/// Writes one TFRecord file per entry of `sizes`, compressed as asked; their paths.
fn write_files(dir: &Path, sizes: &[usize], compression: CompressionType) -> Vec<PathBuf> {
    sizes
        .iter()
        .enumerate()
        .map(|(file, &records)| {
            let bytes: Vec<u8> = (0..records)
                .flat_map(|r| frame_record(&payload(file, r)))
                .collect();
            let path = dir.join(format!("part-{file:05}.tfrecord"));
            let compressed = match compression {
                CompressionType::None => bytes,
                CompressionType::Gzip => {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    e.write_all(&bytes).unwrap();
                    e.finish().unwrap()
                }
                CompressionType::Zlib => {
                    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
                    e.write_all(&bytes).unwrap();
                    e.finish().unwrap()
                }
            };
            std::fs::write(&path, compressed).unwrap();
            path
        })
        .collect()
}

fn keys(buffer: usize, cycle: usize, block: usize) -> StreamKeys {
    StreamKeys {
        shuffle_buffer_size: buffer,
        cycle_length: Some(cycle),
        block_length: block,
        ..StreamKeys::default()
    }
}

fn options(training: bool, keys: StreamKeys) -> StreamOptions {
    StreamOptions {
        training,
        seed: 42,
        keys,
        shard: Shard::WHOLE,
        config_key: "task.train_data".to_string(),
    }
}

fn file_set(paths: &[PathBuf]) -> Arc<FileSet> {
    Arc::new(FileSet::new(paths.to_vec(), "task.train_data").unwrap())
}

fn take(stream: &mut RecordStream, n: usize) -> Vec<Record> {
    (0..n)
        .map(|_| stream.next_record().unwrap().unwrap())
        .collect()
}

fn ids(records: &[Record]) -> Vec<(usize, u64)> {
    records
        .iter()
        .map(|r| (r.location.file(), r.location.index()))
        .collect()
}

fn all_ids(sizes: &[usize]) -> BTreeSet<(usize, u64)> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(f, &n)| (0..n as u64).map(move |r| (f, r)))
        .collect()
}

#[test]
fn a_training_stream_gives_every_record_once_per_epoch_in_a_new_order_each_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let files = file_set(&write_files(dir.path(), &SIZES, CompressionType::None));
    let total: usize = SIZES.iter().sum();
    let mut stream = RecordStream::start(files, options(true, keys(16, 3, 2)));
    let epochs: Vec<Vec<(usize, u64)>> = (0..3).map(|_| ids(&take(&mut stream, total))).collect();
    for epoch in &epochs {
        let seen: BTreeSet<_> = epoch.iter().copied().collect();
        assert_eq!(seen, all_ids(&SIZES), "each record exactly once");
        assert_eq!(seen.len(), total);
    }
    assert_ne!(epochs[0], epochs[1]);
    assert_ne!(epochs[1], epochs[2]);
    // The data is the record's own.
    let mut fresh = RecordStream::start(
        file_set(&write_files(dir.path(), &SIZES, CompressionType::None)),
        options(true, keys(16, 3, 2)),
    );
    for record in take(&mut fresh, 40) {
        let (file, index) = (record.location.file(), record.location.index());
        assert_eq!(record.data, payload(file, index as usize));
    }
}

#[test]
fn without_a_buffer_files_come_whole_in_a_per_epoch_shuffled_order() {
    let dir = tempfile::tempdir().unwrap();
    let files = file_set(&write_files(dir.path(), &SIZES, CompressionType::None));
    let total: usize = SIZES.iter().sum();
    let mut stream = RecordStream::start(files, options(true, keys(1, 1, 1)));
    let mut orders = Vec::new();
    for _ in 0..4 {
        let epoch = ids(&take(&mut stream, total));
        let mut order: Vec<usize> = Vec::new();
        for (file, index) in &epoch {
            if order.last() != Some(file) {
                order.push(*file);
            }
            let expected = epoch
                .iter()
                .filter(|(f, _)| f == file)
                .position(|x| x.1 == *index);
            assert_eq!(
                expected,
                Some(*index as usize),
                "records of a file stay in order"
            );
        }
        assert_eq!(
            order.len(),
            SIZES.len(),
            "each file is read in one run: {order:?}"
        );
        orders.push(order);
    }
    assert!(orders.windows(2).any(|w| w[0] != w[1]), "{orders:?}");
}

#[test]
fn the_interleave_takes_blocks_in_turn_and_the_buffer_moves_records_by_less_than_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let files = file_set(&write_files(dir.path(), &[6, 6, 6], CompressionType::None));
    // Evaluation: files in order, no mixing, one pass.
    let mut eval = RecordStream::start(files.clone(), options(false, keys(100, 2, 2)));
    let order = ids(&take(&mut eval, 18));
    let expected: Vec<(usize, u64)> = [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (0, 2),
        (0, 3),
        (1, 2),
        (1, 3),
        (0, 4),
        (0, 5),
        (1, 4),
        (1, 5),
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
        (2, 4),
        (2, 5),
    ]
    .to_vec();
    assert_eq!(order, expected);
    assert!(eval.next_record().unwrap().is_none());

    // Training with a buffer of 4: a record leaves at most 3 places before it would have
    // without the buffer, and the order is not the interleave's.
    let big = file_set(&write_files(dir.path(), &SIZES, CompressionType::None));
    let total: usize = SIZES.iter().sum();
    let unmixed = ids(&take(
        &mut RecordStream::start(big.clone(), options(true, keys(1, 3, 1))),
        total,
    ));
    let mixed = ids(&take(
        &mut RecordStream::start(big, options(true, keys(4, 3, 1))),
        total,
    ));
    assert_ne!(mixed, unmixed);
    let place: HashMap<_, _> = unmixed.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (out, id) in mixed.iter().enumerate() {
        assert!(
            out + 3 >= place[id],
            "{id:?} moved from {} to {out}",
            place[id]
        );
    }
}

/// Overwrites the bytes of `records` in their plain files with garbage, keeping the files'
/// lengths: a reader that read them again would fail their CRC.
fn destroy(paths: &[PathBuf], records: &[Record]) {
    for record in records {
        let path = &paths[record.location.file()];
        let mut bytes = std::fs::read(path).unwrap();
        let start = record.location.offset() as usize;
        for byte in &mut bytes[start..start + 16 + record.data.len()] {
            *byte = 0xee;
        }
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn a_resumed_stream_continues_exactly_without_reading_what_was_consumed() {
    let total: usize = SIZES.iter().sum();
    for (compression, cut) in [
        (CompressionType::None, 1),
        (CompressionType::None, 37),
        (CompressionType::None, total - 1),
        (CompressionType::None, total),
        (CompressionType::None, total + 5),
        (CompressionType::Gzip, 29),
        (CompressionType::Zlib, total + 11),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_files(dir.path(), &SIZES, compression);
        let opts = options(
            true,
            StreamKeys {
                compression_type: compression,
                ..keys(10, 3, 2)
            },
        );
        let mut whole = RecordStream::start(file_set(&paths), opts.clone());
        let expected = take(&mut whole, cut + total);

        let mut first = RecordStream::start(file_set(&paths), opts.clone());
        take(&mut first, cut);
        let position = first.position();
        drop(first);
        // What was consumed in the current epoch is gone from plain files; the rest of the
        // epoch must not need it.
        let epoch_start = cut - cut % total;
        if compression == CompressionType::None {
            destroy(&paths, &expected[epoch_start..cut]);
        }
        let mut resumed = RecordStream::resume(file_set(&paths), opts, &position).unwrap();
        let rest_of_epoch = epoch_start + total - cut;
        let got = take(&mut resumed, rest_of_epoch);
        assert_eq!(
            got,
            expected[cut..cut + rest_of_epoch],
            "{compression:?} cut at {cut}"
        );
    }
}

#[test]
fn resumed_and_uninterrupted_streams_stand_at_the_same_position() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &SIZES, CompressionType::None);
    let opts = options(true, keys(8, 2, 3));
    let mut whole = RecordStream::start(file_set(&paths), opts.clone());
    let mut first = RecordStream::start(file_set(&paths), opts.clone());
    take(&mut first, 50);
    let mut resumed =
        RecordStream::resume(file_set(&paths), opts.clone(), &first.position()).unwrap();
    take(&mut whole, 50);
    for _ in 0..200 {
        assert_eq!(resumed.next_record().unwrap(), whole.next_record().unwrap());
    }
    assert_eq!(resumed.position(), whole.position());

    // A position does not fit other options or other files.
    let other = options(true, keys(9, 2, 3));
    let message = RecordStream::resume(file_set(&paths), other, &first.position())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("task.train_data.shuffle_buffer_size is 9, was 8"),
        "{message}"
    );
    let message = RecordStream::resume(file_set(&paths[1..]), opts, &first.position())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("names other files (4 now, 5 when"),
        "{message}"
    );
}

#[test]
fn shards_split_each_epoch_by_files_or_by_records_without_overlap() {
    let dir = tempfile::tempdir().unwrap();
    for sizes in [&SIZES[..], &[40][..]] {
        let paths = write_files(dir.path(), sizes, CompressionType::None);
        let total: usize = sizes.iter().sum();
        let mut seen = Vec::new();
        for index in 0..3 {
            let opts = StreamOptions {
                shard: Shard { index, count: 3 },
                ..options(false, keys(1, 2, 1))
            };
            let mut stream = RecordStream::start(file_set(&paths), opts);
            while let Some(record) = stream.next_record().unwrap() {
                seen.push((record.location.file(), record.location.index()));
            }
        }
        assert_eq!(seen.len(), total, "{sizes:?}");
        assert_eq!(
            seen.iter().copied().collect::<BTreeSet<_>>(),
            all_ids(sizes)
        );
    }
}

#[test]
fn compressed_files_give_the_records_of_plain_ones() {
    let total: usize = SIZES.iter().sum();
    let read = |compression| {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_files(dir.path(), &SIZES, compression);
        let opts = StreamOptions {
            keys: StreamKeys {
                compression_type: compression,
                ..keys(7, 3, 1)
            },
            ..options(true, keys(7, 3, 1))
        };
        take(&mut RecordStream::start(file_set(&paths), opts), total + 3)
    };
    let plain = read(CompressionType::None);
    assert_eq!(read(CompressionType::Gzip), plain);
    assert_eq!(read(CompressionType::Zlib), plain);
}

#[test]
fn a_cached_stream_reads_later_epochs_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &SIZES, CompressionType::None);
    let total: usize = SIZES.iter().sum();
    let cached = StreamKeys {
        cache: true,
        ..keys(5, 5, 1)
    };
    let mut stream = RecordStream::start(file_set(&paths), options(true, cached));
    let mut plain = RecordStream::start(file_set(&paths), options(true, keys(5, 5, 1)));
    let first = take(&mut stream, total);
    assert_eq!(first, take(&mut plain, total));
    for path in &paths {
        std::fs::remove_file(path).unwrap();
    }
    let second = take(&mut stream, total);
    assert_eq!(
        second
            .iter()
            .map(|r| r.location)
            .collect::<BTreeSet<Location>>(),
        first.iter().map(|r| r.location).collect()
    );
    let message = plain.next_record().err().unwrap().to_string();
    assert!(
        message.contains("was it moved or deleted during the run?"),
        "{message}"
    );
}

#[test]
fn damaged_records_are_named_by_file_index_and_offset_or_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &[5, 5], CompressionType::None);
    let mut bytes = std::fs::read(&paths[1]).unwrap();
    let record_len = 16 + payload(1, 0).len();
    bytes[2 * record_len + 14] ^= 1; // record 2's data
    std::fs::write(&paths[1], &bytes).unwrap();
    let mut strict = RecordStream::start(file_set(&paths), options(false, keys(1, 1, 1)));
    let mut message = String::new();
    for _ in 0..10 {
        if let Err(e) = strict.next_record() {
            message = e.to_string();
            break;
        }
    }
    let offset = 2 * record_len;
    assert!(
        message.contains("part-00001.tfrecord: record 2 (byte offset")
            && message.contains(&format!("{offset}): record data CRC mismatch"))
            && message.contains("skip_corrupt_records"),
        "{message}"
    );
    let skipping = StreamKeys {
        skip_corrupt_records: true,
        ..keys(1, 1, 1)
    };
    let mut lenient = RecordStream::start(file_set(&paths), options(false, skipping));
    let mut read = Vec::new();
    while let Some(record) = lenient.next_record().unwrap() {
        read.push((record.location.file(), record.location.index()));
    }
    assert_eq!(read.len(), 9);
    assert!(!read.contains(&(1, 2)));
    assert_eq!(lenient.skipped(), 1);

    // A file cut inside its last record.
    bytes[2 * record_len + 14] ^= 1;
    std::fs::write(&paths[1], &bytes[..bytes.len() - 3]).unwrap();
    let mut cut = RecordStream::start(file_set(&paths), options(true, keys(3, 2, 1)));
    let message = (0..20)
        .find_map(|_| cut.next_record().err())
        .unwrap()
        .to_string();
    assert!(
        message.contains("record 4 (byte offset") && message.contains("truncated"),
        "{message}"
    );

    // An empty shard.
    std::fs::write(&paths[0], b"").unwrap();
    let message = FileSet::new(paths.clone(), "task.train_data")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("part-00000.tfrecord: the file is empty")
            && message.contains("task.train_data.input_path"),
        "{message}"
    );
}

#[test]
fn a_file_that_disappears_during_the_run_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &SIZES, CompressionType::None);
    let mut stream = RecordStream::start(file_set(&paths), options(false, keys(1, 1, 1)));
    take(&mut stream, 2);
    std::fs::remove_file(&paths[2]).unwrap();
    let message = (0..100)
        .find_map(|_| stream.next_record().err())
        .unwrap()
        .to_string();
    assert!(
        message.contains("part-00002.tfrecord") && message.contains("moved or deleted"),
        "{message}"
    );
}

#[test]
fn an_epoch_without_records_is_an_error_not_an_endless_loop() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_files(dir.path(), &[2], CompressionType::None);
    let mut bytes = std::fs::read(&paths[0]).unwrap();
    bytes[2] ^= 1; // the first length's CRC: nothing after it can be found
    std::fs::write(&paths[0], &bytes).unwrap();
    let skipping = StreamKeys {
        skip_corrupt_records: true,
        ..keys(4, 1, 1)
    };
    let mut stream = RecordStream::start(file_set(&paths), options(true, skipping));
    let message = stream.next_record().unwrap_err().to_string();
    assert!(
        message.contains("epoch 0 of the 1 file(s) gave no record (1 corrupt records skipped)"),
        "{message}"
    );
}
