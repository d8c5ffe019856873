//! `capsule run`.

use super::{Failure, exit};
use capsule_runtime::container::{self, Overrides, PrepareError, Prepared};
use capsule_runtime::engine::{CacheOutcome, Engine, EngineOptions, FeatureSet, ModuleCache};
use capsule_runtime::exec::{self, ExitStatus};
use capsule_runtime::home::Home;
use capsule_runtime::image::{ImageError, Images};
use capsule_runtime::labels::RunLabels;
use capsule_runtime::spec::{Entry, Env, GuestPath, Mount, RunSpec, UnknownImports};
use capsule_runtime::wasi::Stdio;
use capsule_runtime::{ambient, builtin, module};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Set an environment variable (KEY=VALUE), or copy the host's (KEY)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the guest (absolute)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Mount a host directory: HOST:GUEST, or HOST:GUEST:ro for read-only
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:ro]")]
    volume: Vec<String>,
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
    /// Remove the container (its writable layer) when it exits
    #[arg(long = "rm")]
    rm: bool,
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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum UnknownImportsArg {
    Refuse,
    Trap,
}

pub fn run(args: RunArgs) -> Result<u8, Failure> {
    let (target, guest_args) = args.command.split_first().ok_or_else(|| {
        Failure::new(
            exit::USAGE,
            anyhow::anyhow!("capsule run needs an IMAGE or a MODULE (see capsule run --help)"),
        )
    })?;
    let target = target.to_str().ok_or_else(|| {
        Failure::new(
            exit::USAGE,
            anyhow::anyhow!("the image or module name is not valid UTF-8"),
        )
    })?;
    if target.starts_with('-') {
        return Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("unknown option '{target}' for capsule run (see capsule run --help)"),
        ));
    }
    match resolve_module(target)? {
        Some((name, wasm, entry)) => run_module(&args, name, wasm, entry, guest_args),
        None => {
            if !args.layer.is_empty() {
                return Err(Failure::new(
                    exit::USAGE,
                    anyhow::anyhow!(
                        "--layer stacks layers under a module file; an image brings its own layers"
                    ),
                ));
            }
            run_image(&args, target, guest_args)
        }
    }
}

/// The default features, then an image's labels' settings, then `-W`.
fn features(args: &RunArgs, labels: &RunLabels) -> Result<FeatureSet, Failure> {
    let mut features = FeatureSet::default();
    labels.apply_features(&mut features);
    for setting in &args.wasm {
        features
            .apply_setting(setting)
            .map_err(|e| Failure::new(exit::USAGE, e))?;
    }
    Ok(features)
}

fn unknown_imports(arg: Option<UnknownImportsArg>, otherwise: UnknownImports) -> UnknownImports {
    match arg {
        Some(UnknownImportsArg::Refuse) => UnknownImports::Refuse,
        Some(UnknownImportsArg::Trap) => UnknownImports::Trap,
        None => otherwise,
    }
}

fn run_error(e: exec::RunError) -> Failure {
    let code = match e {
        exec::RunError::Wasi(_) => exit::USAGE,
        _ => exit::CANNOT_RUN,
    };
    Failure::new(code, e)
}

/// `capsule run MODULE`: a module file with the flags as its whole world.
fn run_module(
    args: &RunArgs,
    name: String,
    wasm: Vec<u8>,
    entry: Entry,
    guest_args: &[OsString],
) -> Result<u8, Failure> {
    let usage = |e: capsule_runtime::spec::SpecError| Failure::new(exit::USAGE, e);
    let features = features(args, &RunLabels::default())?;
    let mut env = Env::default();
    for file in &args.env_file {
        env.apply_file_at(file).map_err(usage)?;
    }
    for flag in &args.env {
        env.apply_flag(flag).map_err(usage)?;
    }
    let mounts = args
        .volume
        .iter()
        .map(|v| Mount::parse_volume(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let workdir = match &args.workdir {
        Some(dir) => GuestPath::parse(dir).map_err(usage)?,
        None => GuestPath::root(),
    };
    let mut spec = RunSpec::new(name.clone());
    spec.args
        .extend(capsule_runtime::spec::utf8_args(guest_args).map_err(usage)?);
    spec.env = env;
    spec.mounts = mounts;
    spec.workdir = workdir;
    spec.entry = entry;
    spec.tmpfs = args
        .tmpfs
        .iter()
        .map(|t| capsule_runtime::spec::Tmpfs::parse(t))
        .collect::<Result<_, _>>()
        .map_err(usage)?;
    capsule_runtime::spec::check_mount_points(&spec.mounts, &spec.tmpfs).map_err(usage)?;
    spec.layers = args.layer.clone();
    spec.layer_index_cache = Home::from_env().ok().map(|home| home.layer_index_dir());
    spec.unknown_imports = unknown_imports(args.unknown_imports, UnknownImports::Refuse);

    let wasm =
        module::core_module_bytes(&name, &wasm).map_err(|e| Failure::new(exit::CANNOT_RUN, e))?;
    let engine =
        Engine::new(&EngineOptions { features }).map_err(|e| Failure::new(exit::USAGE, e))?;
    let compiled = compile(&engine, &wasm, args.no_cache)
        .map_err(|e| Failure::new(exit::CANNOT_RUN, e.context(name.clone())))?;
    let output = exec::run(&engine, &compiled, &spec, &Stdio::Inherit).map_err(run_error)?;
    report(output)
}

/// Turns the guest's outcome into Capsule's exit code, printing results and traps.
fn report(output: exec::RunOutput) -> Result<u8, Failure> {
    match output.status {
        ExitStatus::Exited(code) => {
            if !output.results.is_empty() {
                let mut out = std::io::stdout().lock();
                for value in &output.results {
                    let _ = writeln!(out, "{value}");
                }
            }
            Ok(code)
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
    }
}

/// `capsule run IMAGE`: a container from the image's config, with the flags on top.
fn run_image(args: &RunArgs, target: &str, guest_args: &[OsString]) -> Result<u8, Failure> {
    let usage = |e: capsule_runtime::spec::SpecError| Failure::new(exit::USAGE, e);
    let home = Home::from_env().map_err(|e| Failure::new(exit::USAGE, e))?;
    let images = match Images::open(&home) {
        Ok(images) => images,
        // Without a usable home the built-in hello-world still runs, as a plain module.
        Err(e) => match builtin::lookup(target) {
            Some(wasm) => {
                eprintln!(
                    "capsule: warning: the Capsule home {} is unusable ({:#}): running the built-in {target} without the image store or the module cache, so nothing is kept (set CAPSULE_HOME to a writable directory)",
                    home.root().display(),
                    anyhow::Error::from(e)
                );
                return run_module(
                    args,
                    target.to_owned(),
                    wasm.to_vec(),
                    Entry::Start,
                    guest_args,
                );
            }
            None => return Err(Failure::new(exit::USAGE, e)),
        },
    };
    let image = match images.resolve(target) {
        Ok(image) => image,
        Err(ImageError::NotFound(name)) => match builtin::ensure_image(&images, target) {
            Ok(Some(image)) => image,
            Ok(None) => {
                return Err(Failure::new(
                    exit::NOT_FOUND,
                    anyhow::anyhow!(
                        "'{name}' is neither a file nor an image: to run a module give its path (./{name}); to run an image build it (capsule build -t {name} DIR) or load it (capsule load -i FILE)"
                    ),
                ));
            }
            Err(e) => return Err(Failure::new(exit::USAGE, e)),
        },
        Err(e) => return Err(Failure::new(exit::USAGE, e)),
    };
    let mut env = Env::default();
    for file in &args.env_file {
        env.apply_file_at(file).map_err(usage)?;
    }
    for flag in &args.env {
        env.apply_flag(flag).map_err(usage)?;
    }
    let overrides = Overrides {
        entrypoint: args.entrypoint.clone(),
        args: capsule_runtime::spec::utf8_args(guest_args).map_err(usage)?,
        env: env.vars().to_vec(),
        workdir: args
            .workdir
            .as_deref()
            .map(GuestPath::parse)
            .transpose()
            .map_err(usage)?,
        mounts: args
            .volume
            .iter()
            .map(|v| Mount::parse_volume(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(usage)?,
        tmpfs: args
            .tmpfs
            .iter()
            .map(|t| capsule_runtime::spec::Tmpfs::parse(t))
            .collect::<Result<_, _>>()
            .map_err(usage)?,
        rm: args.rm,
    };
    capsule_runtime::spec::check_mount_points(&overrides.mounts, &overrides.tmpfs)
        .map_err(usage)?;
    let Prepared {
        container,
        mut spec,
        program: program_path,
        labels,
    } = container::prepare(&home, &images, &image, target, overrides).map_err(|e| {
        let code = match e {
            PrepareError::Platform { .. }
            | PrepareError::NoCommand(_)
            | PrepareError::Path { .. }
            | PrepareError::Label { .. } => exit::CANNOT_RUN,
            _ => exit::USAGE,
        };
        Failure::new(code, e)
    })?;
    spec.unknown_imports = unknown_imports(args.unknown_imports, spec.unknown_imports);
    if args.rm {
        remove_on_signal(container.dir.clone());
    }
    let features = features(args, &labels)?;

    let result = (|| {
        let (world, captured) = capsule_runtime::wasi::build(&spec, &Stdio::Inherit)
            .map_err(|e| Failure::new(exit::USAGE, e))?;
        let engine =
            Engine::new(&EngineOptions { features }).map_err(|e| Failure::new(exit::USAGE, e))?;
        let name = format!("{target}:{program_path}");
        // An image's layers never change, and a new container's writable layer is empty:
        // without mounts, the program at a path of an image is always the same module, so
        // the cache finds it by that name without reading and hashing it (CPython's
        // module is 95 MB).
        let cache = (!args.no_cache).then(module_cache).flatten();
        let alias = (spec.mounts.is_empty() && spec.tmpfs.is_empty())
            .then(|| format!("image {} program {program_path}", image.id()));
        let cached = match (&cache, &alias) {
            (Some(cache), Some(alias)) => cache.load_alias(&engine, alias),
            _ => None,
        };
        let compiled = match cached {
            Some(module) => module,
            None => {
                let wasm = world.read_file(&program_path).map_err(|e| {
                    Failure::new(
                        exit::CANNOT_RUN,
                        anyhow::anyhow!(
                            "image {target}: cannot read {program_path} in the image: {e}"
                        ),
                    )
                })?;
                let wasm = module::core_module_bytes(&name, &wasm)
                    .map_err(|e| Failure::new(exit::CANNOT_RUN, e))?;
                let compiled = compile_with(&engine, &wasm, cache.as_ref())
                    .map_err(|e| Failure::new(exit::CANNOT_RUN, e.context(name.clone())))?;
                if let (Some(cache), Some(alias)) = (&cache, &alias) {
                    cache.set_alias(alias, &wasm);
                }
                compiled
            }
        };
        let output = exec::run_in(&engine, &compiled, &spec, world, captured).map_err(run_error)?;
        report(output)
    })();
    if args.rm
        && let Err(e) = container.remove()
    {
        tracing::warn!(error = %e, "cannot remove the container");
    }
    result
}

/// `run --rm`: SIGINT, SIGTERM or SIGHUP removes the container before the process
/// ends (with 128 + the signal, as a shell reports it). The guest runs on this
/// process's main thread, so a thread waits for the signal. A run killed outright
/// (SIGKILL) leaves the container, marked `rm`, to the next command that lists
/// containers.
#[cfg(unix)]
fn remove_on_signal(dir: PathBuf) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle signals; a killed run leaves its container to the next command");
            return;
        }
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // The guest may still be writing into the directory: try a few times.
            for _ in 0..5 {
                if ambient::remove_dir_all(&dir).is_ok() || !ambient::is_dir(&dir) {
                    break;
                }
            }
            std::process::exit(128 + signal);
        }
    });
}

#[cfg(not(unix))]
fn remove_on_signal(_dir: PathBuf) {
    // Without POSIX signals a killed run leaves its container, marked `rm`, to the
    // next command that lists containers.
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
    if !looks_like_path {
        return Ok(None);
    }
    Err(not_found(read(target).err().unwrap_or(
        module::ModuleError::NotFound {
            path: target.to_owned(),
        },
    )))
}

fn compile(engine: &Engine, wasm: &[u8], no_cache: bool) -> anyhow::Result<wasmtime::Module> {
    let cache = if no_cache { None } else { module_cache() };
    compile_with(engine, wasm, cache.as_ref())
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

fn compile_with(
    engine: &Engine,
    wasm: &[u8],
    cache: Option<&ModuleCache>,
) -> anyhow::Result<wasmtime::Module> {
    match cache {
        Some(cache) => {
            let (module, outcome) = cache.load_or_compile(engine, wasm)?;
            if let CacheOutcome::Rebuilt(reason) = outcome {
                tracing::info!(%reason, "rebuilt a module cache entry");
            }
            Ok(module)
        }
        None => Ok(capsule_runtime::engine::cache::compile(engine, wasm)?),
    }
}
