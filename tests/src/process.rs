//! Child processes and blocking calls with a deadline: a stuck program fails its test
//! with what it printed so far instead of hanging the test run.
//!
//! Every wait in the tests goes through here: [`Proc`] for a process started in the
//! background (its output read on threads while it runs, waited for with a deadline,
//! killed when the deadline passes or when it is dropped unfinished), [`output`] for a
//! command run to its end, and [`within`] for any other call that may block (an SDK
//! call that waits on a container). The deadline is [`test_timeout`] unless a call
//! gives its own.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The variable that sets [`test_timeout`], in seconds.
pub const TIMEOUT_VAR: &str = "CAPSULE_TEST_TIMEOUT";

/// How long a child process (or another blocking call) may take before its test fails:
/// `CAPSULE_TEST_TIMEOUT` seconds, 300 when unset. A call that legitimately takes
/// longer (compiling CPython from a cold cache) gives its own bound.
///
/// # Panics
/// When the variable is set to something other than a whole number of seconds.
pub fn test_timeout() -> Duration {
    match std::env::var(TIMEOUT_VAR) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => panic!("{TIMEOUT_VAR}={text:?}: give a whole number of seconds (e.g. 300)"),
        },
        Err(_) => Duration::from_secs(300),
    }
}

/// How long the output pipes may stay open after the process exited: they close when
/// it exits, unless a process it started holds them (a detached supervisor must not).
const PIPES_AFTER_EXIT: Duration = Duration::from_secs(10);

/// A command as a person would type it (program and arguments, no environment).
pub fn command_line(cmd: &Command) -> String {
    let word = |w: &std::ffi::OsStr| {
        let w = w.to_string_lossy();
        if w.is_empty() || w.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            format!("{w:?}")
        } else {
            w.into_owned()
        }
    };
    std::iter::once(word(cmd.get_program()))
        .chain(cmd.get_args().map(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One output stream of a [`Proc`], filled by a reader thread.
#[derive(Debug, Clone, Default)]
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    /// Set once the pipe reached its end (or was never piped).
    ended: Arc<AtomicBool>,
}

impl Captured {
    fn read_from(pipe: Option<impl Read + Send + 'static>) -> Self {
        let captured = Self::default();
        match pipe {
            None => captured.ended.store(true, Ordering::SeqCst),
            Some(mut pipe) => {
                let (bytes, ended) = (captured.bytes.clone(), captured.ended.clone());
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 16384];
                    while let Ok(n) = pipe.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        bytes
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend_from_slice(&chunk[..n]);
                    }
                    ended.store(true, Ordering::SeqCst);
                });
            }
        }
        captured
    }

    fn take(&self) -> Vec<u8> {
        self.bytes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.take()).into_owned()
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// A child process started by a test. Its stdout and stderr are piped and read on
/// threads as they come (no pipe fills up, and the test can look at them while it
/// runs); it is waited for with a deadline, and killed (and reaped) if it is dropped
/// before it ended, so a test that fails half-way leaves no process behind.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    command: String,
    started: Instant,
    stdout: Captured,
    stderr: Captured,
    writer: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// Why [`Proc::finish`] gave up, with everything the process printed.
#[derive(Debug)]
pub struct Stuck(pub String);

impl Proc {
    /// Starts `cmd` with stdout and stderr piped; stdin is as `cmd` says (a piped stdin
    /// is the caller's, through [`Proc::stdin`]).
    ///
    /// # Panics
    /// When the program cannot be started.
    pub fn spawn(cmd: &mut Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Self::start(cmd, None)
    }

    /// Starts `cmd` with its stdin, stdout and stderr as it says (a file, null, ...):
    /// only what is piped is captured.
    ///
    /// # Panics
    /// When the program cannot be started.
    pub fn spawn_with_own_stdio(cmd: &mut Command) -> Self {
        Self::start(cmd, None)
    }

    /// Starts `cmd` with `input` written to its stdin (on a thread of its own, so a
    /// child that writes much before it reads cannot deadlock the test), then closed. A
    /// child that exits without reading it all (a refused input) is an outcome, not a
    /// failure.
    ///
    /// # Panics
    /// When the program cannot be started, or writing fails other than by the child
    /// having gone.
    pub fn spawn_with_stdin(cmd: &mut Command, input: &[u8]) -> Self {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self::start(cmd, Some(input))
    }

    fn start(cmd: &mut Command, input: Option<&[u8]>) -> Self {
        Self::try_start(cmd, input)
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", command_line(cmd)))
    }

    fn try_start(cmd: &mut Command, input: Option<&[u8]>) -> std::io::Result<Self> {
        let mut child = cmd.spawn()?;
        let stdout = Captured::read_from(child.stdout.take());
        let stderr = Captured::read_from(child.stderr.take());
        let writer = input.map(|bytes| {
            let mut pipe = child.stdin.take().expect("a piped stdin");
            let bytes = bytes.to_vec();
            std::thread::spawn(move || match pipe.write_all(&bytes) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    panic!("write stdin: {e}")
                }
                _ => {}
            })
        });
        Ok(Self {
            child,
            command: command_line(cmd),
            started: Instant::now(),
            stdout,
            stderr,
            writer,
            status: None,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The child's stdin, when the command asked for a piped one (once).
    pub fn stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Its exit status, if it has ended (without waiting).
    ///
    /// # Panics
    /// When the status cannot be read.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("wait for `{}`: {e}", self.command));
        }
        self.status
    }

    /// Sends `signal` to the process (which must not have been reaped yet: its pid
    /// could belong to another process by then).
    ///
    /// # Panics
    /// When it has already ended, or the signal cannot be sent.
    #[track_caller]
    pub fn signal(&mut self, signal: rustix::process::Signal) {
        assert!(
            self.status.is_none(),
            "`{}` already ended ({:?}): no signal sent",
            self.command,
            self.status
        );
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal)
            .unwrap_or_else(|e| panic!("kill -{signal:?} `{}`: {e}", self.command));
    }

    /// Kills it (SIGKILL) and reaps it, if it has not ended; returns its status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = match self.child.try_wait() {
                Ok(Some(status)) => Some(status),
                _ => {
                    let _ = self.child.kill();
                    self.child.wait().ok()
                }
            };
        }
        self.status
    }

    /// Waits (at most `limit`) until `ready` holds of what it printed so far (stdout,
    /// stderr).
    ///
    /// # Panics
    /// When `limit` passes first, or the process ends first (without `ready`
    /// holding of its whole output): the message has what it printed. The process is
    /// killed then.
    #[track_caller]
    pub fn wait_for_output(
        &mut self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&str, &str) -> bool,
    ) {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if ready(&self.stdout(), &self.stderr()) {
                return;
            }
            if let Some(status) = self.try_wait() {
                // Its output may still be on its way: read it to its end.
                let until = Instant::now() + PIPES_AFTER_EXIT;
                while !(self.stdout.ended() && self.stderr.ended()) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if ready(&self.stdout(), &self.stderr()) {
                    return;
                }
                panic!(
                    "`{}` ended ({status}) before {what}\n{}",
                    self.command,
                    self.shown()
                );
            }
            if start.elapsed() > limit {
                self.kill();
                panic!(
                    "`{}`: no {what} within {} s: killed\n{}",
                    self.command,
                    limit.as_secs_f32(),
                    self.shown()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Waits until stdout contains `needle` (at most [`test_timeout`]).
    ///
    /// # Panics
    /// As [`Proc::wait_for_output`].
    #[track_caller]
    pub fn wait_for_stdout(&mut self, needle: &str) {
        self.wait_for_output(
            &format!("{needle:?} on stdout"),
            test_timeout(),
            |out, _| out.contains(needle),
        );
    }

    /// Waits until stderr contains `needle` (at most [`test_timeout`]).
    ///
    /// # Panics
    /// As [`Proc::wait_for_output`].
    #[track_caller]
    pub fn wait_for_stderr(&mut self, needle: &str) {
        self.wait_for_output(
            &format!("{needle:?} on stderr"),
            test_timeout(),
            |_, err| err.contains(needle),
        );
    }

    fn shown(&self) -> String {
        format!(
            "--- stdout so far\n{}\n--- stderr so far\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits for it to end (at most [`test_timeout`]) and returns its output.
    ///
    /// # Panics
    /// As [`Proc::wait_within`].
    #[track_caller]
    pub fn wait(self) -> Output {
        self.wait_within(test_timeout())
    }

    /// Waits for it to end, at most `limit` from now, and returns its status and all it
    /// printed.
    ///
    /// # Panics
    /// When it does not end in time (it is killed, and the message has the command, how
    /// long it ran and what it printed), or its output pipes stay open after it ended
    /// (a process it started holds them).
    #[track_caller]
    pub fn wait_within(self, limit: Duration) -> Output {
        match self.finish(limit) {
            Ok(out) => out,
            Err(Stuck(message)) => panic!("{message}"),
        }
    }

    /// As [`Proc::wait_within`], without panicking: `Err` says what went wrong (for
    /// clean-up code that runs while a test unwinds).
    ///
    /// # Errors
    /// As the panics of [`Proc::wait_within`].
    pub fn finish(mut self, limit: Duration) -> Result<Output, Stuck> {
        let deadline = Instant::now() + limit;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(Stuck(format!("wait for `{}`: {e}", self.command))),
            }
            if Instant::now() >= deadline {
                self.kill();
                // What the readers still had in hand (a process the child started may
                // hold the pipes, so they are not waited for long).
                let until = Instant::now() + Duration::from_secs(1);
                while !(self.stdout.ended() && self.stderr.ended()) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Err(Stuck(format!(
                    "`{}` did not end within {} s (ran {:.1} s; {TIMEOUT_VAR} sets the default \
                     bound): killed\n{}",
                    self.command,
                    limit.as_secs_f32(),
                    self.started.elapsed().as_secs_f32(),
                    self.shown()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        self.status = Some(status);
        let until = Instant::now() + PIPES_AFTER_EXIT;
        while !(self.stdout.ended() && self.stderr.ended()) {
            if Instant::now() >= until {
                return Err(Stuck(format!(
                    "`{}` exited ({status}) but its output stayed open {} s later: a process it \
                     started holds the pipe\n{}",
                    self.command,
                    PIPES_AFTER_EXIT.as_secs(),
                    self.shown()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(writer) = self.writer.take() {
            // The child has ended: the writer is done or gets EPIPE at once.
            if let Err(panic) = writer.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Ok(Output {
            status,
            stdout: self.stdout.take(),
            stderr: self.stderr.take(),
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to its end as [`Command::output`] does (stdin empty, stdout and stderr
/// captured), bounded by [`test_timeout`].
///
/// # Panics
/// When it cannot be started, or does not end in time (it is killed; the message has
/// what it printed).
#[track_caller]
pub fn output(cmd: &mut Command) -> Output {
    output_within(cmd, test_timeout())
}

/// As [`output`], bounded by `limit`.
///
/// # Panics
/// As [`output`].
#[track_caller]
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null());
    Proc::spawn(cmd).wait_within(limit)
}

/// As [`output`], without panicking: `None` when it cannot be started or does not end
/// within `limit` (for clean-up code that runs while a test unwinds).
pub fn try_output(cmd: &mut Command, limit: Duration) -> Option<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Proc::try_start(cmd, None).ok()?.finish(limit).ok()
}

/// Runs `call` on a thread of its own and returns its result, failing the test when it
/// takes longer than `limit` (the call is left to run on; the test has failed). For
/// calls that wait on something outside the test (an SDK call that waits for a
/// container) and have no deadline of their own.
///
/// # Panics
/// When `limit` passes first, or `call` panics (its panic goes on).
#[track_caller]
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let value = call();
        let _ = tx.send(());
        value
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {} s", limit.as_secs_f32())
        }
    }
}
