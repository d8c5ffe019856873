//! What a guest is given: arguments, environment, mounts and working directory, and the
//! Docker syntax that describes them (`-e K=V`, `--env-file`, `-v HOST:GUEST[:ro]`).
//!
//! Everything here is parsed from user input and checked before a module is touched.

pub mod grammar;

pub use grammar::{format_duration, parse_duration, parse_size};

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors in the description of a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "invalid environment variable '{0}': expected KEY=VALUE or KEY, with a non-empty KEY without '=' or NUL"
    )]
    Env(String),
    #[error(
        "{file}:{line}: invalid line '{text}': expected KEY=VALUE, KEY, a # comment or a blank line"
    )]
    EnvFileLine {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}: cannot read env file: {reason}")]
    EnvFileRead { file: String, reason: String },
    #[error(
        "invalid volume '{spec}': {reason} (expected HOST:GUEST, NAME:GUEST or GUEST, then :ro for read-only, GUEST absolute)"
    )]
    Volume { spec: String, reason: String },
    #[error(
        "invalid mount '{spec}': {reason} (expected type=bind|volume|tmpfs,source=...,target=/PATH[,readonly])"
    )]
    MountFlag { spec: String, reason: String },
    #[error("volume '{spec}': host path {host} does not exist")]
    VolumeMissing { spec: String, host: String },
    #[error(
        "volume '{spec}': host path {host} is not a directory (only directories can be mounted)"
    )]
    VolumeNotDir { spec: String, host: String },
    #[error("invalid guest path '{path}': {reason}")]
    GuestPath { path: String, reason: &'static str },
    #[error("invalid tmpfs '{spec}': {reason} (expected PATH or PATH:size=64m)")]
    Tmpfs { spec: String, reason: String },
    #[error("argument {index} is not valid UTF-8; WASI passes arguments as UTF-8 strings")]
    ArgNotUtf8 { index: usize },
    #[error("{first} and {second} both mount {guest}: give each mount its own guest path")]
    DuplicateMount {
        guest: String,
        first: String,
        second: String,
    },
}

/// Refuses two mounts (`-v`, `--mount`, `--tmpfs`) at the same guest path, naming both,
/// as Docker does ("Duplicate mount point"); the default `/tmp` tmpfs gives way to
/// either.
///
/// # Errors
/// [`SpecError::DuplicateMount`].
pub fn check_mount_points(mounts: &[MountRequest], tmpfs: &[Tmpfs]) -> Result<(), SpecError> {
    let named = mounts
        .iter()
        .map(|m| (&m.guest, m.flag.clone()))
        .chain(
            tmpfs
                .iter()
                .map(|t| (&t.guest, format!("--tmpfs {}", t.guest.as_str()))),
        )
        .collect::<Vec<_>>();
    for (i, (guest, second)) in named.iter().enumerate() {
        if let Some((_, first)) = named[..i].iter().find(|(g, _)| g == guest) {
            return Err(SpecError::DuplicateMount {
                guest: guest.as_str().to_owned(),
                first: first.clone(),
                second: second.clone(),
            });
        }
    }
    Ok(())
}

/// An absolute, normalised path inside the guest: starts with `/`, no `.`, `..` or empty
/// components, no trailing slash (except `/` itself).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct GuestPath(String);

impl TryFrom<String> for GuestPath {
    type Error = SpecError;
    fn try_from(path: String) -> Result<Self, SpecError> {
        Self::parse(&path)
    }
}

impl From<GuestPath> for String {
    fn from(path: GuestPath) -> String {
        path.0
    }
}

impl GuestPath {
    /// The root, `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Parses an absolute guest path. `..` is refused rather than clamped.
    ///
    /// # Errors
    /// [`SpecError::GuestPath`] for relative paths, `..`, NUL bytes.
    pub fn parse(path: &str) -> Result<Self, SpecError> {
        let err = |reason| SpecError::GuestPath {
            path: path.to_owned(),
            reason,
        };
        if !path.starts_with('/') {
            return Err(err("it must be absolute (start with /)"));
        }
        if path.contains('\0') {
            return Err(err("it contains a NUL byte"));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(err("'..' is not allowed")),
                _ => parts.push(part),
            }
        }
        Ok(Self(format!("/{}", parts.join("/"))))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// If `self` is `base` or below it, the components below `base` (`""` for itself).
    pub fn strip_prefix(&self, base: &GuestPath) -> Option<&str> {
        if base.is_root() {
            return Some(self.0.trim_start_matches('/'));
        }
        let rest = self.0.strip_prefix(&base.0)?;
        if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix('/')
        }
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host directory made visible at a guest path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The host directory (absolute, checked to exist when the container is prepared).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: GuestPath,
    /// Whether the guest may only read.
    pub read_only: bool,
}

impl Mount {
    /// Parses Docker's `-v HOST:GUEST[:ro|:rw]` for a host directory and checks that
    /// HOST is one (for embedders, which have no named volumes).
    ///
    /// # Errors
    /// As [`MountRequest::parse_volume`] and [`MountRequest::bind`]; a named or
    /// anonymous volume is [`SpecError::Volume`].
    pub fn parse_volume(spec: &str) -> Result<Self, SpecError> {
        let request = MountRequest::parse_volume(spec)?;
        match &request.source {
            MountSource::Bind(_) => request.bind(),
            MountSource::Volume(_) => Err(SpecError::Volume {
                spec: spec.to_owned(),
                reason:
                    "named and anonymous volumes need a container; give a host path such as ./data"
                        .to_owned(),
            }),
        }
    }
}

/// What a `-v` or `--mount` asks to mount, as parsed: nothing on the host is looked at
/// until the container is prepared ([`MountRequest::bind`] checks a host directory
/// then, and named volumes are created then).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountRequest {
    pub source: MountSource,
    /// Where the guest sees it.
    pub guest: GuestPath,
    /// Whether the guest may only read.
    pub read_only: bool,
    /// `volume-nocopy`: a new volume is not filled from the image.
    pub no_copy: bool,
    /// The flag as the user gave it, for messages.
    pub flag: String,
}

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountSource {
    /// A host directory, as the user wrote it (relative paths are from the current
    /// directory).
    Bind(String),
    /// A named volume, or (`None`) a new anonymous one.
    Volume(Option<String>),
}

/// What one `--mount` describes: a bind or volume mount, or a tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountFlag {
    Mount(MountRequest),
    Tmpfs(Tmpfs),
}

/// Why nothing is mounted at `/`: the root is the image's (Docker refuses it too).
pub const ROOT_MOUNT: &str = "nothing can be mounted at / (it is the image's root): mount below it";

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (at least two
/// characters), here at most 128.
pub fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && (2..=128).contains(&name.len())
}

/// The message for a name that is not a volume name.
pub fn volume_name_rule(name: &str) -> String {
    format!(
        "invalid volume name '{name}': use 2 to 128 letters, digits, '_', '.' and '-', starting with a letter or digit"
    )
}

impl MountRequest {
    /// Parses Docker's `-v SOURCE:GUEST[:ro|:rw]` or `-v GUEST` (an anonymous volume).
    /// SOURCE is a host path when it holds a `/` or `\` or starts with `.`, otherwise
    /// a volume name. Pure: the host is not looked at.
    ///
    /// The guest path is the last `:`-separated part that starts with `/`, so Windows
    /// host paths (`C:\data:/data`) work.
    ///
    /// # Errors
    /// [`SpecError::Volume`] for bad syntax or a bad volume name.
    pub fn parse_volume(spec: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::Volume {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, read_only) = if let Some(rest) = spec.strip_suffix(":ro") {
            (rest, true)
        } else if let Some(rest) = spec.strip_suffix(":rw") {
            (rest, false)
        } else {
            (spec, false)
        };
        let flag = format!("-v {spec}");
        if rest.starts_with('/') && !rest.contains(':') {
            let guest = GuestPath::parse(rest).map_err(|e| bad(&e.to_string()))?;
            if guest.is_root() {
                return Err(bad(ROOT_MOUNT));
            }
            return Ok(Self {
                source: MountSource::Volume(None),
                guest,
                read_only,
                no_copy: false,
                flag,
            });
        }
        let (host, guest) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("missing ':GUEST'"))?;
        // HOST:/GUEST:MODE with a mode other than ro/rw.
        if !guest.starts_with('/')
            && let Some((_, maybe_guest)) = host.rsplit_once(':')
            && maybe_guest.starts_with('/')
        {
            return Err(bad(&format!(
                "unknown mode '{guest}' (valid modes: ro, rw)"
            )));
        }
        if host.is_empty() {
            return Err(bad("the host path is empty"));
        }
        if !guest.starts_with('/') {
            return Err(bad("the guest path must be absolute"));
        }
        let guest = GuestPath::parse(guest).map_err(|e| bad(&e.to_string()))?;
        let source = if host.contains('/') || host.contains('\\') || host.starts_with('.') {
            // A host directory at `/` is a module run's whole root (as wasmtime's
            // `--dir HOST::/`); an image's container refuses it when it is prepared.
            MountSource::Bind(host.to_owned())
        } else if guest.is_root() {
            return Err(bad(ROOT_MOUNT));
        } else if valid_volume_name(host) {
            MountSource::Volume(Some(host.to_owned()))
        } else {
            return Err(bad(&format!(
                "{} (or give a host path such as ./{host})",
                volume_name_rule(host)
            )));
        };
        Ok(Self {
            source,
            guest,
            read_only,
            no_copy: false,
            flag,
        })
    }

    /// Parses Docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`
    /// (also `src`, `dst`/`destination`, `ro`, `readonly=true|false`, `tmpfs-size=N`,
    /// `volume-nocopy`). The type defaults to `volume`; a volume without a source is a
    /// new anonymous one. Pure: the host is not looked at.
    ///
    /// # Errors
    /// [`SpecError::MountFlag`] naming what is wrong.
    pub fn parse_mount(spec: &str) -> Result<MountFlag, SpecError> {
        let bad = |reason: String| SpecError::MountFlag {
            spec: spec.to_owned(),
            reason,
        };
        let mut kind = None;
        let mut source = None;
        let mut target = None;
        let mut read_only = false;
        let mut no_copy = false;
        let mut tmpfs_size = None;
        let flag_bool = |key: &str, value: Option<&str>| match value {
            None | Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(other) => Err(bad(format!("{key}={other}: expected true or false"))),
        };
        for field in spec.split(',') {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (field.trim(), None),
            };
            let needs = |value: Option<&str>| {
                value
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("'{key}' needs a value ({key}=...)")))
            };
            match key.to_ascii_lowercase().as_str() {
                "type" => kind = Some(needs(value)?),
                "source" | "src" => source = Some(needs(value)?),
                "target" | "destination" | "dst" => target = Some(needs(value)?),
                "readonly" | "ro" => read_only = flag_bool(key, value)?,
                "volume-nocopy" => no_copy = flag_bool(key, value)?,
                "tmpfs-size" => {
                    let text = needs(value)?;
                    tmpfs_size = Some(parse_size(&text).ok_or_else(|| {
                        bad(format!(
                            "tmpfs-size={text}: expected a number with an optional k, m or g suffix"
                        ))
                    })?)
                }
                "tmpfs-mode" | "consistency" | "bind-propagation" => {
                    needs(value)?;
                }
                "" => return Err(bad("an empty field".to_owned())),
                other => {
                    return Err(bad(format!(
                        "unknown field '{other}' (known: type, source, target, readonly, tmpfs-size, volume-nocopy)"
                    )));
                }
            }
        }
        let target = target.ok_or_else(|| bad("target=PATH is required".to_owned()))?;
        let guest = GuestPath::parse(&target).map_err(|e| bad(e.to_string()))?;
        if guest.is_root() {
            return Err(bad(ROOT_MOUNT.to_owned()));
        }
        let flag = format!("--mount {spec}");
        let kind = kind.unwrap_or_else(|| "volume".to_owned());
        if kind != "tmpfs" && tmpfs_size.is_some() {
            return Err(bad("tmpfs-size is only for type=tmpfs".to_owned()));
        }
        if kind != "volume" && no_copy {
            return Err(bad("volume-nocopy is only for type=volume".to_owned()));
        }
        let source = match kind.as_str() {
            "bind" => MountSource::Bind(
                source.ok_or_else(|| bad("type=bind needs source=HOST_PATH".to_owned()))?,
            ),
            "volume" => match source {
                Some(name) if !valid_volume_name(&name) => {
                    return Err(bad(volume_name_rule(&name)));
                }
                name => MountSource::Volume(name),
            },
            "tmpfs" => {
                if source.is_some() {
                    return Err(bad("type=tmpfs takes no source".to_owned()));
                }
                if read_only {
                    return Err(bad(
                        "a read-only tmpfs would stay empty; drop readonly".to_owned()
                    ));
                }
                return Ok(MountFlag::Tmpfs(Tmpfs {
                    guest,
                    size: tmpfs_size.unwrap_or(Tmpfs::DEFAULT_SIZE),
                }));
            }
            other => {
                return Err(bad(format!(
                    "unknown type '{other}' (known: bind, volume, tmpfs)"
                )));
            }
        };
        Ok(MountFlag::Mount(Self {
            source,
            guest,
            read_only,
            no_copy,
            flag,
        }))
    }

    /// A bind mount's host directory, checked: it must exist and be a directory.
    ///
    /// # Errors
    /// [`SpecError::VolumeMissing`], [`SpecError::VolumeNotDir`];
    /// [`SpecError::Volume`] when this is not a bind mount.
    pub fn bind(&self) -> Result<Mount, SpecError> {
        let spec = self
            .flag
            .strip_prefix("-v ")
            .unwrap_or(&self.flag)
            .to_owned();
        let MountSource::Bind(host) = &self.source else {
            return Err(SpecError::Volume {
                spec,
                reason: "not a host directory".to_owned(),
            });
        };
        let host_abs = crate::ambient::canonicalize(Path::new(host)).map_err(|_| {
            SpecError::VolumeMissing {
                spec: spec.clone(),
                host: host.clone(),
            }
        })?;
        if !crate::ambient::is_dir(&host_abs) {
            return Err(SpecError::VolumeNotDir {
                spec,
                host: host.clone(),
            });
        }
        Ok(Mount {
            host: host_abs,
            guest: self.guest.clone(),
            read_only: self.read_only,
        })
    }
}

/// The guest's environment, in order; setting a key again replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Env(Vec<(String, String)>);

impl Env {
    /// Sets a variable.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The variables, in order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.0
    }

    /// Applies one `-e` value: `KEY=VALUE` sets, `KEY` copies the host's value (and is
    /// ignored when the host has none, as Docker does).
    ///
    /// # Errors
    /// [`SpecError::Env`] for an empty key or a NUL byte.
    pub fn apply_flag(&mut self, flag: &str) -> Result<(), SpecError> {
        let (key, value) = match flag.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (flag, None),
        };
        if key.is_empty() || flag.contains('\0') {
            return Err(SpecError::Env(flag.to_owned()));
        }
        if let Some(value) = value.or_else(|| crate::ambient::host_env(key)) {
            self.set(key, value);
        }
        Ok(())
    }

    /// Applies an env file in Docker's format: one `KEY=VALUE` or `KEY` per line, `#`
    /// comments and blank lines ignored, values taken literally (no quotes, no
    /// expansion). Leading white space before the key is ignored.
    ///
    /// # Errors
    /// [`SpecError::EnvFileLine`] naming the file and line.
    pub fn apply_file(&mut self, file: &str, text: &str) -> Result<(), SpecError> {
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = line.split_once('=').map_or(line, |(k, _)| k);
            if key.chars().any(char::is_whitespace) {
                return Err(SpecError::EnvFileLine {
                    file: file.to_owned(),
                    line: index + 1,
                    text: raw.to_owned(),
                });
            }
            self.apply_flag(line).map_err(|_| SpecError::EnvFileLine {
                file: file.to_owned(),
                line: index + 1,
                text: raw.to_owned(),
            })?;
        }
        Ok(())
    }

    /// Reads and applies an env file from the host.
    ///
    /// # Errors
    /// [`SpecError::EnvFileRead`] or [`SpecError::EnvFileLine`].
    pub fn apply_file_at(&mut self, path: &Path) -> Result<(), SpecError> {
        let file = path.display().to_string();
        let bytes = crate::ambient::read_file(path).map_err(|e| SpecError::EnvFileRead {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| SpecError::EnvFileRead {
            file: file.clone(),
            reason: "not valid UTF-8".to_owned(),
        })?;
        self.apply_file(&file, &text)
    }
}

/// How unresolved imports are handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UnknownImports {
    /// Refuse to run, naming every unresolved import (the default).
    #[default]
    Refuse,
    /// Link unresolved functions to stubs that trap if they are ever called.
    Trap,
}

/// Which function of the module to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Entry {
    /// A command's `_start`.
    #[default]
    Start,
    /// A named export, after `_initialize` if the module has one (`app.wasm#run`). An
    /// export that takes parameters gets them from the arguments after `argv[0]`, exactly
    /// as many as it takes; one that takes none gets the arguments only as its argv (as
    /// `wasmtime run --invoke` does). Results are reported as values.
    Export(String),
    /// An export named as a container's program (`/app/r.wasm#run` in ENTRYPOINT, CMD,
    /// `--entrypoint` or RUN): called as [`Entry::Export`] is, except that when it takes
    /// no parameters and returns one `i32`, that value is the program's exit status, as
    /// the value `main` returns is a command's.
    Program(String),
}

/// Splits a program named as `PATH#EXPORT` into the path and the export; a name
/// without a `#`, or whose text after the last `#` is empty or holds a `/`, is a path
/// alone. (So a program path with a `#` in its last component is read as naming an
/// export: write such a file name without `#`.)
pub fn split_program(program: &str) -> (&str, Option<&str>) {
    match program.rsplit_once('#') {
        Some((path, export)) if !path.is_empty() && !export.is_empty() && !export.contains('/') => {
            (path, Some(export))
        }
        _ => (program, None),
    }
}

/// Everything a run of a module is given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSpec {
    /// `argv`, including `argv[0]`.
    pub args: Vec<String>,
    /// The environment.
    pub env: Env,
    /// Host directories visible to the guest.
    pub mounts: Vec<Mount>,
    /// The working directory relative paths resolve against.
    pub workdir: GuestPath,
    /// The function to run.
    pub entry: Entry,
    /// What to do with imports Capsule does not provide.
    pub unknown_imports: UnknownImports,
    /// In-memory filesystems mounted at guest paths.
    pub tmpfs: Vec<Tmpfs>,
    /// Read-only layers stacked under the root, lowest first (directories or tars).
    pub layers: Vec<PathBuf>,
    /// Where merged layer indexes are saved, so a chain is indexed once (None: never).
    pub layer_index_cache: Option<PathBuf>,
    /// The name of the saved index of `layers` when they are content-addressed (an
    /// image's chain ID); otherwise it is derived from the layer files' identity.
    pub layer_chain_id: Option<String>,
    /// A directory that keeps the writable layer (`upper/`, `work/`) across runs (a
    /// container's, a build step's); `None`: a temporary one, removed after the run.
    pub upper: Option<PathBuf>,
    /// What the run may use of the host.
    #[serde(default)]
    pub limits: Limits,
    /// `--read-only`: the root filesystem refuses writes (EROFS); mounts and `/tmp`
    /// stay writable.
    #[serde(default)]
    pub read_only: bool,
    /// `-p`/`-P`: host addresses bound before the guest starts, each handed to the
    /// guest as a listening socket (the only network a guest has).
    #[serde(default)]
    pub ports: Vec<crate::net::PortBinding>,
}

/// What a run may use of the host; each is enforced by the runtime, and `None` means
/// the documented default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// `--memory`: bytes of linear memory and table elements the guest may grow to.
    pub memory: Option<u64>,
    /// `--timeout`: wall-clock time before the guest is interrupted.
    pub timeout: Option<std::time::Duration>,
    /// `--fuel`: instructions (wasmtime fuel units) the guest may execute.
    pub fuel: Option<u64>,
    /// `--ulimit nofile=N`: descriptors the guest may hold open at once.
    pub nofile: Option<u32>,
    /// `--storage-opt size=N`: bytes the writable layer may hold.
    pub storage: Option<u64>,
}

/// A tmpfs mount: `--tmpfs /tmp[:size=64m]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tmpfs {
    pub guest: GuestPath,
    /// Most bytes of file data it holds.
    pub size: u64,
}

impl Tmpfs {
    /// Default size of a tmpfs without `size=`.
    pub const DEFAULT_SIZE: u64 = 64 << 20;

    /// Parses `PATH[:size=N[k|m|g]]` as Docker's `--tmpfs` does.
    ///
    /// # Errors
    /// [`SpecError::Tmpfs`] for a relative path or a bad size.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::Tmpfs {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
        let guest = GuestPath::parse(path).map_err(|e| bad(&e.to_string()))?;
        if guest.is_root() {
            return Err(bad(ROOT_MOUNT));
        }
        let mut size = Self::DEFAULT_SIZE;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("size", value)) => {
                    size = parse_size(value).ok_or_else(|| {
                        bad("size must be a number with an optional k, m or g suffix")
                    })?
                }
                Some(("mode", _)) => {}
                _ => return Err(bad(&format!("unknown option '{option}' (known: size=N)"))),
            }
        }
        Ok(Self { guest, size })
    }
}

impl RunSpec {
    /// A spec with `argv[0]` set and nothing else granted.
    pub fn new(argv0: impl Into<String>) -> Self {
        Self {
            args: vec![argv0.into()],
            env: Env::default(),
            mounts: Vec::new(),
            workdir: GuestPath::root(),
            entry: Entry::Start,
            unknown_imports: UnknownImports::Refuse,
            tmpfs: Vec::new(),
            layers: Vec::new(),
            layer_index_cache: None,
            layer_chain_id: None,
            upper: None,
            limits: Limits::default(),
            read_only: false,
            ports: Vec::new(),
        }
    }
}

/// Converts host arguments to the UTF-8 strings WASI passes.
///
/// # Errors
/// [`SpecError::ArgNotUtf8`] naming the first bad one (1-based, after the module).
pub fn utf8_args(args: &[std::ffi::OsString]) -> Result<Vec<String>, SpecError> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            a.to_str()
                .map(str::to_owned)
                .ok_or(SpecError::ArgNotUtf8 { index: i + 1 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_split_at_the_last_hash_before_an_export_name() {
        assert_eq!(
            split_program("/app/r.wasm#run"),
            ("/app/r.wasm", Some("run"))
        );
        assert_eq!(split_program("r.wasm#a#b"), ("r.wasm#a", Some("b")));
        assert_eq!(split_program("/app/r.wasm"), ("/app/r.wasm", None));
        for plain in ["/app/r.wasm#", "#run", "/dir#x/r.wasm"] {
            assert_eq!(split_program(plain), (plain, None), "{plain}");
        }
    }

    #[test]
    fn guest_paths_normalise_and_refuse_dotdot() {
        assert_eq!(
            GuestPath::parse("/a//b/./c/").expect("ok").as_str(),
            "/a/b/c"
        );
        assert_eq!(GuestPath::parse("/").expect("ok").as_str(), "/");
        assert!(GuestPath::parse("a/b").is_err());
        assert!(GuestPath::parse("/a/../../etc").is_err());
        let data = GuestPath::parse("/data").expect("ok");
        assert_eq!(
            GuestPath::parse("/data/x/y")
                .expect("ok")
                .strip_prefix(&data),
            Some("x/y")
        );
        assert_eq!(
            GuestPath::parse("/database")
                .expect("ok")
                .strip_prefix(&data),
            None
        );
        assert_eq!(data.strip_prefix(&GuestPath::root()), Some("data"));
    }

    #[test]
    fn env_flags_and_files() {
        let mut env = Env::default();
        env.apply_flag("A=1").expect("ok");
        env.apply_flag("B=x=y").expect("ok");
        env.apply_flag("A=2").expect("ok");
        assert_eq!(
            env.vars(),
            &[("A".into(), "2".into()), ("B".into(), "x=y".into())]
        );
        assert!(env.apply_flag("=v").is_err());
        assert!(env.apply_flag("").is_err());
        env.apply_file("f.env", "# c\n\nC=3\n  D = 4\n")
            .expect_err("space in key");
        let mut env = Env::default();
        env.apply_file("f.env", "# c\n\nC=3\nE= spaced value \n")
            .expect("ok");
        assert_eq!(env.vars()[1], ("E".into(), " spaced value ".into()));
        match env.apply_file("f.env", "OK=1\n=bad\n") {
            Err(SpecError::EnvFileLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tmpfs_syntax() {
        assert_eq!(Tmpfs::parse("/tmp").expect("ok").size, Tmpfs::DEFAULT_SIZE);
        assert_eq!(Tmpfs::parse("/cache:size=1m").expect("ok").size, 1 << 20);
        assert_eq!(
            Tmpfs::parse("/c:size=512k,mode=1777").expect("ok").size,
            512 << 10
        );
        assert!(Tmpfs::parse("tmp").is_err());
        assert!(Tmpfs::parse("/").is_err());
        assert!(Tmpfs::parse("/t:size=lots").is_err());
        assert!(Tmpfs::parse("/t:noexec").is_err());
    }

    #[test]
    fn volume_syntax() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = dir.path().display().to_string();
        let m = Mount::parse_volume(&format!("{host}:/data:ro")).expect("ok");
        assert!(m.read_only);
        assert_eq!(m.guest.as_str(), "/data");
        assert!(
            !Mount::parse_volume(&format!("{host}:/data"))
                .expect("ok")
                .read_only
        );
        assert!(matches!(
            Mount::parse_volume("/nonexistent-capsule-x:/d"),
            Err(SpecError::VolumeMissing { .. })
        ));
        assert!(matches!(
            Mount::parse_volume(&format!("{host}:data")),
            Err(SpecError::Volume { .. })
        ));
        assert!(matches!(
            Mount::parse_volume(&host),
            Err(SpecError::Volume { .. })
        ));
        let mode = Mount::parse_volume(&format!("{host}:/data:xyz")).expect_err("bad mode");
        assert!(
            mode.to_string()
                .contains("unknown mode 'xyz' (valid modes: ro, rw)"),
            "{mode}"
        );
        assert!(matches!(
            Mount::parse_volume(&format!("{host}:/a/../b")),
            Err(SpecError::Volume { .. })
        ));
    }

    #[test]
    fn volume_requests_are_parsed_without_the_host() {
        let r = MountRequest::parse_volume("/nonexistent-capsule-x:/d").expect("pure");
        assert_eq!(r.source, MountSource::Bind("/nonexistent-capsule-x".into()));
        let r = MountRequest::parse_volume("books:/data:ro").expect("named");
        assert_eq!(r.source, MountSource::Volume(Some("books".into())));
        assert!(r.read_only);
        // A host directory at `/` parses (a module run's root); an image refuses it.
        let r = MountRequest::parse_volume("./x:/").expect("a bind at the root");
        assert!(r.guest.is_root());
        let r = MountRequest::parse_volume("/cache").expect("anonymous");
        assert_eq!(r.source, MountSource::Volume(None));
        assert_eq!(r.guest.as_str(), "/cache");
        for bad in [
            "b:/x",
            "_x:/d",
            "a b:/d",
            "books:data",
            "books:/a/../b",
            "books:/",
            "/",
        ] {
            assert!(
                matches!(
                    MountRequest::parse_volume(bad),
                    Err(SpecError::Volume { .. })
                ),
                "{bad}"
            );
        }
        assert!(valid_volume_name("db.data_1-x"));
        assert!(!valid_volume_name(&"a".repeat(129)));
    }

    #[test]
    fn mount_flags_follow_docker() {
        let MountFlag::Mount(m) =
            MountRequest::parse_mount("type=bind,source=./x,target=/data,readonly").expect("ok")
        else {
            panic!("bind")
        };
        assert_eq!(m.source, MountSource::Bind("./x".into()));
        assert!(m.read_only);
        let MountFlag::Mount(m) = MountRequest::parse_mount("src=db,dst=/db,ro=false").expect("ok")
        else {
            panic!("volume")
        };
        assert_eq!(m.source, MountSource::Volume(Some("db".into())));
        assert!(!m.read_only);
        let MountFlag::Mount(m) =
            MountRequest::parse_mount("type=volume,destination=/v,volume-nocopy").expect("ok")
        else {
            panic!("anonymous")
        };
        assert_eq!(m.source, MountSource::Volume(None));
        assert!(m.no_copy);
        assert_eq!(
            MountRequest::parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").expect("ok"),
            MountFlag::Tmpfs(Tmpfs {
                guest: GuestPath::parse("/t").expect("ok"),
                size: 1 << 20
            })
        );
        for bad in [
            "type=bind,target=/x",
            "type=nfs,source=a,target=/x",
            "source=a",
            "type=volume,source=a,target=/x,color=red",
            "type=volume,source=-a,target=/x",
            "type=bind,source=/a,target=x",
            "type=volume,source=ab,target=/x,readonly=maybe",
            "type=volume,source=ab,target=/x,tmpfs-size=1m",
            "type=tmpfs,source=ab,target=/x",
            "type=volume,,target=/x",
            "type=volume,source=ab,target=/",
        ] {
            assert!(
                matches!(
                    MountRequest::parse_mount(bad),
                    Err(SpecError::MountFlag { .. })
                ),
                "{bad}"
            );
        }
    }
}
