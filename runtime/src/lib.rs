//! Capsule's engine library: everything the `capsule` binary and the SDK share.
//!
//! Modules depend downward: each uses only those listed after it.
//! `docs/architecture.md` in the repository has the map
//! and follows a run through the modules. From the top:
//!
//! - [`compose`]: `compose.toml`: the file model, variable substitution, the project.
//! - [`builder`]: recipes (Dockerfile syntax) over a build context become images.
//! - [`plugin`]: plugins: a pool of ready instances, host functions, per-call limits.
//! - [`container`]: containers: the one runner every guest goes through, Docker's rules
//!   for preparing one from an image, states, the supervisor, logs, `diff`/`commit`/`cp`.
//! - [`volume`]: named volumes: create, seed from an image, remove, prune.
//! - [`registry`]: pull, push, login and logout against OCI registries.
//! - [`builtin`]: modules built into the binary (`hello-world`).
//! - [`image`]: OCI manifests and configs, references, the reproducible layer writer,
//!   the uncompressed layer cache, save/load/import, and the rules of removal.
//! - [`exec`]: instantiate a module and run it to an [`exec::ExitStatus`] (with `ending`,
//!   the one reading of how guest code ended, shared with plugin calls).
//! - [`exit`]: the one table of exit codes (Docker's 125/126/127, traps, signals).
//! - [`signal`]: signal names and numbers as Docker reads them (`STOPSIGNAL`).
//! - [`labels`]: what an image's `io.capsule.*` labels say about running its program.
//! - [`wasi`]: Capsule's own WASI preview1 host, over the layered filesystem.
//! - [`fs`]: the layered virtual filesystem a container sees as `/`.
//! - [`store`]: the content store, an OCI image layout: verified blobs, locked index.
//! - [`engine`]: the wasmtime engine configuration and the compiled-module cache.
//! - [`spec`]: what a guest is given: arguments, environment, mounts, working directory,
//!   limits; `spec::grammar` and `spec::mounts` are Docker's flag grammar for them, the
//!   one set of rules the CLI, compose, the SDK and the shim call.
//! - [`net`]: published ports and the host listeners behind them.
//! - [`module`]: reading and classifying wasm bytes (module, component, text, garbage).
//! - [`home`]: where Capsule keeps its state.
//! - [`time`]: the wall clock as the records write it.
//! - [`failpoint`]: crash points for the crash-consistency tests (`failpoints` feature).
//! - [`ambient`]: the only module that touches ambient authority (host paths, host env).
#![deny(unsafe_code)]
// Test code may reach the host directly (see clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod ambient;
pub mod builder;
pub mod builtin;
pub mod component;
pub mod compose;
pub mod container;
mod ending;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod failpoint;
pub mod fs;
pub mod home;
pub mod image;
pub mod labels;
pub mod module;
pub mod net;
pub mod plugin;
pub mod registry;
pub mod serve;
pub mod signal;
pub mod spec;
pub mod store;
pub mod time;
pub mod volume;
pub mod wasi;

/// The wasmtime crate Capsule is built on, for embedders that need its types.
pub use wasmtime;

/// Capsule's version, from `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wasmtime version Capsule was built with, from `Cargo.lock`.
pub const WASMTIME_VERSION: &str = env!("CAPSULE_WASMTIME_VERSION");
