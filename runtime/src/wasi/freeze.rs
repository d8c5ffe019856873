//! Freezing a running container's filesystem for a moment, as `docker commit --pause`
//! and a consistent `cp` out need: every WASI call that can change a file (a write,
//! a create, a rename, …) passes the container's [`Freeze`]; while it is frozen such
//! calls wait, and the freeze is granted only once those already in the host have
//! returned. What is copied or committed meanwhile is the filesystem between two of
//! the guest's calls, never in the middle of one. Reads, clocks, sleeps and sockets do
//! not pass it, so a guest blocked in `poll_oneoff` or `accept` never holds a freeze
//! back.
//!
//! The open path is one atomic add and one subtract per call; the lock is taken only
//! when a freeze is asked for or held.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Set in [`Freeze::state`] while frozen (or a freeze is waiting); the rest counts the
/// calls inside.
const FROZEN: usize = 1 << (usize::BITS - 1);

/// A container's freeze gate, shared by every program that runs in it.
#[derive(Debug, Default)]
pub struct Freeze {
    state: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
}

/// A call inside the gate; it leaves when dropped.
#[derive(Debug)]
pub struct Pass<'a>(&'a Freeze);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let before = self.0.state.fetch_sub(1, Ordering::AcqRel);
        if before & FROZEN != 0 {
            // A freeze may be waiting for this call to leave.
            let _guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.0.changed.notify_all();
        }
    }
}

/// The filesystem held still; thawed when dropped.
#[derive(Debug)]
pub struct Frozen<'a>(&'a Freeze);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.0.state.fetch_and(!FROZEN, Ordering::AcqRel);
        self.0.changed.notify_all();
    }
}

impl Freeze {
    /// Enters the gate for one call that may change the filesystem, waiting while the
    /// filesystem is frozen.
    pub fn enter(&self) -> Pass<'_> {
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        if before & FROZEN == 0 {
            return Pass(self);
        }
        // Frozen: step back out and wait for the thaw.
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let before = self.state.fetch_sub(1, Ordering::AcqRel);
            if before & FROZEN != 0 {
                self.changed.notify_all();
            }
            while self.state.load(Ordering::Acquire) & FROZEN != 0 {
                guard = self
                    .changed
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let before = self.state.fetch_add(1, Ordering::AcqRel);
            if before & FROZEN == 0 {
                return Pass(self);
            }
        }
    }

    /// Freezes the filesystem: calls that would change it wait from now on, and this
    /// returns once none is inside. `None` when calls are still inside after `timeout`
    /// (one blocked in the host: a write to a full pipe), and the freeze is given up.
    pub fn freeze(&self, timeout: Duration) -> Option<Frozen<'_>> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // One freeze at a time: a second waits for the first to thaw.
        while self.state.load(Ordering::Acquire) & FROZEN != 0 {
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        self.state.fetch_or(FROZEN, Ordering::AcqRel);
        while self.state.load(Ordering::Acquire) & !FROZEN != 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                self.state.fetch_and(!FROZEN, Ordering::AcqRel);
                self.changed.notify_all();
                return None;
            };
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(guard);
        Some(Frozen(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_freeze_waits_for_calls_inside_and_holds_new_ones_until_thawed() {
        let gate = Arc::new(Freeze::default());
        let inside = gate.enter();
        // A call inside: no freeze within the timeout.
        assert!(gate.freeze(Duration::from_millis(20)).is_none());
        // Given up: new calls pass again.
        drop(gate.enter());
        drop(inside);

        let frozen = gate.freeze(Duration::from_secs(1)).expect("nothing inside");
        let passed = Arc::new(AtomicBool::new(false));
        let caller = {
            let (gate, passed) = (gate.clone(), passed.clone());
            std::thread::spawn(move || {
                let _pass = gate.enter();
                passed.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !passed.load(Ordering::SeqCst),
            "a call passed a frozen gate"
        );
        drop(frozen);
        caller.join().expect("the caller");
        assert!(passed.load(Ordering::SeqCst));
        assert_eq!(gate.state.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_freeze_granted_while_calls_come_and_go_sees_none_inside() {
        let gate = Arc::new(Freeze::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (gate, inside, stop) = (gate.clone(), inside.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let _pass = gate.enter();
                        inside.fetch_add(1, Ordering::SeqCst);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            let frozen = gate.freeze(Duration::from_secs(5)).expect("granted");
            assert_eq!(inside.load(Ordering::SeqCst), 0, "a call inside a freeze");
            drop(frozen);
        }
        stop.store(true, Ordering::SeqCst);
        for caller in callers {
            caller.join().expect("a caller");
        }
    }
}
