//! Reading one file of a stream record by record, from any record on: plain files seek to it,
//! compressed ones are decompressed up to it. Damaged records are errors that name the file,
//! the record and its byte offset, or (with `skip_corrupt_records`) are skipped and counted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use grove_core::{Error, Result};
use grove_records::tfrecord::{FrameFault, Next, RecordReader};
use serde::{Deserialize, Serialize};

use super::file_set::FileSet;
use super::options::CompressionType;

/// Bytes read from disk at a time per open file.
const READ_BUFFER: usize = 64 * 1024;

/// Where a record is: `(file in the set, record index in the file, byte offset in the
/// uncompressed file)`. Saved as a three-number array, so a position stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location(pub usize, pub u64, pub u64);

impl Location {
    /// The file in the set.
    pub fn file(&self) -> usize {
        self.0
    }
    /// The record's index in its file.
    pub fn index(&self) -> u64 {
        self.1
    }
    /// The record's byte offset in its (uncompressed) file.
    pub fn offset(&self) -> u64 {
        self.2
    }
}

/// One record's data and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Where the record is.
    pub location: Location,
    /// The record's bytes (a serialized `tf.train.Example`, for TFRecord files).
    pub data: Vec<u8>,
}

/// The bytes of an open file, decompressed when they are compressed.
enum Source {
    Plain(BufReader<File>),
    Gzip(MultiGzDecoder<BufReader<File>>),
    Zlib(ZlibDecoder<BufReader<File>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Gzip(r) => r.read(buf),
            Source::Zlib(r) => r.read(buf),
        }
    }
}

impl Source {
    /// Moves `from` → `to` bytes into the file (`to >= from`): a seek for plain files, reading
    /// and discarding for compressed ones. False when the file ends first.
    fn skip(&mut self, from: u64, to: u64) -> io::Result<bool> {
        match self {
            Source::Plain(r) => {
                let end = r.get_mut().metadata()?.len();
                r.seek(SeekFrom::Start(to))?;
                Ok(to <= end)
            }
            compressed => {
                let wanted = to - from;
                Ok(io::copy(&mut compressed.take(wanted), &mut io::sink())? == wanted)
            }
        }
    }
}

/// A file's records held in memory (`cache: true`), and where its end is: the position a
/// reader reports once it has replayed them all.
pub struct CachedFile {
    records: Vec<Record>,
    end: (u64, u64),
}

/// Opens files of a set and reads their records, with the stream's compression, corruption
/// policy and (with `cache`) the records of files read whole before.
pub struct FileAccess {
    files: Arc<FileSet>,
    compression: CompressionType,
    skip_corrupt: bool,
    skipped: u64,
    cache: Option<HashMap<usize, Arc<CachedFile>>>,
}

impl FileAccess {
    /// Access to `files`; `skipped` corrupt records were counted before (a resumed run's).
    pub fn new(
        files: Arc<FileSet>,
        compression: CompressionType,
        skip_corrupt: bool,
        cache: bool,
        skipped: u64,
    ) -> Self {
        FileAccess {
            files,
            compression,
            skip_corrupt,
            skipped,
            cache: cache.then(HashMap::new),
        }
    }

    /// Corrupt records skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// A reader of `file` standing at record `index`, `offset` bytes in (from the cache when
    /// the file was read whole before and the reader starts at its beginning).
    pub fn open(&mut self, file: usize, index: u64, offset: u64) -> Result<FileReader> {
        if let Some(cached) = self.cache.as_ref().and_then(|c| c.get(&file)) {
            if index == 0 {
                return Ok(FileReader::Cached {
                    file: cached.clone(),
                    next: 0,
                });
            }
        }
        let reader = Box::new(self.open_disk(file, index, offset)?);
        let collected = (self.cache.is_some() && index == 0).then(Vec::new);
        Ok(FileReader::Disk { reader, collected })
    }

    /// The next record of `reader`, `None` at the end of its file.
    pub fn next(&mut self, reader: &mut FileReader) -> Result<Option<Record>> {
        match reader {
            FileReader::Cached { file, next } => {
                let record = file.records.get(*next).cloned();
                *next += 1;
                Ok(record)
            }
            FileReader::Disk { reader, collected } => {
                let record = self.next_on_disk(reader)?;
                match (&record, collected.as_mut()) {
                    (Some(record), Some(all)) => all.push(record.clone()),
                    (None, Some(all)) => {
                        let whole = CachedFile {
                            records: std::mem::take(all),
                            end: (reader.records.index(), reader.records.offset()),
                        };
                        if let Some(cache) = self.cache.as_mut() {
                            cache.insert(reader.file, Arc::new(whole));
                        }
                    }
                    _ => {}
                }
                Ok(record)
            }
        }
    }

    /// The records at `locations` (all of one file, by ascending offset), read in one pass.
    pub fn read_at(&mut self, locations: &[Location]) -> Result<Vec<Record>> {
        let Some(first) = locations.first() else {
            return Ok(Vec::new());
        };
        let mut reader = self.open_disk(first.file(), first.index(), first.offset())?;
        let mut records = Vec::with_capacity(locations.len());
        for location in locations {
            reader.advance_to(location.index(), location.offset())?;
            let record = self
                .next_on_disk(&mut reader)?
                .filter(|r| r.location == *location);
            records.push(record.ok_or_else(|| reader.moved(location.offset()))?);
        }
        Ok(records)
    }

    fn open_disk(&self, file: usize, index: u64, offset: u64) -> Result<DiskReader> {
        let path = self.files.path(file);
        let opened = File::open(path).map_err(|e| {
            Error::Data(format!(
                "cannot open {}: {e}; it was listed when the stream started: was it moved or \
                 deleted during the run?",
                path.display()
            ))
        })?;
        let buffered = BufReader::with_capacity(READ_BUFFER, opened);
        let source = match self.compression {
            CompressionType::None => Source::Plain(buffered),
            CompressionType::Gzip => Source::Gzip(MultiGzDecoder::new(buffered)),
            CompressionType::Zlib => Source::Zlib(ZlibDecoder::new(buffered)),
        };
        let mut reader = DiskReader {
            file,
            files: self.files.clone(),
            records: RecordReader::new(source, 0, 0),
        };
        reader.advance_to(index, offset)?;
        Ok(reader)
    }

    /// The next good record of `reader`, skipping damaged ones when allowed; `None` at the end
    /// of the file (or after damage that hides the rest of it, when skipping).
    fn next_on_disk(&mut self, reader: &mut DiskReader) -> Result<Option<Record>> {
        let mut data = Vec::new();
        loop {
            let location = Location(reader.file, reader.records.index(), reader.records.offset());
            let next = reader
                .records
                .read_next(&mut data)
                .map_err(|e| reader.io(e))?;
            let fault = match next {
                Next::Record => return Ok(Some(Record { location, data })),
                Next::End => return Ok(None),
                Next::Fault(fault) => fault,
            };
            if !self.skip_corrupt {
                return Err(reader.corrupt(location, fault));
            }
            self.skipped += 1;
            tracing::warn!("skipped: {}", reader.corrupt(location, fault));
            if !fault.is_recoverable() {
                return Ok(None);
            }
        }
    }
}

/// An open file of the stream.
pub enum FileReader {
    /// Read from disk; with `cache`, the records read so far when it started at the file's
    /// beginning (cached once it reaches the end).
    Disk {
        /// The reader.
        reader: Box<DiskReader>,
        /// Records collected for the cache.
        collected: Option<Vec<Record>>,
    },
    /// Replayed from the cache.
    Cached {
        /// The file's records.
        file: Arc<CachedFile>,
        /// Index of the next one.
        next: usize,
    },
}

impl FileReader {
    /// Where the next record is: `(record index, byte offset)` in the file.
    pub fn position(&self) -> (u64, u64) {
        match self {
            FileReader::Disk { reader, .. } => (reader.records.index(), reader.records.offset()),
            FileReader::Cached { file, next } => match file.records.get(*next) {
                Some(record) => (record.location.index(), record.location.offset()),
                None => file.end,
            },
        }
    }
}

/// A file read from disk.
pub struct DiskReader {
    file: usize,
    files: Arc<FileSet>,
    records: RecordReader<Source>,
}

impl DiskReader {
    /// Moves forward to record `index` at byte `offset` (at or after where the reader stands).
    fn advance_to(&mut self, index: u64, offset: u64) -> Result<()> {
        let from = self.records.offset();
        if offset == from {
            return Ok(());
        }
        if offset < from {
            return Err(self.moved(offset));
        }
        let skipped = self.records.get_mut().skip(from, offset);
        if !skipped.map_err(|e| self.io(e))? {
            return Err(self.moved(offset));
        }
        self.records.reposition(offset, index);
        Ok(())
    }

    fn io(&self, error: io::Error) -> Error {
        Error::io("cannot read", self.files.path(self.file), error)
    }

    fn corrupt(&self, location: Location, fault: FrameFault) -> Error {
        Error::Data(format!(
            "{}: record {} (byte offset {}): {fault}; set skip_corrupt_records: true on the data \
             config to skip damaged records",
            self.files.path(self.file).display(),
            location.index(),
            location.offset()
        ))
    }

    /// The error for a saved position the file no longer has.
    fn moved(&self, offset: u64) -> Error {
        Error::Data(format!(
            "{}: no record starts at byte offset {offset}, where the saved input position \
             expects one; the file changed since the checkpoint was written (restore it, or \
             train from a fresh model_dir)",
            self.files.path(self.file).display()
        ))
    }
}
