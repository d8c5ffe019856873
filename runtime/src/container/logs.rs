//! A container's log, in the format of Docker's `json-file` driver: one JSON object
//! per write of the guest, `{"log":"...","stream":"stdout","time":"RFC 3339 nanos"}`,
//! appended to `container-json.log` in the container's directory.

use crate::wasi::{LogSink, Stream};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log file's name inside the container's directory.
pub const LOG_FILE: &str = "container-json.log";

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The bytes written (lossily UTF-8, as Docker keeps them).
    pub log: String,
    pub stream: Stream,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

/// Appends the guest's writes to the log, optionally echoing them to the host's own
/// stdout and stderr (a foreground `capsule run`).
#[derive(Debug)]
pub struct JsonLog {
    file: Mutex<std::fs::File>,
    echo: bool,
}

impl JsonLog {
    /// Opens (creating) the log of the container whose directory is `dir`.
    ///
    /// # Errors
    /// The host's error.
    pub fn open(dir: &Path, echo: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))?;
        Ok(Self {
            file: Mutex::new(file),
            echo,
        })
    }

    /// Adds a line of Capsule's own (a restart, why a run could not start) as the
    /// guest's stderr.
    pub fn note(&self, text: &str) {
        let _ = self.append(Stream::Stderr, format!("capsule: {text}\n").as_bytes());
    }

    fn append(&self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(data).into_owned(),
            stream,
            time: now_nanos(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per entry with O_APPEND: a reader never sees half of one.
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write_all(&line)
    }
}

impl LogSink for JsonLog {
    fn write(&self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        if self.echo {
            match stream {
                Stream::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(data)?;
                    out.flush()?;
                }
                Stream::Stderr => std::io::stderr().lock().write_all(data)?,
            }
        }
        self.append(stream, data)
    }
}

/// The current time as RFC 3339 with nanoseconds.
pub fn now_nanos() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let base = crate::image::oci::rfc3339(secs);
    format!("{}.{:09}Z", base.trim_end_matches('Z'), now.subsec_nanos())
}

/// Reads a container's log.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    offset: u64,
}

impl Reader {
    /// A reader from the start of the log in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(LOG_FILE),
            offset: 0,
        }
    }

    /// The entries written since the last call (whole lines only; a missing log is
    /// empty). Lines that are not entries are skipped.
    ///
    /// # Errors
    /// The host's error reading the log.
    pub fn next_entries(&mut self) -> std::io::Result<Vec<Entry>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut reader = std::io::BufReader::new(file);
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(self.offset))?;
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                return Ok(out);
            }
            self.offset += n as u64;
            if let Ok(entry) = serde_json::from_slice::<Entry>(&line) {
                out.push(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_docker_format() {
        let dir = tempfile::tempdir().unwrap();
        let log = JsonLog::open(dir.path(), false).unwrap();
        log.write(Stream::Stdout, b"hello\n").unwrap();
        log.write(Stream::Stderr, b"\xffbad\n").unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["log"], "hello\n");
        assert_eq!(first["stream"], "stdout");
        assert!(first["time"].as_str().unwrap().ends_with('Z'));
        let mut reader = Reader::new(dir.path());
        let entries = reader.next_entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].stream, Stream::Stderr);
        assert!(reader.next_entries().unwrap().is_empty());
        log.write(Stream::Stdout, b"more").unwrap();
        assert_eq!(reader.next_entries().unwrap()[0].log, "more");
    }
}
