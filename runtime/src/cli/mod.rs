//! Command-line parsing, printing, and the one place that picks the exit code.

mod build;
mod builder;
mod compose;
mod container;
mod exec;
mod images;
mod info;
mod network;
mod output;
mod progress;
mod registry;
mod run;
mod system;
mod usage;
mod volume;
mod warm;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes of the `capsule` process (the runtime's one table), as documented in
/// `docs/cli.md`.
pub use capsule_runtime::exit;

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

    /// The error's line: each cause after the error, `: `-separated, leaving out a
    /// cause whose words are already there (an error that quotes its source would
    /// otherwise print it twice, "(os error 2): … (os error 2)").
    pub fn line(&self) -> String {
        let mut line = String::new();
        for cause in self.error.chain() {
            let text = cause.to_string();
            if text.is_empty() || line.contains(&text) {
                continue;
            }
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        line
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
    /// Show containers' or images' configuration and state as JSON
    Inspect(container::InspectArgs),
    /// Show the steps that made an image
    History(images::HistoryArgs),
    /// Create a container from an image without starting it
    Create(container::CreateCommandArgs),
    /// Start stopped containers (in the background; -a to attach)
    Start(container::StartArgs),
    /// List containers
    Ps(container::PsArgs),
    /// Show a container's output
    Logs(container::LogsArgs),
    /// List a container's published ports (CONTAINER_PORT/tcp -> HOST_IP:HOST_PORT)
    Port(container::PortArgs),
    /// Stop containers: wait the grace period, then interrupt the guest
    Stop(container::StopArgs),
    /// Interrupt running containers at once
    Kill(container::KillArgs),
    /// Remove containers
    Rm(container::RmArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(container::WaitArgs),
    /// Rename a container
    Rename(container::RenameArgs),
    /// Stop and start containers again
    Restart(container::StopArgs),
    /// Show what a container changed in its filesystem (A added, C changed, D deleted)
    Diff(container::DiffArgs),
    /// Make an image from a container's changes
    Commit(container::CommitArgs),
    /// Copy files between a container and the host (CONTAINER:PATH)
    Cp(container::CpArgs),
    /// Run another program in a running container
    Exec(exec::ExecArgs),
    /// List the programs running in a container
    Top(exec::TopArgs),
    /// Show containers' CPU, memory, descriptors and programs
    Stats(exec::StatsArgs),
    /// Run several services from one compose.toml
    Compose(compose::ComposeArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// The supervisor of a detached container (started by Capsule itself)
    #[command(name = "__supervise", hide = true)]
    Supervise { id: String },
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
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
}

#[derive(Debug, Subcommand)]
enum NetworkCommand {
    /// Create a network (a loopback subnet whose containers reach each other by name)
    Create(network::CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(network::LsArgs),
    /// Show networks as JSON, with the containers on them
    Inspect(network::InspectArgs),
    /// Remove networks (never one a container is on)
    #[command(alias = "remove")]
    Rm(network::RmArgs),
    /// Remove the networks no container is on
    Prune(network::PruneArgs),
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume (or find it, when it exists)
    Create(volume::CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(volume::LsArgs),
    /// Show volumes as JSON
    Inspect(volume::InspectArgs),
    /// Remove volumes (never one a container uses)
    #[command(alias = "remove")]
    Rm(volume::RmArgs),
    /// Remove the volumes no container uses (anonymous ones; -a named ones too)
    Prune(volume::PruneArgs),
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// Create a container without starting it
    Create(container::CreateCommandArgs),
    /// Run a container
    Run(run::RunArgs),
    /// Start containers
    Start(container::StartArgs),
    /// List containers
    #[command(alias = "list")]
    Ls(container::PsArgs),
    /// Show a container's output
    Logs(container::LogsArgs),
    /// Stop containers
    Stop(container::StopArgs),
    /// Interrupt containers at once
    Kill(container::KillArgs),
    /// Remove containers
    Rm(container::RmArgs),
    /// Wait for containers to stop
    Wait(container::WaitArgs),
    /// Show containers as JSON
    Inspect(container::InspectArgs),
    /// Rename a container
    Rename(container::RenameArgs),
    /// List a container's published ports
    Port(container::PortArgs),
    /// Restart containers
    Restart(container::StopArgs),
    /// Remove every stopped container
    Prune(container::PruneArgs),
    /// Show what a container changed
    Diff(container::DiffArgs),
    /// Make an image from a container's changes
    Commit(container::CommitArgs),
    /// Copy files between a container and the host
    Cp(container::CpArgs),
    /// Run another program in a running container
    Exec(exec::ExecArgs),
    /// List the programs running in a container
    Top(exec::TopArgs),
    /// Show containers' usage
    Stats(exec::StatsArgs),
}

#[derive(Debug, Subcommand)]
enum BuilderCommand {
    /// Remove the build cache (every step rebuilds next time) and the layers only it used
    Prune(builder::BuilderPruneArgs),
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
    /// Remove stopped containers, dangling images (-a: unused ones), the build cache,
    /// and with --volumes unused volumes
    Prune(system::PruneArgs),
    /// Re-hash every blob and derived file; quarantine corrupt blobs, drop damaged
    /// derived files (rebuilt when next used), report broken images
    Check(system::CheckArgs),
}

pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    init_logging();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A detached container's supervisor (`capsule __supervise ID`, started by `run -d`
    // and `start`) skips the command line's parser: it is on the path `run -d` waits
    // for, and building clap's tree of every command costs more than the rest of the
    // supervisor's start.
    if let [_, command, id] = args.as_slice()
        && command == capsule_runtime::container::supervisor::SUPERVISE_COMMAND
        && let Some(id) = id.to_str()
    {
        return finish(container::supervise(id));
    }
    // The tree of every command and flag is built once, for both readings.
    let command = Cli::command();
    let args = split_short_equals(&command, args);
    let parsed = command
        .try_get_matches_from(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help asked for, or shown for a bare `capsule volume`, is clap's own text.
            let help = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if help || !e.use_stderr() {
                let _ = e.print();
                return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
            }
            eprintln!("{}", usage::one_line(&e.render().to_string(), &args));
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = match cli.command {
        Command::Run(args) | Command::Container(ContainerCommand::Run(args)) => run::run(args),
        Command::Create(args) | Command::Container(ContainerCommand::Create(args)) => {
            container::create(args)
        }
        Command::Start(args) | Command::Container(ContainerCommand::Start(args)) => {
            container::start(&args)
        }
        Command::Ps(args) | Command::Container(ContainerCommand::Ls(args)) => container::ps(&args),
        Command::Logs(args) | Command::Container(ContainerCommand::Logs(args)) => {
            container::logs(&args)
        }
        Command::Stop(args) | Command::Container(ContainerCommand::Stop(args)) => {
            container::stop(&args)
        }
        Command::Kill(args) | Command::Container(ContainerCommand::Kill(args)) => {
            container::kill(&args)
        }
        Command::Rm(args) | Command::Container(ContainerCommand::Rm(args)) => container::rm(&args),
        Command::Wait(args) | Command::Container(ContainerCommand::Wait(args)) => {
            container::wait(&args)
        }
        Command::Port(args) | Command::Container(ContainerCommand::Port(args)) => {
            container::port(&args)
        }
        Command::Rename(args) | Command::Container(ContainerCommand::Rename(args)) => {
            container::rename(&args)
        }
        Command::Restart(args) | Command::Container(ContainerCommand::Restart(args)) => {
            container::restart(&args)
        }
        Command::Container(ContainerCommand::Inspect(args)) => container::inspect(&args),
        Command::Container(ContainerCommand::Prune(args)) => container::prune(&args),
        Command::Supervise { id } => container::supervise(&id),
        Command::Compose(args) => compose::compose(args),
        Command::Diff(args) | Command::Container(ContainerCommand::Diff(args)) => {
            container::diff(&args)
        }
        Command::Commit(args) | Command::Container(ContainerCommand::Commit(args)) => {
            container::commit(&args)
        }
        Command::Cp(args) | Command::Container(ContainerCommand::Cp(args)) => container::cp(&args),
        Command::Exec(args) | Command::Container(ContainerCommand::Exec(args)) => exec::exec(&args),
        Command::Top(args) | Command::Container(ContainerCommand::Top(args)) => exec::top(&args),
        Command::Stats(args) | Command::Container(ContainerCommand::Stats(args)) => {
            exec::stats(&args)
        }
        Command::Version => {
            info::print_version();
            Ok(0)
        }
        Command::Info(args) => info::info(&args).map(|()| 0),
        Command::Build(args) => build::build(&args),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => images::images(&args),
        Command::Tag(args) | Command::Image(ImageCommand::Tag(args)) => images::tag(&args),
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => images::rmi(&args),
        Command::Inspect(args) => container::inspect(&args),
        Command::Image(ImageCommand::Inspect(args)) => images::inspect(&args),
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
        Command::System(SystemCommand::Df) => system::system_df(),
        Command::System(SystemCommand::Prune(args)) => system::system_prune(&args),
        Command::System(SystemCommand::Check(args)) => system::system_check(&args),
        Command::Builder(BuilderCommand::Prune(args)) => builder::builder_prune(&args),
        Command::Volume(VolumeCommand::Create(args)) => volume::create(&args),
        Command::Volume(VolumeCommand::Ls(args)) => volume::ls(&args),
        Command::Volume(VolumeCommand::Inspect(args)) => volume::inspect(&args),
        Command::Volume(VolumeCommand::Rm(args)) => volume::rm(&args),
        Command::Volume(VolumeCommand::Prune(args)) => volume::prune(&args),
        Command::Network(NetworkCommand::Create(args)) => network::create(&args),
        Command::Network(NetworkCommand::Ls(args)) => network::ls(&args),
        Command::Network(NetworkCommand::Inspect(args)) => network::inspect(&args),
        Command::Network(NetworkCommand::Rm(args)) => network::rm(&args),
        Command::Network(NetworkCommand::Prune(args)) => network::prune(&args),
    };
    finish(result)
}

/// The exit code of a command's result, its failure's line printed first.
fn finish(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("capsule: {}", failure.line());
            ExitCode::from(failure.code)
        }
    }
}

/// `-p=8080:80` as `-p 8080:80`, as clap reads it elsewhere: where a command's last
/// argument takes values that look like flags (the guest's arguments of `run`), clap
/// would take `-p=…` for that argument. Only the flags before the first positional
/// argument are looked at; everything after it is the guest's.
fn split_short_equals(
    command: &clap::Command,
    args: Vec<std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut command = command;
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut args = args.into_iter().peekable();
    out.extend(args.next());
    let mut nested = false;
    // Down the subcommands (`container run`).
    while let Some(sub) = args
        .peek()
        .and_then(|a| a.to_str())
        .and_then(|name| command.find_subcommand(name))
    {
        out.extend(args.next());
        command = sub;
        nested = true;
    }
    if !nested {
        out.extend(args);
        return out;
    }
    let takes_value = |arg: Option<&clap::Arg>| arg.is_some_and(|a| a.get_action().takes_values());
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            break;
        };
        if text == "--" || text == "-" || !text.starts_with('-') {
            out.push(arg);
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let value_follows = !long.contains('=')
                && takes_value(command.get_arguments().find(|a| a.get_long() == Some(long)));
            out.push(arg);
            if value_follows {
                out.extend(args.next());
            }
            continue;
        }
        let mut chars = text[1..].chars();
        let short = chars.next().filter(char::is_ascii_alphanumeric);
        let short_arg =
            short.and_then(|c| command.get_arguments().find(|a| a.get_short() == Some(c)));
        match (takes_value(short_arg), chars.next()) {
            (true, Some('=')) => {
                out.push(text[..2].to_owned().into());
                out.push(text[3..].to_owned().into());
            }
            (true, None) => {
                out.push(arg);
                out.extend(args.next());
            }
            _ => out.push(arg),
        }
    }
    out.extend(args);
    out
}

/// `CAPSULE_LOG=debug` (or any tracing filter, e.g. `capsule_runtime=debug`) turns on
/// logs to stderr; without it nothing is set up, which keeps start-up fast.
fn init_logging() {
    let Some(filter) = capsule_runtime::ambient::host_env_os("CAPSULE_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::new(filter.to_string_lossy());
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && capsule_runtime::ambient::host_env_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
