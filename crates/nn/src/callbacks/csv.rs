//! `CsvLogger`: one row per epoch with every figure of the epoch log by its Keras name.
use std::io::Write;
use std::path::PathBuf;

use super::{Callback, Run};
use crate::model::{EpochLog, History};
use crate::{NnError, Result};

/// Keras's `CSVLogger`: columns `epoch` (from 0, as Keras writes it) then the log's names
/// sorted; the file is written when training begins (truncated unless `append`) and flushed
/// after each row, so a crashed run keeps its rows.
#[derive(Debug)]
pub struct CsvLogger {
    pub path: PathBuf,
    pub separator: char,
    pub append: bool,
    file: Option<std::io::BufWriter<std::fs::File>>,
    columns: Option<Vec<String>>,
}

impl CsvLogger {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLogger {
            path: path.into(),
            separator: ',',
            append: false,
            file: None,
            columns: None,
        }
    }
    pub fn with_separator(mut self, c: char) -> Self {
        self.separator = c;
        self
    }
    pub fn with_append(mut self, yes: bool) -> Self {
        self.append = yes;
        self
    }
}

impl Callback for CsvLogger {
    fn on_train_begin(&mut self, _run: &mut Run) -> Result<()> {
        // Appending to a file that has rows: its header is already there.
        let has_rows = self.append && std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)
            .map_err(|source| io_error(&self.path, source))?;
        self.file = Some(std::io::BufWriter::new(f));
        self.columns = has_rows.then(Vec::new);
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, _run: &mut Run) -> Result<()> {
        let sep = self.separator.to_string();
        let mut names = log.names();
        names.sort();
        let mut out = String::new();
        let columns = match &self.columns {
            Some(c) if !c.is_empty() => c.clone(),
            Some(_) => names,
            None => {
                out += &format!("epoch{sep}{}\n", names.join(&sep));
                names
            }
        };
        let values: Vec<String> = columns
            .iter()
            .map(|n| log.get(n).map_or(String::new(), |v| v.to_string()))
            .collect();
        out += &format!("{}{sep}{}\n", log.epoch - 1, values.join(&sep));
        self.columns = Some(columns);
        let io = |source| io_error(&self.path, source);
        let Some(f) = self.file.as_mut() else {
            return Err(NnError::Model(
                "CsvLogger: on_epoch_end before on_train_begin".into(),
            ));
        };
        f.write_all(out.as_bytes()).map_err(&io)?;
        f.flush().map_err(&io)
    }

    fn on_train_end(&mut self, _history: &History, _run: &mut Run) -> Result<()> {
        self.file = None;
        Ok(())
    }
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> NnError {
    NnError::Io {
        path: path.to_path_buf(),
        source,
    }
}
