//! A CSV summary writer: one file per split, a `step` column and one column per metric.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::SummaryWriter;
use crate::error::{OrbitError, Result};
use crate::fs_atomic::write_atomically;
use crate::logs::Logs;

/// Appends one row per write to `<split>.csv`: `step`, then the metrics in the header's
/// order, an empty cell where a write has no value for a column. A metric not yet in the
/// header adds a column: the file is rewritten once with the wider header (earlier rows get
/// empty cells), atomically. A file left by an earlier run is continued under its header.
/// Values are written as Rust prints an `f64` (the shortest text that reads back to the same
/// number; `NaN`, `inf`, `-inf`).
#[derive(Debug)]
pub struct CsvWriter {
    path: PathBuf,
    columns: Vec<String>,
}

impl CsvWriter {
    /// A writer of `path`, continuing the file's header when it exists. Creates nothing until
    /// the first write.
    pub fn new(path: &Path) -> Result<Self> {
        let columns = match open_if_present(path)? {
            Some(file) => header_of(path, file)?,
            None => Vec::new(),
        };
        Ok(CsvWriter {
            path: path.to_path_buf(),
            columns,
        })
    }

    /// The path of the CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the file with `columns` as its header, padding the rows already written.
    fn widen(&mut self, columns: Vec<String>) -> Result<()> {
        let rows = match open_if_present(&self.path)? {
            Some(file) => rows_of(&self.path, file)?,
            None => Vec::new(),
        };
        let mut out = csv::Writer::from_writer(Vec::new());
        let header = std::iter::once("step").chain(columns.iter().map(String::as_str));
        self.record(&mut out, header)?;
        for mut row in rows {
            row.resize(columns.len() + 1, String::new());
            self.record(&mut out, row.iter().map(String::as_str))?;
        }
        let bytes = out
            .into_inner()
            .map_err(|e| self.io_error(e.into_error()))?;
        write_atomically(&self.path, &bytes)?;
        self.columns = columns;
        Ok(())
    }

    fn record<'a, W: std::io::Write>(
        &self,
        out: &mut csv::Writer<W>,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        out.write_record(fields)
            .map_err(|e| self.io_error(std::io::Error::other(e)))
    }

    fn io_error(&self, error: std::io::Error) -> OrbitError {
        OrbitError::io("cannot write", &self.path, error)
    }
}

impl SummaryWriter for CsvWriter {
    fn write_scalars(&mut self, step: u64, logs: &Logs) -> Result<()> {
        let new: Vec<&String> = logs.keys().filter(|k| !self.columns.contains(k)).collect();
        if !new.is_empty() || self.columns.is_empty() {
            let mut columns = self.columns.clone();
            columns.extend(new.into_iter().cloned());
            self.widen(columns)?;
        }
        let mut row = vec![step.to_string()];
        row.extend(
            self.columns
                .iter()
                .map(|c| logs.get(c).map(f64::to_string).unwrap_or_default()),
        );
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| OrbitError::io("cannot open", &self.path, e))?;
        let mut out = csv::Writer::from_writer(file);
        self.record(&mut out, row.iter().map(String::as_str))?;
        out.flush().map_err(|e| self.io_error(e))
    }

    fn flush(&mut self) -> Result<()> {
        // Every write is flushed as it is made.
        Ok(())
    }
}

/// The file at `path` opened for reading, or `None` when there is none.
fn open_if_present(path: &Path) -> Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OrbitError::io("cannot read", path, e)),
    }
}

/// The metric columns of a CSV file's header (after `step`); reads only the header row.
fn header_of(path: &Path, file: File) -> Result<Vec<String>> {
    let mut reader = csv::Reader::from_reader(file);
    let header = reader.headers().map_err(|e| read_error(path, e))?;
    match header.iter().next() {
        Some("step") => Ok(header.iter().skip(1).map(str::to_string).collect()),
        _ => Err(malformed(path, &"its first column is not `step`")),
    }
}

/// The rows of a CSV file, header excluded.
fn rows_of(path: &Path, file: File) -> Result<Vec<Vec<String>>> {
    csv::Reader::from_reader(file)
        .records()
        .map(|record| {
            record
                .map(|r| r.iter().map(str::to_string).collect())
                .map_err(|e| read_error(path, e))
        })
        .collect()
}

/// A failed read of a CSV file: the disk's error as such, anything else as a foreign file.
fn read_error(path: &Path, error: csv::Error) -> OrbitError {
    if !error.is_io_error() {
        return malformed(path, &error);
    }
    match error.into_kind() {
        csv::ErrorKind::Io(io) => OrbitError::io("cannot read", path, io),
        _ => unreachable!("is_io_error() holds only for ErrorKind::Io"),
    }
}

fn malformed(path: &Path, why: &dyn std::fmt::Display) -> OrbitError {
    OrbitError::BadCheckpoint {
        path: path.to_path_buf(),
        reason: format!(
            "not a summary CSV file Grove wrote ({why}); move it away or drop `csv` from \
             runtime.loggers"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::logs_of as logs;

    #[test]
    fn rows_follow_the_header_and_a_new_metric_widens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        let mut writer = CsvWriter::new(&path).unwrap();
        assert!(!path.exists());
        writer
            .write_scalars(10, &logs(&[("loss", 2.5), ("lr", 1e-4)]))
            .unwrap();
        writer
            .write_scalars(20, &logs(&[("loss", f64::NAN)]))
            .unwrap();
        writer
            .write_scalars(30, &logs(&[("accuracy", 0.75), ("loss", 1.0)]))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "step,loss,lr,accuracy\n10,2.5,0.0001,\n20,NaN,,\n30,1,,0.75\n"
        );
        // A later writer (a resumed run) continues under the same header.
        let mut resumed = CsvWriter::new(&path).unwrap();
        resumed.write_scalars(40, &logs(&[("lr", 0.5)])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("30,1,,0.75\n40,,0.5,\n"), "{text}");
    }

    #[test]
    fn a_foreign_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        std::fs::write(&path, "epoch,loss\n1,2\n").unwrap();
        let message = CsvWriter::new(&path).unwrap_err().to_string();
        assert!(
            message.contains("train.csv") && message.contains("`step`"),
            "{message}"
        );
    }
}
