//! `capsule run`.

use super::{Failure, exit};
use capsule_runtime::container::health::HealthOverrides;
use capsule_runtime::container::supervisor::{self, Mode};
use capsule_runtime::container::{
    self, ContainerError, Overrides, PrepareError, Prepared, Program, RestartPolicy, Runner,
};
use capsule_runtime::engine::{FeatureSet, Interrupt, ModuleCache};
use capsule_runtime::exec::{self, ExitStatus};
use capsule_runtime::home::Home;
use capsule_runtime::image::{ImageError, Images};
use capsule_runtime::net::network::NetworkRequest;
use capsule_runtime::spec::grammar;
use capsule_runtime::spec::{
    Entry, Env, GuestPath, Limits, MountFlag, MountRequest, MountSource, RunSpec, Tmpfs,
    UnknownImports,
};
use capsule_runtime::wasi::Stdio;
use capsule_runtime::{ambient, builtin, module};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run the container in the background and print its ID (its output goes to
    /// capsule logs)
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    /// Remove the container (its writable layer) when it exits
    #[arg(long = "rm")]
    rm: bool,
    #[command(flatten)]
    create: CreateArgs,
    /// An image (name[:tag], name@sha256:..., an ID) or a module file (a .wasm or .wat
    /// file; FILE#EXPORT calls an export of a reactor), then the arguments passed to
    /// the guest. Everything after it goes to the guest, flags included. A path that
    /// names an existing file is a module; anything else is an image.
    #[arg(
        value_name = "IMAGE|MODULE [ARGS]...",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// The flags `run` and `create` share: what the container is given.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Set an environment variable (KEY=VALUE), or copy the host's (KEY)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the guest (absolute)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Mount a host directory (HOST:GUEST, HOST with a / or starting with .), a named
    /// volume (NAME:GUEST, created on first use and filled from the image), or a new
    /// anonymous volume (GUEST); :ro for read-only
    #[arg(short = 'v', long = "volume", value_name = "HOST|NAME:GUEST[:ro]")]
    volume: Vec<String>,
    /// Mount in Docker's long form: type=bind|volume|tmpfs,source=...,target=...
    /// [,readonly][,tmpfs-size=N][,volume-nocopy]
    #[arg(long = "mount", value_name = "type=...,source=...,target=...")]
    mount: Vec<String>,
    /// Make the root filesystem read-only (writes get EROFS); mounts and /tmp stay
    /// writable
    #[arg(long = "read-only")]
    read_only: bool,
    /// Mount an in-memory filesystem: PATH or PATH:size=64m (/tmp has one by default)
    #[arg(long = "tmpfs", value_name = "PATH[:size=N]")]
    tmpfs: Vec<String>,
    /// Stack a read-only layer (a directory or an uncompressed tar) under the root,
    /// lowest first; the container writes to a temporary layer above them
    #[arg(long = "layer", value_name = "DIR_OR_TAR")]
    layer: Vec<PathBuf>,
    /// Turn a WebAssembly feature on or off (e.g. -W tail-call=n); see `capsule info`
    #[arg(short = 'W', long = "wasm", value_name = "FEATURE=y|n")]
    wasm: Vec<String>,
    /// What to do with imports Capsule does not provide: refuse to run, or link them to
    /// functions that trap if called (default: refuse, or what an image's
    /// io.capsule.unknown-imports label says)
    #[arg(long = "unknown-imports", value_enum)]
    unknown_imports: Option<UnknownImportsArg>,
    /// Compile the module even if the cache has it, and do not store the result
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Run this program (a path inside the image, or PATH#EXPORT for an export of a
    /// reactor) instead of the image's ENTRYPOINT; the image's CMD is dropped
    #[arg(long = "entrypoint", value_name = "PATH")]
    entrypoint: Option<String>,
    /// Give the container a name (unique; default: a generated one)
    #[arg(long = "name", value_name = "NAME")]
    name: Option<String>,
    /// Give the guest the terminal's stdin (without it, the guest's stdin is empty)
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Restart policy of a detached container: no, on-failure[:MAX], always,
    /// unless-stopped
    #[arg(long = "restart", value_name = "POLICY", default_value = "no")]
    restart: String,
    /// Seconds `capsule stop` waits before interrupting the guest (default 10, at most
    /// 1000000000)
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    stop_timeout: Option<String>,
    /// Set a label on the container (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Interrupt the guest after this much wall-clock time (e.g. 30s, 5m); exit 124
    #[arg(long = "timeout", value_name = "DURATION")]
    timeout: Option<String>,
    /// Let the guest connect to SCHEME://HOST:PORT (repeatable; * for any host, port
    /// or scheme, *.example.com, CIDRs, port ranges A..B); WASI 0.2 components only
    #[arg(long = "allow-outbound", value_name = "SCHEME://HOST:PORT")]
    allow_outbound: Vec<String>,
    /// A network to join (repeatable): NAME (capsule network create; containers on it
    /// reach each other by name), none (the default: no outbound connections but those
    /// --allow-outbound names) or host (every connection and name lookup: an escape hatch)
    #[arg(long = "network", alias = "net", value_name = "NAME|none|host")]
    network: Vec<String>,
    /// Another name the container is reached by on its networks (repeatable)
    #[arg(long = "network-alias", alias = "net-alias", value_name = "NAME")]
    network_alias: Vec<String>,
    /// Publish a container port on the host: the host listens on IP:HOST_PORT
    /// (default IP 127.0.0.1, this machine only; 0.0.0.0 is every network the host is
    /// on) and hands the socket to the guest; CONTAINER_PORT alone picks a free host
    /// port
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:]HOST_PORT:CONTAINER_PORT[/tcp]"
    )]
    publish: Vec<String>,
    /// Publish every port the image EXPOSEs on a free host port of 127.0.0.1
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Most memory the guest's linear memories and tables may grow to (e.g. 64m, 1g;
    /// default 4g); a grow past it fails in the guest, and a guest that then dies exits
    /// out of memory (137)
    #[arg(short = 'm', long = "memory", value_name = "SIZE")]
    memory: Option<String>,
    /// Most instructions (wasmtime fuel units) the guest may execute (default:
    /// unmetered); a guest that uses them up is stopped, exit 152
    #[arg(long = "fuel", value_name = "N")]
    fuel: Option<String>,
    /// A resource limit: nofile=N (descriptors open at once, default 1024; EMFILE past it)
    #[arg(long = "ulimit", value_name = "nofile=N")]
    ulimit: Vec<String>,
    /// A storage option: size=N (bytes of file data the writable layer may hold, e.g.
    /// 100m; default: unlimited for an image's layer, 1g for a module's in-memory root);
    /// ENOSPC past it
    #[arg(long = "storage-opt", value_name = "size=N")]
    storage_opt: Vec<String>,
    /// A health check: a command line for the image's /bin/sh (as Docker), or a JSON
    /// array run as it is (["/app/check.wasm","-q"]); healthy when it exits 0
    #[arg(long = "health-cmd", value_name = "COMMAND")]
    health_cmd: Option<String>,
    /// Time between health checks (e.g. 10s; default 30s)
    #[arg(long = "health-interval", value_name = "DURATION")]
    health_interval: Option<String>,
    /// Longest a health check may run before it counts as failed (default 30s)
    #[arg(long = "health-timeout", value_name = "DURATION")]
    health_timeout: Option<String>,
    /// Time to start up in which failed checks do not count (default 0s)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    health_start_period: Option<String>,
    /// Time between health checks during the start period (default 5s)
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    health_start_interval: Option<String>,
    /// Failed checks in a row that make the container unhealthy (default 3)
    #[arg(long = "health-retries", value_name = "N")]
    health_retries: Option<String>,
    /// Run no health check, not even the image's HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    no_healthcheck: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum UnknownImportsArg {
    Refuse,
    Trap,
}

/// `CreateArgs`, parsed and checked once, before anything is created.
pub(super) struct Resolved {
    env: Env,
    mounts: Vec<MountRequest>,
    tmpfs: Vec<Tmpfs>,
    workdir: Option<GuestPath>,
    limits: Limits,
    restart: RestartPolicy,
    stop_timeout: Option<u64>,
    labels: BTreeMap<String, String>,
    unknown_imports: Option<UnknownImports>,
    ports: Vec<capsule_runtime::net::PortRequest>,
    health: HealthOverrides,
    networks: Vec<NetworkRequest>,
}

/// The `--health-*` flags.
fn resolve_health(args: &CreateArgs) -> Result<HealthOverrides, Failure> {
    let duration = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| grammar::duration(flag, t))
            .transpose()
            .map_err(usage)
    };
    let retries = args
        .health_retries
        .as_deref()
        .map(|t| {
            t.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "invalid --health-retries '{t}': expected a number of checks, at least 1"
                ))
            })
        })
        .transpose()?;
    let health = HealthOverrides {
        test: args.health_cmd.as_deref().map(HealthOverrides::test_of),
        interval: duration("--health-interval", &args.health_interval)?,
        timeout: duration("--health-timeout", &args.health_timeout)?,
        start_period: duration("--health-start-period", &args.health_start_period)?,
        start_interval: duration("--health-start-interval", &args.health_start_interval)?,
        retries,
        disable: args.no_healthcheck,
    };
    if health.disable && health.any_but_disable() {
        return Err(usage(anyhow::anyhow!(
            "--no-healthcheck conflicts with the --health-* options: give one or the other"
        )));
    }
    Ok(health)
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(exit::USAGE, e)
}

pub(super) fn resolve(args: &CreateArgs) -> Result<Resolved, Failure> {
    let mut env = Env::default();
    for file in &args.env_file {
        env.apply_file_at(file).map_err(usage)?;
    }
    for flag in &args.env {
        env.apply_flag(flag).map_err(usage)?;
    }
    let mut mounts = args
        .volume
        .iter()
        .map(|v| MountRequest::parse_volume(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let mut tmpfs = args
        .tmpfs
        .iter()
        .map(|t| Tmpfs::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    for flag in &args.mount {
        match MountRequest::parse_mount(flag).map_err(usage)? {
            MountFlag::Mount(request) => mounts.push(request),
            MountFlag::Tmpfs(t) => tmpfs.push(t),
        }
    }
    capsule_runtime::spec::check_mount_points(&mounts, &tmpfs).map_err(usage)?;
    let workdir = args
        .workdir
        .as_deref()
        .map(GuestPath::parse)
        .transpose()
        .map_err(usage)?;
    let mut limits = Limits::default();
    if let Some(text) = &args.timeout {
        limits.timeout = Some(grammar::timeout("--timeout", text).map_err(usage)?);
    }
    resolve_limits(args, &mut limits)?;
    let restart = RestartPolicy::parse(&args.restart).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let stop_timeout = args
        .stop_timeout
        .as_deref()
        .map(|t| grammar::seconds("--stop-timeout", t))
        .transpose()
        .map_err(usage)?;
    let labels = args
        .label
        .iter()
        .map(|l| grammar::label(l))
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map_err(usage)?;
    let ports = args
        .publish
        .iter()
        .map(|p| capsule_runtime::net::PortRequest::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let health = resolve_health(args)?;
    let networks = resolve_networks(args)?;
    Ok(Resolved {
        networks,
        health,
        ports,
        env,
        mounts,
        tmpfs,
        workdir,
        limits,
        restart,
        stop_timeout,
        labels,
        unknown_imports: args.unknown_imports.map(|arg| match arg {
            UnknownImportsArg::Refuse => UnknownImports::Refuse,
            UnknownImportsArg::Trap => UnknownImports::Trap,
        }),
    })
}

/// `--memory`, `--fuel`, `--ulimit` and `--storage-opt`, checked by the library's rules.
fn resolve_limits(args: &CreateArgs, limits: &mut Limits) -> Result<(), Failure> {
    if let Some(text) = &args.memory {
        limits.memory = Some(grammar::memory("--memory", text).map_err(usage)?);
    }
    if let Some(text) = &args.fuel {
        limits.fuel = Some(grammar::fuel("--fuel", text).map_err(usage)?);
    }
    for ulimit in &args.ulimit {
        limits.nofile = Some(grammar::ulimit("--ulimit", ulimit).map_err(usage)?);
    }
    for option in &args.storage_opt {
        limits.storage = Some(grammar::storage_opt("--storage-opt", option).map_err(usage)?);
    }
    capsule_runtime::net::allow::AllowList::parse(&args.allow_outbound).map_err(usage)?;
    limits.outbound.clone_from(&args.allow_outbound);
    limits.network_host = args.network.iter().any(|n| n == "host");
    Ok(())
}

/// `--network` and `--network-alias`: the user-defined networks to join; `none` and
/// `host` stand alone.
fn resolve_networks(args: &CreateArgs) -> Result<Vec<NetworkRequest>, Failure> {
    use capsule_runtime::net::network::{PREDEFINED, valid_name};
    let predefined: Vec<&String> = args
        .network
        .iter()
        .filter(|n| PREDEFINED.contains(&n.as_str()))
        .collect();
    if let Some(first) = predefined.first()
        && args.network.len() > 1
    {
        return Err(usage(anyhow::anyhow!(
            "--network {first} cannot be combined with other networks: give it alone"
        )));
    }
    for alias in &args.network_alias {
        if !valid_name(alias) {
            return Err(usage(anyhow::anyhow!(
                "invalid --network-alias {alias:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
            )));
        }
    }
    if !args.network_alias.is_empty() && (args.network.is_empty() || !predefined.is_empty()) {
        return Err(usage(anyhow::anyhow!(
            "--network-alias needs a user-defined network: add --network NAME (capsule network create NAME makes one)"
        )));
    }
    Ok(args
        .network
        .iter()
        .filter(|n| !PREDEFINED.contains(&n.as_str()))
        .map(|name| NetworkRequest {
            name: name.clone(),
            aliases: args.network_alias.clone(),
        })
        .collect())
}

/// The target (image or module) and the guest's arguments.
pub(super) fn split_command(command: &[OsString]) -> Result<(&str, &[OsString]), Failure> {
    let (target, guest_args) = command.split_first().ok_or_else(|| {
        usage(anyhow::anyhow!(
            "capsule run needs an IMAGE or a MODULE (see capsule run --help)"
        ))
    })?;
    let target = target.to_str().ok_or_else(|| {
        usage(anyhow::anyhow!(
            "the image or module name is not valid UTF-8"
        ))
    })?;
    if target.starts_with('-') {
        return Err(usage(anyhow::anyhow!(
            "unknown option '{target}' (see capsule run --help)"
        )));
    }
    Ok((target, guest_args))
}

pub fn run(args: RunArgs) -> Result<u8, Failure> {
    // `run -d` on Linux: this process forks before it opens anything; the child does
    // all of the rest and becomes the container's supervisor, the parent waits for
    // its word (see `process::fork_supervisor`).
    let mut forked = false;
    if args.detach {
        use capsule_runtime::container::process::{Forked, fork_supervisor};
        match fork_supervisor() {
            Ok(Forked::Parent(child)) => return Ok(await_forked(child)),
            Ok(Forked::Child) => forked = true,
            Ok(Forked::Unavailable) => {}
            Err(e) => tracing::debug!(error = %e, "cannot fork: starting the supervisor instead"),
        }
    }
    let (target, guest_args) = split_command(&args.command)?;
    let resolved = resolve(&args.create)?;
    capsule_runtime::container::check_rm_restart(args.rm, resolved.restart).map_err(usage)?;
    match resolve_module(target)? {
        Some((name, wasm, entry)) => {
            if args.detach {
                return Err(usage(anyhow::anyhow!(
                    "capsule run -d runs images: make one from the module first (capsule image import {name})"
                )));
            }
            run_module(&args.create, resolved, name, wasm, entry, guest_args)
        }
        None => {
            if !args.create.layer.is_empty() {
                return Err(usage(anyhow::anyhow!(
                    "--layer stacks layers under a module file; an image brings its own layers"
                )));
            }
            run_image(&args, resolved, target, guest_args, forked)
        }
    }
}

/// The parent of a forked `run -d`: the child's `started ID` is the container's ID to
/// print (its `error REASON` is for `spawn_detached`'s reader, and any other line it
/// wrote to stdout is passed on); the end of its stdout without it means the child is
/// exiting with the command's failure, which it printed itself: its exit status is
/// this command's.
fn await_forked(child: capsule_runtime::container::process::ForkedChild) -> u8 {
    use std::io::BufRead;
    for line in std::io::BufReader::new(&child.lines).lines() {
        let Ok(line) = line else { break };
        match line.strip_prefix("started ") {
            Some(id) => {
                println!("{id}");
                return 0;
            }
            None if line.starts_with("error ") => {}
            None => println!("{line}"),
        }
    }
    u8::try_from(child.wait()).unwrap_or(exit::CANNOT_RUN)
}

/// The runner for a module file: its own engine for the `-W` settings, the home's
/// module cache unless `--no-cache`.
fn runner_for(args: &CreateArgs, features: FeatureSet) -> Result<Runner, Failure> {
    let cache = (!args.no_cache).then(module_cache).flatten();
    Runner::with_features(features, cache).map_err(usage)
}

/// `capsule run MODULE`: a module file with the flags as its whole world.
fn run_module(
    args: &CreateArgs,
    resolved: Resolved,
    name: String,
    wasm: Vec<u8>,
    entry: Entry,
    guest_args: &[OsString],
) -> Result<u8, Failure> {
    if let Some(network) = resolved.networks.first() {
        return Err(usage(anyhow::anyhow!(
            "--network {}: containers join networks, and a module file runs without one; make it an image first (capsule image import {name} -t NAME, then capsule run --network {} NAME)",
            network.name,
            network.name
        )));
    }
    let mut features = FeatureSet::default();
    for setting in &args.wasm {
        features.apply_setting(setting).map_err(usage)?;
    }
    let mut spec = RunSpec::new(name.clone());
    spec.args
        .extend(capsule_runtime::spec::utf8_args(guest_args).map_err(usage)?);
    spec.env = resolved.env;
    spec.mounts = module_mounts(&resolved.mounts)?;
    spec.tmpfs = resolved.tmpfs;
    spec.read_only = args.read_only;
    spec.workdir = resolved.workdir.unwrap_or_else(GuestPath::root);
    spec.entry = entry;
    spec.layers = args.layer.clone();
    spec.layer_index_cache = Home::from_env().ok().map(|home| home.layer_index_dir());
    spec.unknown_imports = resolved.unknown_imports.unwrap_or(UnknownImports::Refuse);
    spec.limits = resolved.limits;
    // A module file has no EXPOSE: -P publishes nothing.
    spec.ports = capsule_runtime::net::allocate(&resolved.ports, &[]).map_err(usage)?;
    let runner = runner_for(args, features)?;
    let output = runner
        .run(
            &spec,
            &Program::Bytes { name, wasm },
            &Stdio::Inherit,
            &Interrupt::new(),
        )
        .map_err(run_error)?;
    report_output(&output, spec.limits.memory.is_some())
}

/// [`report`] for a whole run: a guest that ended out of memory gets a line saying so
/// and the out-of-memory exit code.
pub(super) fn report_output(
    output: &exec::RunOutput,
    explicit_memory: bool,
) -> Result<u8, Failure> {
    let Some(limit) = output.out_of_memory else {
        return report(&output.status, &output.results);
    };
    let code = report(&output.status, &output.results)?;
    eprintln!(
        "capsule: {}",
        supervisor::out_of_memory_message(limit, explicit_memory)
    );
    Ok(match output.status {
        ExitStatus::Exited(_) => code,
        _ => exit::of_output(output),
    })
}

/// The mounts of a module run: host directories, checked. Volumes belong to
/// containers, which keep them in use; a module file runs without one.
fn module_mounts(requests: &[MountRequest]) -> Result<Vec<capsule_runtime::spec::Mount>, Failure> {
    if let Some(request) = requests
        .iter()
        .find(|r| r.source == MountSource::Volume(None))
    {
        return Err(usage(capsule_runtime::spec::SpecError::Volume {
            spec: request.flag.trim_start_matches("-v ").to_owned(),
            reason: "missing ':GUEST' (HOST:GUEST mounts a host directory; a GUEST path alone is an anonymous volume, which only containers of images have)".to_owned(),
        }));
    }
    if let Some(request) = requests
        .iter()
        .find(|r| matches!(r.source, MountSource::Volume(_)))
    {
        return Err(usage(anyhow::anyhow!(
            "{}: a named volume is mounted into containers of images; run the module as an image (capsule image import FILE -t NAME, then capsule run -v ... NAME), or mount a host directory (./DIR:/path)",
            request.flag
        )));
    }
    let binds = capsule_runtime::container::volumes::check_binds(requests).map_err(usage)?;
    Ok(binds.into_iter().flatten().collect())
}

pub(super) fn run_error(e: exec::RunError) -> Failure {
    let code = match e {
        exec::RunError::Wasi(_) => exit::USAGE,
        _ => exit::CANNOT_RUN,
    };
    Failure::new(code, e)
}

/// Turns the guest's outcome into Capsule's exit code, printing results and traps.
pub(super) fn report(status: &ExitStatus, results: &[String]) -> Result<u8, Failure> {
    match status {
        ExitStatus::Exited(code) => {
            if !results.is_empty() {
                let mut out = std::io::stdout().lock();
                for value in results {
                    let _ = writeln!(out, "{value}");
                }
            }
            Ok(*code)
        }
        ExitStatus::Trapped(trap) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "capsule: guest trapped: {}", trap.reason);
            if !trap.frames.is_empty() {
                let _ = writeln!(err, "wasm backtrace:");
                for (i, frame) in trap.frames.iter().enumerate() {
                    let _ = writeln!(err, "  {i:>3}: {frame}");
                }
            }
            Ok(exit::GUEST_FAULT)
        }
        ExitStatus::InvalidExit(status) => Err(Failure::new(
            exit::GUEST_FAULT,
            anyhow::anyhow!(
                "guest called proc_exit({status}), outside the exit statuses 0..=255 a process can report"
            ),
        )),
        ExitStatus::Interrupted(why) => {
            eprintln!("capsule: guest {why}");
            Ok(exit::of_status(status))
        }
    }
}

/// Finds an image (adding a built-in one to the store when first asked for).
pub(super) fn find_image(
    images: &Images,
    target: &str,
) -> Result<capsule_runtime::image::Image, Failure> {
    match images.resolve(target) {
        Ok(image) => Ok(image),
        Err(ImageError::NotFound(name)) => match builtin::ensure_image(images, target) {
            Ok(Some(image)) => Ok(image),
            Ok(None) => Err(Failure::new(
                exit::NOT_FOUND,
                anyhow::anyhow!(
                    "'{name}' is neither a file nor an image: to run a module give its path (./{name}); to run an image build it (capsule build -t {name} DIR) or load it (capsule load -i FILE)"
                ),
            )),
            Err(e) => Err(usage(e)),
        },
        Err(e) => Err(usage(e)),
    }
}

/// Creates a container from an image with the flags on top (`run`, `create`).
pub(super) fn create_container(
    home: &Home,
    images: &Images,
    args: &CreateArgs,
    resolved: Resolved,
    rm: bool,
    target: &str,
    guest_args: &[OsString],
) -> Result<Prepared, Failure> {
    let overrides = Overrides {
        entrypoint: args.entrypoint.clone(),
        args: capsule_runtime::spec::utf8_args(guest_args).map_err(usage)?,
        env: resolved.env.vars().to_vec(),
        workdir: resolved.workdir,
        mounts: Vec::new(),
        requests: resolved.mounts,
        tmpfs: resolved.tmpfs,
        read_only: args.read_only,
        rm,
        name: args.name.clone(),
        wasm: args.wasm.clone(),
        limits: resolved.limits,
        restart: resolved.restart,
        stop_timeout: resolved.stop_timeout,
        labels: resolved.labels,
        interactive: args.interactive,
        unknown_imports: resolved.unknown_imports,
        ports: resolved.ports,
        publish_all: args.publish_all,
        health: resolved.health,
        networks: resolved.networks,
        image_outbound: args.allow_outbound.is_empty()
            && !args.network.iter().any(|n| n == "none" || n == "host"),
    };
    prepare_container(home, images, target, overrides)
}

/// Creates a container from the image `target` with `overrides` (the flags of `run`
/// and `create`, a compose service's options).
pub(super) fn prepare_container(
    home: &Home,
    images: &Images,
    target: &str,
    overrides: Overrides,
) -> Result<Prepared, Failure> {
    let image = find_image(images, target)?;
    let prepared = container::prepare(home, images, &image, target, overrides).map_err(|e| {
        let code = match e {
            PrepareError::Platform { .. }
            | PrepareError::NoCommand(_)
            | PrepareError::Path { .. }
            | PrepareError::Label { .. } => exit::CANNOT_RUN,
            _ => exit::USAGE,
        };
        Failure::new(code, e)
    })?;
    for why in &prepared.warnings {
        eprintln!("capsule: warning: {why}");
    }
    Ok(prepared)
}

/// The runner for containers: the default engine and the home's module cache.
pub(super) fn container_runner(no_cache: bool) -> Result<Runner, Failure> {
    let cache = (!no_cache).then(module_cache).flatten();
    Runner::with_features(FeatureSet::default(), cache).map_err(usage)
}

pub(super) fn container_failure(e: ContainerError) -> Failure {
    let code = match e {
        // Docker's container verbs exit 1 for an unknown container.
        ContainerError::NotFound(_) | ContainerError::Ambiguous(_) => 1,
        _ => exit::USAGE,
    };
    Failure::new(code, e)
}

/// `capsule run IMAGE`: a container from the image's config, with the flags on top;
/// in the foreground, or detached under a supervisor of its own.
fn run_image(
    args: &RunArgs,
    resolved: Resolved,
    target: &str,
    guest_args: &[OsString],
    forked: bool,
) -> Result<u8, Failure> {
    let home = Home::from_env().map_err(usage)?;
    let images = match Images::open(&home) {
        Ok(images) => images,
        // Without a usable home the built-in hello-world still runs, as a plain module.
        Err(e) => match builtin::lookup(target) {
            Some(wasm) if !args.detach => {
                eprintln!(
                    "capsule: warning: the Capsule home {} is unusable ({:#}): running the built-in {target} without the image store or the module cache, so nothing is kept (set CAPSULE_HOME to a writable directory)",
                    home.root().display(),
                    anyhow::Error::from(e)
                );
                return run_module(
                    &args.create,
                    resolved,
                    target.to_owned(),
                    wasm.to_vec(),
                    Entry::Start,
                    guest_args,
                );
            }
            _ => return Err(usage(e)),
        },
    };
    let Prepared { mut container, .. } = create_container(
        &home,
        &images,
        &args.create,
        resolved,
        args.rm,
        target,
        guest_args,
    )?;
    #[cfg(target_os = "linux")]
    if forked {
        let id = container.config.id.clone();
        // The runner `capsule __supervise` makes (see `container::supervise`).
        let became = supervisor::become_supervisor(&home, container, || {
            container_runner(false).map_err(|failure| failure.error.to_string())
        });
        return match became {
            Ok(never) => match never {},
            // A `start` from elsewhere got in first: the container runs, as asked.
            Err(capsule_runtime::container::ContainerError::Start { reason, .. })
                if capsule_runtime::container::lifecycle::lost_to_another_start(&reason) =>
            {
                println!("started {id}");
                Ok(0)
            }
            Err(e) => Err(Failure::new(exit::CANNOT_RUN, e)),
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = forked;
    if args.detach {
        let exe = ambient::current_exe().map_err(usage)?;
        match supervisor::spawn_detached(&home, &container, &exe) {
            // A `start` from elsewhere got in first: the container runs, as asked.
            Err(capsule_runtime::container::ContainerError::Start { reason, .. })
                if capsule_runtime::container::lifecycle::lost_to_another_start(&reason) => {}
            Ok(()) => {}
            Err(e) => {
                if args.rm {
                    let _ = container.remove();
                }
                return Err(Failure::new(exit::CANNOT_RUN, e));
            }
        }
        println!("{}", container.config.id);
        return Ok(0);
    }
    let runner = container_runner(args.create.no_cache)?;
    let ended = supervisor::run(&mut container, &runner, Mode::Foreground, |_| {});
    let rm = args.rm;
    let result = match ended {
        Ok(ended) => match (ended.output, ended.error) {
            (Some(output), _) => report_output(
                &output,
                container
                    .config
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.limits.memory.is_some()),
            )
            .map(|code| {
                if matches!(output.status, ExitStatus::Interrupted(_)) {
                    ended.exit_code.clamp(0, 255) as u8
                } else {
                    code
                }
            }),
            (None, Some(e)) => Err(image_run_error(target, e)),
            (None, None) => Ok(ended.exit_code.clamp(0, 255) as u8),
        },
        Err(e) => Err(container_failure(e)),
    };
    if rm {
        let volumes = container.config.volumes.clone();
        match container.remove() {
            // As Docker's --rm, the container's anonymous volumes go with it.
            Ok(()) => {
                if let Err(e) =
                    capsule_runtime::container::volumes::remove_anonymous(&home, &volumes)
                {
                    tracing::warn!(error = %e, "cannot remove the container's anonymous volumes");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove the container"),
        }
    }
    result
}

/// A container's run that could not start, named after its image.
pub(super) fn image_run_error(target: &str, e: exec::RunError) -> Failure {
    match e {
        exec::RunError::Program { path, source } => Failure::new(
            exit::CANNOT_RUN,
            anyhow::anyhow!("image {target}: cannot read {path} in the image: {source}"),
        ),
        exec::RunError::Compile { name, reason } => Failure::new(
            exit::CANNOT_RUN,
            anyhow::anyhow!("{target}:{name}: {reason}"),
        ),
        // As Docker: a command found nowhere exits 127.
        exec::RunError::Command(
            e @ capsule_runtime::container::command::CommandError::NotFound { .. },
        ) => Failure::new(exit::NOT_FOUND, anyhow::anyhow!("image {target}: {e}")),
        exec::RunError::Command(e) => {
            Failure::new(exit::CANNOT_RUN, anyhow::anyhow!("image {target}: {e}"))
        }
        e => run_error(e),
    }
}

/// A module file or `FILE#EXPORT`; `None` for an image reference. A name that looks
/// like a path (has a `/`, or ends in `.wasm`/`.wat`) but is missing is reported as a
/// missing file.
fn resolve_module(target: &str) -> Result<Option<(String, Vec<u8>, Entry)>, Failure> {
    let read = |path: &str| module::read_file(std::path::Path::new(path));
    let not_found = |e: module::ModuleError| {
        let code = if matches!(e, module::ModuleError::NotFound { .. }) {
            exit::NOT_FOUND
        } else {
            exit::USAGE
        };
        Failure::new(code, e)
    };
    if ambient::is_file(std::path::Path::new(target)) {
        return Ok(Some((
            target.to_owned(),
            read(target).map_err(not_found)?,
            Entry::Start,
        )));
    }
    if let Some((path, export)) = target.rsplit_once('#')
        && !export.is_empty()
        && ambient::is_file(std::path::Path::new(path))
    {
        return Ok(Some((
            path.to_owned(),
            read(path).map_err(not_found)?,
            Entry::Export(export.to_owned()),
        )));
    }
    let looks_like_path = target.contains('/')
        || target.contains('\\')
        || target.ends_with(".wasm")
        || target.ends_with(".wat")
        || target.contains('#');
    // `registry.example:5000/team/app:1` and `team/app` are image names, not paths:
    // a name that is not a file and reads as an image reference is an image.
    let image_name = !target.starts_with(['.', '/'])
        && !target.ends_with(".wasm")
        && !target.ends_with(".wat")
        && capsule_runtime::image::reference::Reference::parse(target).is_ok();
    if !looks_like_path || image_name {
        return Ok(None);
    }
    Err(not_found(read(target).err().unwrap_or(
        module::ModuleError::NotFound {
            path: target.to_owned(),
        },
    )))
}

/// The home's module cache, or `None` (with a warning) when it cannot be opened.
fn module_cache() -> Option<ModuleCache> {
    let cache = Home::from_env()
        .map_err(|e| e.to_string())
        .and_then(|home| ModuleCache::open(&home.module_cache_dir()).map_err(|e| e.to_string()));
    match cache {
        Ok(cache) => Some(cache),
        Err(reason) => {
            tracing::warn!(%reason, "module cache unavailable; compiling without it");
            None
        }
    }
}
