//! The host's process calls a container's supervisor needs, in their one place per
//! system: starting a detached supervisor that outlives the command that started it,
//! asking it to stop, ending it outright, and hearing Ctrl-C in the foreground.
//!
//! | | Unix | Windows |
//! |---|---|---|
//! | detach | `setsid` in the supervisor: no terminal, no process group of the shell's | `CREATE_NO_WINDOW` and a process group of its own: a hidden console of its own, so no Ctrl-C or close of the shell's |
//! | stop | the request file, then `SIGTERM` to wake the supervisor | the request file, read by the supervisor's polling thread (50 ms) |
//! | kill | `SIGKILL` | `TerminateProcess` |
//! | Ctrl-C | `SIGINT`/`SIGHUP` (signal-hook) | console control events (`SetConsoleCtrlHandler`) |
//!
//! Both also reach a running container through its control channel where there is
//! one (`control`, Unix only: Unix sockets with descriptors passed).

/// Makes `command` start a supervisor detached from this process's terminal or
/// console (its own session is taken by the supervisor itself on Unix: see
/// [`leave_session`]).
pub fn detach(command: &mut std::process::Command) {
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        use windows_sys::Win32::System::Threading::{CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW};
        command.creation_flags(CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP);
    }
    #[cfg(not(windows))]
    let _ = command;
}

/// What [`fork_supervisor`] made of this process.
#[derive(Debug)]
pub enum Forked {
    /// This process cannot fork (it has other threads, or the system is not Linux):
    /// start the supervisor as a program of its own.
    Unavailable,
    /// The command's side: the child's lines arrive here; it exits when it could not
    /// become a supervisor.
    Parent(ForkedChild),
    /// The child's side, with stdout the pipe to the parent: it goes on to prepare the
    /// container and become its supervisor.
    Child,
}

/// The child of [`fork_supervisor`], seen from the parent.
#[derive(Debug)]
pub struct ForkedChild {
    pub lines: std::io::PipeReader,
    pid: i32,
}

impl ForkedChild {
    /// Waits for the child to exit: its exit status (128 + the signal that ended it).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code, reason = "waitpid: see SAFETY below")]
    pub fn wait(self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child, writing only to `status`.
            let waited = unsafe { libc::waitpid(self.pid, &raw mut status, 0) };
            if waited == self.pid {
                break;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return 125;
            }
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn wait(self) -> i32 {
        let _ = self.pid;
        125
    }
}

/// `run -d` on Linux: forks this process, before it has opened anything, into the
/// child that prepares the container and becomes its supervisor, without starting the
/// binary a second time (that start cost about 2 ms of `run -d`'s 7: the loader's
/// relocations and page faults of a 40 MB binary, the command line's parser). The
/// parent only waits for the child's word. A process with more than one thread cannot
/// fork safely (the child would inherit locks held by threads it does not have):
/// [`Forked::Unavailable`] then, as on every other system.
///
/// The fork happens before the command opens its home or anything else: no descriptor
/// and no library's cached handle (rustix caches `/proc/self` by the pid that opened
/// it) is shared between the two.
///
/// # Errors
/// The host's error making the pipe or the process.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "fork and dup2: see SAFETY below")]
pub fn fork_supervisor() -> std::io::Result<Forked> {
    use std::os::fd::AsRawFd;
    let status = crate::ambient::open_file(std::path::Path::new("/proc/self/status")).and_then(
        |mut file| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).map(|_| text)
        },
    );
    let threads = status.ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
    });
    if threads != Some(1) {
        return Ok(Forked::Unavailable);
    }
    let (lines, writer) = std::io::pipe()?;
    // Anything buffered is written once, by the parent.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: this process has one thread (checked above), so the child is a whole
    // copy of it, with no lock held by a thread it does not have.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: descriptor calls on descriptors this process owns.
        if unsafe { libc::dup2(writer.as_raw_fd(), 1) } < 0 {
            std::process::exit(125);
        }
        drop((lines, writer));
        return Ok(Forked::Child);
    }
    drop(writer);
    Ok(Forked::Parent(ForkedChild { lines, pid }))
}

/// Elsewhere: [`Forked::Unavailable`].
///
/// # Errors
/// None.
#[cfg(not(target_os = "linux"))]
pub fn fork_supervisor() -> std::io::Result<Forked> {
    Ok(Forked::Unavailable)
}

/// The forked child becoming a detached supervisor (see [`fork_supervisor`]): stdin
/// from `/dev/null`, stderr to `log`. Returns the terminal's stderr, to put back with
/// [`restore_stderr`] if the guest never starts (the error is then the command's to
/// print).
///
/// # Errors
/// The host's error.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "dup and dup2: see SAFETY below")]
pub fn redirect_for_supervisor(log: &std::fs::File) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let null = crate::ambient::open_file(std::path::Path::new("/dev/null"))?;
    // SAFETY: duplicates descriptor 2, which this process owns; the copy is owned by
    // the returned value alone.
    let terminal = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    if terminal < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `terminal` is a new descriptor nothing else owns.
    let terminal = unsafe { std::os::fd::OwnedFd::from_raw_fd(terminal) };
    // SAFETY: descriptor calls on descriptors this process owns.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0
        || unsafe { libc::dup2(log.as_raw_fd(), 2) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(terminal)
}

/// Puts the terminal's stderr back (see [`redirect_for_supervisor`]).
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "dup2: see SAFETY below")]
pub fn restore_stderr(terminal: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: descriptor calls on descriptors this process owns.
    let _ = unsafe { libc::dup2(terminal.as_raw_fd(), 2) };
}

/// The supervisor's first act on Unix: a session of its own, so closing the terminal
/// or Ctrl-C there never reaches a detached container (on Windows [`detach`] did it).
pub fn leave_session() {
    #[cfg(unix)]
    if let Err(e) = rustix::process::setsid() {
        tracing::warn!(error = %e, "cannot start a session of its own");
    }
}

/// Wakes the process `pid` to read its stop request (Unix: `SIGTERM`). On Windows
/// its polling thread finds the request by itself.
pub fn terminate(pid: u32) {
    #[cfg(unix)]
    send(pid, rustix::process::Signal::TERM);
    #[cfg(not(unix))]
    let _ = pid;
}

/// Ends the process `pid` outright (`SIGKILL`, `TerminateProcess`).
pub fn kill(pid: u32) {
    #[cfg(unix)]
    send(pid, rustix::process::Signal::KILL);
    #[cfg(windows)]
    terminate_process(pid);
    #[cfg(not(any(unix, windows)))]
    let _ = pid;
}

#[cfg(unix)]
fn send(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

#[cfg(windows)]
#[allow(
    unsafe_code,
    reason = "Win32 calls: a handle checked, then closed once"
)]
fn terminate_process(pid: u32) {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_TERMINATE, TerminateProcess};
    // SAFETY: OpenProcess returns a handle or null; a non-null one is used once and
    // closed once.
    unsafe {
        let handle = OpenProcess(PROCESS_TERMINATE, 0, pid);
        if !handle.is_null() {
            TerminateProcess(handle, u32::from(crate::exit::KILLED));
            CloseHandle(handle);
        }
    }
}

/// Windows: the console's Ctrl-C, Ctrl-Break and close events, counted (the
/// supervisor of a foreground container polls [`console_interrupted`]).
#[cfg(windows)]
static CONSOLE_EVENTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Starts hearing the console's Ctrl-C, Ctrl-Break and close events (Windows; a no-op
/// elsewhere, where signals do this).
pub fn hear_console() {
    #[cfg(windows)]
    #[allow(
        unsafe_code,
        reason = "registers a handler that only touches an atomic"
    )]
    {
        use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
        unsafe extern "system" fn handler(_event: u32) -> windows_sys::core::BOOL {
            CONSOLE_EVENTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            1
        }
        // SAFETY: the handler is a plain function that only touches an atomic.
        if unsafe { SetConsoleCtrlHandler(Some(handler), 1) } == 0 {
            tracing::warn!("cannot hear Ctrl-C: it will end the process at once");
        }
    }
}

/// Sets `flag` when this process is interrupted: `SIGINT` or `SIGTERM` on Unix, the
/// console's Ctrl-C, Ctrl-Break or close on Windows (for a command that stops what
/// it started, as `compose up` in the foreground).
pub fn flag_interrupts(flag: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, flag.clone());
    }
    #[cfg(not(unix))]
    {
        hear_console();
        let flag = flag.clone();
        std::thread::spawn(move || {
            while !console_interrupted() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

/// Whether the console has sent Ctrl-C, Ctrl-Break or a close since
/// [`hear_console`] (always `false` but on Windows).
pub fn console_interrupted() -> bool {
    #[cfg(windows)]
    {
        CONSOLE_EVENTS.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
    #[cfg(not(windows))]
    {
        false
    }
}

/// Windows: the CPU time (user and kernel) this process has used, in nanoseconds.
#[cfg(windows)]
#[allow(
    unsafe_code,
    reason = "GetProcessTimes into four values this function owns"
)]
pub fn cpu_nanos() -> u64 {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessTimes};
    let zero = || FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero(), zero(), zero(), zero());
    // SAFETY: the pseudo-handle of this process, and four FILETIMEs to write.
    let ok = unsafe {
        GetProcessTimes(
            GetCurrentProcess(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    if ok == 0 {
        return 0;
    }
    // FILETIME counts 100 ns.
    let ticks = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    (ticks(kernel) + ticks(user)).saturating_mul(100)
}
