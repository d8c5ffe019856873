//! A running container as its supervisor holds it: the filesystem its main program
//! assembled (which `exec`'d programs, `cp` and a freeze share), the gauges every
//! program counts into, and the programs running now (`capsule top`). The supervisor
//! is its one owner; the control channel ([`super::control`]) reaches it.

use crate::engine::{Interrupt, Interruption};
use crate::exec::Gauges;
use crate::fs::Vfs;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Longest the end of a run waits for the copies into its filesystem to be undone.
pub const COPIES_UNDONE: Duration = Duration::from_secs(2);

/// One program running in the container.
#[derive(Debug)]
pub struct Program {
    /// Capsule's number for it in this container: 1 for the main program, then in
    /// the order `exec` started them.
    pub pid: u32,
    /// Its arguments, as asked for.
    pub command: Vec<String>,
    pub started: SystemTime,
    /// Started by `capsule exec` (or a health check) rather than as the container.
    pub exec: bool,
    /// Its own counts, sharing the container's.
    pub gauges: Gauges,
    /// Stops it.
    pub interrupt: Interrupt,
    /// The host thread that runs it (Linux thread id, for its CPU time), 0 until known.
    pub thread: AtomicI32,
}

/// A running container's shared state.
#[derive(Debug, Default)]
pub struct Live {
    /// The container's side of every program's gauges.
    gauges: Gauges,
    fs: Mutex<Option<Arc<Vfs>>>,
    programs: Mutex<Vec<Arc<Program>>>,
    next_pid: AtomicU32,
    /// How many times the main program has started (restarts included).
    runs: std::sync::atomic::AtomicU64,
    /// The copies into the filesystem in flight (`cp` in).
    pub copies: Arc<CopyGate>,
}

/// The copies into a running container's filesystem in flight. When its main program
/// ends the gate closes: a copy in flight stops at its next step (a file's next
/// chunk, the next entry) and undoes what it made, and the end of the run waits for
/// that (briefly) before it goes on to a restart or to the process's exit, so a copy
/// cut by a stop leaves nothing half-made in the container's files.
#[derive(Debug, Default)]
pub struct CopyGate {
    closing: AtomicBool,
    in_flight: Mutex<usize>,
    idle: Condvar,
}

/// A copy's place in the [`CopyGate`]; it leaves when dropped.
#[derive(Debug)]
pub struct CopyPass<'g>(&'g CopyGate);

impl Drop for CopyPass<'_> {
    fn drop(&mut self) {
        let mut n = self.0.lock();
        *n -= 1;
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl CopyGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets a copy in; `None` once the run is ending.
    pub fn enter(&self) -> Option<CopyPass<'_>> {
        let mut n = self.lock();
        if self.closing.load(Ordering::SeqCst) {
            return None;
        }
        *n += 1;
        Some(CopyPass(self))
    }

    /// Whether the copies in flight must stop.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Tells the copies in flight to stop, and waits (at most `limit`) until they
    /// have undone what they made.
    pub fn close(&self, limit: Duration) {
        let n = self.lock();
        self.closing.store(true, Ordering::SeqCst);
        let _ = self
            .idle
            .wait_timeout_while(n, limit, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Lets copies in again (the main program runs).
    pub fn open(&self) {
        let _n = self.lock();
        self.closing.store(false, Ordering::SeqCst);
    }
}

/// A program's place in [`Live`]; it leaves the list when dropped.
#[derive(Debug)]
pub struct Registered<'a> {
    live: &'a Live,
    pub program: Arc<Program>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.live
            .lock_programs()
            .retain(|p| !Arc::ptr_eq(p, &self.program));
    }
}

impl Live {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock_programs(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Program>>> {
        self.programs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a program about to run: the main one (`exec` false, numbered 1 on every
    /// run of the container) or another. Its gauges count into the container's.
    pub fn register(&self, command: Vec<String>, exec: bool) -> Registered<'_> {
        let pid = if exec {
            self.next_pid.fetch_add(1, Ordering::SeqCst) + 2
        } else {
            1
        };
        let program = Arc::new(Program {
            pid,
            command,
            started: SystemTime::now(),
            exec,
            gauges: Gauges {
                container_memory: self.gauges.container_memory.clone(),
                freeze: self.gauges.freeze.clone(),
                ..Gauges::default()
            },
            interrupt: Interrupt::new(),
            thread: AtomicI32::new(current_thread()),
        });
        self.lock_programs().push(program.clone());
        Registered {
            live: self,
            program,
        }
    }

    /// The programs running now, the main one first.
    pub fn programs(&self) -> Vec<Arc<Program>> {
        let mut programs = self.lock_programs().clone();
        programs.sort_by_key(|p| p.pid);
        programs
    }

    /// The main program's filesystem, while it runs.
    pub fn fs(&self) -> Option<Arc<Vfs>> {
        self.fs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets (when the main program starts) or clears (when it ends) the filesystem.
    /// Clearing it first cuts the copies into it and waits for them to be undone.
    pub fn set_fs(&self, fs: Option<Arc<Vfs>>) {
        let opening = fs.is_some();
        if opening {
            self.runs.fetch_add(1, Ordering::SeqCst);
        } else {
            self.copies.close(COPIES_UNDONE);
        }
        *self.fs.lock().unwrap_or_else(PoisonError::into_inner) = fs;
        if opening {
            self.copies.open();
        }
    }

    /// Which run of the main program this is (0 before the first); with [`Live::fs`]
    /// it tells a restart from the same run.
    pub fn run_number(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// The container's freeze gate.
    pub fn freeze(&self) -> &crate::wasi::freeze::Freeze {
        &self.gauges.freeze
    }

    /// Bytes of linear memory and tables of all its programs.
    pub fn memory(&self) -> u64 {
        self.gauges.container_memory.load(Ordering::Acquire)
    }

    /// Descriptors its programs hold open.
    pub fn open_descriptors(&self) -> usize {
        self.lock_programs()
            .iter()
            .map(|p| p.gauges.fds.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops every program but the main one (the container is ending).
    pub fn end_others(&self) {
        for program in self.lock_programs().iter().filter(|p| p.exec) {
            program.interrupt.interrupt(Interruption::Killed);
        }
    }
}

/// The calling thread's id on Linux (0 elsewhere): where its CPU time is read.
pub fn current_thread() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::gettid().as_raw_nonzero().get()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// CPU time a thread of this process has used, in nanoseconds (Linux; `None`
/// elsewhere or when it has ended).
pub fn thread_cpu_nanos(thread: i32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // utime and stime, fields 14 and 15 of /proc/self/task/TID/stat, in clock ticks
        // (USER_HZ, 100 on every Linux that matters); the name (field 2) may hold
        // spaces, so fields are counted after its closing parenthesis.
        let text = crate::ambient::read_text(std::path::Path::new(&format!(
            "/proc/self/task/{thread}/stat"
        )))
        .ok()?;
        let rest = &text[text.rfind(')')? + 2..];
        let mut fields = rest.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some((user + system) * 10_000_000)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = thread;
        None
    }
}

/// CPU time this whole process (the supervisor: the container) has used, in ns.
pub fn process_cpu_nanos() -> u64 {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
    }
    #[cfg(windows)]
    {
        super::process::cpu_nanos()
    }
    #[cfg(not(any(unix, windows)))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_run_cuts_copies_and_waits_until_they_leave() {
        let gate = Arc::new(CopyGate::default());
        let pass = gate.enter().expect("open while the program runs");
        assert!(!gate.is_closing());
        let closer = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                gate.close(Duration::from_secs(30));
                start.elapsed()
            })
        };
        // The copy sees the cut, undoes its work, and leaves.
        while !gate.is_closing() {
            std::thread::yield_now();
        }
        assert!(gate.enter().is_none(), "no copy starts once the run ends");
        std::thread::sleep(Duration::from_millis(50));
        drop(pass);
        let waited = closer.join().expect("close");
        assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(30));
        // The next run lets copies in again; a copy that never leaves is waited for
        // only as long as asked.
        gate.open();
        let _stuck = gate.enter().expect("open again");
        let start = std::time::Instant::now();
        gate.close(Duration::from_millis(20));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn programs_are_numbered_listed_and_leave_when_done() {
        let live = Live::new();
        let main = live.register(vec!["/app.wasm".into()], false);
        let first = live.register(vec!["/bin/sh".into()], true);
        let second = live.register(vec!["/bin/ls".into()], true);
        let pids: Vec<u32> = live.programs().iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 2, 3]);
        drop(first);
        let pids: Vec<u32> = live.programs().iter().map(|p| p.pid).collect();
        assert_eq!(pids, [1, 3]);
        live.end_others();
        assert!(second.program.interrupt.reason().is_some());
        assert!(
            main.program.interrupt.reason().is_none(),
            "the main program stays"
        );
        drop((main, second));
        assert!(live.programs().is_empty());
    }

    #[test]
    fn this_process_and_thread_have_used_cpu_time() {
        let start = process_cpu_nanos();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_nanos() > start);
        #[cfg(target_os = "linux")]
        assert!(thread_cpu_nanos(current_thread()).is_some());
    }
}
