//! Command-line parsing, printing, and the one place that picks the exit code.

mod info;
mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes of the `capsule` process, as documented in the README. A guest's own
/// status (0..=255) passes through unchanged; these are what Capsule itself reports,
/// following Docker's 125/126/127 and wasmtime's trap code.
pub mod exit {
    /// Capsule could not do what was asked: bad flags or input, a host error.
    pub const USAGE: u8 = 125;
    /// The module cannot be run: not wasm, a component, unresolved imports, no entry.
    pub const CANNOT_RUN: u8 = 126;
    /// The module file was not found.
    pub const NOT_FOUND: u8 = 127;
    /// The guest faulted: a trap (128 + SIGABRT, as wasmtime reports it), or a
    /// `proc_exit` status outside 0..=255.
    pub const GUEST_FAULT: u8 = 134;
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "capsule",
    version,
    about = "Capsule: a container engine for WebAssembly",
    long_about = "Capsule runs WASI programs the way Docker runs containers, sandboxed by \
                  capabilities instead of namespaces. Try `capsule run hello-world`.",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a WebAssembly module (or a built-in like `hello-world`)
    Run(run::RunArgs),
    /// Show Capsule's version and the wasmtime it is built on
    Version,
    /// Show how this Capsule is configured: versions, features, home, cache
    Info(info::InfoArgs),
}

pub fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Version => {
            info::print_version();
            Ok(0)
        }
        Command::Info(args) => info::info(&args).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("capsule: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// `CAPSULE_LOG=debug` (or any tracing filter, e.g. `capsule_runtime=debug`) turns on
/// logs to stderr; without it nothing is set up, which keeps start-up fast.
fn init_logging() {
    let Some(filter) = std::env::var_os("CAPSULE_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::new(filter.to_string_lossy());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
