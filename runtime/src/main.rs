//! The `capsule` binary: glue between the command line and `capsule_runtime`.

// Test code may reach the host directly (see clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
