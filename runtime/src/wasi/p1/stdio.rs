//! The guest's standard streams: the host's own, or in-memory buffers for embedders.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// Where the guest's stdin comes from.
#[derive(Debug)]
pub enum Input {
    /// The host process's stdin.
    Inherit,
    /// Fixed bytes, then end of file.
    Bytes { data: Vec<u8>, pos: usize },
    /// A host file or pipe (`capsule exec -i`: the client's stdin, passed over the
    /// control channel).
    File(std::fs::File),
}

impl Input {
    /// Reads into `buf`; 0 at end of input.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::Inherit => std::io::stdin().lock().read(buf),
            Input::File(file) => file.read(buf),
            Input::Bytes { data, pos } => {
                let n = buf.len().min(data.len() - *pos);
                buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                *pos += n;
                Ok(n)
            }
        }
    }

    /// Whether reads go to a terminal.
    pub fn is_terminal(&self) -> bool {
        match self {
            Input::Inherit => std::io::IsTerminal::is_terminal(&std::io::stdin()),
            Input::File(file) => std::io::IsTerminal::is_terminal(file),
            Input::Bytes { .. } => false,
        }
    }
}

/// A shared, bounded buffer that captures a stream.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// The bytes captured so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Which standard stream a write came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where a container's output is kept (its log), shared by both streams.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// Keeps one write of the guest.
    ///
    /// # Errors
    /// The host's error; the guest's write fails with it.
    fn write(&self, stream: Stream, data: &[u8]) -> std::io::Result<()>;
}

/// Where one of the guest's output streams goes.
#[derive(Debug)]
pub enum Output {
    Stdout,
    Stderr,
    /// A host file or pipe (`capsule exec`: the client's stdout or stderr).
    File(std::fs::File),
    /// Into a log.
    Sink {
        sink: Arc<dyn LogSink>,
        stream: Stream,
    },
    /// Into memory, up to `limit` bytes; a write past it fails with `ENOSPC`.
    Capture {
        buf: Capture,
        limit: usize,
    },
}

impl Output {
    /// Writes all of `data` (or fails).
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(data)?;
                out.flush()
            }
            Output::Stderr => std::io::stderr().lock().write_all(data),
            Output::File(file) => file.write_all(data),
            Output::Sink { sink, stream } => sink.write(*stream, data),
            Output::Capture { buf, limit } => {
                let mut guard = buf
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if guard.len() + data.len() > *limit {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "captured output limit reached",
                    ));
                }
                guard.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// Whether writes go to a terminal.
    pub fn is_terminal(&self) -> bool {
        match self {
            Output::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
            Output::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
            Output::File(file) => std::io::IsTerminal::is_terminal(file),
            Output::Capture { .. } | Output::Sink { .. } => false,
        }
    }
}
