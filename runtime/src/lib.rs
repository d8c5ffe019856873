//! Capsule's engine library: everything the `capsule` binary and the SDK share.
//!
//! Modules depend downward only; `docs/architecture.md` in the repository has the map
//! and follows a run through them. From the top:
//!
//! - [`compose`]: `compose.toml`: the file model, variable substitution, the project.
//! - [`builder`]: recipes (Dockerfile syntax) over a build context become images.
//! - [`container`]: containers: the one runner every guest goes through, Docker's rules
//!   for preparing one from an image, states, the supervisor, logs, `diff`/`commit`/`cp`.
//! - [`volume`]: named volumes: create, seed from an image, remove, prune.
//! - [`net`]: published ports and the host listeners behind them.
//! - [`registry`]: pull, push, login and logout against OCI registries.
//! - [`image`]: OCI manifests and configs, references, the reproducible layer writer,
//!   the uncompressed layer cache, save/load/import, and the rules of removal.
//! - [`plugin`]: plugins: a pool of ready instances, host functions, per-call limits.
//! - [`exec`]: instantiate a module and run it to an [`exec::ExitStatus`].
//! - [`wasi`]: Capsule's own WASI preview1 host, over the layered filesystem.
//! - [`fs`]: the layered virtual filesystem a container sees as `/`.
//! - [`store`]: the content store, an OCI image layout: verified blobs, locked index.
//! - [`engine`]: the wasmtime engine configuration and the compiled-module cache.
//! - [`spec`]: what a guest is given: arguments, environment, mounts, working directory.
//! - [`module`]: reading and classifying wasm bytes (module, component, text, garbage).
//! - [`labels`]: what an image's `io.capsule.*` labels say about running its program.
//! - [`builtin`]: modules built into the binary (`hello-world`).
//! - [`home`]: where Capsule keeps its state.
//! - [`ambient`]: the only module that touches ambient authority (host paths, host env).
//! - [`failpoint`]: crash points for the crash-consistency tests (`failpoints` feature).
#![deny(unsafe_code)]

pub mod ambient;
pub mod builder;
pub mod builtin;
pub mod compose;
pub mod container;
pub mod engine;
pub mod exec;
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
pub mod volume;
pub mod wasi;

/// The wasmtime crate Capsule is built on, for embedders that need its types.
pub use wasmtime;

/// Capsule's version, from `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wasmtime version Capsule was built with, from `Cargo.lock`.
pub const WASMTIME_VERSION: &str = env!("CAPSULE_WASMTIME_VERSION");
