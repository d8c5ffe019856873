//! `capsule compose`: a project's services from `compose.toml`, each one a container
//! made exactly as `capsule create` makes it (the service is turned into its flags),
//! run by its own supervisor.

use super::container::{ago, live_ports, ports_text, since, start_one, status_text, stop_one};
use super::run::{CreateArgs, container_failure, create_container, resolve};
use super::{Failure, exit};
use capsule_runtime::builder::{self, BuildOptions};
use capsule_runtime::compose::file::{Condition, Service};
use capsule_runtime::compose::{
    ComposeError, HASH_LABEL, MountFlag, PROJECT_LABEL, Project, SERVICE_LABEL,
};
use capsule_runtime::container::logs::Reader;
use capsule_runtime::container::supervisor;
use capsule_runtime::container::{Container, State, Status, lifecycle};
use capsule_runtime::home::Home;
use capsule_runtime::image::Images;
use capsule_runtime::image::reference::Reference;
use std::ffi::OsString;
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
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    timeout: Option<u64>,
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
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    timeout: Option<u64>,
    services: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Remove the container when it exits
    #[arg(long = "rm")]
    rm: bool,
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
            let mut built = std::collections::BTreeSet::new();
            for service in project.order(&s.services).map_err(compose_failure)? {
                if project.service(&service).is_some_and(|s| s.build.is_some())
                    && built.insert(project.image_of(&service))
                {
                    build(&home, &images, &project, &service)?;
                }
            }
            Ok(0)
        }
        ComposeCommand::Run(run_args) => run(&home, &project, &run_args),
        ComposeCommand::Start(s) => {
            for service in project.order(&s.services).map_err(compose_failure)? {
                if let Some(container) = container_of(&home, &project, &service) {
                    if !container.state().is_active() || container.lock_is_free() {
                        start_one(&home, &container)?;
                    }
                    say(&container, "Started");
                }
            }
            Ok(0)
        }
        ComposeCommand::Stop(s) => stop(&home, &project, &s.services, s.timeout),
        ComposeCommand::Restart(s) => {
            stop(&home, &project, &s.services, s.timeout)?;
            for service in project.order(&s.services).map_err(compose_failure)? {
                if let Some(container) = container_of(&home, &project, &service) {
                    start_one(&home, &container)?;
                    say(&container, "Started");
                }
            }
            Ok(0)
        }
    }
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

/// The project's containers, oldest first.
fn containers_of(home: &Home, project: &Project) -> Vec<Container> {
    Container::list(home)
        .into_iter()
        .filter(|c| c.config.labels.get(PROJECT_LABEL) == Some(&project.name))
        .collect()
}

/// The service a container of the project was made for (its label; empty if none).
fn service_of(container: &Container) -> &str {
    container
        .config
        .labels
        .get(SERVICE_LABEL)
        .map_or("", String::as_str)
}

fn container_of(home: &Home, project: &Project, service: &str) -> Option<Container> {
    Container::find(home, &project.container_name(service)).ok()
}

/// Builds a service's image, named as [`Project::image_of`] says.
fn build(home: &Home, images: &Images, project: &Project, service: &str) -> Result<(), Failure> {
    let Some(table) = project
        .service(service)
        .and_then(|s| s.build.as_ref())
        .map(capsule_runtime::compose::file::Build::table)
    else {
        return Ok(());
    };
    let tag = Reference::parse(&project.image_of(service)).map_err(usage)?;
    let context = project.dir.join(&table.context);
    eprintln!(" Service {service}  Building {}", context.display());
    let options = BuildOptions {
        context: context.clone(),
        recipe: table.file.as_ref().map(|f| context.join(f)),
        tags: vec![tag],
        build_args: table.args.clone().into_iter().collect(),
        no_cache: false,
        target: table.target.clone(),
        epoch: super::images::source_date_epoch().map_err(usage)?,
        features: capsule_runtime::engine::FeatureSet::default(),
    };
    let mut printer = super::build::Printer::new(true);
    builder::build(home, images, &options, &mut printer)
        .map_err(|e| Failure::new(1, anyhow::anyhow!("service {service}: {e}")))?;
    Ok(())
}

/// The `capsule create` flags that make a service's container.
fn flags_of(
    project: &Project,
    name: &str,
    container: &str,
    service: &Service,
    hash: &str,
) -> Result<Vec<String>, Failure> {
    let mut flags = vec!["--name".to_owned(), container.to_owned()];
    let mut push = |flag: &str, value: String| {
        flags.push(flag.to_owned());
        flags.push(value);
    };
    for file in service.env_file.iter().flat_map(|w| w.words()) {
        push("--env-file", project.dir.join(file).display().to_string());
    }
    for (k, v) in &service.environment {
        push("-e", format!("{k}={v}"));
    }
    for port in &service.ports {
        push("-p", port.clone());
    }
    for mount in project.mounts_of(name).map_err(compose_failure)? {
        match mount {
            MountFlag::Volume(v) => push("-v", v),
            MountFlag::Tmpfs(t) => push("--tmpfs", t),
        }
    }
    if let Some(restart) = &service.restart {
        push("--restart", restart.clone());
    }
    if let Some(dir) = &service.working_dir {
        push("-w", dir.clone());
    }
    for (k, v) in &service.labels {
        push("-l", format!("{k}={v}"));
    }
    push("-l", format!("{PROJECT_LABEL}={}", project.name));
    push("-l", format!("{SERVICE_LABEL}={name}"));
    push("-l", format!("{HASH_LABEL}={hash}"));
    if let Some(m) = &service.memory {
        push("--memory", m.clone());
    }
    if let Some(t) = &service.timeout {
        push("--timeout", t.clone());
    }
    if let Some(f) = service.fuel {
        push("--fuel", f.to_string());
    }
    if let Some(n) = service.nofile {
        push("--ulimit", format!("nofile={n}"));
    }
    if let Some(s) = &service.storage {
        push("--storage-opt", format!("size={s}"));
    }
    if let Some(g) = &service.stop_grace_period {
        let d = capsule_runtime::spec::parse_duration(g)
            .map_err(|e| usage(anyhow::anyhow!("services.{name}.stop_grace_period: {e}")))?;
        push("--stop-timeout", d.as_secs().to_string());
    }
    if let Some(first) = service
        .entrypoint
        .as_ref()
        .and_then(|w| w.words().into_iter().next())
    {
        push("--entrypoint", first);
    }
    if service.read_only {
        flags.push("--read-only".to_owned());
    }
    Ok(flags)
}

/// The guest's arguments: the rest of a multi-word entrypoint, then the command.
fn args_of(service: &Service, command: Option<&[String]>) -> Vec<OsString> {
    let mut args: Vec<String> = service
        .entrypoint
        .as_ref()
        .map(|w| w.words().into_iter().skip(1).collect())
        .unwrap_or_default();
    match command {
        Some(command) => args.extend(command.iter().cloned()),
        None => args.extend(service.command.iter().flat_map(|w| w.words())),
    }
    args.into_iter().map(OsString::from).collect()
}

#[derive(Debug, clap::Parser)]
struct Flags {
    #[command(flatten)]
    create: CreateArgs,
}

/// Creates a service's container as `capsule create FLAGS IMAGE ARGS` would.
fn create(
    home: &Home,
    images: &Images,
    project: &Project,
    name: &str,
    container: &str,
    command: Option<&[String]>,
    rm: bool,
) -> Result<Container, Failure> {
    let service = project.service(name).cloned().unwrap_or_default();
    let image_name = project.image_of(name);
    let image = super::run::find_image(images, &image_name)?;
    let hash = project.config_hash(name, &image.id().to_string());
    let mut argv = vec!["compose".to_owned()];
    argv.extend(flags_of(project, name, container, &service, &hash)?);
    let flags = <Flags as clap::Parser>::try_parse_from(&argv)
        .map_err(|e| usage(anyhow::anyhow!("services.{name}: {}", e.to_string().trim())))?;
    let resolved = resolve(&flags.create)?;
    let prepared = create_container(
        home,
        images,
        &flags.create,
        resolved,
        rm,
        &image_name,
        &args_of(&service, command),
    )?;
    Ok(prepared.container)
}

/// Waits for a service's dependencies to be ready as `depends_on` says.
fn wait_for_dependencies(home: &Home, project: &Project, name: &str) -> Result<(), Failure> {
    for (dep, condition) in project.dependencies(name) {
        let Some(container) = container_of(home, project, &dep) else {
            continue;
        };
        if condition == Condition::CompletedSuccessfully {
            supervisor::wait_stopped(&container, None);
            let state = container.state();
            if state.exit_code != Some(0) {
                return Err(Failure::new(
                    1,
                    anyhow::anyhow!(
                        "service {name} depends on {dep} completing successfully, but {} exited with {}",
                        container.name(),
                        state.exit_code.unwrap_or(-1)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn up(home: &Home, project: &Project, args: &UpArgs) -> Result<u8, Failure> {
    let images = Images::open(home).map_err(usage)?;
    let order = project.order(&args.services).map_err(compose_failure)?;
    // Services that share an image (the same `image` and a `build`) build it once.
    let mut built = std::collections::BTreeSet::new();
    for name in &order {
        let service = project.service(name).cloned().unwrap_or_default();
        let image = project.image_of(name);
        if service.build.is_some()
            && !built.contains(&image)
            && (args.build || images.resolve(&image).is_err())
        {
            build(home, &images, project, name)?;
            built.insert(image);
        }
    }
    // Each container's log from before this `up` is not shown again.
    let mut followed: Vec<(Container, Reader)> = Vec::new();
    let mut follow = |container: &Container| {
        let mut reader = Reader::new(&container.dir);
        let _ = reader.next_entries();
        if let Ok(c) = Container::find(home, &container.config.id) {
            followed.push((c, reader));
        }
    };
    for name in &order {
        wait_for_dependencies(home, project, name)?;
        let image = super::run::find_image(&images, &project.image_of(name))?;
        let hash = project.config_hash(name, &image.id().to_string());
        let existing = container_of(home, project, name);
        let container = match existing {
            Some(c) if c.config.labels.get(HASH_LABEL) == Some(&hash) => {
                let state = c.state();
                if state.is_active() && !c.lock_is_free() {
                    say(&c, "Running");
                    follow(&c);
                    continue;
                }
                c
            }
            existing => {
                let done = match existing {
                    Some(mut old) => {
                        say(&old, "Recreate");
                        let grace = lifecycle::grace(&old, None);
                        stop_one(&mut old, grace)?;
                        let volumes = old.config.volumes.clone();
                        old.remove().map_err(usage)?;
                        let _ =
                            capsule_runtime::container::volumes::remove_anonymous(home, &volumes);
                        "Recreated"
                    }
                    None => "Created",
                };
                let container_name = project.container_name(name);
                let c = create(home, &images, project, name, &container_name, None, false)?;
                say(&c, done);
                c
            }
        };
        follow(&container);
        start_one(home, &container)?;
        say(&container, "Started");
    }
    if args.detach {
        return Ok(0);
    }
    let (containers, mut readers): (Vec<Container>, Vec<Reader>) = followed.into_iter().unzip();
    // In the foreground: every service's output until they all end; Ctrl-C stops
    // them gracefully.
    let interrupted = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, interrupted.clone());
    }
    let colours = colours(project, &containers, args.colour);
    follow_all(&containers, &mut readers, &interrupted, &colours)?;
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("Gracefully stopping...");
        let mut containers = containers;
        stop_all(&mut containers, None)?;
        return Ok(exit::INTERRUPTED);
    }
    Ok(0)
}

/// Stops containers together, as Compose does: every one is asked first, then each is
/// waited for (a WASI guest cannot be told to shut down, so each runs out its grace
/// period; asked together, they do so at the same time).
fn stop_all(containers: &mut [Container], timeout: Option<u64>) -> Result<(), Failure> {
    let fail = |e| Failure::new(exit::USAGE, e);
    let mut asked = Vec::new();
    for c in containers.iter() {
        let grace = lifecycle::grace(c, timeout);
        asked.push((supervisor::request_stop(c, grace).map_err(fail)?, grace));
    }
    for (c, (was_running, grace)) in containers.iter_mut().zip(asked) {
        if was_running && !supervisor::wait_stopped(c, Some(grace + Duration::from_secs(3))) {
            supervisor::force_kill(c).map_err(fail)?;
        }
        say(c, "Stopped");
    }
    Ok(())
}

fn stop(
    home: &Home,
    project: &Project,
    services: &[String],
    timeout: Option<u64>,
) -> Result<u8, Failure> {
    let order = project.order(services).map_err(compose_failure)?;
    let mut containers: Vec<Container> = order
        .iter()
        .rev()
        .filter_map(|name| container_of(home, project, name))
        .collect();
    stop_all(&mut containers, timeout)?;
    Ok(0)
}

fn down(home: &Home, project: &Project, args: &DownArgs) -> Result<u8, Failure> {
    // Dependents first, then what they depend on; containers of services no longer in
    // the file too (found by their label).
    let order = project.order(&[]).map_err(compose_failure)?;
    let mut containers = containers_of(home, project);
    containers.sort_by_key(|c| {
        let service = service_of(c);
        std::cmp::Reverse(
            order
                .iter()
                .position(|s| s == service)
                .unwrap_or(usize::MAX),
        )
    });
    stop_all(&mut containers, args.timeout)?;
    for c in containers {
        let volumes = c.config.volumes.clone();
        let name = c.name().to_owned();
        c.remove()
            .map_err(|e| usage(anyhow::anyhow!("cannot remove {name}: {e}")))?;
        eprintln!(" Container {name}  Removed");
        if args.volumes {
            let _ = capsule_runtime::container::volumes::remove_anonymous(home, &volumes);
        }
    }
    if args.volumes {
        let volumes = capsule_runtime::volume::Volumes::open(home).map_err(usage)?;
        for (name, def) in &project.file.volumes {
            if def.external {
                continue;
            }
            let on_disk = project.volume_name(name);
            match capsule_runtime::container::volumes::remove(home, &volumes, &on_disk) {
                Ok(()) => eprintln!(" Volume {on_disk}  Removed"),
                Err(capsule_runtime::volume::VolumeError::NotFound(_)) => {}
                Err(e) => return Err(usage(e)),
            }
        }
    }
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
    let rows: Vec<(Container, State, String)> = containers_of(home, project)
        .into_iter()
        .filter_map(|c| {
            let service = service_of(&c).to_owned();
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
                "Status": status_text(state),
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
            status_text(state),
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
    let containers: Vec<Container> = containers_of(home, project)
        .into_iter()
        .filter(|c| wanted.iter().any(|s| *s == service_of(c)))
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
            let service = service_of(c);
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
    wait_for_dependencies(home, project, name)?;
    let images = Images::open(home).map_err(usage)?;
    let suffix: String = {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|e| usage(anyhow::anyhow!("{e}")))?;
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let one_off = format!("{}-{name}-run-{suffix}", project.name);
    let command = (!command.is_empty()).then_some(command);
    let mut container = create(home, &images, project, name, &one_off, command, args.rm)?;
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
