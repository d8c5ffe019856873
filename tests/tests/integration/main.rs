//! Integration tests: the real `capsule` binary and the real SDK over real guest
//! programs. One test binary; every test gets its own `CAPSULE_HOME`.

mod bad_input;
mod build;
mod cache;
mod conformance;
mod crash;
mod escape;
mod examples;
mod guests;
mod hello;
mod hostcalls;
mod images;
mod integrity;
mod layers;
mod modules;
mod reactors;
mod registry;
mod run;
mod sdk;
mod wasi_fuzz;
