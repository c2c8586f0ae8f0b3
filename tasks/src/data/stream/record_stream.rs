//! [`RecordStream`]: the records of a set of files with tf.data's semantics — per-epoch file
//! shuffle, interleave, shuffle buffer, repeat — whose [`StreamPosition`] is small, saved with
//! each checkpoint, and enough to resume without reading consumed data again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use grove_core::data::{InputPosition, Shard};
use grove_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::file_set::{FilePlan, FileSet};
use super::interleave::{Interleave, InterleavePosition};
use super::options::{CompressionType, StreamOptions};
use super::record_file::{FileAccess, Location, Record};
use super::shuffle_buffer::ShuffleBuffer;

/// What a saved position must agree with to be resumed: the files and every option that
/// shapes the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PlanKey {
    files: usize,
    fingerprint: u64,
    shard: Shard,
    seed: u64,
    training: bool,
    cycle_length: usize,
    block_length: usize,
    shuffle_buffer_size: usize,
    compression_type: CompressionType,
}

/// Where a stream stands after the records it gave: the epoch, the interleave's open files
/// and offsets, the shuffle buffer's records by location and the picks made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamPosition {
    plan: PlanKey,
    epoch: u64,
    interleave: InterleavePosition,
    /// Records the interleave gave this epoch (record sharding counts them).
    interleaved: u64,
    /// Whether this epoch's files are all read (the buffer drains).
    input_done: bool,
    /// Records given this epoch.
    emitted: u64,
    buffer: Vec<Location>,
    draws: u64,
    skipped: u64,
}

/// The records of a set of files in tf.data's order: each epoch reads this pipeline's files
/// (shuffled per epoch when training) through an interleave, keeps its shard of the records,
/// mixes them in a shuffle buffer, and (training) repeats with the next epoch once the
/// buffer is drained — `repeat()` after `shuffle()`, so every record is given once per epoch.
pub struct RecordStream {
    key: PlanKey,
    options: StreamOptions,
    plan: FilePlan,
    access: FileAccess,
    epoch: u64,
    interleave: Interleave,
    interleaved: u64,
    input_done: bool,
    emitted: u64,
    buffer: ShuffleBuffer,
}

impl RecordStream {
    /// The stream of `files` from its start.
    pub fn start(files: Arc<FileSet>, options: StreamOptions) -> RecordStream {
        let (key, plan) = plan_of(&files, &options);
        let access = file_access(files, &options, 0);
        let interleave = Interleave::new(plan.epoch_order(0), key.cycle_length, key.block_length);
        RecordStream {
            buffer: ShuffleBuffer::new(key.shuffle_buffer_size, options.seed),
            key,
            options,
            plan,
            access,
            epoch: 0,
            interleave,
            interleaved: 0,
            input_done: false,
            emitted: 0,
        }
    }

    /// The stream of `files` at a position it reported before (saved with a checkpoint): the
    /// open files are reopened at their offsets and the buffered records read back by
    /// location. A position of other files or options is a data error saying what differs.
    pub fn resume(
        files: Arc<FileSet>,
        options: StreamOptions,
        position: &InputPosition,
    ) -> Result<RecordStream> {
        let (key, plan) = plan_of(&files, &options);
        let saved: StreamPosition = serde_json::from_value(position.0.clone()).map_err(|e| {
            Error::Data(format!(
                "{}: the checkpoint's input position is not a record-stream position ({e}); \
                 the input changed type since it was written (restore the config it was \
                 trained with, or train from a fresh model_dir)",
                options.config_key
            ))
        })?;
        check_same_plan(&saved.plan, &key, &options.config_key)?;
        let mut access = file_access(files, &options, saved.skipped);
        let records = read_buffered(&mut access, &saved.buffer)?;
        let interleave = Interleave::resume(
            plan.epoch_order(saved.epoch),
            key.block_length,
            &saved.interleave,
            &mut access,
        )?;
        let buffer =
            ShuffleBuffer::restored(key.shuffle_buffer_size, options.seed, records, saved.draws);
        Ok(RecordStream {
            key,
            options,
            plan,
            access,
            epoch: saved.epoch,
            interleave,
            interleaved: saved.interleaved,
            input_done: saved.input_done,
            emitted: saved.emitted,
            buffer,
        })
    }

    /// The next record; `None` at the end of a one-pass (evaluation) stream. An epoch that
    /// gives no record at all is a data error (every record of the files skipped, or none for
    /// this shard).
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            while !self.input_done && self.buffer.has_room() {
                match self.interleave.next_record(&mut self.access)? {
                    Some(record) => {
                        if self.plan.record_shard().keeps(self.interleaved) {
                            self.buffer.push(record);
                        }
                        self.interleaved += 1;
                    }
                    None => self.input_done = true,
                }
            }
            if let Some(record) = self.buffer.take(self.epoch) {
                self.emitted += 1;
                return Ok(Some(record));
            }
            if self.emitted == 0 {
                return Err(Error::Data(format!(
                    "{}.input_path: epoch {} of the {} file(s) gave no record{}",
                    self.options.config_key,
                    self.epoch,
                    self.plan.file_count(),
                    match self.access.skipped() {
                        0 => String::new(),
                        n => format!(" ({n} corrupt records skipped)"),
                    }
                )));
            }
            if !self.options.training {
                return Ok(None);
            }
            self.start_epoch(self.epoch + 1);
        }
    }

    /// Whether the stream repeats without end (training).
    pub fn is_endless(&self) -> bool {
        self.options.training
    }

    /// Corrupt records skipped so far over the run.
    pub fn skipped(&self) -> u64 {
        self.access.skipped()
    }

    /// Where the stream stands, to resume it with [`RecordStream::resume`].
    pub fn position(&self) -> InputPosition {
        let position = StreamPosition {
            plan: self.key.clone(),
            epoch: self.epoch,
            interleave: self.interleave.position(),
            interleaved: self.interleaved,
            input_done: self.input_done,
            emitted: self.emitted,
            buffer: self.buffer.locations(),
            draws: self.buffer.draws(),
            skipped: self.access.skipped(),
        };
        InputPosition(serde_json::to_value(position).expect("a position serializes"))
    }

    fn start_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.interleave = Interleave::new(
            self.plan.epoch_order(epoch),
            self.key.cycle_length,
            self.key.block_length,
        );
        self.interleaved = 0;
        self.input_done = false;
        self.emitted = 0;
        self.buffer.reset_draws();
    }
}

/// Access to `files` with the options' compression, corruption policy and cache, `skipped`
/// corrupt records counted already.
fn file_access(files: Arc<FileSet>, options: &StreamOptions, skipped: u64) -> FileAccess {
    let keys = &options.keys;
    FileAccess::new(
        files,
        keys.compression_type,
        keys.skip_corrupt_records,
        keys.cache,
        skipped,
    )
}

fn plan_of(files: &FileSet, options: &StreamOptions) -> (PlanKey, FilePlan) {
    let shuffle_seed = options.training.then_some(options.seed);
    let plan = FilePlan::new(files.len(), options.shard, shuffle_seed);
    let key = PlanKey {
        files: files.len(),
        fingerprint: files.fingerprint(),
        shard: options.shard,
        seed: options.seed,
        training: options.training,
        cycle_length: options.cycle_length(plan.file_count()),
        block_length: options.keys.block_length,
        shuffle_buffer_size: options.buffer_size(),
        compression_type: options.keys.compression_type,
    };
    (key, plan)
}

/// Fails, naming what differs, unless a saved position's plan is the current one.
fn check_same_plan(saved: &PlanKey, current: &PlanKey, key: &str) -> Result<()> {
    let mut differences = Vec::new();
    if (saved.files, saved.fingerprint) != (current.files, current.fingerprint) {
        differences.push(format!(
            "{key}.input_path names other files ({} now, {} when it was saved)",
            current.files, saved.files
        ));
    }
    let mut compare = |name: &str, was: String, now: String| {
        if was != now {
            differences.push(format!("{name} is {now}, was {was}"));
        }
    };
    compare("the seed", saved.seed.to_string(), current.seed.to_string());
    compare(
        "the worker shard",
        format!("{:?}", saved.shard),
        format!("{:?}", current.shard),
    );
    let field = |name: &str| format!("{key}.{name}");
    compare(
        &field("cycle_length"),
        saved.cycle_length.to_string(),
        current.cycle_length.to_string(),
    );
    compare(
        &field("block_length"),
        saved.block_length.to_string(),
        current.block_length.to_string(),
    );
    compare(
        &field("shuffle_buffer_size"),
        saved.shuffle_buffer_size.to_string(),
        current.shuffle_buffer_size.to_string(),
    );
    compare(
        &field("compression_type"),
        format!("{:?}", saved.compression_type),
        format!("{:?}", current.compression_type),
    );
    compare(
        &field("is_training"),
        saved.training.to_string(),
        current.training.to_string(),
    );
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::Data(format!(
        "the checkpoint's input position does not fit this input: {}; resume with the data \
         config it was trained with, or train from a fresh model_dir",
        differences.join("; ")
    )))
}

/// The records at `buffer` (in its order), each file read once.
fn read_buffered(access: &mut FileAccess, buffer: &[Location]) -> Result<Vec<Record>> {
    let mut by_file: BTreeMap<usize, Vec<Location>> = BTreeMap::new();
    for location in buffer {
        by_file.entry(location.file()).or_default().push(*location);
    }
    let mut read: HashMap<Location, Record> = HashMap::new();
    for (_, mut locations) in by_file {
        locations.sort();
        for record in access.read_at(&locations)? {
            read.insert(record.location, record);
        }
    }
    Ok(buffer
        .iter()
        .map(|location| {
            read.remove(location)
                .expect("every buffered record was read")
        })
        .collect())
}
