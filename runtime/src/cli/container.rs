//! The container verbs: `create`, `start`, `ps`, `logs`, `stop`, `kill`, `rm`, `wait`,
//! `inspect`, `rename`, `restart`, `container prune`, and the detached container's
//! supervisor (a hidden command).

use super::run::{
    CreateArgs, container_failure, container_runner, create_container, resolve, split_command,
};
use super::{Failure, exit};
use capsule_runtime::container::logs::{Entry, Reader};
use capsule_runtime::container::supervisor;
use capsule_runtime::container::{
    Container, ContainerError, Damaged, State, Status, lifecycle, short_id,
};
use capsule_runtime::home::Home;
use capsule_runtime::image::Images;
use capsule_runtime::wasi::Stream;
use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

pub(super) fn home() -> Result<Home, Failure> {
    Home::from_env().map_err(|e| Failure::new(exit::USAGE, e))
}

pub(super) fn find(home: &Home, reference: &str) -> Result<Container, Failure> {
    Container::find(home, reference).map_err(|e| match e {
        ContainerError::NotFound(_) => {
            damaged_failure(home, reference).unwrap_or_else(|| container_failure(e))
        }
        e => container_failure(e),
    })
}

/// The error for a reference that names a container whose record is damaged: all
/// that can be done with it is to remove it.
fn damaged_failure(home: &Home, reference: &str) -> Option<Failure> {
    let damaged = Damaged::find(home, reference)?;
    let short = short_id(&damaged.id);
    Some(Failure::new(
        1,
        anyhow::anyhow!(
            "container {short} cannot be used: its record is damaged ({}); remove it with capsule rm -f {short}",
            damaged.reason
        ),
    ))
}

/// Runs `verb` on each container named, printing what Docker prints (the reference
/// given) and one error line per failure; exit 1 if any failed.
fn each(
    references: &[String],
    mut verb: impl FnMut(&Home, &str) -> Result<Option<String>, Failure>,
) -> Result<u8, Failure> {
    let home = home()?;
    let mut failed = false;
    for reference in references {
        match verb(&home, reference) {
            Ok(Some(line)) => {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Ok(None) => {}
            Err(failure) => {
                eprintln!("capsule: {}", failure.line());
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

#[derive(Debug, clap::Args)]
pub struct CreateCommandArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// The image, then the arguments passed to the guest (replacing its CMD)
    #[arg(
        value_name = "IMAGE [ARGS]...",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// `capsule create IMAGE [ARGS]`: a container ready to `start`.
pub fn create(args: CreateCommandArgs) -> Result<u8, Failure> {
    let (target, guest_args) = split_command(&args.command)?;
    // A module file is run as it is (capsule run FILE); a container is made from an
    // image.
    let module = target.ends_with(".wasm")
        || target.ends_with(".wat")
        || capsule_runtime::ambient::is_file(std::path::Path::new(target));
    if module {
        let stem = std::path::Path::new(target)
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| capsule_runtime::container::valid_name(s))
            .unwrap_or("NAME")
            .to_ascii_lowercase();
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "capsule create makes a container from an image, and {target} is a module file: make an image of it first (capsule image import {target} -t {stem}), then capsule create {stem}"
            ),
        ));
    }
    let resolved = resolve(&args.create)?;
    let home = home()?;
    let images = Images::open(&home).map_err(|e| Failure::new(exit::USAGE, e))?;
    let prepared = create_container(
        &home,
        &images,
        &args.create,
        resolved,
        false,
        target,
        guest_args,
    )?;
    println!("{}", prepared.container.config.id);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach: print the container's output and exit with its exit code
    #[arg(short = 'a', long = "attach")]
    attach: bool,
    /// Containers to start (names or IDs)
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Starts a stopped or created container under a supervisor of its own.
pub(super) fn start_one(home: &Home, container: &Container) -> Result<(), Failure> {
    let exe = capsule_runtime::ambient::current_exe().map_err(|e| Failure::new(exit::USAGE, e))?;
    lifecycle::start(home, container, &exe).map_err(|e| {
        let code = match e {
            ContainerError::State(_) => exit::USAGE,
            _ => exit::CANNOT_RUN,
        };
        Failure::new(code, e)
    })
}

pub fn start(args: &StartArgs) -> Result<u8, Failure> {
    if args.attach {
        if args.containers.len() != 1 {
            return Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!("start -a attaches to one container; name only one"),
            ));
        }
        let home = home()?;
        let container = find(&home, &args.containers[0])?;
        let mut reader = Reader::new(&container.dir);
        // Output written before this start is not shown again.
        let _ = reader.next_entries();
        start_one(&home, &container)?;
        follow(&container, &mut reader, false)?;
        let state = container.state();
        return Ok(state.exit_code.unwrap_or(0).clamp(0, 255) as u8);
    }
    each(&args.containers, |home, reference| {
        let container = find(home, reference)?;
        start_one(home, &container)?;
        Ok(Some(reference.to_owned()))
    })
}

/// Prints log entries as they arrive until the container stops.
fn follow(container: &Container, reader: &mut Reader, timestamps: bool) -> Result<(), Failure> {
    let mut pause = Duration::from_millis(5);
    loop {
        // Checked before reading, so the entries of a run that just ended are printed.
        let stopped = container.lock_is_free() || !container.state().is_active();
        let entries = reader
            .next_entries()
            .map_err(|e| Failure::new(exit::USAGE, e))?;
        if entries.is_empty() {
            if stopped {
                return Ok(());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        } else {
            print_entries(&entries, timestamps);
            pause = Duration::from_millis(5);
        }
    }
}

fn print_entries(entries: &[Entry], timestamps: bool) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for entry in entries {
        let stream: &mut dyn Write = match entry.stream {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        if timestamps {
            let _ = write!(stream, "{} ", entry.time);
        }
        let _ = stream.write_all(entry.log.as_bytes());
    }
    let _ = out.flush();
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow: keep printing new output until the container stops
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    /// Show only the last N entries (or "all")
    #[arg(short = 'n', long = "tail", value_name = "N", default_value = "all")]
    tail: String,
    /// Show each entry's timestamp (RFC 3339, nanoseconds)
    #[arg(short = 't', long = "timestamps")]
    timestamps: bool,
    /// The container
    container: String,
}

pub fn logs(args: &LogsArgs) -> Result<u8, Failure> {
    let home = home()?;
    let container = find(&home, &args.container)?;
    let tail = match args.tail.as_str() {
        "all" => None,
        n => Some(n.parse::<usize>().map_err(|_| {
            Failure::new(
                exit::USAGE,
                anyhow::anyhow!("invalid --tail '{n}': expected a number of lines or \"all\""),
            )
        })?),
    };
    let mut reader = Reader::new(&container.dir);
    let entries = reader
        .next_entries()
        .map_err(|e| Failure::new(exit::USAGE, e))?;
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    print_entries(&entries[skip..], args.timestamps);
    if args.follow {
        follow(&container, &mut reader, args.timestamps)?;
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before interrupting the guest (default: the container's
    /// --stop-timeout, or 10; at most 1000000000)
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    time: Option<String>,
    /// Containers to stop
    #[arg(required = true)]
    containers: Vec<String>,
}

impl StopArgs {
    /// `-t`, checked by the library's rule for grace periods.
    fn seconds(&self) -> Result<Option<u64>, Failure> {
        self.time
            .as_deref()
            .map(|t| capsule_runtime::spec::grammar::seconds("-t", t))
            .transpose()
            .map_err(|e| Failure::new(exit::USAGE, e))
    }
}

/// Stops a container: the guest runs on for the grace period, then is interrupted.
pub(super) fn stop_one(container: &mut Container, grace: Duration) -> Result<(), Failure> {
    lifecycle::stop(container, grace).map_err(|e| Failure::new(exit::USAGE, e))
}

pub fn stop(args: &StopArgs) -> Result<u8, Failure> {
    let time = args.seconds()?;
    each(&args.containers, |home, reference| {
        let mut container = find(home, reference)?;
        let grace = lifecycle::grace(&container, time);
        stop_one(&mut container, grace)?;
        Ok(Some(reference.to_owned()))
    })
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Only KILL (the default) is supported: WASI preview1 has no signals
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    signal: String,
    /// Containers to kill
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(args: &KillArgs) -> Result<u8, Failure> {
    let signal = args.signal.trim_start_matches("SIG").to_ascii_uppercase();
    if signal != "KILL" && signal != "9" {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!(
                "capsule kill sends only KILL: WASI preview1 guests have no signal handlers (use capsule stop for a grace period)"
            ),
        ));
    }
    each(&args.containers, |home, reference| {
        let mut container = find(home, reference)?;
        lifecycle::kill(&mut container).map_err(|e| Failure::new(exit::USAGE, e))?;
        Ok(Some(reference.to_owned()))
    })
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Remove a running container too (it is killed first)
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Remove the container's anonymous volumes too
    #[arg(short = 'v', long = "volumes")]
    volumes: bool,
    /// Containers to remove
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(args: &RmArgs) -> Result<u8, Failure> {
    each(&args.containers, |home, reference| {
        let container = match Container::find(home, reference) {
            Ok(container) => container,
            Err(e @ ContainerError::NotFound(_)) => {
                // A container whose record is damaged is found by its ID only.
                let damaged = Damaged::find(home, reference).ok_or_else(|| container_failure(e))?;
                damaged
                    .remove(args.force)
                    .map_err(|e| Failure::new(exit::USAGE, e))?;
                return Ok(Some(reference.to_owned()));
            }
            Err(e) => return Err(container_failure(e)),
        };
        lifecycle::remove(home, container, args.force, args.volumes)
            .map_err(|e| Failure::new(exit::USAGE, e))?;
        Ok(Some(reference.to_owned()))
    })
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Containers to wait for
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn wait(args: &WaitArgs) -> Result<u8, Failure> {
    each(&args.containers, |home, reference| {
        let container = find(home, reference)?;
        let code = lifecycle::wait(&container).map_err(|e| Failure::new(exit::USAGE, e))?;
        Ok(Some(code.to_string()))
    })
}

#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// The container
    container: String,
    /// Its new name
    new_name: String,
}

pub fn rename(args: &RenameArgs) -> Result<u8, Failure> {
    let home = home()?;
    let mut container = find(&home, &args.container)?;
    container
        .rename(&home, &args.new_name)
        .map_err(container_failure)?;
    Ok(0)
}

pub fn restart(args: &StopArgs) -> Result<u8, Failure> {
    let time = args.seconds()?;
    each(&args.containers, |home, reference| {
        let mut container = find(home, reference)?;
        let grace = lifecycle::grace(&container, time);
        stop_one(&mut container, grace)?;
        start_one(home, &container)?;
        Ok(Some(reference.to_owned()))
    })
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
}

pub fn prune(args: &PruneArgs) -> Result<u8, Failure> {
    if !super::output::confirmed(args.force, "container prune", "all stopped containers")? {
        return Ok(0);
    }
    let home = home()?;
    let removed = capsule_runtime::container::prune_stopped(&home);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Deleted Containers:");
    for id in &removed {
        let _ = writeln!(out, "{id}");
    }
    let _ = writeln!(out, "\nTotal: {} container(s) removed", removed.len());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show every container (default: running ones only)
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Only print IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Output format: table (default) or json (one object per line, as docker ps
    /// --format json)
    #[arg(long = "format", value_name = "FORMAT")]
    format: Option<String>,
    /// Show full IDs and commands
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter: label=KEY[=VALUE], name=REGEX, status=STATUS, id=PREFIX (values of one
    /// key are alternatives)
    #[arg(long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
}

/// How long ago, as Docker says it ("5 seconds", "3 minutes", "2 hours").
pub(super) fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_owned(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_owned(),
        s if s < 86_400 * 2 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub(super) fn since(time: Option<&str>) -> i64 {
    let now = capsule_runtime::time::now();
    time.and_then(capsule_runtime::image::oci::parse_rfc3339)
        .map_or(0, |t| now - t)
}

/// Docker's STATUS column: with the health of a running container that has a check
/// (`Up 3 minutes (healthy)`).
pub(super) fn status_text(container: &Container, state: &State) -> String {
    match state.status {
        Status::Created => "Created".to_owned(),
        Status::Running => {
            let up = format!("Up {}", ago(since(state.started_at.as_deref())));
            match health_of(container, state) {
                Some(health) if health.status == capsule_runtime::container::health::STARTING => {
                    format!("{up} (health: starting)")
                }
                Some(health) => format!("{up} ({})", health.status),
                None => up,
            }
        }
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            state.exit_code.unwrap_or(0),
            ago(since(state.finished_at.as_deref()))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            state.exit_code.unwrap_or(0),
            ago(since(state.finished_at.as_deref()))
        ),
        Status::Dead => "Dead (its process died)".to_owned(),
    }
}

/// The health of a container that has a check: what its owner last recorded, or
/// `starting` before the first record of this run.
fn health_of(
    container: &Container,
    state: &State,
) -> Option<capsule_runtime::container::health::Health> {
    container.config.healthcheck.as_ref()?;
    if !state.is_active() {
        return capsule_runtime::container::health::read(&container.dir);
    }
    Some(
        capsule_runtime::container::health::read(&container.dir)
            .unwrap_or_else(capsule_runtime::container::health::Health::starting),
    )
}

/// The statuses Docker's `status` filter knows.
const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// `ps --filter`s, parsed once: values of one key are alternatives, keys must all
/// match (Docker's rule); `name` is a regular expression, as Docker's.
#[derive(Debug, Default)]
struct Filters {
    labels: Vec<String>,
    names: Vec<regex::Regex>,
    statuses: Vec<String>,
    ids: Vec<String>,
}

impl Filters {
    fn parse(filters: &[String]) -> Result<Self, Failure> {
        let bad = |text: String| Failure::new(exit::USAGE, anyhow::anyhow!(text));
        let mut out = Self::default();
        for filter in filters {
            let (key, value) = super::output::split_filter(filter)?;
            match key {
                "label" => out.labels.push(value.to_owned()),
                "name" => out.names.push(regex::Regex::new(value).map_err(|e| {
                    bad(format!(
                        "invalid filter '{filter}': not a regular expression ({})",
                        e.to_string().lines().last().unwrap_or("invalid").trim()
                    ))
                })?),
                "status" if STATUSES.contains(&value) => out.statuses.push(value.to_owned()),
                "status" => {
                    return Err(bad(format!(
                        "invalid filter '{filter}': the status is one of {}",
                        STATUSES.join(", ")
                    )));
                }
                "id" => out.ids.push(value.to_owned()),
                _ => {
                    return Err(bad(format!(
                        "unknown filter '{key}' (known: label, name, status, id)"
                    )));
                }
            }
        }
        Ok(out)
    }

    fn matches(&self, container: &Container, state: &State) -> bool {
        let name = &container.config.name;
        (self.labels.iter()).all(|l| super::output::label_matches(&container.config.labels, l))
            && (self.names.is_empty()
                || (self.names.iter())
                    .any(|re| re.is_match(name) || re.is_match(&format!("/{name}"))))
            && (self.statuses.is_empty()
                || self.statuses.iter().any(|s| s == state.status.as_str()))
            && (self.ids.is_empty()
                || (self.ids.iter()).any(|id| container.config.id.starts_with(id.as_str())))
    }

    /// A damaged record has an ID and is dead, nothing more.
    fn matches_damaged(&self, damaged: &Damaged) -> bool {
        self.labels.is_empty()
            && self.names.is_empty()
            && (self.statuses.is_empty() || self.statuses.iter().any(|s| s == "dead"))
            && (self.ids.is_empty()
                || (self.ids.iter()).any(|id| damaged.id.starts_with(id.as_str())))
    }
}

pub fn ps(args: &PsArgs) -> Result<u8, Failure> {
    let json = super::output::wants_json(args.format.as_deref())?;
    let filters = Filters::parse(&args.filter)?;
    let home = home()?;
    let mut rows = Vec::new();
    for container in Container::list(&home).into_iter().rev() {
        let state = container.state();
        let shown = args.all || matches!(state.status, Status::Running | Status::Restarting);
        if shown && filters.matches(&container, &state) {
            rows.push((container, state));
        }
    }
    // Damaged records show as dead, by ID: `rm -f ID` or a prune removes them.
    let damaged: Vec<Damaged> = if args.all {
        Damaged::list(&home)
            .into_iter()
            .filter(|d| filters.matches_damaged(d))
            .collect()
    } else {
        Vec::new()
    };
    let damaged_id = |d: &Damaged| {
        if args.no_trunc {
            d.id.clone()
        } else {
            short_id(&d.id).to_owned()
        }
    };
    let damaged_status = |d: &Damaged| format!("Dead ({})", d.reason);
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for d in &damaged {
            let _ = writeln!(out, "{}", damaged_id(d));
        }
        for (c, _) in &rows {
            let id = if args.no_trunc {
                c.config.id.as_str()
            } else {
                short_id(&c.config.id)
            };
            let _ = writeln!(out, "{id}");
        }
        return Ok(0);
    }
    if json {
        for d in &damaged {
            let value = serde_json::json!({
                "ID": damaged_id(d),
                "State": "dead",
                "Status": damaged_status(d),
                "Names": "",
            });
            let _ = writeln!(out, "{value}");
        }
        for (c, state) in &rows {
            let value = serde_json::json!({
                "ID": if args.no_trunc { c.config.id.as_str() } else { short_id(&c.config.id) },
                "Image": c.config.image,
                "Command": c.config.command.join(" "),
                "CreatedAt": c.config.created,
                "State": state.status.as_str(),
                "Status": status_text(c, state),
                "Names": c.config.name,
                "Labels": c.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "ExitCode": state.exit_code,
                "Ports": ports_text(c, state),
                "Mounts": mounts_text(c),
            });
            let _ = writeln!(out, "{value}");
        }
        return Ok(0);
    }
    let mut table = vec![[
        "CONTAINER ID".to_owned(),
        "IMAGE".to_owned(),
        "COMMAND".to_owned(),
        "CREATED".to_owned(),
        "STATUS".to_owned(),
        "PORTS".to_owned(),
        "NAMES".to_owned(),
    ]];
    for d in &damaged {
        table.push([
            damaged_id(d),
            String::new(),
            String::new(),
            String::new(),
            damaged_status(d),
            String::new(),
            String::new(),
        ]);
    }
    for (c, state) in &rows {
        let mut command = format!("\"{}\"", c.config.command.join(" "));
        if !args.no_trunc && command.chars().count() > 22 {
            command = format!("{}…\"", command.chars().take(20).collect::<String>());
        }
        table.push([
            if args.no_trunc {
                c.config.id.clone()
            } else {
                short_id(&c.config.id).to_owned()
            },
            c.config.image.clone(),
            command,
            format!("{} ago", ago(since(Some(&c.config.created)))),
            status_text(c, state),
            ports_text(c, state),
            c.config.name.clone(),
        ]);
    }
    super::output::print_table(&mut out, &table);
    Ok(0)
}

/// A container's published ports while it runs (Docker shows none for a stopped
/// container): `spec.ports`.
pub(super) fn live_ports<'a>(
    container: &'a Container,
    state: &State,
) -> &'a [capsule_runtime::net::PortBinding] {
    match &container.config.spec {
        Some(spec) if matches!(state.status, Status::Running | Status::Restarting) => &spec.ports,
        _ => &[],
    }
}

/// `ps`'s PORTS: `127.0.0.1:8000->8000/tcp, ...`.
pub(super) fn ports_text(container: &Container, state: &State) -> String {
    live_ports(container, state)
        .iter()
        .map(capsule_runtime::net::PortBinding::ps_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Docker's `{"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}`;
/// `requested` shows an ephemeral port as Docker's PortBindings do (`""`).
fn ports_json(ports: &[capsule_runtime::net::PortBinding], requested: bool) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for p in ports {
        let entry = serde_json::json!({
            "HostIp": p.host_ip.to_string(),
            "HostPort": if requested && p.ephemeral { String::new() } else { p.host_port.to_string() },
        });
        match map
            .entry(p.container_key())
            .or_insert_with(|| serde_json::json!([]))
        {
            serde_json::Value::Array(list) => list.push(entry),
            other => *other = serde_json::json!([entry]),
        }
    }
    serde_json::Value::Object(map)
}

#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// Only this container port (PORT or PORT/tcp): print its host address
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// `capsule port`: a running container's published ports, as Docker prints them
/// (`8000/tcp -> 127.0.0.1:8000`).
pub fn port(args: &PortArgs) -> Result<u8, Failure> {
    let home = home()?;
    let container = Container::find(&home, &args.container).map_err(container_failure)?;
    let state = container.state();
    let ports = live_ports(&container, &state);
    let mut out = std::io::stdout().lock();
    match &args.port {
        None => {
            for p in ports {
                let _ = writeln!(out, "{} -> {}", p.container_key(), p.host_text());
            }
        }
        Some(wanted) => {
            let key = if wanted.contains('/') {
                wanted.clone()
            } else {
                format!("{wanted}/tcp")
            };
            let found: Vec<_> = ports.iter().filter(|p| p.container_key() == key).collect();
            if found.is_empty() {
                return Err(Failure::new(
                    1,
                    anyhow::anyhow!(
                        "no public port '{key}' published for {} (see capsule port {})",
                        container.name(),
                        container.name()
                    ),
                ));
            }
            for p in found {
                let _ = writeln!(out, "{}", p.host_text());
            }
        }
    }
    Ok(0)
}

/// Docker's `Mounts` of `ps --format json`: each volume's name, each host
/// directory's path, comma-separated.
fn mounts_text(container: &Container) -> String {
    let Some(spec) = &container.config.spec else {
        return String::new();
    };
    spec.mounts
        .iter()
        .map(|m| {
            match container
                .config
                .volumes
                .iter()
                .find(|v| v.destination == m.guest)
            {
                Some(v) => v.name.clone(),
                None => m.host.display().to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Docker's `inspect` of a container.
pub fn inspect_json(container: &Container) -> serde_json::Value {
    let state = container.state();
    let c = &container.config;
    let spec = c.spec.as_ref();
    serde_json::json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Created": c.created,
        "Path": c.command.first(),
        "Args": c.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": state.status.as_str(),
            "Running": state.status == Status::Running,
            "Restarting": state.status == Status::Restarting,
            "Dead": state.status == Status::Dead,
            "OOMKilled": state.oom_killed,
            "Pid": if state.is_active() { state.pid.unwrap_or(0) } else { 0 },
            "ExitCode": state.exit_code.unwrap_or(0),
            "Error": state.error.clone().unwrap_or_default(),
            "StartedAt": state.started_at,
            "FinishedAt": state.finished_at,
            "Health": health_of(container, &state),
        },
        "Image": format!("sha256:{}", c.image_id.trim_start_matches("sha256:")),
        "RestartCount": state.restart_count,
        "LogPath": container.dir.join(capsule_runtime::container::logs::LOG_FILE),
        "Config": {
            "Image": c.image,
            "Cmd": c.command,
            "Healthcheck": c.healthcheck,
            "Env": spec.map(|s| s.env.vars().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()),
            "WorkingDir": spec.map(|s| s.workdir.to_string()),
            "Labels": c.labels,
            "OpenStdin": c.interactive,
            "StopTimeout": c.stop_timeout,
        },
        "HostConfig": {
            "RestartPolicy": {
                "Name": c.restart.to_string().split(':').next().unwrap_or("no"),
                "MaximumRetryCount": match c.restart {
                    capsule_runtime::container::RestartPolicy::OnFailure(Some(n)) => n,
                    _ => 0,
                },
            },
            "AutoRemove": c.rm,
            "ReadonlyRootfs": spec.is_some_and(|s| s.read_only),
            "Limits": spec.map(|s| &s.limits),
            "PortBindings": ports_json(spec.map_or(&[], |s| s.ports.as_slice()), true),
            "PublishAllPorts": spec.is_some_and(|s| s.ports.iter().any(|p| p.ephemeral)),
            "NetworkMode": spec.map(|s| match (s.limits.network_host, s.networks.first()) {
                (true, _) => "host".to_owned(),
                (false, Some(a)) => a.network.clone(),
                (false, None) => "none".to_owned(),
            }),
        },
        "NetworkSettings": {
            "Ports": ports_json(live_ports(container, &state), false),
            "Networks": spec.map(|s| s.networks.iter().map(|a| {
                (a.network.clone(), serde_json::json!({
                    "IPAddress": a.address.to_string(),
                    "IPPrefixLen": 24,
                    "Gateway": a.subnet.gateway().to_string(),
                    "Aliases": a.aliases,
                }))
            }).collect::<serde_json::Map<_, _>>()),
        },
        "Mounts": spec.map(|s| s.mounts.iter().map(|m| {
            match c.volumes.iter().find(|v| v.destination == m.guest) {
                Some(v) => serde_json::json!({
                    "Type": "volume",
                    "Name": v.name,
                    "Source": m.host,
                    "Destination": m.guest.to_string(),
                    "Driver": "local",
                    "RW": !m.read_only,
                }),
                None => serde_json::json!({
                    "Type": "bind",
                    "Source": m.host,
                    "Destination": m.guest.to_string(),
                    "RW": !m.read_only,
                }),
            }
        }).chain(s.tmpfs.iter().map(|t| serde_json::json!({
            "Type": "tmpfs",
            "Destination": t.guest.to_string(),
            "Size": t.size,
        }))).collect::<Vec<_>>()),
    })
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Containers or images (a container of that name or ID comes first, as in Docker)
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Only this kind of object: container or image
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
}

/// `capsule inspect`: containers as Docker shows them, or images.
pub fn inspect(args: &InspectArgs) -> Result<u8, Failure> {
    let home = home()?;
    let want_containers = args.kind.as_deref() != Some("image");
    let want_images = args.kind.as_deref() != Some("container");
    if let Some(kind) = args.kind.as_deref()
        && kind != "image"
        && kind != "container"
    {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("unknown --type '{kind}' (known: container, image)"),
        ));
    }
    let mut containers = Vec::new();
    let mut images = Vec::new();
    for target in &args.targets {
        if want_containers
            && Container::find(&home, target).is_err()
            && let Some(failure) = damaged_failure(&home, target)
        {
            return Err(failure);
        }
        match Container::find(&home, target) {
            Ok(container) if want_containers => containers.push(inspect_json(&container)),
            // Neither a container nor an image: say both were looked for, as Docker's
            // "No such object" does, not only that no image has the name.
            _ if want_images
                && want_containers
                && capsule_runtime::image::Images::open(&home).is_ok_and(|images| {
                    matches!(
                        images.resolve(target),
                        Err(capsule_runtime::image::ImageError::NotFound(_))
                    ) && capsule_runtime::builtin::lookup(target).is_none()
                }) =>
            {
                eprintln!(
                    "capsule: no such container or image: {target} (capsule ps -a and capsule images list them)"
                );
                return Ok(1);
            }
            _ if want_images => images.push(target.clone()),
            _ => {
                eprintln!("capsule: no such container: {target}");
                return Ok(1);
            }
        }
    }
    if !images.is_empty() {
        if !containers.is_empty() {
            return Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!("inspect containers and images in separate commands (--type)"),
            ));
        }
        return super::images::inspect(&super::images::InspectArgs { images });
    }
    let text =
        serde_json::to_string_pretty(&containers).map_err(|e| Failure::new(exit::USAGE, e))?;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(0)
}

/// `capsule __supervise ID`: the detached container's supervisor.
pub fn supervise(id: &str) -> Result<u8, Failure> {
    let home = home()?;
    let runner = container_runner(false)?;
    let code = supervisor::serve(&home, id, &runner).map_err(container_failure)?;
    Ok(code.clamp(0, 255) as u8)
}

fn files_failure(e: capsule_runtime::container::files::FilesError) -> Failure {
    use capsule_runtime::container::files::FilesError;
    match e {
        FilesError::Container(e) => container_failure(e),
        e => Failure::new(1, e),
    }
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container
    container: String,
}

/// `capsule diff`: `A`, `C` and `D` lines, as Docker prints them.
pub fn diff(args: &DiffArgs) -> Result<u8, Failure> {
    let home = home()?;
    let container = find(&home, &args.container)?;
    let changes = capsule_runtime::container::files::diff(&container).map_err(files_failure)?;
    let mut out = std::io::stdout().lock();
    for change in changes {
        let _ = writeln!(out, "{} {}", change.kind.letter(), change.path);
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// The container
    container: String,
    /// Name for the new image, name[:tag]
    reference: Option<String>,
    /// A note for the image's history
    #[arg(short = 'm', long = "message")]
    message: Option<String>,
    /// Hold a running container's filesystem still while its changes are read (as
    /// Docker pauses it); --pause=false reads them as they change
    #[arg(short = 'p', long = "pause", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pause: bool,
}

/// `capsule commit`: the container's changes as a new layer over its image.
pub fn commit(args: &CommitArgs) -> Result<u8, Failure> {
    let home = home()?;
    let container = find(&home, &args.container)?;
    let name = args
        .reference
        .as_deref()
        .map(capsule_runtime::image::reference::Reference::parse)
        .transpose()
        .map_err(|e| Failure::new(exit::USAGE, e))?;
    let images = Images::open(&home).map_err(|e| Failure::new(exit::USAGE, e))?;
    let epoch = super::images::source_date_epoch().map_err(|e| Failure::new(exit::USAGE, e))?;
    let created_by = match &args.message {
        Some(message) => format!("capsule commit {}: {message}", container.name()),
        None => format!("capsule commit {}", container.name()),
    };
    let image = capsule_runtime::container::files::commit(
        &container,
        &images,
        &capsule_runtime::container::files::CommitOptions {
            epoch,
            created_by,
            pause: args.pause,
        },
    )
    .map_err(files_failure)?;
    images
        .set_name(&image, name.as_ref())
        .map_err(|e| Failure::new(exit::USAGE, e))?;
    let _ = writeln!(std::io::stdout().lock(), "{}", image.id());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// CONTAINER:PATH, a host path, or - (a tar archive on stdin)
    source: String,
    /// CONTAINER:PATH, a host path, or - (a tar archive on stdout)
    destination: String,
}

/// `CONTAINER:PATH` → (container, absolute guest path); a host path (with a `/`
/// before any `:`, or no `:`, or on Windows an absolute path such as `C:\data`, as
/// Docker reads it there) → `None`.
fn container_path(text: &str) -> Option<(&str, String)> {
    if cfg!(windows) && std::path::Path::new(text).is_absolute() {
        return None;
    }
    let (name, path) = text.split_once(':')?;
    if name.is_empty() || name.contains('/') || name.contains('\\') {
        return None;
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Some((name, path))
}

/// `capsule cp`: copies between a container (running or stopped) and the host; `-`
/// for the host side is a tar archive on stdout or stdin.
pub fn cp(args: &CpArgs) -> Result<u8, Failure> {
    use capsule_runtime::container::files::{CopyIn, CopyOut};
    let home = home()?;
    for side in [&args.source, &args.destination] {
        if let Some((name, _)) = container_path(side).filter(|_| side.ends_with(':')) {
            return Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!(
                    "'{side}' names no path in the container: give one, e.g. {name}:/ for all of it"
                ),
            ));
        }
    }
    let copied = match (
        container_path(&args.source),
        container_path(&args.destination),
    ) {
        (Some((name, path)), None) => {
            let container = find(&home, name)?;
            let mut stdout = std::io::stdout().lock();
            // `-`: a tar archive to stdout, as Docker's.
            let to = if args.destination == "-" {
                CopyOut::Tar(&mut stdout)
            } else {
                CopyOut::Path(std::path::Path::new(&args.destination))
            };
            capsule_runtime::container::files::copy_out(&container, &path, to)
        }
        (None, Some((name, path))) => {
            let container = find(&home, name)?;
            let mut stdin = std::io::stdin().lock();
            // `-`: a tar archive from stdin, extracted into a directory, as Docker's.
            let from = if args.source == "-" {
                CopyIn::Tar(&mut stdin)
            } else {
                CopyIn::Path(std::path::Path::new(&args.source))
            };
            capsule_runtime::container::files::copy_in(&container, from, &path)
        }
        _ => {
            return Err(Failure::new(
                exit::USAGE,
                anyhow::anyhow!(
                    "capsule cp copies between a container and the host: one of SOURCE and DESTINATION is CONTAINER:PATH, the other a host path"
                ),
            ));
        }
    };
    copied.map_err(files_failure)?;
    Ok(0)
}
