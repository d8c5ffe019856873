//! How a guest runs ([`RunOptions`]) and how its run ended ([`Output`], [`ExitStatus`]).

use crate::error::{Error, map};
use capsule_runtime::exit;
use capsule_runtime::spec::{GuestPath, Mount};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to run a module or an image.
///
/// Defaults: no arguments beyond `argv[0]`, an empty environment (an image's `ENV` for
/// images), no mounts, workdir `/` (an image's `WORKDIR`), empty stdin, output captured
/// up to 16 MiB per stream, and Capsule's default limits (4 GiB of memory, no time or
/// fuel limit).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) workdir: Option<GuestPath>,
    pub(crate) export: Option<String>,
    pub(crate) entrypoint: Option<String>,
    pub(crate) stdin: Vec<u8>,
    pub(crate) output_limit: usize,
    pub(crate) limits: capsule_runtime::spec::Limits,
    pub(crate) stdout: Option<Sink>,
    pub(crate) stderr: Option<Sink>,
}

/// A writer the guest's output is streamed to.
#[derive(Clone)]
pub(crate) struct Sink(pub(crate) Arc<Mutex<dyn Write + Send>>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            workdir: None,
            export: None,
            entrypoint: None,
            stdin: Vec::new(),
            output_limit: 16 << 20,
            limits: capsule_runtime::spec::Limits::default(),
            stdout: None,
            stderr: None,
        }
    }
}

impl RunOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an argument (after `argv[0]`; for an image, the arguments replace its
    /// `CMD`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        args.into_iter().fold(self, Self::arg)
    }

    /// Sets an environment variable (over an image's `ENV`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Bytes the guest reads from stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    /// Most bytes kept of captured stdout and of captured stderr each (default 16 MiB);
    /// a write past it fails in the guest with `ENOSPC`.
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// Streams the guest's stdout to `writer` as it writes, instead of capturing it
    /// ([`Output::stdout`] is then empty).
    ///
    /// ```
    /// # fn main() -> Result<(), capsule_sdk::Error> {
    /// use capsule_sdk::{Capsule, RunOptions};
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Clone, Default)]
    /// struct Lines(Arc<Mutex<Vec<u8>>>);
    /// impl std::io::Write for Lines {
    ///     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().extend_from_slice(buf);
    ///         Ok(buf.len())
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// }
    ///
    /// let capsule = Capsule::in_memory()?;
    /// let hello = capsule.hello_world()?;
    /// let seen = Lines::default();
    /// let out = capsule.run(&hello, RunOptions::new().stdout(seen.clone()))?;
    /// assert!(out.status.success() && out.stdout.is_empty());
    /// assert!(String::from_utf8_lossy(&seen.0.lock().unwrap()).contains("Hello from Capsule"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stdout(mut self, writer: impl Write + Send + 'static) -> Self {
        self.stdout = Some(Sink(Arc::new(Mutex::new(writer))));
        self
    }

    /// Streams the guest's stderr to `writer` as it writes, instead of capturing it.
    pub fn stderr(mut self, writer: impl Write + Send + 'static) -> Self {
        self.stderr = Some(Sink(Arc::new(Mutex::new(writer))));
        self
    }

    /// Calls an export instead of `_start` (after `_initialize`, for reactors). An export
    /// without parameters gets the arguments as its argv; one with parameters takes them
    /// from the arguments, exactly as many as it has.
    pub fn export(mut self, name: impl Into<String>) -> Self {
        self.export = Some(name.into());
        self
    }

    /// For images: run this program (a path in the image) instead of the image's
    /// `ENTRYPOINT`, without its `CMD` (`--entrypoint`). `PATH#EXPORT` calls an export
    /// of a reactor.
    pub fn entrypoint(mut self, path: impl Into<String>) -> Self {
        self.entrypoint = Some(path.into());
        self
    }

    /// Mounts a host directory at a guest path, in Docker's `-v` syntax
    /// (`HOST:GUEST[:ro]`).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for bad syntax or a host path that is not a
    /// directory.
    pub fn volume(mut self, spec: &str) -> Result<Self, Error> {
        self.mounts
            .push(Mount::parse_volume(spec).map_err(|e| map::spec(&e))?);
        Ok(self)
    }

    /// The guest's working directory (absolute).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for a relative path or `..`.
    pub fn workdir(mut self, dir: &str) -> Result<Self, Error> {
        self.workdir = Some(GuestPath::parse(dir).map_err(|e| map::spec(&e))?);
        Ok(self)
    }

    /// Most bytes of linear memory (and table elements) the guest may grow to
    /// (`--memory`); a guest refused memory ends [`ExitStatus::OutOfMemory`]. Less than
    /// 64 KiB (one page) is refused by the run, as `--memory` refuses it:
    /// [`crate::ErrorKind::InvalidInput`].
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory = Some(bytes);
        self
    }

    /// Wall-clock time before the guest is interrupted (`--timeout`):
    /// [`Interruption::Timeout`]. Zero, or more than 10^9 seconds, is refused by the run
    /// ([`crate::ErrorKind::InvalidInput`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.limits.timeout = Some(limit);
        self
    }

    /// Instructions (wasmtime fuel units) the guest may execute (`--fuel`):
    /// [`Interruption::OutOfFuel`] past it. Zero is refused by the run
    /// ([`crate::ErrorKind::InvalidInput`]).
    pub fn fuel(mut self, units: u64) -> Self {
        self.limits.fuel = Some(units);
        self
    }

    /// Descriptors the guest may hold open at once (`--ulimit nofile`); zero or more
    /// than 2^20 is refused by the run ([`crate::ErrorKind::InvalidInput`]).
    pub fn max_open_files(mut self, count: u32) -> Self {
        self.limits.nofile = Some(count);
        self
    }

    /// Lets a WASI 0.2 component connect where `rule` says (`--allow-outbound`:
    /// `SCHEME://HOST:PORT` in Spin's syntax, e.g. `tcp://db:5432`,
    /// `tcp://10.0.0.0/8:*`); repeatable. Without any, a component connects nowhere.
    /// A preview1 module given one is refused when it runs.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] for a rule that does not parse, saying why.
    pub fn allow_outbound(mut self, rule: &str) -> Result<Self, Error> {
        capsule_runtime::net::allow::AllowList::parse(&[rule])
            .map_err(|e| Error::from_source(crate::ErrorKind::InvalidInput, &e))?;
        self.limits.outbound.push(rule.to_owned());
        Ok(self)
    }

    /// Every connection and name lookup allowed (`--network host`): an escape hatch.
    pub fn network_host(mut self) -> Self {
        self.limits.network_host = true;
        self
    }

    pub(crate) fn streamed(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }
}

/// Where a streamed run's output goes: each stream to its writer, or captured.
#[derive(Debug)]
pub(crate) struct Streams {
    stdout: Option<Sink>,
    stderr: Option<Sink>,
    captured: Mutex<(Vec<u8>, Vec<u8>)>,
    limit: usize,
}

impl Streams {
    pub(crate) fn new(options: &RunOptions) -> Self {
        Self {
            stdout: options.stdout.clone(),
            stderr: options.stderr.clone(),
            captured: Mutex::new((Vec::new(), Vec::new())),
            limit: options.output_limit,
        }
    }

    pub(crate) fn captured(&self) -> (Vec<u8>, Vec<u8>) {
        std::mem::take(
            &mut *self
                .captured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl capsule_runtime::wasi::LogSink for Streams {
    fn write(&self, stream: capsule_runtime::wasi::Stream, data: &[u8]) -> std::io::Result<()> {
        use capsule_runtime::wasi::Stream;
        let sink = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        if let Some(Sink(writer)) = sink {
            let mut writer = writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            writer.write_all(data)?;
            return writer.flush();
        }
        let mut captured = self
            .captured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buf = match stream {
            Stream::Stdout => &mut captured.0,
            Stream::Stderr => &mut captured.1,
        };
        if buf.len() + data.len() > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "captured output limit reached",
            ));
        }
        buf.extend_from_slice(data);
        Ok(())
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// What it wrote to stdout (empty when streamed).
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (empty when streamed).
    pub stderr: Vec<u8>,
    /// Values returned by an export called with [`RunOptions::export`], formatted as
    /// wasm values (`42`, `1.5`).
    pub results: Vec<String>,
}

/// How a guest's run ended. A guest that fails is not an SDK error: its run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It returned from its entry (0) or called `proc_exit` with a status in `0..=255`.
    Exited(u8),
    /// It trapped.
    Trapped(Trap),
    /// It called `proc_exit` with a status outside `0..=255`.
    InvalidExit(u32),
    /// It was stopped from outside or by a limit.
    Interrupted(Interruption),
    /// It did not succeed after its memory limit refused it memory (the limit, in
    /// bytes).
    OutOfMemory(u64),
}

impl ExitStatus {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }

    /// The exit status, if it exited by itself.
    pub fn code(&self) -> Option<u8> {
        match self {
            ExitStatus::Exited(code) => Some(*code),
            _ => None,
        }
    }

    /// The code `capsule run` exits with for this end (Docker's and wasmtime's: 134
    /// for a trap, 137 killed or out of memory, 124 timed out, 152 out of fuel).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => i32::from(*code),
            ExitStatus::Trapped(_) | ExitStatus::InvalidExit(_) => i32::from(exit::GUEST_FAULT),
            ExitStatus::Interrupted(Interruption::Killed) => i32::from(exit::KILLED),
            ExitStatus::OutOfMemory(_) => i32::from(exit::OUT_OF_MEMORY),
            ExitStatus::Interrupted(Interruption::Timeout(_)) => i32::from(exit::TIMEOUT),
            ExitStatus::Interrupted(Interruption::OutOfFuel(_)) => i32::from(exit::OUT_OF_FUEL),
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with {code}"),
            ExitStatus::Trapped(trap) => write!(f, "trapped: {}", trap.reason),
            ExitStatus::InvalidExit(code) => write!(f, "called proc_exit({code})"),
            ExitStatus::Interrupted(why) => write!(f, "{why}"),
            ExitStatus::OutOfMemory(limit) => write!(f, "ran out of memory (limit {limit} bytes)"),
        }
    }
}

/// Why a run was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interruption {
    /// Stopped after its grace period, or killed.
    Killed,
    /// Its [`RunOptions::timeout`] passed.
    Timeout(Duration),
    /// It used up its [`RunOptions::fuel`].
    OutOfFuel(u64),
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interruption::Killed => f.write_str("killed"),
            Interruption::Timeout(d) => write!(f, "timed out after {d:?}"),
            Interruption::OutOfFuel(n) => write!(f, "ran out of fuel ({n} units)"),
        }
    }
}

/// A trap: its reason and the wasm backtrace, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// What trapped (`unreachable`, `integer divide by zero`, ...).
    pub reason: String,
    /// The wasm frames, innermost first.
    pub frames: Vec<Frame>,
}

/// One wasm frame of a trap's backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The module's name for itself, if it has one.
    pub module: Option<String>,
    /// The function's index in the module.
    pub func_index: u32,
    /// The function's name from the name section, if present.
    pub func_name: Option<String>,
    /// Byte offset of the trapping instruction in the module, if known.
    pub offset: Option<usize>,
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.func_name {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "<wasm function {}>", self.func_index)?,
        }
        if let Some(offset) = self.offset {
            write!(f, " @ {offset:#x}")?;
        }
        Ok(())
    }
}

/// The SDK's view of the runtime's output.
pub(crate) fn output(out: capsule_runtime::exec::RunOutput, streams: Option<&Streams>) -> Output {
    use capsule_runtime::exec::ExitStatus as Rt;
    let status = match out.status {
        Rt::Trapped(_) | Rt::InvalidExit(_) if out.out_of_memory.is_some() => {
            ExitStatus::OutOfMemory(out.out_of_memory.unwrap_or(0))
        }
        Rt::Exited(code) => ExitStatus::Exited(code),
        Rt::Trapped(report) => ExitStatus::Trapped(Trap {
            reason: report.reason,
            frames: report
                .frames
                .into_iter()
                .map(|f| Frame {
                    module: f.module,
                    func_index: f.func_index,
                    func_name: f.func_name,
                    offset: f.offset,
                })
                .collect(),
        }),
        Rt::InvalidExit(code) => ExitStatus::InvalidExit(code),
        Rt::Interrupted(why) => ExitStatus::Interrupted(match why {
            capsule_runtime::engine::Interruption::Killed => Interruption::Killed,
            capsule_runtime::engine::Interruption::Timeout(d) => Interruption::Timeout(d),
            capsule_runtime::engine::Interruption::OutOfFuel(n) => Interruption::OutOfFuel(n),
        }),
    };
    let (stdout, stderr) = match streams {
        Some(streams) => streams.captured(),
        None => (out.stdout, out.stderr),
    };
    Output {
        status,
        stdout,
        stderr,
        results: out.results,
    }
}
