//! The control channel of a running container: how other commands reach its one
//! owner, the process that runs it (its supervisor, or `capsule run` in the
//! foreground).
//!
//! A Unix socket `control.sock` in the container's directory, mode 0600, whose peer
//! must be the same user (checked with `SO_PEERCRED` on Linux). One request per
//! connection: a JSON line `{"v":1,"op":…}` (file descriptors may ride along with it,
//! `SCM_RIGHTS`: `exec`'s standard streams), answered by a JSON line
//! `{"ok":true,"value":…}` or `{"ok":false,"error":"…"}`; what follows depends on the
//! request (a tar stream in chunks for `cp` out, the raw tar for `cp` in, the exit code
//! of an `exec`). No socket, or nobody listening on it, means no process runs the
//! container: callers then work on its directory, as on any stopped container.
//!
//! Windows has no descriptors to pass over a Unix socket: there the channel is a TCP
//! connection to 127.0.0.1 on a port the owner picks, which it writes with a random
//! token to `control.port` in the container's directory (the user's own); a client
//! sends the token first. Everything after is the same, but for `exec`, which needs
//! the caller's descriptors (refused there with one line).

use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Read, Write};
#[cfg(windows)]
use std::net::TcpStream as Stream;
#[cfg(unix)]
use std::os::fd::AsFd;
#[cfg(unix)]
pub use std::os::fd::{BorrowedFd, OwnedFd};
#[cfg(unix)]
use std::os::unix::net::UnixStream as Stream;
use std::path::{Path, PathBuf};
use std::time::Duration;
#[cfg(windows)]
pub use windows::{BorrowedFd, OwnedFd};

/// The version of the messages; a supervisor answers only its own.
pub const VERSION: u32 = 1;

/// The socket's name in the container's directory.
pub const SOCKET: &str = "control.sock";

/// Longest request line accepted.
const MAX_REQUEST: usize = 1 << 20;

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest chunk of a streamed body.
const CHUNK: usize = 64 * 1024;

/// What a client asks of a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Stop the container: the guest is interrupted after `grace_ms` (0: `kill`).
    Stop { grace_ms: u64 },
    /// Copy `guest` out as a tar stream in chunks after the reply, or, with `host`
    /// (absolute; clients of earlier releases), to that host path, written by the
    /// owner. Clients ask for the stream and write the files themselves, so that an
    /// owner that ends in the middle leaves nothing half-written on the host.
    CopyOut {
        guest: String,
        host: Option<PathBuf>,
    },
    /// Copy the host path `host` (absolute), or without one the tar stream that
    /// follows the request line, into `guest`.
    CopyIn {
        guest: String,
        host: Option<PathBuf>,
    },
    /// Hold the container's filesystem still until the connection closes (`diff`,
    /// `commit` read it meanwhile).
    Freeze,
    /// Run another program in the container; its stdin (with `interactive`), stdout
    /// and stderr ride along with the request.
    Exec(ExecRequest),
    /// The programs running (`capsule top`).
    Top,
    /// The container's usage (`capsule stats`).
    Stats,
}

/// `capsule exec`'s request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The program and its arguments (found through `PATH` as `run` finds them).
    pub args: Vec<String>,
    /// `-e KEY=VALUE`, over the container's environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// `-w DIR`, else the container's working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// `-i`: the client's stdin is the first descriptor passed.
    #[serde(default)]
    pub interactive: bool,
    /// No descriptors ride along (Windows): the program's stdout and stderr come back
    /// over the connection as frames ([`FrameSink`], [`read_frames`]), ended by an
    /// empty one, before the exit line; its stdin is `input`.
    #[serde(default)]
    pub streamed: bool,
    /// A streamed program's whole stdin, base64 (it has no stream of its own; the
    /// request line's limit bounds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// Where a streamed `exec`'s program writes: frames on the connection, each the
/// stream (1 stdout, 2 stderr; 0 ends), its length (`u32`, big-endian), the bytes.
#[derive(Debug)]
pub struct FrameSink<W: Write + Send + std::fmt::Debug> {
    writer: std::sync::Mutex<W>,
}

impl<W: Write + Send + std::fmt::Debug> FrameSink<W> {
    /// Frames written to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: std::sync::Mutex::new(writer),
        }
    }

    fn frame(&self, tag: u8, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(io::Error::other)?;
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&len.to_be_bytes());
        writer.write_all(&head)?;
        writer.write_all(data)?;
        writer.flush()
    }

    /// The last frame: the program has ended.
    ///
    /// # Errors
    /// The host's error (the client went away).
    pub fn end(&self) -> io::Result<()> {
        self.frame(0, &[])
    }
}

impl<W: Write + Send + std::fmt::Debug> crate::wasi::LogSink for FrameSink<W> {
    fn write(&self, stream: crate::wasi::Stream, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let tag = match stream {
            crate::wasi::Stream::Stdout => 1,
            crate::wasi::Stream::Stderr => 2,
        };
        self.frame(tag, data)
    }
}

/// Copies a streamed `exec`'s frames ([`FrameSink`]) to `stdout` and `stderr` until
/// the last one.
///
/// # Errors
/// The host's error; `UnexpectedEof` when the connection ends before the last frame
/// (the container stopped).
pub fn read_frames(
    stream: &mut impl Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> io::Result<()> {
    let mut head = [0u8; 5];
    let mut buf = vec![0u8; CHUNK];
    loop {
        stream.read_exact(&mut head)?;
        let mut left = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let out: &mut dyn Write = match head[0] {
            0 => return Ok(()),
            1 => &mut *stdout,
            2 => &mut *stderr,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown stream {other} in an exec's output"),
                ));
            }
        };
        while left > 0 {
            let n = left.min(buf.len());
            stream.read_exact(&mut buf[..n])?;
            out.write_all(&buf[..n])?;
            left -= n;
        }
        out.flush()?;
    }
}

/// One program running in a container, as `top` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Capsule's number for it: 1 for the container's program, then `exec`'s.
    pub pid: u32,
    pub command: Vec<String>,
    /// Started by `exec` (or a health check).
    pub exec: bool,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// CPU time it has used (Linux), in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Bytes of its linear memories and tables.
    pub memory: u64,
    /// Descriptors it holds open.
    pub fds: u64,
}

/// What a running container uses, as `stats` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// CPU time the process that runs it has used, in nanoseconds.
    pub cpu_ns: u64,
    /// Bytes of linear memory and tables of all its programs.
    pub memory: u64,
    /// Its `--memory` (or the default limit).
    pub memory_limit: u64,
    /// Descriptors its programs hold open.
    pub fds: u64,
    /// Programs running in it.
    pub programs: u64,
}

/// How an `exec`'d program ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecEnd {
    pub exit: i32,
    /// Why it could not run, when it could not.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    request: Request,
}

/// The first line of an answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub value: serde_json::Value,
    /// The owner runs no guest now (between restarts, or stopping): the container's
    /// files are its directory's, as a stopped container's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_running: bool,
}

impl Reply {
    pub fn ok(value: serde_json::Value) -> Self {
        Self {
            ok: true,
            error: None,
            value,
            not_running: false,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(text.into()),
            value: serde_json::Value::Null,
            not_running: false,
        }
    }

    /// The owner runs no guest now.
    pub fn not_running(text: impl Into<String>) -> Self {
        Self {
            not_running: true,
            ..Self::error(text)
        }
    }
}

/// Errors talking to a container's owner.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot talk to the process that runs the container")]
    Io(#[from] io::Error),
    /// The owner answered with an error.
    #[error("{0}")]
    Refused(String),
    #[error("the process that runs the container answered what this Capsule cannot read: {0}")]
    Garbled(String),
    /// It runs no guest now, or went away while answering (it stopped).
    #[error("{0}")]
    NotRunning(String),
}

impl ControlError {
    /// Whether the owner runs no guest (any more): the caller may work on the
    /// container's directory, as for a stopped container.
    pub fn is_not_running(&self) -> bool {
        match self {
            Self::NotRunning(_) => true,
            Self::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            Self::Garbled(text) => text.starts_with(CLOSED),
            Self::Refused(_) => false,
        }
    }
}

/// How [`read_line`] says the other side went away.
const CLOSED: &str = "it closed the connection";

/// A connection to a container's owner, after its first answer.
#[derive(Debug)]
pub struct Answer {
    pub value: serde_json::Value,
    /// What follows the answer (a stream, an exit line).
    pub stream: io::BufReader<Stream>,
}

/// A connection to the process that runs a container, before its request.
#[derive(Debug)]
pub struct Connection(Stream);

/// Connects to the process that runs the container in `dir`; `None` when no process
/// listens there (it is not running, or runs under a Capsule without the channel).
///
/// # Errors
/// The host's error.
pub fn connect(dir: &Path) -> Result<Option<Connection>, ControlError> {
    #[cfg(unix)]
    let connected = crate::ambient::connect_unix(dir, SOCKET);
    #[cfg(windows)]
    let connected = windows::connect(dir);
    match connected {
        Ok(stream) => Ok(Some(Connection(stream))),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// [`connect`], then [`Connection::send`].
///
/// # Errors
/// As both.
pub fn call(
    dir: &Path,
    request: Request,
    fds: &[BorrowedFd<'_>],
    body: Option<&mut dyn Read>,
) -> Result<Option<Answer>, ControlError> {
    match connect(dir)? {
        Some(connection) => connection.send(request, fds, body).map(Some),
        None => Ok(None),
    }
}

impl Connection {
    /// Sends `request` (with `fds`) and reads the first answer. `body`, when given, is
    /// sent after the request line and the sending side then closed (a `cp` in's tar).
    ///
    /// # Errors
    /// [`ControlError::Refused`] with the owner's words when it refuses; the host's
    /// error.
    pub fn send(
        self,
        request: Request,
        fds: &[BorrowedFd<'_>],
        body: Option<&mut dyn Read>,
    ) -> Result<Answer, ControlError> {
        let stream = self.0;
        let mut line = serde_json::to_vec(&Envelope {
            v: VERSION,
            request,
        })
        .map_err(|e| ControlError::Garbled(e.to_string()))?;
        line.push(b'\n');
        send_with_fds(&stream, &line, fds)?;
        if let Some(body) = body {
            let mut writer = &stream;
            match io::copy(body, &mut writer) {
                Ok(_) => stream.shutdown(std::net::Shutdown::Write)?,
                // The owner refused before reading it all: its answer says why.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut stream = io::BufReader::new(stream);
        let reply: Reply = read_line(&mut stream)?;
        if !reply.ok && reply.not_running {
            return Err(ControlError::NotRunning(reply.error.unwrap_or_default()));
        }
        if !reply.ok {
            return Err(ControlError::Refused(
                reply
                    .error
                    .unwrap_or_else(|| "the request was refused".to_owned()),
            ));
        }
        Ok(Answer {
            value: reply.value,
            stream,
        })
    }
}

/// Reads one JSON line.
///
/// # Errors
/// The host's error; [`ControlError::Garbled`] for what is not the expected JSON
/// (end of stream included: the other side went away).
pub fn read_line<T: serde::de::DeserializeOwned>(
    stream: &mut impl BufRead,
) -> Result<T, ControlError> {
    let mut line = Vec::new();
    stream
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(ControlError::Garbled(format!(
            "{CLOSED} (it ended, or was stopped)"
        )));
    }
    serde_json::from_slice(&line).map_err(|e| ControlError::Garbled(e.to_string()))
}

/// Writes one JSON line.
///
/// # Errors
/// The host's error.
pub fn write_line(mut stream: impl Write, value: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.flush()
}

#[cfg(windows)]
fn send_with_fds(stream: &Stream, bytes: &[u8], _fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut writer = stream;
    writer.write_all(bytes)
}

#[cfg(unix)]
fn send_with_fds(stream: &Stream, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let sent = sendmsg(
        stream,
        &[io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )?;
    // The descriptors went with the first bytes; the rest of the line follows.
    let mut writer = stream;
    writer.write_all(&bytes[sent..])
}

/// A stream of chunks (`u32` length, big-endian, then the bytes; a zero length ends
/// it) on the owner's side: what `cp` out writes its tar into.
#[derive(Debug)]
pub struct ChunkWriter<W: Write> {
    inner: W,
}

impl<W: Write> ChunkWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Ends the stream; the writer is given back for the status line.
    ///
    /// # Errors
    /// The host's error.
    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&0u32.to_be_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK);
        if n == 0 {
            return Ok(0);
        }
        self.inner.write_all(&(n as u32).to_be_bytes())?;
        self.inner.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A chunked stream read as the bytes it carries, up to its end (a zero length).
/// [`ChunkReader::broken`] says whether the stream broke off before that end: the
/// owner went away (its process ended) in the middle of it.
#[derive(Debug)]
pub struct ChunkReader<R: Read> {
    inner: R,
    /// Bytes of the current chunk not read yet.
    left: usize,
    ended: bool,
    broken: bool,
}

impl<R: Read> ChunkReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            ended: false,
            broken: false,
        }
    }

    /// Whether the stream broke off before its end.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Reads what is left up to the end of the stream.
    ///
    /// # Errors
    /// As [`Read::read`].
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }

    /// The stream, for what follows the end (a status line).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn cut<T>(&mut self, e: io::Error) -> io::Result<T> {
        if matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
        ) {
            self.broken = true;
        }
        Err(e)
    }
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut len = [0u8; 4];
            if let Err(e) = self.inner.read_exact(&mut len) {
                return self.cut(e);
            }
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 {
                self.ended = true;
                return Ok(0);
            }
            if len > CHUNK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a chunk longer than the protocol allows",
                ));
            }
            self.left = len;
        }
        let want = buf.len().min(self.left);
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => self.cut(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.left -= n;
                Ok(n)
            }
            Err(e) => self.cut(e),
        }
    }
}

// ---- the owner's side ---------------------------------------------------------------

/// A request as the owner receives it.
pub struct Incoming {
    pub request: Request,
    /// Descriptors that came with it.
    pub fds: Vec<OwnedFd>,
    /// The rest of the connection: a body to read, the answer to write.
    pub reader: Box<dyn BufRead + Send>,
    pub writer: Stream,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("request", &self.request)
            .field("fds", &self.fds)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Answers with `reply`.
    ///
    /// # Errors
    /// The host's error (the client went away).
    pub fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        write_line(&self.writer, reply)
    }
}

/// Listening for requests until the process ends; the socket is removed when dropped.
#[derive(Debug)]
pub struct Listening {
    dir: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = crate::ambient::remove_file(&self.dir.join(SOCKET));
        #[cfg(windows)]
        let _ = crate::ambient::remove_file(&self.dir.join(windows::PORT));
    }
}

/// Listens on the control socket of the container in `dir`, calling `handle` on a
/// thread of its own for each request (an `exec` may run long while a `stop` comes).
///
/// # Errors
/// The host's error making the socket.
pub fn listen(
    dir: &Path,
    handle: impl Fn(Incoming) + Send + Sync + 'static,
) -> io::Result<Listening> {
    #[cfg(unix)]
    let listener = crate::ambient::bind_unix(dir, SOCKET)?;
    #[cfg(windows)]
    let (listener, token) = windows::bind(dir)?;
    let handle = std::sync::Arc::new(handle);
    std::thread::Builder::new()
        .name("control".to_owned())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handle = handle.clone();
                #[cfg(windows)]
                let token = token.clone();
                let _ = std::thread::Builder::new()
                    .name("control-request".to_owned())
                    .spawn(move || {
                        #[cfg(windows)]
                        if !windows::admit(&stream, &token) {
                            return;
                        }
                        if let Some(incoming) = receive(stream) {
                            handle(incoming);
                        }
                    });
            }
        })?;
    Ok(Listening {
        dir: dir.to_owned(),
    })
}

/// Reads one request (answering a malformed one with an error); `None` when there is
/// nothing to handle.
fn receive(stream: Stream) -> Option<Incoming> {
    #[cfg(target_os = "linux")]
    {
        // Only the owner: the socket's mode says so already; this says it twice.
        let peer = rustix::net::sockopt::socket_peercred(&stream).ok()?;
        if peer.uid != rustix::process::geteuid() {
            return None;
        }
    }
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    let (first, fds) = receive_with_fds(&stream).ok()?;
    let writer = stream.try_clone().ok()?;
    let mut reader = io::BufReader::new(io::Cursor::new(first).chain(stream));
    let mut line = Vec::new();
    let read = (&mut reader)
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', &mut line);
    // The rest of the connection has no deadline (a body may take long to come).
    let _ = writer.set_read_timeout(None);
    let refuse = |text: String| {
        let _ = write_line(&writer, &Reply::error(text));
        None
    };
    if read.is_err() || !line.ends_with(b"\n") {
        return refuse("the request did not come whole".to_owned());
    }
    let value: serde_json::Value = match serde_json::from_slice(&line) {
        Ok(value) => value,
        Err(e) => return refuse(format!("the request is not JSON: {e}")),
    };
    let version = value.get("v").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(VERSION)) {
        return refuse(format!(
            "the process that runs this container speaks control version {VERSION}, the \
             request version {}: run this command with the Capsule that started the \
             container, or restart the container",
            version.map_or_else(|| "none".to_owned(), |v| v.to_string())
        ));
    }
    let envelope: Envelope = match serde_json::from_value(value) {
        Ok(envelope) => envelope,
        Err(e) => return refuse(format!("unknown request: {e}")),
    };
    // The reader's buffer may hold the start of a body: it stays in the reader.
    Some(Incoming {
        request: envelope.request,
        fds,
        reader: Box::new(reader),
        writer,
    })
}

#[cfg(windows)]
fn receive_with_fds(stream: &Stream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut reader = stream;
    let read = reader.read(&mut buf)?;
    buf.truncate(read);
    Ok((buf, Vec::new()))
}

#[cfg(unix)]
fn receive_with_fds(stream: &Stream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut buf = vec![0u8; 64 * 1024];
    // Received close-on-exec: atomically where the host can (Linux), else set at once
    // after (macOS has no MSG_CMSG_CLOEXEC).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = RecvFlags::CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = RecvFlags::empty();
    let received = recvmsg(
        stream,
        &mut [io::IoSliceMut::new(&mut buf)],
        &mut control,
        flags,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            for fd in received {
                #[cfg(not(any(target_os = "linux", target_os = "android")))]
                rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
                fds.push(fd);
            }
        }
    }
    buf.truncate(received.bytes);
    Ok((buf, fds))
}

/// A descriptor as a borrowed handle (for [`call`]).
#[cfg(unix)]
pub fn borrow(fd: &impl AsFd) -> BorrowedFd<'_> {
    fd.as_fd()
}

/// The channel on Windows: loopback TCP, a port and a token in the container's
/// directory, no descriptors.
#[cfg(windows)]
mod windows {
    use std::io::{self, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::Path;

    /// The file with the owner's port and token.
    pub const PORT: &str = "control.port";

    /// No descriptors pass between processes here: a type with no values.
    #[derive(Debug, Clone, Copy)]
    pub struct BorrowedFd<'a>(std::convert::Infallible, std::marker::PhantomData<&'a ()>);

    /// No descriptors pass between processes here: a type with no values.
    #[derive(Debug)]
    pub struct OwnedFd(std::convert::Infallible);

    /// Listens on a loopback port of the system's choosing and says it, with a new
    /// random token, in the container's directory (written whole, then renamed).
    pub fn bind(dir: &Path) -> io::Result<(TcpListener, std::sync::Arc<String>)> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(io::Error::other)?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        super::super::write_unsynced(dir, PORT, format!("{port} {token}\n").as_bytes())?;
        Ok((listener, std::sync::Arc::new(token)))
    }

    /// Connects to the owner named in `dir`, and gives the token first.
    pub fn connect(dir: &Path) -> io::Result<TcpStream> {
        let text = crate::ambient::read_text(&dir.join(PORT))?;
        let (port, token) = text
            .trim()
            .split_once(' ')
            .and_then(|(p, t)| Some((p.parse::<u16>().ok()?, t.to_owned())))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no control port"))?;
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.write_all(format!("{token}\n").as_bytes())?;
        Ok(stream)
    }

    /// Whether the connection's first line is the token (read a byte at a time, so
    /// nothing of the request behind it is taken).
    pub fn admit(stream: &TcpStream, token: &str) -> bool {
        if stream
            .set_read_timeout(Some(super::REQUEST_TIMEOUT))
            .is_err()
        {
            return false;
        }
        let mut line = Vec::with_capacity(token.len() + 1);
        let mut byte = [0u8; 1];
        let mut reader = stream;
        while line.len() <= token.len() {
            match reader.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break,
                Ok(1) => line.push(byte[0]),
                _ => return false,
            }
        }
        // Compared whole, whatever differs first.
        line.len() == token.len()
            && line
                .iter()
                .zip(token.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// An owner that answers every request with the number of descriptors it got.
    fn listening(dir: &Path) -> Listening {
        listen(dir, |mut incoming| {
            let reply = Reply::ok(serde_json::json!({
                "fds": incoming.fds.len(),
                "op": format!("{:?}", incoming.request),
            }));
            let _ = incoming.reply(&reply);
        })
        .expect("listen")
    }

    fn raw(dir: &Path, line: &str) -> Reply {
        let mut stream = crate::ambient::connect_unix(dir, SOCKET).expect("connect");
        stream.write_all(line.as_bytes()).expect("send");
        read_line(&mut io::BufReader::new(stream)).expect("a reply")
    }

    #[test]
    fn requests_carry_descriptors_and_other_versions_or_ops_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let listening = listening(dir.path());
        let (_read, write) = std::io::pipe().expect("pipe");
        let answer = call(
            dir.path(),
            Request::Top,
            &[write.as_fd(), write.as_fd()],
            None,
        )
        .expect("call")
        .expect("someone listens");
        assert_eq!(answer.value["fds"], 2);
        assert_eq!(answer.value["op"], "Top");

        let reply = raw(dir.path(), "{\"v\":99,\"op\":\"top\"}\n");
        assert!(!reply.ok);
        assert!(reply.error.expect("why").contains("control version 1"));
        let reply = raw(dir.path(), "{\"v\":1,\"op\":\"format-disk\"}\n");
        assert!(reply.error.expect("why").starts_with("unknown request"));
        let reply = raw(dir.path(), "not json\n");
        assert!(reply.error.expect("why").contains("not JSON"));

        // The socket is its owner's only, and goes with it.
        use std::os::unix::fs::PermissionsExt;
        let socket = dir.path().join(SOCKET);
        let mode = std::fs::symlink_metadata(&socket)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(listening);
        assert!(
            call(dir.path(), Request::Top, &[], None)
                .expect("no error")
                .is_none()
        );
    }

    #[test]
    fn a_socket_path_too_long_for_sockaddr_un_is_reached_through_proc() {
        let dir = tempfile::tempdir().expect("dir");
        let deep = dir.path().join("d".repeat(120));
        std::fs::create_dir(&deep).expect("a deep directory");
        let _listening = listening(&deep);
        let answer = call(&deep, Request::Stats, &[], None)
            .expect("call")
            .expect("someone listens");
        assert_eq!(answer.value["op"], "Stats");
    }

    #[test]
    fn chunks_carry_a_stream_and_its_end() {
        let mut wire = Vec::new();
        let mut writer = ChunkWriter::new(&mut wire);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        writer.write_all(&data).expect("write");
        writer.finish().expect("finish");
        let mut out = Vec::new();
        let copied = io::copy(&mut ChunkReader::new(&wire[..]), &mut out).expect("read back");
        assert_eq!((copied as usize, &out), (data.len(), &data));
        // Broken off: an error, not a short copy taken for whole.
        let mut short = Vec::new();
        assert!(io::copy(&mut ChunkReader::new(&wire[..wire.len() - 10]), &mut short).is_err());
        // Read as a stream: whole, then what follows the end is left for the status.
        wire.extend_from_slice(b"status\n");
        let mut reader = ChunkReader::new(&wire[..]);
        let mut read = Vec::new();
        reader.read_to_end(&mut read).expect("read");
        assert!(read == data && !reader.broken());
        reader.drain().expect("drain");
        assert_eq!(*reader.get_mut(), b"status\n");
        // Broken off in a chunk's length or its bytes: an error, and said broken.
        for cut in [wire.len() - 9, wire.len() - 12, 3] {
            let mut reader = ChunkReader::new(&wire[..cut]);
            assert!(reader.read_to_end(&mut Vec::new()).is_err());
            assert!(reader.broken(), "cut at {cut}");
        }
    }
}
