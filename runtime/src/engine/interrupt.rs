//! Stopping a running guest from another thread: `capsule stop`/`kill` (through the
//! supervisor), `--timeout`, the SDK. WASI preview1 has no signals, so a stop is an
//! interruption: the engine's epoch is bumped, and the guest traps at its next function
//! entry or loop back-edge (wasmtime's epoch interruption); a guest asleep in
//! `poll_oneoff` is woken first.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Why a guest was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Interruption {
    /// `capsule stop` after its grace period, or `capsule kill`.
    Killed,
    /// Its wall-clock `--timeout` passed.
    Timeout(Duration),
    /// It used up its `--fuel` (wasmtime fuel units, about one per instruction).
    /// Not sent through an [`Interrupt`]: the guest's own code stops when its fuel
    /// reaches zero.
    OutOfFuel(u64),
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interruption::Killed => f.write_str("killed"),
            Interruption::Timeout(d) => {
                write!(
                    f,
                    "stopped after its --timeout of {}",
                    crate::spec::format_duration(*d)
                )
            }
            Interruption::OutOfFuel(fuel) => write!(f, "ran out of fuel: --fuel {fuel}"),
        }
    }
}

/// A handle that interrupts the runs it is given to; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    reason: Option<Interruption>,
    engines: Vec<wasmtime::Engine>,
}

impl Interrupt {
    /// A handle that has not interrupted anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interrupts every run of this handle (the first reason given is kept).
    pub fn interrupt(&self, why: Interruption) {
        let engines = {
            let mut state = self.lock();
            state.reason.get_or_insert(why);
            state.engines.clone()
        };
        for engine in engines {
            engine.increment_epoch();
        }
        self.0.wake.notify_all();
    }

    /// Why the runs were interrupted, if they were.
    pub fn reason(&self) -> Option<Interruption> {
        self.lock().reason
    }

    /// Registers an engine whose epoch [`Interrupt::interrupt`] bumps.
    pub(crate) fn attach(&self, engine: &wasmtime::Engine) {
        let mut state = self.lock();
        if state.reason.is_some() {
            engine.increment_epoch();
        }
        if !state
            .engines
            .iter()
            .any(|e| wasmtime::Engine::same(e, engine))
        {
            state.engines.push(engine.clone());
        }
    }

    /// Sleeps for `duration` unless interrupted first; returns whether it slept the
    /// whole time.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = std::time::Instant::now() + duration;
        let mut state = self.lock();
        loop {
            if state.reason.is_some() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return true;
            }
            state = match self.0.wake.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Interrupts with [`Interruption::Timeout`] after `timeout`, unless dropped first.
#[derive(Debug)]
pub struct Deadline {
    cancel: Option<std::sync::mpsc::Sender<()>>,
}

impl Deadline {
    /// Starts the clock.
    pub fn start(interrupt: &Interrupt, timeout: Duration) -> Self {
        let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
        let interrupt = interrupt.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(timeout)
            {
                interrupt.interrupt(Interruption::Timeout(timeout));
            }
        });
        Self {
            cancel: Some(cancel),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
    }
}
