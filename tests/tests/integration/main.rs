//! Integration tests: the real `capsule` binary and the real SDK over real guest
//! programs. One test binary; every test gets its own `CAPSULE_HOME`.

// Test set-up reaches the host directly (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod bad_input;
mod build;
mod cache;
mod commands;
mod components;
mod compose;
mod conformance;
mod conformance_p2;
mod containers;
mod crash;
mod django;
mod docs;
mod escape;
mod examples;
mod guests;
mod health;
mod hello;
mod hostcalls;
mod images;
mod integrity;
mod layers;
mod library_api;
mod limits;
mod modules;
mod networks;
mod outbound;
mod owner;
mod plugins;
mod ports;
mod races;
mod reactors;
mod registry;
mod run;
mod sdk;
mod shim;
mod tools;
mod volumes;
mod wasi_fuzz;
mod windows;
