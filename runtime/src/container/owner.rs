//! The owner's side of the control channel: what the process that runs a container
//! does for each request ([`super::control::Request`]). It holds the container's live
//! state ([`Live`]): `cp` goes through the filesystem the guest sees (so a file copied
//! in is seen at once, and one copied out is read between two of the guest's writes),
//! `exec` runs another program beside the main one, `top` and `stats` read the gauges.

use super::control::{self, ExecRequest, Incoming, ProgramInfo, Reply, Request, Usage};
use super::files::{self, CopyIn, CopyOut};
use super::live::{self, Live};
use super::runner::{Place, Program, Runner};
use crate::exec::RunError;
use crate::spec::{Entry, GuestPath, RunSpec};
use crate::wasi::Stdio;
use serde_json::json;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

/// How long a freeze waits for the calls in the host to return.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a client may hold a container frozen.
const MAX_FROZEN: Duration = Duration::from_secs(600);

/// How often a copy in waiting for its client's bytes looks whether it is cut.
const CUT_POLL: Duration = Duration::from_millis(100);

/// A client's stream whose reads time out (see [`CUT_POLL`]): a read waits on until
/// bytes come, or fails once `cut` says the copy must stop.
struct UntilCut<'a, R> {
    inner: R,
    cut: &'a dyn Fn() -> bool,
}

impl<R: Read> Read for UntilCut<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if (self.cut)() {
                        return Err(std::io::Error::other("the container stopped"));
                    }
                }
                other => return other,
            }
        }
    }
}

/// The process that runs a container, as the control channel reaches it.
pub struct Owner {
    pub name: String,
    pub live: Arc<Live>,
    /// The container's spec (its programs' environment, workdir and limits).
    pub spec: RunSpec,
    pub runner: Runner,
    /// Begins a stop with this grace period.
    pub stop: Box<dyn Fn(Duration) + Send + Sync>,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").field("name", &self.name).finish()
    }
}

/// The client's end of stream means it went away (Ctrl-C): `program` is stopped.
fn watch_client(incoming: &Incoming, program: &live::Program) {
    if let Ok(watch) = incoming.writer.try_clone() {
        let interrupt = program.interrupt.clone();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            let mut watch = watch;
            while matches!(watch.read(&mut byte), Ok(n) if n > 0) {}
            interrupt.interrupt(crate::engine::Interruption::Killed);
        });
    }
}

/// An error and its causes on one line, as the CLI prints errors.
pub fn line_of(error: &dyn std::error::Error) -> String {
    let mut line = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = e.source();
    }
    line
}

/// How a program run by the owner ended.
#[derive(Debug)]
pub struct Ran {
    pub exit_code: i32,
    /// What it wrote, when its output was captured (a health check).
    pub output: Option<(Vec<u8>, Vec<u8>)>,
    /// Why it could not run.
    pub error: Option<String>,
}

impl Owner {
    /// Answers one request.
    pub fn handle(&self, mut incoming: Incoming) {
        let reply = match incoming.request.clone() {
            Request::Stop { grace_ms } => {
                (self.stop)(Duration::from_millis(grace_ms));
                Reply::ok(serde_json::Value::Null)
            }
            Request::CopyIn { guest, host } => return self.copy_in(incoming, &guest, host),
            Request::CopyOut { guest, host } => return self.copy_out(incoming, &guest, host),
            Request::Freeze => return self.hold_frozen(incoming),
            Request::Exec(exec) => return self.exec(incoming, exec),
            Request::Top => Reply::ok(self.top()),
            Request::Stats => Reply::ok(self.stats()),
        };
        let _ = incoming.reply(&reply);
    }

    fn not_running(&self) -> Reply {
        Reply::not_running(format!("container {} is not running", self.name))
    }

    /// Copies in through the filesystem the guest sees. The copy holds a pass of the
    /// run's [`live::CopyGate`] until it has answered: when the main program ends
    /// meanwhile, the copy is cut and undone before the process goes on.
    fn copy_in(&self, mut incoming: Incoming, guest: &str, host: Option<std::path::PathBuf>) {
        let (Some(_pass), Some(fs)) = (self.live.copies.enter(), self.live.fs()) else {
            let _ = incoming.reply(&self.not_running());
            return;
        };
        let gate = &self.live.copies;
        let cut = || gate.is_closing();
        let mut body = UntilCut {
            inner: &mut incoming.reader,
            cut: &cut,
        };
        let from = match &host {
            Some(path) => CopyIn::Path(path),
            None => {
                // A client's tar is read with a short timeout, so that a copy waiting
                // for its next bytes still sees the cut.
                let _ = incoming.writer.set_read_timeout(Some(CUT_POLL));
                CopyIn::Tar(&mut body)
            }
        };
        let reply = match files::copy_in_vfs(&fs, from, guest, &cut) {
            Ok(count) => Reply::ok(json!(count)),
            Err(_) if cut() => self.not_running(),
            Err(e) => Reply::error(line_of(&e)),
        };
        let _ = incoming.reply(&reply);
    }

    /// Copies out with the filesystem frozen: every file as it is between two of the
    /// guest's calls.
    fn copy_out(&self, mut incoming: Incoming, guest: &str, host: Option<std::path::PathBuf>) {
        let Some(fs) = self.live.fs() else {
            let _ = incoming.reply(&self.not_running());
            return;
        };
        let Some(_frozen) = self.live.freeze().freeze(FREEZE_TIMEOUT) else {
            let _ = incoming.reply(&not_frozen());
            return;
        };
        if let Some(host) = host {
            let reply = match files::copy_out_vfs(&fs, guest, CopyOut::Path(&host)) {
                Ok(count) => Reply::ok(json!(count)),
                Err(e) => Reply::error(line_of(&e)),
            };
            let _ = incoming.reply(&reply);
            return;
        }
        // A tar: the path is checked before the answer, so a missing one is an error
        // and not an empty archive.
        if let Err(e) = files::check_guest_path(&fs, guest) {
            let _ = incoming.reply(&Reply::error(line_of(&e)));
            return;
        }
        if incoming.reply(&Reply::ok(serde_json::Value::Null)).is_err() {
            return;
        }
        let mut chunks = control::ChunkWriter::new(&incoming.writer);
        let status = match files::copy_out_vfs(&fs, guest, CopyOut::Tar(&mut chunks)) {
            Ok(count) => Reply::ok(json!(count)),
            Err(e) => Reply::error(line_of(&e)),
        };
        if let Ok(writer) = chunks.finish() {
            let _ = control::write_line(writer, &status);
        }
    }

    /// Holds the filesystem frozen until the client closes the connection.
    fn hold_frozen(&self, mut incoming: Incoming) {
        let Some(_frozen) = self.live.freeze().freeze(FREEZE_TIMEOUT) else {
            let _ = incoming.reply(&not_frozen());
            return;
        };
        if incoming.reply(&Reply::ok(serde_json::Value::Null)).is_err() {
            return;
        }
        let _ = incoming.writer.set_read_timeout(Some(MAX_FROZEN));
        let mut byte = [0u8; 1];
        // Returns at the client's end of stream (or its death, or the deadline).
        while matches!(incoming.reader.read(&mut byte), Ok(n) if n > 0) {}
    }

    /// `capsule exec` where no descriptors pass between processes (Windows): the
    /// program's output comes back as frames on the connection, then `{"exit":CODE}`;
    /// its stdin is the request's `input`. The client's going away stops it.
    fn exec_streamed(&self, mut incoming: Incoming, request: ExecRequest) {
        use base64::Engine as _;
        let stdin = match &request.input {
            None => Vec::new(),
            Some(text) => match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let _ =
                        incoming.reply(&Reply::error(format!("exec's input is not base64: {e}")));
                    return;
                }
            },
        };
        let Ok(frames) = incoming.writer.try_clone() else {
            return;
        };
        let sink = Arc::new(control::FrameSink::new(frames));
        let stdio = Stdio::Streamed {
            stdin,
            sink: sink.clone(),
        };
        self.run_exec(&mut incoming, &request, &stdio, || {
            let _ = sink.end();
        });
    }

    /// An `exec`'s program once its stdio is ready: answers `{"pid":N}`, runs it
    /// (stopped if the client goes away), calls `ended`, then answers
    /// `{"exit":CODE}`.
    fn run_exec(
        &self,
        incoming: &mut Incoming,
        request: &ExecRequest,
        stdio: &Stdio,
        ended: impl FnOnce(),
    ) {
        let registered = self.live.register(request.args.clone(), true);
        let program = registered.program.clone();
        if incoming
            .reply(&Reply::ok(json!({ "pid": program.pid })))
            .is_err()
        {
            return;
        }
        watch_client(incoming, &program);
        let ran = self.run_program(request, stdio, &program);
        drop(registered);
        ended();
        let _ = control::write_line(
            &incoming.writer,
            &control::ExecEnd {
                exit: ran.exit_code,
                error: ran.error,
            },
        );
        let _ = incoming.writer.shutdown(std::net::Shutdown::Both);
    }

    /// `capsule exec` without a streamed request where descriptors cannot pass.
    #[cfg(not(unix))]
    fn exec(&self, mut incoming: Incoming, request: ExecRequest) {
        if request.streamed {
            return self.exec_streamed(incoming, request);
        }
        let _ = incoming.reply(&Reply::error(
            "exec with descriptors is Unix-only: this client must ask for a streamed exec"
                .to_owned(),
        ));
    }

    /// `capsule exec`: the program runs on this thread with the client's streams; the
    /// client's going away (Ctrl-C) stops it. The answer is `{"pid":N}`, then
    /// `{"exit":CODE}` once it ends.
    #[cfg(unix)]
    fn exec(&self, mut incoming: Incoming, request: ExecRequest) {
        if request.streamed {
            return self.exec_streamed(incoming, request);
        }
        let wanted = if request.interactive { 3 } else { 2 };
        if incoming.fds.len() != wanted {
            let _ = incoming.reply(&Reply::error(format!(
                "exec needs {wanted} descriptors with its request, got {}",
                incoming.fds.len()
            )));
            return;
        }
        let mut fds = std::mem::take(&mut incoming.fds)
            .into_iter()
            .map(std::fs::File::from);
        let stdin = if request.interactive {
            fds.next()
        } else {
            None
        };
        let (Some(stdout), Some(stderr)) = (fds.next(), fds.next()) else {
            return;
        };
        let stdio = Stdio::Files {
            stdin: stdin.map(Arc::new),
            stdout: Arc::new(stdout),
            stderr: Arc::new(stderr),
        };
        self.run_exec(&mut incoming, &request, &stdio, || {});
    }

    /// Runs a program beside the main one, in its filesystem, with the container's
    /// environment and workdir (as `request` overrides them), its memory counted with
    /// the container's; `stdio` as given. Used by `exec` and the health checks.
    pub fn run_program(
        &self,
        request: &ExecRequest,
        stdio: &Stdio,
        program: &live::Program,
    ) -> Ran {
        let failed = |code: u8, text: String| Ran {
            exit_code: i32::from(code),
            output: None,
            error: Some(text),
        };
        let Some(fs) = self.live.fs() else {
            return failed(
                crate::exit::CANNOT_RUN,
                format!("container {} is not running", self.name),
            );
        };
        let (spec, path) = match self.exec_spec(request) {
            Ok(found) => found,
            Err(text) => return failed(crate::exit::CANNOT_RUN, text),
        };
        program
            .thread
            .store(live::current_thread(), Ordering::Relaxed);
        let place = Place {
            gauges: Some(program.gauges.clone()),
            beside: Some(fs),
            stopping: None,
        };
        let result = self.runner.run_observed(
            &spec,
            &Program::InRoot { path, image: None },
            stdio,
            &program.interrupt,
            &place,
            &mut |_| {},
        );
        match result {
            Ok(output) => Ran {
                exit_code: i32::from(crate::exit::of_output(&output)),
                output: Some((output.stdout.clone(), output.stderr.clone())),
                error: None,
            },
            Err(e) => {
                let code = if matches!(
                    e,
                    RunError::Command(super::command::CommandError::NotFound { .. })
                ) {
                    crate::exit::NOT_FOUND
                } else {
                    crate::exit::CANNOT_RUN
                };
                failed(code, line_of(&e))
            }
        }
    }

    /// The spec of a program run beside the main one, and where it is named to be.
    fn exec_spec(&self, request: &ExecRequest) -> Result<(RunSpec, GuestPath), String> {
        let mut spec = self.spec.clone();
        let Some(first) = request.args.first() else {
            return Err("exec needs a program to run".to_owned());
        };
        if let Some(dir) = &request.workdir {
            spec.workdir = if dir.starts_with('/') {
                GuestPath::parse(dir)
            } else {
                GuestPath::parse(&format!("{}/{dir}", spec.workdir))
            }
            .map_err(|e| format!("-w {dir}: {e}"))?;
        }
        for (key, value) in &request.env {
            spec.env.set(key.clone(), value.clone());
        }
        let (program, export) = crate::spec::split_program(first);
        spec.args.clone_from(&request.args);
        spec.entry = export.map_or(Entry::Start, |e| Entry::Program(e.to_owned()));
        // Its own program: the container's ports are the main program's, and the
        // container's --timeout is its run's.
        spec.ports.clear();
        spec.limits.timeout = None;
        let path = if program.starts_with('/') {
            GuestPath::parse(program)
        } else {
            GuestPath::parse(&format!("{}/{program}", spec.workdir))
        }
        .map_err(|e| format!("{program}: {e}"))?;
        Ok((spec, path))
    }

    fn top(&self) -> serde_json::Value {
        let programs: Vec<ProgramInfo> = self
            .live
            .programs()
            .iter()
            .map(|p| ProgramInfo {
                pid: p.pid,
                command: p.command.clone(),
                exec: p.exec,
                started_ms: p
                    .started
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                cpu_ns: live::thread_cpu_nanos(p.thread.load(Ordering::Relaxed)),
                memory: p.gauges.memory.load(Ordering::Relaxed),
                fds: p.gauges.fds.load(Ordering::Relaxed) as u64,
            })
            .collect();
        serde_json::to_value(programs).unwrap_or_default()
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(Usage {
            cpu_ns: live::process_cpu_nanos(),
            memory: self.live.memory(),
            memory_limit: self
                .spec
                .limits
                .memory
                .unwrap_or(crate::exec::DEFAULT_MEMORY_LIMIT),
            fds: self.live.open_descriptors() as u64,
            programs: self.live.programs().len() as u64,
        })
        .unwrap_or_default()
    }
}

impl Owner {
    /// Runs the container's health check for as long as `done` says the owner lives:
    /// from each start of the main program (restarts included), one check every
    /// interval, its result kept in the container's `health.json`
    /// ([`super::health`]).
    pub fn watch_health(
        self: &Arc<Self>,
        check: super::health::Healthcheck,
        dir: std::path::PathBuf,
        done: Arc<dyn Fn() -> bool + Send + Sync>,
    ) {
        use super::health::{Health, MAX_OUTPUT, Probe};
        let Ok(command) = check.command() else {
            return;
        };
        let owner = self.clone();
        let request = ExecRequest {
            args: command,
            env: Vec::new(),
            workdir: None,
            interactive: false,
            streamed: false,
            input: None,
        };
        std::thread::spawn(move || {
            let mut run = 0;
            while !done() {
                // Waits for a (new) run of the main program.
                if owner.live.fs().is_none() || owner.live.run_number() == run {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                run = owner.live.run_number();
                let started = std::time::Instant::now();
                let mut health = Health::starting();
                super::health::write(&dir, &health);
                let mut ever_healthy = false;
                loop {
                    let in_start = !ever_healthy && started.elapsed() < check.start_period();
                    let wait = if in_start {
                        check.start_interval()
                    } else {
                        check.interval()
                    };
                    let until = std::time::Instant::now() + wait;
                    let still =
                        || !done() && owner.live.run_number() == run && owner.live.fs().is_some();
                    while std::time::Instant::now() < until && still() {
                        std::thread::sleep(Duration::from_millis(20).min(wait));
                    }
                    if !still() {
                        break;
                    }
                    let in_start = !ever_healthy && started.elapsed() < check.start_period();
                    let begin = super::logs::now_nanos();
                    let registered = owner.live.register(request.args.clone(), true);
                    let program = registered.program.clone();
                    let deadline =
                        crate::engine::Deadline::start(&program.interrupt, check.timeout());
                    let stdio = Stdio::Capture {
                        stdin: Vec::new(),
                        limit: MAX_OUTPUT,
                    };
                    let ran = owner.run_program(&request, &stdio, &program);
                    drop(deadline);
                    let timed_out = matches!(
                        program.interrupt.reason(),
                        Some(crate::engine::Interruption::Timeout(_))
                    );
                    drop(registered);
                    let mut output = match (&ran.output, &ran.error) {
                        (Some((out, err)), _) => {
                            let mut text = String::from_utf8_lossy(out).into_owned();
                            text.push_str(&String::from_utf8_lossy(err));
                            text
                        }
                        (None, Some(error)) => error.clone(),
                        (None, None) => String::new(),
                    };
                    let exit_code = if timed_out {
                        output = format!(
                            "Health check exceeded timeout ({})",
                            crate::spec::format_duration(check.timeout())
                        );
                        -1
                    } else {
                        ran.exit_code
                    };
                    output.truncate(output.floor_char_boundary(MAX_OUTPUT));
                    ever_healthy |= exit_code == 0;
                    health.record(
                        Probe {
                            start: begin,
                            end: super::logs::now_nanos(),
                            exit_code,
                            output,
                        },
                        check.retries(),
                        !in_start || exit_code == 0,
                    );
                    if owner.live.run_number() == run && owner.live.fs().is_some() {
                        super::health::write(&dir, &health);
                    }
                }
            }
        });
    }
}

fn not_frozen() -> Reply {
    Reply::error(format!(
        "the container's programs did not pause within {} s (one is blocked in a write)",
        FREEZE_TIMEOUT.as_secs()
    ))
}
