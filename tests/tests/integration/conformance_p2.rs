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

use super::conformance::{HostDependent, Known, World, differential};

/// Where Capsule's preview2 host deliberately differs from wasmtime-wasi's, with the
/// shape and rules of [`super::conformance::KNOWN_DIFFERENCES`].
pub const KNOWN_DIFFERENCES_P2: &[Known] = &[];

/// Lines whose reference value depends on the host's file system (as
/// [`super::conformance::HOST_DEPENDENT`]).
pub const HOST_DEPENDENT_P2: &[HostDependent] = &[];

/// The programs as components.
pub const PREVIEW2: World = World {
    name: "preview2",
    known: KNOWN_DIFFERENCES_P2,
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
