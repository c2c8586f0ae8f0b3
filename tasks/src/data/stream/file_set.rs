//! The files a stream reads, fixed when it starts, and which of them (or which share of their
//! records) one pipeline reads in each epoch.

use std::path::{Path, PathBuf};

use grove_core::data::Shard;
use grove_core::rng::{stable_hash, stream_rng, Stream};
use grove_core::{Error, Result};
use rand::seq::SliceRandom;

/// The files `input_path` named when the stream started, in order.
#[derive(Debug)]
pub struct FileSet {
    files: Vec<PathBuf>,
    fingerprint: u64,
}

impl FileSet {
    /// The set of `files`; an empty file (a shard with no record) is a data error naming it.
    pub fn new(files: Vec<PathBuf>, key: &str) -> Result<FileSet> {
        for file in &files {
            let metadata =
                std::fs::metadata(file).map_err(|e| Error::io("cannot read", file, e))?;
            if metadata.len() == 0 {
                return Err(Error::Data(format!(
                    "{}: the file is empty (no record); remove it from {key}.input_path or \
                     write its records",
                    file.display()
                )));
            }
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let fingerprint = stable_hash(&names.join("\n"));
        Ok(FileSet { files, fingerprint })
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the set has no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The path of file `file`.
    pub fn path(&self, file: usize) -> &Path {
        &self.files[file]
    }

    /// A hash of the file names in order: a saved position only fits the set it came from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// Which files one pipeline reads, and in what order per epoch. With at least as many files
/// as pipelines, each reads the files `index, index + count, ...` (tf.data's
/// `Dataset.shard` on the file list, as Model Garden does); with fewer, each reads every file
/// and keeps every `count`-th record of the interleaved stream, so no pipeline is left
/// without data.
#[derive(Debug, Clone)]
pub struct FilePlan {
    mine: Vec<usize>,
    record_shard: Shard,
    shuffle_seed: Option<u64>,
}

impl FilePlan {
    /// The plan of `shard` over `files` files; `shuffle_seed` shuffles the order per epoch.
    pub fn new(files: usize, shard: Shard, shuffle_seed: Option<u64>) -> FilePlan {
        let by_files = files >= shard.count;
        let mine = (0..files)
            .filter(|&file| !by_files || shard.keeps(file as u64))
            .collect();
        FilePlan {
            mine,
            record_shard: if by_files { Shard::WHOLE } else { shard },
            shuffle_seed,
        }
    }

    /// This pipeline's files in the order epoch `epoch` reads them.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.mine.clone();
        if let Some(seed) = self.shuffle_seed {
            order.shuffle(&mut stream_rng(seed, Stream::FileOrder, epoch));
        }
        order
    }

    /// The files this pipeline reads.
    pub fn file_count(&self) -> usize {
        self.mine.len()
    }

    /// Which records of the interleaved stream this pipeline keeps.
    pub fn record_shard(&self) -> Shard {
        self.record_shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_dealt_to_shards_when_there_are_enough_else_records_are() {
        let plan = FilePlan::new(5, Shard { index: 1, count: 2 }, None);
        assert_eq!(plan.epoch_order(0), vec![1, 3]);
        assert_eq!(plan.record_shard(), Shard::WHOLE);
        let few = FilePlan::new(2, Shard { index: 2, count: 3 }, None);
        assert_eq!(few.epoch_order(0), vec![0, 1]);
        assert_eq!(few.record_shard(), Shard { index: 2, count: 3 });
    }

    #[test]
    fn a_shuffled_plan_reorders_its_files_per_epoch_and_keeps_them_all() {
        let plan = FilePlan::new(16, Shard::WHOLE, Some(3));
        let orders: Vec<Vec<usize>> = (0..4).map(|e| plan.epoch_order(e)).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, (0..16).collect::<Vec<_>>());
        }
        assert!(orders.windows(2).all(|w| w[0] != w[1]), "{orders:?}");
        assert_eq!(plan.epoch_order(2), orders[2]);
    }
}
