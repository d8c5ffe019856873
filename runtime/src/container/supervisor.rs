//! Running a container to its end: the foreground `capsule run`, and the supervisor
//! process of a detached container (`run -d`, `start`), which Capsule starts as a
//! session of its own (`setsid`, no terminal) and which lives exactly as long as the
//! container runs, restarts included.
//!
//! The process that runs a container holds its run lock and writes its state. `stop`
//! and `kill` talk to it with a request file and `SIGTERM`: the guest keeps running for
//! the grace period (WASI preview1 has no signals to tell it), then is interrupted
//! (wasmtime's epochs) and the container exits with 137, as a process killed after
//! `docker stop`'s grace period does. The restart policy is carried out here, with
//! Docker's back-off (100 ms, doubling, at most a minute, reset after 10 s of running).

use super::logs::JsonLog;
use super::runner::{Program, Runner};
use super::{Container, ContainerError, State, Status};
use crate::engine::{Interrupt, Interruption};
use crate::exec::{ExitStatus, RunError, RunOutput};
use crate::wasi::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The request `stop`/`kill` leave for the process that runs the container.
const STOP_REQUEST: &str = "stop-request";

/// The default grace period of `stop`, as Docker's.
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// How a container's run ended, as its state records it.
#[derive(Debug)]
pub struct Ended {
    pub exit_code: i32,
    /// The last run's output (`None` when it could not start).
    pub output: Option<RunOutput>,
    /// Why it could not start.
    pub error: Option<RunError>,
}

/// Where the process that runs the container is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `capsule run` in the foreground: output echoed to the terminal as well as
    /// logged, stdin when `-i`; Ctrl-C interrupts the guest at once. One run: the
    /// restart policy applies to detached containers.
    Foreground,
    /// The supervisor of a detached container.
    Detached,
}

/// The line that says a run ended out of memory, naming the limit it hit.
pub fn out_of_memory_message(limit: u64, explicit: bool) -> String {
    let size = format_size(limit);
    if explicit {
        format!("guest ran out of memory: --memory {size}")
    } else {
        format!("guest ran out of memory: the default limit of {size} (raise it with --memory)")
    }
}

/// Why a run ended, for `inspect`'s `State.Error`, when not by exiting.
fn status_error(status: &ExitStatus) -> Option<String> {
    match status {
        ExitStatus::Exited(_) => None,
        ExitStatus::Trapped(trap) => Some(format!("guest trapped: {}", trap.reason)),
        ExitStatus::InvalidExit(n) => Some(format!("guest called proc_exit({n})")),
        ExitStatus::Interrupted(why) => Some(format!("guest {why}")),
    }
}

/// A byte count as `--memory` takes it: `16m`, `4g`, `1536k`, or plain bytes.
fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, 'g'), (20, 'm'), (10, 'k')] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// What the signal thread and the run share.
#[derive(Debug, Default)]
struct Control {
    /// Fired as soon as a stop is asked for: no more restarts, back-off sleeps end.
    requested: Interrupt,
    /// Fired when the guest must end (after the grace period).
    kill: Interrupt,
    /// The run returned (the watchdog stands down).
    finished: AtomicBool,
    /// The code to record instead of the run's (Ctrl-C: 130).
    code_override: AtomicI32,
    /// The live container's copies in flight: cut before the process exits.
    copies: Arc<super::live::CopyGate>,
}

/// Runs `container` to its end, recording its state; `on_started` is called once the
/// guest is about to run for the first time (or once it has failed to start).
///
/// # Errors
/// [`ContainerError`] when the container cannot be run at all (it runs elsewhere,
/// it was made by another Capsule, its state cannot be written).
pub fn run(
    container: &mut Container,
    runner: &Runner,
    mode: Mode,
    mut on_started: impl FnMut(Result<(), &str>),
) -> Result<Ended, ContainerError> {
    let (Some(spec), Some(path)) = (
        container.config.spec.clone(),
        container.config.program.clone(),
    ) else {
        return Err(ContainerError::Unrunnable {
            id: container.config.id.clone(),
        });
    };
    if !container.lock_running()? {
        return Err(super::StateError::AlreadyRunning(container.name().to_owned()).into());
    }
    let _ = crate::ambient::remove_file(&container.dir.join(STOP_REQUEST));
    let runner = runner
        .for_features(container.config.features)
        .map_err(|e| ContainerError::Io {
            what: "cannot configure the engine".to_owned(),
            source: std::io::Error::other(e),
        })?;
    let program = Program::InRoot {
        path,
        image: container.config.cache_image.clone(),
    };
    let log = Arc::new(
        JsonLog::open(&container.dir, mode == Mode::Foreground).map_err(|source| {
            ContainerError::Io {
                what: "cannot open the container's log".to_owned(),
                source,
            }
        })?,
    );
    let stdio = Stdio::Logged {
        sink: log.clone(),
        stdin: mode == Mode::Foreground && container.config.interactive,
    };
    // The one owner of the running container: other commands reach it here.
    let live = super::live::Live::new();
    let control = Arc::new(Control {
        copies: live.copies.clone(),
        ..Control::default()
    });
    watch_signals(container, mode, &control);
    if mode == Mode::Detached {
        watch_directory(container, &control);
    }
    let _listening = {
        let (stop_control, dir, rm) = (control.clone(), container.dir.clone(), container.config.rm);
        let owner = Arc::new(super::owner::Owner {
            name: container.name().to_owned(),
            live: live.clone(),
            spec: spec.clone(),
            runner: runner.clone().into_owned(),
            stop: Box::new(move |grace| begin_stop(&stop_control, grace, &dir, rm)),
        });
        if let Some(check) = container.config.healthcheck.clone() {
            let control = control.clone();
            let done = Arc::new(move || {
                control.finished.load(Ordering::SeqCst) || control.requested.reason().is_some()
            });
            owner.watch_health(check, container.dir.clone(), done);
        }
        match super::control::listen(&container.dir, move |incoming| owner.handle(incoming)) {
            Ok(listening) => Some(listening),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the container's control channel");
                None
            }
        }
    };

    // The last run's health is not this one's: `ps` says `starting` until a check.
    super::health::clear(&container.dir);
    let mut state = container.state();
    state.stopped_by_user = false;
    let mut backoff = Backoff::default();
    let mut first = true;
    loop {
        state.status = Status::Running;
        state.pid = Some(std::process::id());
        state.started_at = Some(super::logs::now_nanos());
        state.finished_at = None;
        state.error = None;
        state.oom_killed = false;
        container.write_state(&state)?;
        let began = Instant::now();
        let mut started = false;
        let main = live.register(spec.args.clone(), false);
        let place = super::runner::Place {
            gauges: Some(main.program.gauges.clone()),
            beside: None,
            stopping: Some(control.requested.clone()),
        };
        let result =
            runner.run_observed(&spec, &program, &stdio, &control.kill, &place, &mut |fs| {
                live.set_fs(Some(fs.clone()));
                if first {
                    started = true;
                    on_started(Ok(()));
                }
            });
        // Programs started by `exec` end with the container's.
        live.set_fs(None);
        live.end_others();
        drop(main);
        log.end_run();
        let (exit, output, error) = match result {
            Ok(output) => {
                let mut exit = i32::from(crate::exit::of_output(&output));
                let forced = control.code_override.load(Ordering::SeqCst);
                if forced != 0 && matches!(output.status, ExitStatus::Interrupted(_)) {
                    exit = forced;
                }
                state.error = status_error(&output.status);
                if let Some(limit) = output.out_of_memory {
                    state.oom_killed = true;
                    let text = out_of_memory_message(limit, spec.limits.memory.is_some());
                    log.note(&text);
                    state.error = Some(text);
                }
                (exit, Some(output), None)
            }
            Err(e) => {
                let text = e.to_string();
                log.note(&text);
                if first && !started {
                    on_started(Err(&text));
                }
                state.error = Some(text);
                // As Docker: a command found nowhere exits 127, one that cannot run 126.
                let code = if matches!(
                    e,
                    RunError::Command(super::command::CommandError::NotFound { .. })
                ) {
                    crate::exit::NOT_FOUND
                } else {
                    crate::exit::CANNOT_RUN
                };
                (i32::from(code), None, Some(e))
            }
        };
        first = false;
        state.exit_code = Some(exit);
        state.finished_at = Some(super::logs::now_nanos());
        state.stopped_by_user = control.requested.reason().is_some();
        let restart = restarts(
            mode,
            error.is_none(),
            container.config.restart,
            exit,
            &state,
        );
        let pause = backoff.after_run(began.elapsed());
        if restart {
            state.status = Status::Restarting;
            container.write_state(&state)?;
            log.note(&format!(
                "exited with {exit}; restarting in {} ({} policy)",
                crate::spec::format_duration(pause),
                container.config.restart
            ));
        }
        // Ended for good: no restart due, or a stop asked for during the back-off.
        if !restart || !control.requested.sleep(pause) {
            state.stopped_by_user |= restart;
            state.status = Status::Exited;
            control.finished.store(true, Ordering::SeqCst);
            container.write_state(&state)?;
            return Ok(Ended {
                exit_code: exit,
                output,
                error,
            });
        }
        state.restart_count += 1;
    }
}

/// Whether a run that ended with `exit` is followed by another: only a detached
/// container's, only when its guest could start (`started`), as its policy says given
/// the restarts so far and whether a stop was asked for.
fn restarts(
    mode: Mode,
    started: bool,
    policy: super::RestartPolicy,
    exit: i32,
    state: &State,
) -> bool {
    mode == Mode::Detached
        && started
        && policy.restarts(exit, state.restart_count, state.stopped_by_user)
}

/// Docker's back-off between restarts: 100 ms, doubling, at most a minute, back to
/// 100 ms after a run of 10 s or more.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(60);
    const RESET_AFTER: Duration = Duration::from_secs(10);

    /// The pause before the next run, after one that ran for `ran`.
    fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= Self::RESET_AFTER {
            self.next = Self::FIRST;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        pause
    }
}

/// Asks the process that runs `container` to stop it: the guest is interrupted after
/// `grace` (at once for `kill`). Returns `false` when no process runs it.
///
/// # Errors
/// The host's error writing the request.
pub fn request_stop(container: &Container, grace: Duration) -> Result<bool, ContainerError> {
    // Within what the request file and the supervisor's deadline can hold.
    let grace = grace.min(crate::spec::grammar::MAX_DURATION);
    let state = container.state();
    if !state.is_active() || container.lock_is_free() {
        return Ok(false);
    }
    let Some(pid) = state.pid else {
        return Ok(false);
    };
    // Asked of the owner first; the request file and a signal are for one that does
    // not answer (started by a Capsule without the control channel).
    {
        let request = super::control::Request::Stop {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        };
        if let Ok(Some(_)) = super::control::call(&container.dir, request, &[], None) {
            return Ok(true);
        }
    }
    super::write_unsynced(
        &container.dir,
        STOP_REQUEST,
        grace.as_millis().to_string().as_bytes(),
    )
    .map_err(|source| ContainerError::Io {
        what: "cannot ask the container to stop".to_owned(),
        source,
    })?;
    super::process::terminate(pid);
    Ok(true)
}

/// Waits until no process runs `container`, at most `timeout`; whether it stopped.
/// A container removed meanwhile (`rm -f`) has stopped once its process has ended:
/// the run lock is opened once and watched through that handle, never reopened by a
/// path that may be gone.
pub fn wait_stopped(container: &Container, timeout: Option<Duration>) -> bool {
    let lock = match container.open_run_lock() {
        Ok(file) => Some(file),
        // No lock file: the container is gone (or was never made), and no process
        // can be holding a lock in it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(_) => None,
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if lock
            .as_ref()
            .map_or_else(|| container.lock_is_free(), super::run_lock_is_free)
        {
            return true;
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Ends the process that runs `container` outright (it did not stop when asked) and
/// records the container as killed.
///
/// # Errors
/// The host's error writing the state.
pub fn force_kill(container: &mut Container) -> Result<(), ContainerError> {
    let mut state = container.state();
    if let Some(pid) = state.pid {
        super::process::kill(pid);
    }
    if wait_stopped(container, Some(Duration::from_secs(5))) && container.lock_running()? {
        state.status = Status::Exited;
        state.exit_code = Some(i32::from(crate::exit::KILLED));
        state.finished_at = Some(super::logs::now_nanos());
        state.error = Some("its process did not stop when asked and was killed".to_owned());
        state.stopped_by_user = true;
        container.write_state(&state)?;
        container.unlock_running();
    }
    Ok(())
}

/// The grace period a stop request asks for.
fn read_request(dir: &std::path::Path) -> Option<Duration> {
    let text = crate::ambient::read_text(&dir.join(STOP_REQUEST)).ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_millis)
}

/// A thread that turns signals into stops: `SIGTERM` (from `stop`/`kill`, with the
/// request file's grace period) and, in the foreground, `SIGINT`/`SIGHUP` (at once,
/// recorded as 130). If the guest does not end within a second of being interrupted
/// (it is blocked in the host), the state is written and the process exits.
#[cfg(unix)]
fn watch_signals(container: &Container, mode: Mode, control: &Arc<Control>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle signals; stop will kill the process");
            return;
        }
    };
    let control = control.clone();
    let dir = container.dir.clone();
    let rm = container.config.rm;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            // `stop`/`kill` leave a request with the grace period; any other
            // SIGTERM, and Ctrl-C or a lost terminal in the foreground, end the guest at
            // once and are recorded as 128 + the signal, as a shell reports them.
            let request = (signal == SIGTERM).then(|| read_request(&dir)).flatten();
            let grace = match (request, signal, mode) {
                (Some(grace), _, _) => grace,
                (None, SIGTERM, _) | (None, _, Mode::Foreground) => {
                    control.code_override.store(128 + signal, Ordering::SeqCst);
                    Duration::ZERO
                }
                (None, _, Mode::Detached) => continue,
            };
            begin_stop(&control, grace, &dir, rm);
        }
    });
}

/// A stop asked for (a `stop` or `kill` request, a signal): no more restarts; the
/// guest is interrupted after `grace` (unless it ends by itself first), and if it is
/// still blocked in the host a second later, the state is written and the process
/// exits.
fn begin_stop(control: &Arc<Control>, grace: Duration, dir: &std::path::Path, rm: bool) {
    control.requested.interrupt(Interruption::Killed);
    let control = control.clone();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        if !grace.is_zero() {
            // Ends early only if the guest finishes by itself.
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && !control.finished.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10).min(grace));
            }
        }
        control.kill.interrupt(Interruption::Killed);
        std::thread::sleep(Duration::from_secs(1));
        if !control.finished.load(Ordering::SeqCst) {
            watchdog_exit(&dir, rm, &control);
        }
    });
}

/// Without signals (Windows): a thread polls for the request file `stop`/`kill`
/// leave (with its grace period) and, in the foreground, the console's Ctrl-C,
/// Ctrl-Break or close (at once, recorded as 130 as a shell reports Ctrl-C).
#[cfg(not(unix))]
fn watch_signals(container: &Container, mode: Mode, control: &Arc<Control>) {
    if mode == Mode::Foreground {
        super::process::hear_console();
    }
    let control = control.clone();
    let dir = container.dir.clone();
    let rm = container.config.rm;
    std::thread::spawn(move || {
        while !control.finished.load(Ordering::SeqCst) {
            if let Some(grace) = read_request(&dir) {
                begin_stop(&control, grace, &dir, rm);
                return;
            }
            if mode == Mode::Foreground && super::process::console_interrupted() {
                control.code_override.store(130, Ordering::SeqCst);
                begin_stop(&control, Duration::ZERO, &dir, rm);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// A detached container's directory deleted under it (its home removed by hand, not
/// through `rm`): nothing can record its state any more, and nothing could stop it,
/// so the guest is ended and the supervisor exits rather than run on as an orphan.
fn watch_directory(container: &Container, control: &Arc<Control>) {
    let control = control.clone();
    let dir = container.dir.clone();
    std::thread::spawn(move || {
        while !control.finished.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(500));
            if !crate::ambient::is_dir(&dir) && !control.finished.load(Ordering::SeqCst) {
                tracing::warn!(dir = %dir.display(), "the container's directory is gone: ending it");
                control.requested.interrupt(Interruption::Killed);
                control.kill.interrupt(Interruption::Killed);
                std::thread::sleep(Duration::from_secs(1));
                std::process::exit(i32::from(crate::exit::KILLED));
            }
        }
    });
}

/// The guest did not end when interrupted: record it as killed and end the process.
fn watchdog_exit(dir: &std::path::Path, rm: bool, control: &Control) -> ! {
    // A copy into its files in flight is undone first, not left half-made.
    control.copies.close(super::live::COPIES_UNDONE);
    let forced = control.code_override.load(Ordering::SeqCst);
    let code = if forced != 0 {
        forced
    } else {
        i32::from(crate::exit::KILLED)
    };
    if rm {
        for _ in 0..5 {
            if crate::ambient::remove_dir_all(dir).is_ok() || !crate::ambient::is_dir(dir) {
                break;
            }
        }
    } else if let Some(mut state) = crate::ambient::read_file(&dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
    {
        state.status = Status::Exited;
        state.exit_code = Some(code);
        state.finished_at = Some(super::logs::now_nanos());
        state.stopped_by_user = true;
        state.error =
            Some("guest was blocked in the host when stopped; its process ended".to_owned());
        if let Ok(json) = serde_json::to_vec_pretty(&state) {
            let _ = super::write_unsynced(dir, "state.json", &json);
        }
    }
    std::process::exit(code);
}

/// The hidden command of the `capsule` binary that runs a detached container.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// Starts the supervisor of a detached container (`exe` is the `capsule` binary) and
/// waits until its guest is about to run, or has failed to start.
///
/// # Errors
/// [`ContainerError`] when the supervisor cannot be started, or the guest could not
/// start (its reason).
pub fn spawn_detached(
    home: &crate::home::Home,
    container: &Container,
    exe: &std::path::Path,
) -> Result<(), ContainerError> {
    use std::io::BufRead;
    let stderr = open_supervisor_log(container)?;
    let mut command = std::process::Command::new(exe);
    super::process::detach(&mut command);
    command
        .arg(SUPERVISE_COMMAND)
        .arg(&container.config.id)
        .env("CAPSULE_HOME", home.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr);
    // Not a process group of its own: the supervisor's first act is `setsid`, which a
    // group leader may not call.
    let mut child = command
        .spawn()
        .map_err(io_error("cannot start the container's supervisor"))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(io_error("cannot talk to the container's supervisor")(
            std::io::Error::other("no pipe"),
        ));
    };
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(io_error("cannot talk to the container's supervisor"))?;
    // The supervisor outlives this process; its exit status is not ours to collect.
    drop(child);
    match line.trim_end().split_once(' ') {
        _ if line.trim_end() == "started" => Ok(()),
        _ if !crate::ambient::is_dir(&container.dir) => Err(removed(container)),
        Some(("error", reason)) => Err(ContainerError::Start {
            name: container.name().to_owned(),
            reason: reason.to_owned(),
        }),
        _ => Err(ContainerError::Start {
            name: container.name().to_owned(),
            reason: format!(
                "its supervisor ended before the guest started (see {})",
                container.dir.join("supervisor.log").display()
            ),
        }),
    }
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.to_owned();
    move |source| ContainerError::Io { what, source }
}

/// The supervisor's log (its stderr), opened for appending.
fn open_supervisor_log(container: &Container) -> Result<std::fs::File, ContainerError> {
    match crate::ambient::open_append(&container.dir.join("supervisor.log")) {
        Ok(file) => Ok(file),
        Err(_) if !crate::ambient::is_dir(&container.dir) => Err(removed(container)),
        Err(e) => Err(io_error("cannot open the supervisor's log")(e)),
    }
}

/// Gone (`rm -f` won a race, or `--rm` removed it when it stopped): say so, not which
/// file could not be opened in it.
fn removed(container: &Container) -> ContainerError {
    ContainerError::Removed {
        name: container.name().to_owned(),
        when: if container.config.rm {
            "when it stopped, as --rm asks: nothing is left to start (run the image again with capsule run)"
        } else {
            "(capsule rm) while it was starting"
        },
    }
}

/// The supervisor's side: a session of its own, then [`run`] in [`Mode::Detached`],
/// saying on stdout when the guest starts (`started`) or why it could not
/// (`error REASON`).
///
/// # Errors
/// [`ContainerError`] when the container cannot be found or run.
pub fn serve(home: &crate::home::Home, id: &str, runner: &Runner) -> Result<i32, ContainerError> {
    // A session of its own: no controlling terminal, so closing the terminal or
    // Ctrl-C there never reaches a detached container.
    super::process::leave_session();
    let mut container = Container::find(home, id)?;
    let (result, said) = supervise(&mut container, runner, "started", &mut |_| {});
    match &result {
        Ok(_) => remove_if_rm(home, container),
        Err(e) if said.is_none() => say(&format!("error {e}")),
        Err(_) => {}
    }
    result
}

/// The forked child of `run -d` (see [`super::process::fork_supervisor`]) becoming
/// the supervisor of `container`, which it has just created: stdin from `/dev/null`,
/// stderr to the supervisor's log, a session of its own, then [`run`] in
/// [`Mode::Detached`], saying `started ID` on stdout (the pipe to the parent) when the
/// guest starts. Once it has started this never returns: the process exits with the
/// container's exit code when it ends. If the guest never starts, the terminal's
/// stderr is put back, the container removed if `--rm` asks (unless another `start`
/// won the race to run it), and the error returned for the command to print and exit
/// with.
///
/// # Errors
/// [`ContainerError::Start`] with the reason the guest did not start (as
/// [`spawn_detached`] reports it), or the host's error redirecting the streams.
#[cfg(target_os = "linux")]
pub fn become_supervisor(
    home: &crate::home::Home,
    mut container: Container,
    runner: impl FnOnce() -> Result<Runner, String>,
) -> Result<std::convert::Infallible, ContainerError> {
    let log = open_supervisor_log(&container)?;
    // Kept only until the guest starts: a detached supervisor holding the terminal
    // (or the pipe of whoever ran `run -d`) open would keep it from seeing the end.
    let mut terminal = Some(
        super::process::redirect_for_supervisor(&log)
            .map_err(io_error("cannot start the container's supervisor"))?,
    );
    super::process::leave_session();
    let reason = match runner() {
        Ok(runner) => {
            let started = format!("started {}", container.config.id);
            let (result, said) = supervise(&mut container, &runner, &started, &mut |outcome| {
                if outcome.is_ok() {
                    terminal = None;
                }
            });
            match (said, result) {
                (Some(Ok(())), Ok(code)) => {
                    remove_if_rm(home, container);
                    std::process::exit(code);
                }
                (Some(Ok(())), Err(_)) => std::process::exit(i32::from(crate::exit::CANNOT_RUN)),
                (Some(Err(reason)), _) => reason,
                (None, Err(e)) => e.to_string(),
                (None, Ok(_)) => "the guest ended before it started".to_owned(),
            }
        }
        Err(reason) => reason,
    };
    if let Some(terminal) = &terminal {
        super::process::restore_stderr(terminal);
    }
    let name = container.name().to_owned();
    // Lost to a `start` from elsewhere: it runs under that supervisor, and stays.
    if container.config.rm && !super::lifecycle::lost_to_another_start(&reason) {
        let _ = container.remove();
    }
    Err(ContainerError::Start { name, reason })
}

/// A line to the process that started the supervisor (its stdout).
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A detached container's run: [`run`] in [`Mode::Detached`], saying `started` (the
/// `started` line given) or `error REASON` when the guest starts or cannot, then
/// telling `after_saying`. Returns the exit code and what was said (`None`: nothing,
/// the run failed before the guest's turn).
fn supervise(
    container: &mut Container,
    runner: &Runner,
    started: &str,
    after_saying: &mut dyn FnMut(&Result<(), String>),
) -> (Result<i32, ContainerError>, Option<Result<(), String>>) {
    let mut said = None;
    let result = run(container, runner, Mode::Detached, |outcome| {
        let outcome = outcome.map_err(|reason| reason.replace('\n', " "));
        match &outcome {
            Ok(()) => say(started),
            Err(reason) => say(&format!("error {reason}")),
        }
        after_saying(&outcome);
        said = Some(outcome);
    });
    (result.map(|ended| ended.exit_code), said)
}

/// `run -d --rm`: the container removed once it has ended for good, with its anonymous
/// volumes.
fn remove_if_rm(home: &crate::home::Home, container: Container) {
    if container.config.rm {
        let volumes = container.config.volumes.clone();
        if let Err(e) = container.remove() {
            tracing::warn!(error = %e, "cannot remove the --rm container");
        } else if let Err(e) = super::volumes::remove_anonymous(home, &volumes) {
            tracing::warn!(error = %e, "cannot remove the container's anonymous volumes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::RestartPolicy;

    fn after(restart_count: u32, stopped_by_user: bool) -> State {
        State {
            restart_count,
            stopped_by_user,
            ..State::created()
        }
    }

    #[test]
    fn the_back_off_doubles_to_a_minute_and_resets_after_ten_seconds_of_running() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(5);
        let pauses: Vec<u64> = (0..12)
            .map(|_| backoff.after_run(quick).as_millis() as u64)
            .collect();
        assert_eq!(
            pauses,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000
            ]
        );
        assert_eq!(
            backoff.after_run(Duration::from_secs(10)),
            Duration::from_millis(100)
        );
        assert_eq!(backoff.after_run(quick), Duration::from_millis(200));
    }

    #[test]
    fn restarts_follow_the_policy_only_for_detached_containers_that_started() {
        let on_failure = RestartPolicy::parse("on-failure:2").expect("a policy");
        let always = RestartPolicy::parse("always").expect("a policy");
        let unless = RestartPolicy::parse("unless-stopped").expect("a policy");
        let no = RestartPolicy::parse("no").expect("a policy");
        let detached = Mode::Detached;
        assert!(restarts(detached, true, on_failure, 1, &after(0, false)));
        assert!(restarts(detached, true, on_failure, 1, &after(1, false)));
        assert!(
            !restarts(detached, true, on_failure, 1, &after(2, false)),
            "at most 2"
        );
        assert!(
            !restarts(detached, true, on_failure, 0, &after(0, false)),
            "success"
        );
        assert!(restarts(detached, true, always, 0, &after(50, false)));
        assert!(
            !restarts(detached, true, always, 0, &after(0, true)),
            "stopped"
        );
        assert!(!restarts(detached, true, unless, 1, &after(0, true)));
        assert!(!restarts(detached, true, no, 1, &after(0, false)));
        assert!(!restarts(
            Mode::Foreground,
            true,
            always,
            1,
            &after(0, false)
        ));
        assert!(
            !restarts(detached, false, always, 1, &after(0, false)),
            "never started"
        );
    }
}
