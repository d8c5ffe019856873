//! How guest code ended, read from the error wasmtime returned: the one reading that
//! runs ([`crate::exec`]) and plugin calls ([`crate::plugin`]) share.
//!
//! Each caller first takes out the host errors only it raises (a run's interruption; a
//! plugin's error result, ABI violation or host panic), then [`classify`]s the rest and
//! decides what each kind means for it. Where the two differ, they differ on purpose:
//!
//! | [`Ending`] | a run (`exec`) | a plugin call (`plugin::call`) |
//! | --- | --- | --- |
//! | `Exit(s)` | `Exited(s)`, or `InvalidExit(s)` past 255 (a process status is a byte) | `Exited { status: s }` as is (a call has no process status) |
//! | `OutOfFuel` | `Interrupted(OutOfFuel)` | `OutOfFuel` |
//! | `Interrupt` | a trap: a run is stopped by its own epoch callback's error, never by this trap | `Deadline`: a call's deadline is the epoch deadline trap |
//! | `Trap` | `Trapped`, with the wasm backtrace; out of memory is decided after, from the limiter | `OutOfMemory` when the limiter refused memory, else `Trap`, with the call's last stderr line |
//! | `Host(reason)` | an instantiation error when instantiating with no wasm frame on the stack, else a trap | an instantiation error while loading, else a trap |

use crate::wasi::ProcExit;

/// What ended guest code that returned an error.
#[derive(Debug)]
pub(crate) enum Ending<'a> {
    /// It called `proc_exit(status)`.
    Exit(u32),
    /// Its fuel ran out.
    OutOfFuel,
    /// The store's epoch deadline passed (wasmtime's `Trap::Interrupt`).
    Interrupt,
    /// Any other wasm trap (its message reads "wasm trap: ...").
    Trap(&'a wasmtime::Trap),
    /// Not a trap: a host function or the linker failed (a stub for an unknown import, a
    /// host fault, a start function's import): the first line of the root cause (the
    /// outer layers are wasmtime's "error while executing" context).
    Host(String),
}

/// Classifies an error from instantiating or calling guest code.
pub(crate) fn classify(error: &wasmtime::Error) -> Ending<'_> {
    if let Some(ProcExit(status)) = error.downcast_ref::<ProcExit>() {
        return Ending::Exit(*status);
    }
    // A component's `wasi:cli/exit`.
    if let Some(wasmtime_wasi::I32Exit(status)) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Ending::Exit(*status as u32);
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => Ending::OutOfFuel,
        Some(wasmtime::Trap::Interrupt) => Ending::Interrupt,
        Some(trap) => Ending::Trap(trap),
        None => Ending::Host(first_line(&error.root_cause().to_string())),
    }
}

/// The first line of an error message (wasmtime's errors carry their context and
/// details on the lines after it).
pub(crate) fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_owned()
}
