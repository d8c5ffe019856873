//! What a guest is given: arguments, environment, mounts and working directory, and the
//! Docker syntax that describes them (`-e K=V`, `--env-file`, `-v HOST:GUEST[:ro]`).
//!
//! Everything here is parsed from user input and checked before a module is touched.

pub mod grammar;
pub mod mounts;

pub use grammar::{format_duration, parse_duration, parse_size};
pub use mounts::{
    ROOT_MOUNT, check_mount_points, split_program, utf8_args, valid_volume_name, volume_name_rule,
};

use std::fmt;
use std::path::PathBuf;

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
    /// `--network NAME`: the container's addresses on its networks (listeners are bound
    /// there; peers on the same network are reachable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::net::network::Attachment>,
    /// The home whose containers the names on `networks` are looked up among.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<PathBuf>,
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
    /// `--allow-outbound RULE`: where the guest may connect (`SCHEME://HOST:PORT`,
    /// [`crate::net::allow`]); empty: nowhere. Checked rules only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<String>,
    /// `--network host`: every outbound connection and name lookup allowed (the
    /// documented escape hatch); `none`, the default, is `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network_host: bool,
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
            networks: Vec::new(),
            home: None,
        }
    }
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
