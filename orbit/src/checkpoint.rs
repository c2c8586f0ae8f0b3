//! CheckpointManager: numbered checkpoints in a model directory, an index naming the complete
//! ones, retention, and restore-or-initialize.
//!
//! Layout: `<dir>/ckpt-<step>/` holds whatever the [`Checkpointable`] writes; `<dir>/checkpoint`
//! is a JSON index `{"latest": "ckpt-20", "checkpoints": [{"name": "ckpt-10", "step": 10}, ...]}`.
//! A checkpoint is written into `ckpt-<step>.tmp/`, fsynced, renamed to `ckpt-<step>/`, and
//! only then entered in the index (itself replaced atomically), so the index never names a
//! half-written checkpoint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{OrbitError, Result, RunnerError};
use crate::fault::fault_point;
use crate::fs_atomic::{remove_dir_if_present, save_checkpoint_dir, write_atomically};
use crate::manifest::{verify_manifest, MANIFEST_FILE};
use crate::runner::Checkpointable;

/// Name of the index file inside the checkpoint directory.
pub const INDEX_FILE: &str = "checkpoint";

/// The prefix of checkpoint directory names, `ckpt` in `ckpt-<step>`.
const CHECKPOINT_NAME_PREFIX: &str = "ckpt";

/// Directory name of the checkpoint at `step`.
pub fn checkpoint_name(step: u64) -> String {
    format!("{CHECKPOINT_NAME_PREFIX}-{step}")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Index {
    latest: Option<String>,
    checkpoints: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct IndexEntry {
    name: String,
    step: u64,
}

/// Saves, retains and restores checkpoints of one directory (Orbit's use of
/// `tf.train.CheckpointManager`).
#[derive(Debug)]
pub struct CheckpointManager {
    directory: PathBuf,
    max_to_keep: usize,
    checkpoint_interval: u64,
    /// Saves only when asked (a cadence in time), never on a step interval.
    on_request: bool,
    index: Index,
    last_saved_step: Option<u64>,
    name_prefix: String,
}

impl CheckpointManager {
    /// A manager of `directory` that keeps the newest `max_to_keep` checkpoints and saves at
    /// global steps that are multiples of `checkpoint_interval` (0 disables saving). Reads an
    /// existing index; creates nothing on disk until the first save.
    pub fn new(directory: &Path, max_to_keep: usize, checkpoint_interval: u64) -> Result<Self> {
        if max_to_keep == 0 {
            return Err(OrbitError::InvalidSetting(
                "max_to_keep must be at least 1".to_string(),
            ));
        }
        Ok(CheckpointManager {
            directory: directory.to_path_buf(),
            max_to_keep,
            checkpoint_interval,
            on_request: false,
            index: read_index(directory)?,
            last_saved_step: None,
            name_prefix: CHECKPOINT_NAME_PREFIX.to_string(),
        })
    }

    /// A manager of `directory` that saves only when asked (an unchecked
    /// [`CheckpointManager::save`]: a checkpoint cadence in time, the end of training, a
    /// preemption), never on a step interval.
    pub fn on_request(directory: &Path, max_to_keep: usize) -> Result<Self> {
        Ok(CheckpointManager {
            on_request: true,
            ..Self::new(directory, max_to_keep, 0)?
        })
    }

    /// Names this manager's checkpoints `<prefix>-<step>` instead of `ckpt-<step>` (as
    /// `tf.train.CheckpointManager`'s `checkpoint_name`), e.g. the moving-average exports'
    /// `average_weights-<step>`.
    pub fn with_name_prefix(mut self, prefix: &str) -> Self {
        self.name_prefix = prefix.to_string();
        self
    }

    fn name_of(&self, step: u64) -> String {
        format!("{}-{step}", self.name_prefix)
    }

    /// The directory checkpoints live in.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The saving interval in global steps (0: no step interval; the manager saves only when
    /// asked if made by [`CheckpointManager::on_request`], else never).
    pub fn checkpoint_interval(&self) -> u64 {
        self.checkpoint_interval
    }

    /// The newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        // The same answer as `latest_checkpoint_in`, from the index already read.
        self.index
            .latest
            .as_ref()
            .map(|name| self.directory.join(name))
    }

    /// Re-reads the index, to see checkpoints another process (a concurrent trainer) wrote.
    pub fn refresh(&mut self) -> Result<()> {
        self.index = read_index(&self.directory)?;
        Ok(())
    }

    /// The directory of the checkpoint of `step` (whether or not it exists).
    pub fn checkpoint_path(&self, step: u64) -> PathBuf {
        self.directory.join(self.name_of(step))
    }

    /// The files of the latest checkpoint (`None` without one).
    pub fn latest_files(&self) -> Result<Option<CheckpointFiles>> {
        match self.index.checkpoints.last() {
            Some(entry) => {
                let dir = self.directory.join(&entry.name);
                CheckpointFiles::read(&dir, entry.step).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Saves `files` as the checkpoint of their step, as if a trainer had written them, so
    /// that [`CheckpointManager::restore_or_initialize`] restores them.
    pub fn install(&mut self, files: &CheckpointFiles) -> Result<PathBuf> {
        let name = self.name_of(files.step);
        let dir = save_checkpoint_dir(&self.directory, &name, |dir| {
            for (file, contents) in &files.files {
                let path = dir.join(file);
                std::fs::write(&path, contents).map_err(|e| {
                    let message = format!("cannot write {}: {e}", path.display());
                    RunnerError::from(std::io::Error::new(e.kind(), message))
                })?;
            }
            Ok(())
        })?;
        self.index.checkpoints.retain(|e| e.step != files.step);
        self.index.checkpoints.push(IndexEntry {
            name: name.clone(),
            step: files.step,
        });
        self.index.checkpoints.sort_by_key(|e| e.step);
        self.index.latest = self.index.checkpoints.last().map(|e| e.name.clone());
        self.write_index()?;
        Ok(dir)
    }

    /// Steps of the retained checkpoints, oldest first.
    pub fn checkpoint_steps(&self) -> Vec<u64> {
        self.index.checkpoints.iter().map(|e| e.step).collect()
    }

    /// Restores the latest checkpoint into `state` and returns its path; with no checkpoint,
    /// runs `init_fn` instead and returns `None`. `init_fn` never runs when a checkpoint exists.
    pub fn restore_or_initialize<S: Checkpointable + ?Sized>(
        &mut self,
        state: &mut S,
        init_fn: impl FnOnce(&mut S) -> std::result::Result<(), RunnerError>,
    ) -> Result<Option<PathBuf>> {
        if self.index.checkpoints.is_empty() {
            init_fn(state).map_err(OrbitError::Runner)?;
            return Ok(None);
        }
        while let Some(newest) = self.index.checkpoints.last().cloned() {
            let path = self.directory.join(&newest.name);
            match verify_checkpoint(&path) {
                Ok(()) => {
                    state.restore(&path).map_err(OrbitError::Runner)?;
                    self.last_saved_step = Some(newest.step);
                    tracing::info!("restored from checkpoint: {}", path.display());
                    return Ok(Some(path));
                }
                Err(reason) => self.set_aside(&newest, &reason)?,
            }
        }
        Err(OrbitError::BadCheckpoint {
            path: self.directory.clone(),
            reason: format!(
                "every retained checkpoint is damaged (set aside as {}-<step>.damaged); move \
                 them away and remove the index to start afresh",
                self.name_prefix
            ),
        })
    }

    /// Takes a damaged checkpoint out of the index and renames it `<name>.damaged` (kept for
    /// inspection, never restored).
    fn set_aside(&mut self, entry: &IndexEntry, reason: &str) -> Result<()> {
        let path = self.directory.join(&entry.name);
        let aside = self.directory.join(format!("{}.damaged", entry.name));
        tracing::warn!(
            "checkpoint {} is damaged ({reason}); it is set aside as {} and the previous one is \
             used",
            path.display(),
            aside.display()
        );
        self.index.checkpoints.retain(|e| e.step != entry.step);
        self.index.latest = self.index.checkpoints.last().map(|e| e.name.clone());
        self.write_index()?;
        if path.is_dir() {
            remove_dir_if_present(&aside)?;
            std::fs::rename(&path, &aside)
                .map_err(|e| OrbitError::io("cannot rename", &path, e))?;
        }
        Ok(())
    }

    /// Saves `state` as the checkpoint of `step` and returns its path, unless saving is
    /// disabled, `step` was saved already, or (with `check_interval`) `step` is not a multiple
    /// of the interval or the manager saves only on request. Removes the oldest checkpoints
    /// beyond `max_to_keep`.
    pub fn save<S: Checkpointable + ?Sized>(
        &mut self,
        step: u64,
        state: &S,
        check_interval: bool,
    ) -> Result<Option<PathBuf>> {
        let off_interval = if self.on_request {
            check_interval
        } else {
            self.checkpoint_interval == 0
                || (check_interval && !step.is_multiple_of(self.checkpoint_interval))
        };
        if off_interval
            || self.last_saved_step == Some(step)
            || self.index.checkpoints.iter().any(|e| e.step == step)
        {
            return Ok(None);
        }
        let path = self.write(step, state)?;
        self.last_saved_step = Some(step);
        self.prune()?;
        Ok(Some(path))
    }

    fn write<S: Checkpointable + ?Sized>(&mut self, step: u64, state: &S) -> Result<PathBuf> {
        let name = self.name_of(step);
        let final_dir = save_checkpoint_dir(&self.directory, &name, |dir| state.save(dir))?;
        self.index.checkpoints.push(IndexEntry {
            name: name.clone(),
            step,
        });
        self.index.latest = Some(name);
        self.write_index()?;
        fault_point("checkpoint_indexed")
            .map_err(|e| OrbitError::io("cannot write", &self.directory, e))?;
        tracing::info!("saved checkpoint: {}", final_dir.display());
        Ok(final_dir)
    }

    fn prune(&mut self) -> Result<()> {
        while self.index.checkpoints.len() > self.max_to_keep {
            let oldest = self.index.checkpoints.remove(0);
            self.write_index()?;
            remove_dir_if_present(&self.directory.join(&oldest.name))?;
        }
        Ok(())
    }

    fn write_index(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.index).expect("the index serializes");
        write_atomically(&self.directory.join(INDEX_FILE), &json)
    }
}

/// The newest complete checkpoint the index of `directory` names (`None` when the directory
/// holds no index or an empty one): how a reader outside the manager, such as
/// `task.init_checkpoint` pointing at a model_dir, finds a directory's latest checkpoint.
pub fn latest_checkpoint_in(directory: &Path) -> Result<Option<PathBuf>> {
    let index = read_index(directory)?;
    Ok(index.latest.map(|name| directory.join(name)))
}

fn read_index(directory: &Path) -> Result<Index> {
    let path = directory.join(INDEX_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
        Err(e) => return Err(OrbitError::io("cannot read", &path, e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| OrbitError::BadCheckpoint {
        path: path.clone(),
        reason: format!(
            "the checkpoint index is not valid JSON ({e}); restore it, or remove it to start \
             from the newest ckpt-<step> directory by hand"
        ),
    })
}

/// A checkpoint's files in memory (its manifest aside, which is written afresh where they
/// are installed): how a worker that writes nothing under model_dir gets the checkpoint the
/// chief restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFiles {
    /// The global step of the checkpoint.
    pub step: u64,
    /// Each file's name and contents, in name order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// First bytes of [`CheckpointFiles::to_bytes`].
const FILES_MAGIC: &[u8; 8] = b"grvckpt1";

impl CheckpointFiles {
    /// Reads the files of the checkpoint directory `dir` of `step`.
    pub fn read(dir: &Path, step: u64) -> Result<Self> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| OrbitError::io("cannot list", dir, e))? {
            let path = entry
                .map_err(|e| OrbitError::io("cannot list", dir, e))?
                .path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string);
            match name {
                Some(name) if path.is_file() && name != MANIFEST_FILE => {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| OrbitError::io("cannot read", &path, e))?;
                    files.push((name, bytes));
                }
                _ => {}
            }
        }
        files.sort();
        Ok(CheckpointFiles { step, files })
    }

    /// The files as one byte string ([`CheckpointFiles::from_bytes`] reads it back).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = FILES_MAGIC.to_vec();
        bytes.extend(self.step.to_le_bytes());
        bytes.extend((self.files.len() as u64).to_le_bytes());
        for (name, contents) in &self.files {
            bytes.extend((name.len() as u64).to_le_bytes());
            bytes.extend(name.as_bytes());
            bytes.extend((contents.len() as u64).to_le_bytes());
            bytes.extend(contents);
        }
        bytes
    }

    /// Reads what [`CheckpointFiles::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let damaged = |what: &str| OrbitError::BadCheckpoint {
            path: PathBuf::from("<checkpoint received from the chief>"),
            reason: format!("{what}; the workers must run the same Grove build"),
        };
        let mut rest = bytes
            .strip_prefix(FILES_MAGIC.as_slice())
            .ok_or_else(|| damaged("it does not start with Grove's checkpoint marker"))?;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(damaged("it ends early"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let read_u64 = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        let step = read_u64(take(8)?);
        let count = read_u64(take(8)?);
        let mut files = Vec::new();
        for _ in 0..count {
            let length = read_u64(take(8)?) as usize;
            let name = String::from_utf8(take(length)?.to_vec())
                .map_err(|_| damaged("a file name is not UTF-8"))?;
            let length = read_u64(take(8)?) as usize;
            files.push((name, take(length)?.to_vec()));
        }
        Ok(CheckpointFiles { step, files })
    }
}

/// Whether `dir` is a complete checkpoint matching its manifest; the error says why not.
pub fn verify_checkpoint(dir: &Path) -> std::result::Result<(), String> {
    if !dir.is_dir() {
        return Err("it does not exist".to_string());
    }
    verify_manifest(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// State that is one number, written to `value.txt`.
    #[derive(Default)]
    struct Counter {
        value: u64,
        inits: u32,
    }

    impl Checkpointable for Counter {
        fn save(&self, dir: &Path) -> std::result::Result<(), RunnerError> {
            std::fs::write(dir.join("value.txt"), self.value.to_string())?;
            Ok(())
        }
        fn restore(&mut self, dir: &Path) -> std::result::Result<(), RunnerError> {
            self.value = std::fs::read_to_string(dir.join("value.txt"))?
                .parse()
                .map_err(RunnerError::run)?;
            Ok(())
        }
    }

    fn init(counter: &mut Counter) -> std::result::Result<(), RunnerError> {
        counter.inits += 1;
        Ok(())
    }

    #[test]
    fn saves_on_interval_multiples_only_once_per_step_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut manager = CheckpointManager::new(dir.path(), 2, 5).unwrap();
        let mut state = Counter::default();
        for step in 1..=20 {
            state.value = step;
            manager.save(step, &state, true).unwrap();
        }
        assert_eq!(manager.checkpoint_steps(), vec![15, 20]);
        assert!(manager.save(20, &state, false).unwrap().is_none());
        assert!(manager.save(22, &state, false).unwrap().is_some());
        assert_eq!(manager.checkpoint_steps(), vec![20, 22]);
        assert!(!dir.path().join("ckpt-15").exists());
        assert!(!dir.path().join("ckpt-22.tmp").exists());
    }

    #[test]
    fn interval_zero_never_saves() {
        let dir = tempfile::tempdir().unwrap();
        let mut manager = CheckpointManager::new(dir.path(), 2, 0).unwrap();
        assert!(manager
            .save(10, &Counter::default(), false)
            .unwrap()
            .is_none());
        assert!(!dir.path().join(INDEX_FILE).exists());
    }

    #[test]
    fn an_on_request_manager_saves_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut manager = CheckpointManager::on_request(dir.path(), 2).unwrap();
        let state = Counter::default();
        for step in [1000, 2000] {
            assert!(manager.save(step, &state, true).unwrap().is_none());
        }
        assert!(manager.save(7, &state, false).unwrap().is_some());
        assert_eq!(manager.checkpoint_steps(), vec![7]);
        assert_eq!(manager.checkpoint_interval(), 0);
    }

    #[test]
    fn restore_or_initialize_runs_init_only_without_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = Counter::default();
        let mut manager = CheckpointManager::new(dir.path(), 3, 1).unwrap();
        assert!(manager
            .restore_or_initialize(&mut state, init)
            .unwrap()
            .is_none());
        assert_eq!(state.inits, 1);
        state.value = 7;
        manager.save(7, &state, true).unwrap();

        let mut fresh = Counter::default();
        let mut manager = CheckpointManager::new(dir.path(), 3, 1).unwrap();
        let path = manager.restore_or_initialize(&mut fresh, init).unwrap();
        assert_eq!(path, Some(dir.path().join("ckpt-7")));
        assert_eq!((fresh.value, fresh.inits), (7, 0));
        assert!(manager.save(7, &fresh, false).unwrap().is_none());
    }

    #[test]
    fn a_half_written_checkpoint_is_never_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let mut manager = CheckpointManager::new(dir.path(), 3, 1).unwrap();
        manager
            .save(1, &Counter { value: 1, inits: 0 }, true)
            .unwrap();
        std::fs::create_dir(dir.path().join("ckpt-2.tmp")).unwrap();
        std::fs::create_dir(dir.path().join("ckpt-2")).unwrap();
        let manager = CheckpointManager::new(dir.path(), 3, 1).unwrap();
        assert_eq!(manager.latest_checkpoint(), Some(dir.path().join("ckpt-1")));
    }

    #[test]
    fn a_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_restored() {
        let dir = tempfile::tempdir().unwrap();
        let mut manager = CheckpointManager::new(dir.path(), 5, 1).unwrap();
        for step in 1..=3 {
            manager
                .save(
                    step,
                    &Counter {
                        value: step,
                        inits: 0,
                    },
                    true,
                )
                .unwrap();
        }
        std::fs::write(dir.path().join("ckpt-3/value.txt"), "9").unwrap();
        let mut state = Counter::default();
        let mut manager = CheckpointManager::new(dir.path(), 5, 1).unwrap();
        let restored = manager.restore_or_initialize(&mut state, init).unwrap();
        assert_eq!(restored, Some(dir.path().join("ckpt-2")));
        assert_eq!((state.value, state.inits), (2, 0));
        assert!(dir.path().join("ckpt-3.damaged").is_dir());
        assert_eq!(manager.checkpoint_steps(), vec![1, 2]);
        // The damaged step is saved again when training reaches it.
        assert!(manager.save(3, &state, true).unwrap().is_some());

        for step in [1, 2, 3] {
            std::fs::remove_file(
                dir.path()
                    .join(format!("ckpt-{step}/{}", crate::manifest::MANIFEST_FILE)),
            )
            .unwrap();
        }
        let mut manager = CheckpointManager::new(dir.path(), 5, 1).unwrap();
        let err = manager
            .restore_or_initialize(&mut state, init)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("every retained checkpoint is damaged"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_index_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(INDEX_FILE), "{not json").unwrap();
        let err = CheckpointManager::new(dir.path(), 3, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn a_checkpoint_read_into_memory_and_installed_elsewhere_restores_the_same_state() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut saved = CheckpointManager::new(from.path(), 3, 1).unwrap();
        saved
            .save(
                7,
                &Counter {
                    value: 41,
                    inits: 0,
                },
                false,
            )
            .unwrap();
        let files = saved.latest_files().unwrap().unwrap();
        assert_eq!(files.step, 7);
        assert!(files.files.iter().all(|(name, _)| name != MANIFEST_FILE));
        let received = CheckpointFiles::from_bytes(&files.to_bytes()).unwrap();
        assert_eq!(received, files);
        let mut installed = CheckpointManager::new(to.path(), 3, 1).unwrap();
        installed.install(&received).unwrap();
        let mut state = Counter::default();
        let restored = installed
            .restore_or_initialize(&mut state, |_| unreachable!())
            .unwrap();
        assert_eq!(restored, Some(to.path().join("ckpt-7")));
        assert_eq!(state.value, 41);
        let truncated = &files.to_bytes()[..20];
        let error = CheckpointFiles::from_bytes(truncated)
            .unwrap_err()
            .to_string();
        assert!(error.contains("ends early"), "{error}");
    }
}
