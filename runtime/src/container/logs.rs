//! A container's log, in the format of Docker's `json-file` driver: one JSON object
//! per line the guest writes, `{"log":"...\n","stream":"stdout","time":"RFC 3339 nanos"}`,
//! appended to `container-json.log` in the container's directory. As in Docker, a line
//! written in pieces (Rust's unbuffered `eprintln!` writes each argument apart) is kept
//! until its newline; a line longer than 16 KiB is split, and what is left without a
//! newline when a run ends is written as it is.

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

/// The longest entry: a longer line is split (Docker's 16 KiB).
const MAX_ENTRY: usize = 16 * 1024;

/// Appends the guest's lines to the log, optionally echoing its writes to the host's
/// own stdout and stderr (a foreground `capsule run`) as they come.
#[derive(Debug)]
pub struct JsonLog {
    inner: Mutex<Inner>,
    echo: bool,
}

#[derive(Debug)]
struct Inner {
    file: std::fs::File,
    /// Each stream's line so far, not yet ended by a newline.
    pending: [Vec<u8>; 2],
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// One entry as a line of the log file.
fn encode(out: &mut Vec<u8>, stream: Stream, data: &[u8]) -> std::io::Result<()> {
    let entry = Entry {
        log: String::from_utf8_lossy(data).into_owned(),
        stream,
        time: now_nanos(),
    };
    serde_json::to_writer(&mut *out, &entry).map_err(std::io::Error::other)?;
    out.push(b'\n');
    Ok(())
}

impl Inner {
    /// Writes `data` after the stream's pending piece: every whole line becomes an
    /// entry (all of them in one write, so a reader never sees half of one).
    fn append(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let pending = &mut self.pending[slot(stream)];
        pending.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(end) = pending[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| start + i + 1)
            .or_else(|| (pending.len() - start >= MAX_ENTRY).then_some(start + MAX_ENTRY))
        {
            let end = end.min(start + MAX_ENTRY);
            encode(&mut out, stream, &pending[start..end])?;
            start = end;
        }
        pending.drain(..start);
        if out.is_empty() {
            return Ok(());
        }
        self.file.write_all(&out)
    }

    /// Writes both streams' pending pieces as entries of their own.
    fn flush_pending(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let pending = std::mem::take(&mut self.pending[slot(stream)]);
            if !pending.is_empty() {
                encode(&mut out, stream, &pending)?;
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        self.file.write_all(&out)
    }
}

impl JsonLog {
    /// Opens (creating) the log of the container whose directory is `dir`.
    ///
    /// # Errors
    /// The host's error.
    pub fn open(dir: &Path, echo: bool) -> std::io::Result<Self> {
        let file = crate::ambient::open_append(&dir.join(LOG_FILE))?;
        Ok(Self {
            inner: Mutex::new(Inner {
                file,
                pending: [Vec::new(), Vec::new()],
            }),
            echo,
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends a run: what the guest left without a newline is written as it is.
    pub fn end_run(&self) {
        let _ = self.inner().flush_pending();
    }

    /// Adds a line of Capsule's own (a restart, why a run could not start) as the
    /// guest's stderr, after whatever the guest left unfinished.
    pub fn note(&self, text: &str) {
        let mut inner = self.inner();
        let _ = inner.flush_pending();
        let _ = inner.append(Stream::Stderr, format!("capsule: {text}\n").as_bytes());
    }
}

impl Drop for JsonLog {
    fn drop(&mut self) {
        self.end_run();
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
        self.inner().append(stream, data)
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
        let file = match crate::ambient::open_file(&self.path) {
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
        let dir = tempfile::tempdir().expect("test");
        let log = JsonLog::open(dir.path(), false).expect("test");
        log.write(Stream::Stdout, b"hello\n").expect("test");
        log.write(Stream::Stderr, b"\xffbad\n").expect("test");
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).expect("test");
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("test")).expect("test");
        assert_eq!(first["log"], "hello\n");
        assert_eq!(first["stream"], "stdout");
        assert!(first["time"].as_str().expect("test").ends_with('Z'));
        let mut reader = Reader::new(dir.path());
        let entries = reader.next_entries().expect("test");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].stream, Stream::Stderr);
        assert!(reader.next_entries().expect("test").is_empty());
        log.write(Stream::Stdout, b"more").expect("test");
        assert!(
            reader.next_entries().expect("test").is_empty(),
            "half a line"
        );
        log.end_run();
        assert_eq!(reader.next_entries().expect("test")[0].log, "more");
    }

    #[test]
    fn a_line_written_in_pieces_is_one_entry_and_long_lines_are_split() {
        let dir = tempfile::tempdir().expect("test");
        let log = JsonLog::open(dir.path(), false).expect("test");
        for piece in ["library-api: ", "5", " book(s)\nnext", " line\n"] {
            log.write(Stream::Stderr, piece.as_bytes()).expect("test");
        }
        log.write(Stream::Stdout, b"out\n").expect("test");
        log.write(Stream::Stdout, &vec![b'x'; MAX_ENTRY * 2 + 5])
            .expect("test");
        log.note("exited");
        let mut reader = Reader::new(dir.path());
        let logs: Vec<(Stream, usize, String)> = reader
            .next_entries()
            .expect("test")
            .into_iter()
            .map(|e| (e.stream, e.log.len(), e.log.chars().take(14).collect()))
            .collect();
        assert_eq!(
            logs,
            [
                (Stream::Stderr, 23, "library-api: 5".to_owned()),
                (Stream::Stderr, 10, "next line\n".to_owned()),
                (Stream::Stdout, 4, "out\n".to_owned()),
                (Stream::Stdout, MAX_ENTRY, "x".repeat(14)),
                (Stream::Stdout, MAX_ENTRY, "x".repeat(14)),
                (Stream::Stdout, 5, "xxxxx".to_owned()),
                (Stream::Stderr, 16, "capsule: exite".to_owned()),
            ]
        );
    }
}
