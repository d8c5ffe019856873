//! Capsule's exit codes, in one table: what the `capsule` process exits with, what a
//! container's state records, and what the SDK and the containerd shim report.
//!
//! A guest's own status (0..=255) passes through unchanged. The rest follow Docker
//! (125/126/127 for Capsule's own failures, 128 + a signal for a guest ended from
//! outside), wasmtime (134, 128 + SIGABRT, for a trap) and `timeout(1)` (124).

use crate::engine::Interruption;
use crate::exec::{ExitStatus, RunOutput};

/// Capsule could not do what was asked: bad flags or input, a host error.
pub const USAGE: u8 = 125;
/// The module cannot be run, or the container could not start: not wasm, a
/// component, unresolved imports, no entry.
pub const CANNOT_RUN: u8 = 126;
/// The module file was not found.
pub const NOT_FOUND: u8 = 127;
/// The guest faulted: a trap (128 + SIGABRT, as wasmtime reports it), or a
/// `proc_exit` status outside 0..=255.
pub const GUEST_FAULT: u8 = 134;
/// Killed: `kill`, or `stop` after its grace period (128 + SIGKILL).
pub const KILLED: u8 = 137;
/// Interrupted from the terminal (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
/// Its `--timeout` passed (as `timeout(1)` reports it).
pub const TIMEOUT: u8 = 124;
/// It used up its `--fuel` (128 + SIGXCPU, what a process past its CPU-time limit,
/// `ulimit -t`, gets).
pub const OUT_OF_FUEL: u8 = 152;
/// It trapped after `--memory` refused it memory (128 + SIGKILL, as Docker reports a
/// container the kernel's OOM killer ended).
pub const OUT_OF_MEMORY: u8 = 137;

/// The exit code of a guest stopped from outside or by a limit.
pub fn of_interruption(why: &Interruption) -> u8 {
    match why {
        Interruption::Killed => KILLED,
        Interruption::Timeout(_) => TIMEOUT,
        Interruption::OutOfFuel(_) => OUT_OF_FUEL,
    }
}

/// The exit code a run's status gives.
pub fn of_status(status: &ExitStatus) -> u8 {
    match status {
        ExitStatus::Exited(code) => *code,
        ExitStatus::Trapped(_) | ExitStatus::InvalidExit(_) => GUEST_FAULT,
        ExitStatus::Interrupted(why) => of_interruption(why),
    }
}

/// The exit code of a run: [`of_status`] of its status, except that a guest that
/// trapped after `--memory` refused it memory (the usual end of a failed allocation:
/// `abort()`, Rust's alloc error handler) exits as out of memory. A guest that exits
/// by itself after a refused grow keeps its own code (it is still recorded as out of
/// memory, `State.OOMKilled`).
pub fn of_output(output: &RunOutput) -> u8 {
    match output.status {
        ExitStatus::Trapped(_) | ExitStatus::InvalidExit(_) if output.out_of_memory.is_some() => {
            OUT_OF_MEMORY
        }
        ref status => of_status(status),
    }
}
