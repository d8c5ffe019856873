//! A component's standard streams: the same [`Input`] and [`Output`] a preview1 guest
//! writes to (a container's log, captured bytes, the host's own streams, a client's
//! descriptors), as wasmtime-wasi's `wasi:cli` stdin/stdout/stderr streams.
//!
//! Writes are done when `write` returns (the bytes are in the log or the host stream),
//! so `flush` has nothing left to do and a stream is always ready.

use crate::wasi::p1::stdio::{Input, Output};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// Most bytes one `write` takes (a guest asks with `check-write`).
const WRITE_BUDGET: usize = 1 << 20;

/// An output stream shared by every handle the guest takes on it.
#[derive(Debug, Clone)]
pub struct SharedOutput(Arc<Mutex<Output>>);

impl SharedOutput {
    pub fn new(output: Output) -> Self {
        Self(Arc::new(Mutex::new(output)))
    }
}

impl IsTerminal for SharedOutput {
    fn is_terminal(&self) -> bool {
        self.0.lock().is_ok_and(|o| o.is_terminal())
    }
}

impl StdoutStream for SharedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only preview3 asks for this; preview2 takes `p2_stream`.
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SharedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for SharedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut out = self.0.lock().map_err(|_| StreamError::Closed)?;
        out.write(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

/// The input stream, shared by every handle the guest takes on it.
#[derive(Debug, Clone)]
pub struct SharedInput(Arc<Mutex<Input>>);

impl SharedInput {
    pub fn new(input: Input) -> Self {
        Self(Arc::new(Mutex::new(input)))
    }
}

impl IsTerminal for SharedInput {
    fn is_terminal(&self) -> bool {
        self.0.lock().is_ok_and(|i| i.is_terminal())
    }
}

impl StdinStream for SharedInput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(tokio::io::empty())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SharedInput {
    async fn ready(&mut self) {}
}

impl InputStream for SharedInput {
    /// Reads what is there, waiting for the host's stdin when it has nothing yet (a
    /// component runs on its own thread, as a preview1 guest's `fd_read` waits).
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut input = self.0.lock().map_err(|_| StreamError::Closed)?;
        let mut buf = vec![0u8; size.min(crate::wasi::p1::abi::MAX_IO)];
        match input.read(&mut buf) {
            Ok(0) if size > 0 => Err(StreamError::Closed),
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(StreamError::LastOperationFailed(e.into())),
        }
    }
}
