//! `capsule compose`: a project's services from `compose.toml`. The library's
//! [`capsule_runtime::compose`] reads and checks the file and does what each verb does
//! to the project's containers ([`capsule_runtime::compose::up`]); this module parses
//! the command line and prints.

use super::container::{ago, live_ports, ports_text, since, start_one, status_text};
use super::run::container_failure;
use super::{Failure, exit};
use capsule_runtime::compose::model::Make;
use capsule_runtime::compose::up::{self as reconcile, Event, UpError, UpOptions};
use capsule_runtime::compose::{ComposeError, Project};
use capsule_runtime::container::logs::Reader;
use capsule_runtime::container::supervisor;
use capsule_runtime::container::{Container, ContainerError, PrepareError, State, Status};
use capsule_runtime::home::Home;
use capsule_runtime::image::Images;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// The compose file (default: compose.toml in the working directory)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The project name (default: the file's name key, else its directory's name)
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    project: Option<String>,
    /// Colour the log prefixes: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long = "ansi", value_name = "WHEN", default_value = "auto")]
    ansi: Ansi,
    #[command(subcommand)]
    command: ComposeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ComposeCommand {
    /// Create and start the services (dependencies first); -d to leave them running
    Up(UpArgs),
    /// Stop and remove the project's containers (-v: and its volumes)
    Down(DownArgs),
    /// List the project's running containers (-a: all of them)
    Ps(PsArgs),
    /// Show the services' output, each line prefixed with its container's name
    Logs(LogsArgs),
    /// Build the services that have a build section
    Build(ServicesArgs),
    /// Run a one-off command in a new container of a service
    Run(RunArgs),
    /// Start the services' existing containers
    Start(ServicesArgs),
    /// Stop the services' containers
    Stop(StopArgs),
    /// Stop and start the services' containers
    Restart(StopArgs),
    /// Print the file as Capsule reads it (variables substituted)
    Config,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Leave the services running in the background
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    /// Build images before starting
    #[arg(long = "build")]
    build: bool,
    /// Only these services (and what they depend on)
    services: Vec<String>,
    /// Whether log prefixes are coloured (from `--ansi`).
    #[arg(skip)]
    colour: bool,
}

/// When log prefixes are coloured (Docker Compose's `--ansi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Ansi {
    Auto,
    Always,
    Never,
}

impl Ansi {
    fn colour(self) -> bool {
        match self {
            Ansi::Always => true,
            Ansi::Never => false,
            Ansi::Auto => {
                std::io::stdout().is_terminal()
                    && capsule_runtime::ambient::host_env_os("NO_COLOR").is_none()
            }
        }
    }
}

#[derive(Debug, clap::Args)]
struct PsArgs {
    /// Show stopped containers too
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Only the containers' IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Only the services' names
    #[arg(long = "services")]
    services: bool,
    /// Output format: table (default) or json (one object per line, as docker compose ps)
    #[arg(long = "format", value_name = "FORMAT")]
    format: Option<String>,
    /// Only these services
    service: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct DownArgs {
    /// Remove the file's named volumes and the containers' anonymous volumes too
    #[arg(short = 'v', long = "volumes")]
    volumes: bool,
    /// Seconds to wait before interrupting each guest (default: each one's grace)
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    timeout: Option<String>,
}

#[derive(Debug, clap::Args)]
struct LogsArgs {
    /// Keep printing until the services stop
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    services: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ServicesArgs {
    services: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct StopArgs {
    /// Seconds to wait before interrupting each guest
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    timeout: Option<String>,
    services: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Remove the container when it exits
    #[arg(long = "rm")]
    rm: bool,
    /// Publish the service's ports (without it, as Docker Compose, none are: the
    /// service's own container may hold them)
    #[arg(long = "service-ports")]
    service_ports: bool,
    /// The service, then the command that replaces its own
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn compose_failure(e: ComposeError) -> Failure {
    Failure::new(exit::USAGE, e)
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(exit::USAGE, e)
}

pub fn compose(args: ComposeArgs) -> Result<u8, Failure> {
    let path = capsule_runtime::compose::file::locate(args.file.as_deref());
    let project = Project::load(&path, args.project.as_deref()).map_err(compose_failure)?;
    for warning in &project.warnings {
        eprintln!("capsule: warning: {warning}");
    }
    let home = Home::from_env().map_err(usage)?;
    match args.command {
        ComposeCommand::Config => config(&project),
        ComposeCommand::Up(up_args) => up(
            &home,
            &project,
            &UpArgs {
                colour: args.ansi.colour(),
                ..up_args
            },
        ),
        ComposeCommand::Down(down_args) => down(&home, &project, &down_args),
        ComposeCommand::Ps(ps_args) => ps(&home, &project, &ps_args),
        ComposeCommand::Logs(logs_args) => logs(&home, &project, &logs_args, args.ansi.colour()),
        ComposeCommand::Build(s) => {
            let images = Images::open(&home).map_err(usage)?;
            let epoch = super::images::source_date_epoch().map_err(usage)?;
            let mut built = std::collections::BTreeSet::new();
            for service in project.order(&s.services).map_err(compose_failure)? {
                if project.service(&service).is_some_and(|s| s.build.is_some())
                    && built.insert(project.image_of(&service))
                {
                    reconcile::build(
                        &home,
                        &images,
                        &project,
                        &service,
                        epoch,
                        &mut Printer::new(),
                    )
                    .map_err(up_failure)?;
                }
            }
            Ok(0)
        }
        ComposeCommand::Run(run_args) => run(&home, &project, &run_args),
        ComposeCommand::Start(s) => {
            for service in project.order(&s.services).map_err(compose_failure)? {
                if let Some(container) = reconcile::container_of(&home, &project, &service) {
                    if !container.state().is_active() || container.lock_is_free() {
                        start_one(&home, &container)?;
                    }
                    say(&container, "Started");
                }
            }
            Ok(0)
        }
        ComposeCommand::Stop(s) => {
            let timeout = seconds(&s.timeout)?;
            reconcile::stop(&home, &project, &s.services, timeout, &mut Printer::new())
                .map_err(up_failure)?;
            Ok(0)
        }
        ComposeCommand::Restart(s) => {
            let timeout = seconds(&s.timeout)?;
            reconcile::stop(&home, &project, &s.services, timeout, &mut Printer::new())
                .map_err(up_failure)?;
            for service in project.order(&s.services).map_err(compose_failure)? {
                if let Some(container) = reconcile::container_of(&home, &project, &service) {
                    start_one(&home, &container)?;
                    say(&container, "Started");
                }
            }
            Ok(0)
        }
    }
}

/// Prints what the library reports, as Docker Compose does, and a build's steps.
struct Printer(super::build::Printer);

impl Printer {
    fn new() -> Self {
        Self(super::build::Printer::new(true))
    }
}

impl reconcile::Events for Printer {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Building { service, context } => {
                eprintln!(" Service {service}  Building {}", context.display());
            }
            Event::Container { name, what } => eprintln!(" Container {name}  {what}"),
            Event::VolumeRemoved(name) => eprintln!(" Volume {name}  Removed"),
            Event::Network { name, what } => eprintln!(" Network {name}  {what}"),
        }
    }

    fn builder(&mut self) -> &mut dyn capsule_runtime::builder::Observer {
        &mut self.0
    }
}

/// The exit code of each of the library's refusals.
fn up_failure(e: UpError) -> Failure {
    let code = match &e {
        UpError::NoImage { .. } => exit::NOT_FOUND,
        UpError::Build { .. } | UpError::Dependency { .. } | UpError::Unhealthy { .. } => 1,
        UpError::Prepare(
            PrepareError::Platform { .. }
            | PrepareError::NoCommand(_)
            | PrepareError::Path { .. }
            | PrepareError::Label { .. },
        ) => exit::CANNOT_RUN,
        UpError::Container(ContainerError::Start { .. } | ContainerError::Unrunnable { .. }) => {
            exit::CANNOT_RUN
        }
        _ => exit::USAGE,
    };
    Failure::new(code, e)
}

/// `-t SECONDS`, checked by the library's rule for grace periods.
fn seconds(time: &Option<String>) -> Result<Option<u64>, Failure> {
    time.as_deref()
        .map(|t| capsule_runtime::spec::grammar::seconds("-t", t))
        .transpose()
        .map_err(usage)
}

fn say(container: &Container, what: &str) {
    eprintln!(" Container {}  {what}", container.name());
}

fn config(project: &Project) -> Result<u8, Failure> {
    let mut file = project.file.clone();
    file.name = Some(project.name.clone());
    let text = toml::to_string_pretty(&file).map_err(usage)?;
    let _ = write!(std::io::stdout().lock(), "{text}");
    Ok(0)
}

fn up(home: &Home, project: &Project, args: &UpArgs) -> Result<u8, Failure> {
    let images = Images::open(home).map_err(usage)?;
    let options = UpOptions {
        services: args.services.clone(),
        build: args.build,
        epoch: super::images::source_date_epoch().map_err(usage)?,
        supervisor: capsule_runtime::ambient::current_exe().map_err(usage)?,
    };
    let up =
        reconcile::up(home, &images, project, &options, &mut Printer::new()).map_err(up_failure)?;
    if args.detach {
        return Ok(0);
    }
    let (containers, mut readers): (Vec<Container>, Vec<Reader>) =
        up.into_iter().map(|u| (u.container, u.log)).unzip();
    // In the foreground: every service's output until they all end; Ctrl-C stops
    // them gracefully.
    let interrupted = Arc::new(AtomicBool::new(false));
    capsule_runtime::container::process::flag_interrupts(&interrupted);
    let colours = colours(project, &containers, args.colour);
    follow_all(&containers, &mut readers, &interrupted, &colours)?;
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("Gracefully stopping...");
        let mut containers = containers;
        reconcile::stop_all(&mut containers, None, &mut Printer::new()).map_err(up_failure)?;
        return Ok(exit::INTERRUPTED);
    }
    Ok(0)
}

fn down(home: &Home, project: &Project, args: &DownArgs) -> Result<u8, Failure> {
    let timeout = seconds(&args.timeout)?;
    reconcile::down(home, project, timeout, args.volumes, &mut Printer::new())
        .map_err(up_failure)?;
    Ok(0)
}

fn ps(home: &Home, project: &Project, args: &PsArgs) -> Result<u8, Failure> {
    let json = super::output::wants_json(args.format.as_deref())?;
    for service in &args.service {
        if project.service(service).is_none() {
            return Err(usage(anyhow::anyhow!(
                "no service {service} in {} (try capsule compose config)",
                project.path.display()
            )));
        }
    }
    let rows: Vec<(Container, State, String)> = reconcile::containers(home, project)
        .into_iter()
        .filter_map(|c| {
            let service = reconcile::service_of(&c).to_owned();
            let state = c.state();
            let shown = args.all || matches!(state.status, Status::Running | Status::Restarting);
            let wanted = args.service.is_empty() || args.service.contains(&service);
            (shown && wanted).then_some((c, state, service))
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.services {
        let mut names: Vec<&String> = rows.iter().map(|(_, _, s)| s).collect();
        names.dedup();
        for name in names {
            let _ = writeln!(out, "{name}");
        }
        return Ok(0);
    }
    if args.quiet {
        for (c, _, _) in &rows {
            let _ = writeln!(out, "{}", c.config.id);
        }
        return Ok(0);
    }
    if json {
        for (c, state, service) in &rows {
            let publishers: Vec<serde_json::Value> = live_ports(c, state)
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "URL": p.host_ip.to_string(),
                        "TargetPort": p.container_port,
                        "PublishedPort": p.host_port,
                        "Protocol": "tcp",
                    })
                })
                .collect();
            let value = serde_json::json!({
                "ID": c.config.id,
                "Name": c.name(),
                "Names": c.name(),
                "Image": c.config.image,
                "Command": c.config.command.join(" "),
                "Project": project.name,
                "Service": service,
                "CreatedAt": c.config.created,
                "RunningFor": format!("{} ago", ago(since(Some(&c.config.created)))),
                "State": state.status.as_str(),
                "Status": status_text(c, state),
                "ExitCode": state.exit_code.unwrap_or(0),
                "Labels": c.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "Ports": ports_text(c, state),
                "Publishers": publishers,
            });
            let _ = writeln!(out, "{value}");
        }
        return Ok(0);
    }
    let mut table = vec![[
        "NAME".to_owned(),
        "IMAGE".to_owned(),
        "COMMAND".to_owned(),
        "SERVICE".to_owned(),
        "CREATED".to_owned(),
        "STATUS".to_owned(),
        "PORTS".to_owned(),
    ]];
    for (c, state, service) in &rows {
        let mut command = format!("\"{}\"", c.config.command.join(" "));
        if command.chars().count() > 22 {
            command = format!("{}…\"", command.chars().take(20).collect::<String>());
        }
        table.push([
            c.name().to_owned(),
            c.config.image.clone(),
            command,
            service.clone(),
            format!("{} ago", ago(since(Some(&c.config.created)))),
            status_text(c, state),
            ports_text(c, state),
        ]);
    }
    super::output::print_table(&mut out, &table);
    Ok(0)
}

fn logs(home: &Home, project: &Project, args: &LogsArgs, colour: bool) -> Result<u8, Failure> {
    let services = project.order(&args.services).map_err(compose_failure)?;
    let wanted: Vec<&String> = if args.services.is_empty() {
        services.iter().collect()
    } else {
        args.services.iter().collect()
    };
    let containers: Vec<Container> = reconcile::containers(home, project)
        .into_iter()
        .filter(|c| wanted.iter().any(|s| *s == reconcile::service_of(c)))
        .collect();
    let mut readers: Vec<Reader> = containers.iter().map(|c| Reader::new(&c.dir)).collect();
    let colours = colours(project, &containers, colour);
    if args.follow {
        follow_all(&containers, &mut readers, &AtomicBool::new(false), &colours)?;
    } else {
        print_all(&containers, &mut readers, &colours)?;
    }
    Ok(0)
}

/// The colour of a service's log prefix: by its place in the file, so that a service
/// keeps its colour whichever services are shown.
fn colours(project: &Project, containers: &[Container], colour: bool) -> Vec<Option<&'static str>> {
    const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
    containers
        .iter()
        .map(|c| {
            let service = reconcile::service_of(c);
            let i = project.file.services.keys().position(|s| s == service)?;
            colour.then_some(COLOURS[i % COLOURS.len()])
        })
        .collect()
}

/// Prints what each container wrote since the last call, each line prefixed with
/// its name (in the container's colour, if it has one); whether anything was printed.
fn print_all(
    containers: &[Container],
    readers: &mut [Reader],
    colours: &[Option<&str>],
) -> Result<bool, Failure> {
    let width = containers.iter().map(|c| c.name().len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let mut any = false;
    for (i, (c, reader)) in containers.iter().zip(readers.iter_mut()).enumerate() {
        for entry in reader.next_entries().map_err(usage)? {
            any = true;
            let prefix = format!("{:<width$} | ", c.name());
            for line in entry.log.split_inclusive('\n') {
                match colours.get(i).copied().flatten() {
                    Some(colour) => {
                        let _ = write!(out, "\x1b[{colour}m{prefix}\x1b[0m{line}");
                    }
                    None => {
                        let _ = write!(out, "{prefix}{line}");
                    }
                }
                if !line.ends_with('\n') {
                    let _ = writeln!(out);
                }
            }
        }
    }
    let _ = out.flush();
    Ok(any)
}

/// Follows every container's log until all have stopped, or `stop` is set.
fn follow_all(
    containers: &[Container],
    readers: &mut [Reader],
    stop: &AtomicBool,
    colours: &[Option<&str>],
) -> Result<(), Failure> {
    let mut pause = Duration::from_millis(5);
    loop {
        let all_stopped = containers
            .iter()
            .all(|c| c.lock_is_free() || !c.state().is_active());
        let printed = print_all(containers, readers, colours)?;
        if stop.load(Ordering::SeqCst) || (all_stopped && !printed) {
            return Ok(());
        }
        if printed {
            pause = Duration::from_millis(5);
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

fn run(home: &Home, project: &Project, args: &RunArgs) -> Result<u8, Failure> {
    let (name, command) = args
        .command
        .split_first()
        .ok_or_else(|| usage(anyhow::anyhow!("compose run needs a SERVICE")))?;
    let order = project
        .order(std::slice::from_ref(name))
        .map_err(compose_failure)?;
    project
        .check_host(home, std::slice::from_ref(name))
        .map_err(compose_failure)?;
    // Its dependencies come up first, as with `up -d`.
    let deps: Vec<String> = order.iter().filter(|s| *s != name).cloned().collect();
    if !deps.is_empty() {
        up(
            home,
            project,
            &UpArgs {
                detach: true,
                build: false,
                services: deps,
                colour: false,
            },
        )?;
    }
    reconcile::wait_for_dependencies(home, project, name, &mut Printer::new())
        .map_err(up_failure)?;
    let images = Images::open(home).map_err(usage)?;
    let suffix: String = {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|e| usage(anyhow::anyhow!("{e}")))?;
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let one_off = format!("{}-{name}-run-{suffix}", project.name);
    let command = (!command.is_empty()).then_some(command);
    // As Docker Compose: a one-off publishes the service's ports only when asked
    // (the service's own container may hold them).
    let mut container = reconcile::create(
        home,
        &images,
        project,
        name,
        Make {
            name: &one_off,
            command,
            rm: args.rm,
            publish: args.service_ports,
            ..Make::default()
        },
    )
    .map_err(up_failure)?;
    let runner = super::run::container_runner(false)?;
    let ended = supervisor::run(
        &mut container,
        &runner,
        supervisor::Mode::Foreground,
        |_| {},
    );
    let code = match ended {
        Ok(ended) => ended.exit_code.clamp(0, 255) as u8,
        Err(e) => {
            if args.rm {
                let _ = container.remove();
            }
            return Err(container_failure(e));
        }
    };
    if args.rm {
        let volumes = container.config.volumes.clone();
        let _ = container.remove();
        let _ = capsule_runtime::container::volumes::remove_anonymous(home, &volumes);
    }
    Ok(code)
}
