//! Capsule's engine library: everything the `capsule` binary and the SDK share.
//!
//! Modules depend downward only (see `shared/design/architecture.md`):
//!
//! - [`exec`]: instantiate a module and run it to an [`exec::ExitStatus`].
//! - [`wasi`]: the WASI preview1 host a guest sees (the seam the layered filesystem
//!   replaces).
//! - [`builder`]: recipes (Dockerfile syntax) over a build context become images.
//! - [`spec`]: what a guest is given: arguments, environment, mounts, working directory.
//! - [`module`]: reading and classifying wasm bytes (module, component, text, garbage).
//! - [`engine`]: the wasmtime engine configuration and the compiled-module cache.
//! - [`plugin`]: plugins: a pool of ready instances, host functions, per-call limits.
//! - [`home`]: where Capsule keeps its state.
//! - [`ambient`]: the only module that touches ambient authority (host paths, host env).
#![deny(unsafe_code)]
// Test code may reach the host directly (see clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod ambient;
pub mod builder;
pub mod builtin;
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
