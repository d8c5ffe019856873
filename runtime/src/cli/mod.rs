//! Command-line parsing, printing, and the one place that picks the exit code.

mod build;
mod images;
mod info;
mod progress;
mod registry;
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
    /// Build an image from a recipe (Capsulefile or Dockerfile) and a context directory
    Build(build::BuildArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Give an image another name: capsule tag SOURCE NAME[:TAG]
    Tag(images::TagArgs),
    /// Remove images (a name removes that name; the image goes with its last name)
    Rmi(images::RmiArgs),
    /// Show images' configuration and layers as JSON
    Inspect(images::InspectArgs),
    /// Show the steps that made an image
    History(images::HistoryArgs),
    /// Save images to a tar archive (an OCI layout, with docker's manifest.json)
    Save(images::SaveArgs),
    /// Load images from a tar archive (capsule/docker save, OCI layouts, wasm artifacts)
    Load(images::LoadArgs),
    /// Download an image from a registry: capsule pull REGISTRY/NAME[:TAG|@DIGEST]
    Pull(registry::PullArgs),
    /// Upload an image to a registry: capsule push REGISTRY/NAME[:TAG]
    Push(registry::PushArgs),
    /// Log in to a registry (credentials kept in Capsule's config.json, mode 0600)
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage Capsule's data
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(BuilderCommand),
}

#[derive(Debug, Subcommand)]
enum BuilderCommand {
    /// Remove the build cache (every step rebuilds next time) and the layers only it used
    Prune(images::BuilderPruneArgs),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ImagesArgs),
    /// Make a one-layer image from a WebAssembly module, with it as entrypoint
    Import(images::ImportArgs),
    /// Remove dangling (unnamed) images, or with -a every image, that no container
    /// uses, and unused blobs
    Prune(images::PruneArgs),
    /// Give an image another name
    Tag(images::TagArgs),
    /// Remove images
    Rm(images::RmiArgs),
    /// Show images' configuration and layers as JSON
    Inspect(images::InspectArgs),
    /// Show the steps that made an image
    History(images::HistoryArgs),
    /// Save images to a tar archive
    Save(images::SaveArgs),
    /// Load images from a tar archive
    Load(images::LoadArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Show disk usage: images, containers, build cache
    Df,
    /// Re-hash every blob and derived file; quarantine corrupt blobs, drop damaged
    /// derived files (rebuilt when next used), report broken images
    Check(images::CheckArgs),
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
        Command::Build(args) => build::build(&args),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => images::images(&args),
        Command::Tag(args) | Command::Image(ImageCommand::Tag(args)) => images::tag(&args),
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => images::rmi(&args),
        Command::Inspect(args) | Command::Image(ImageCommand::Inspect(args)) => {
            images::inspect(&args)
        }
        Command::History(args) | Command::Image(ImageCommand::History(args)) => {
            images::history(&args)
        }
        Command::Save(args) | Command::Image(ImageCommand::Save(args)) => images::save(&args),
        Command::Load(args) | Command::Image(ImageCommand::Load(args)) => images::load(&args),
        Command::Pull(args) | Command::Image(ImageCommand::Pull(args)) => registry::pull(&args),
        Command::Push(args) | Command::Image(ImageCommand::Push(args)) => registry::push(&args),
        Command::Login(args) => registry::login(&args),
        Command::Logout(args) => registry::logout(&args),
        Command::Image(ImageCommand::Import(args)) => images::import(&args),
        Command::Image(ImageCommand::Prune(args)) => images::prune(&args),
        Command::System(SystemCommand::Df) => images::system_df(),
        Command::System(SystemCommand::Check(args)) => images::system_check(&args),
        Command::Builder(BuilderCommand::Prune(args)) => images::builder_prune(&args),
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
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
