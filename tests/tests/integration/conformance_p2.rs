//! The differential harness for WASI 0.2: every conformance program as a
//! `wasi:cli/command` component (the C programs through wasmtime 48's preview1 adapter,
//! `rust_std` built for `wasm32-wasip2`) runs once under wasmtime-wasi's own preview2
//! host (the reference, in this process) and under Capsule's component host (the real
//! binary: its own `wasi:filesystem` over its own filesystem) on every backend, compared
//! exactly as the preview1 modules are (`conformance.rs`, the same runner).
//!
//! The C programs call preview1 and reach preview2 through the adapter on both sides,
//! so they test the adapter with each host: the `raw_*` programs included, with the
//! adapter's own answers (the same on both sides) in their transcripts.

//!
//! The differences of Capsule's filesystem itself show here as in preview1 (both hosts
//! answer from the same core): they are [`FILESYSTEM_DIFFERENCES`], enforced in both
//! worlds. Preview1's rights (`fd_fdstat_set_rights`) do not reach a preview2 host: the
//! adapter answers those calls itself, the same on both sides.

use super::conformance::{FILESYSTEM_DIFFERENCES, HostDependent, Known, World, differential};

/// Where Capsule's preview2 host deliberately differs from wasmtime-wasi's beyond
/// [`FILESYSTEM_DIFFERENCES`], with the shape and rules of
/// [`super::conformance::KNOWN_DIFFERENCES`]: none.
pub const KNOWN_DIFFERENCES_P2: &[Known] = &[];

/// Lines whose reference value depends on the host's file system (as
/// [`super::conformance::HOST_DEPENDENT`]): none. Preview1's readdir-while-changing
/// lines are not: wasmtime-wasi's preview2 `read-directory` lists the directory once
/// when the stream opens, and the adapter keeps reading that stream while wasi-libc's
/// cookies follow on, so the reference sees a snapshot, as Capsule's core serves.
pub const HOST_DEPENDENT_P2: &[HostDependent] = &[];

/// The programs as components.
pub const PREVIEW2: World = World {
    name: "preview2",
    known: &[FILESYSTEM_DIFFERENCES, KNOWN_DIFFERENCES_P2],
    bugs: &[],
    host_dependent: HOST_DEPENDENT_P2,
};

macro_rules! differential_test {
    ($name:ident, $path:expr) => {
        #[test]
        fn $name() {
            differential(&PREVIEW2, stringify!($name), $path);
        }
    };
}

capsule_tests::foreach_conformance_p2!(differential_test);
