//! Containers without a daemon. `$CAPSULE_HOME/containers/ID/` holds `config.json`
//! (what the container runs: the image, the resolved run spec, the restart policy),
//! `state.json` (where it is in its life, see [`state`]), its log ([`logs`]) and its
//! writable layer (`upper/`, `work/`) above the image's layers.
//!
//! The process that runs a container — a foreground `capsule run`, or the detached
//! container's own supervisor ([`supervisor`]) — holds `running.lock` for as long as it
//! lives, and is the only writer of `state.json` while it does: a container whose state
//! says `running` but whose lock is free lost its process, and reads as `dead`. The
//! lock is also held by [`Container::create`] until the spec is recorded, and by `rm`
//! and the prunes until the directory is gone (see [`lifecycle::remove`]).
//! Every guest runs through the one [`runner`].

pub mod command;
pub mod control;
pub mod files;
pub mod health;
pub mod lifecycle;
pub mod live;
pub mod logs;
pub mod networks;
pub mod owner;
pub mod prepare;
pub mod process;
pub mod remote;
pub mod runner;
pub mod state;
pub mod supervisor;
pub mod volumes;
pub mod warm;

pub use prepare::{Overrides, PrepareError, Prepared, check_rm_restart, prepare};
pub use runner::{Compiled, Program, Runner};
pub use state::{State, StateError, Status};

use crate::engine::FeatureSet;
use crate::home::Home;
use crate::spec::{GuestPath, RunSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

/// What a container was created from and runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerConfig {
    /// 64 hex digits.
    pub id: String,
    /// Unique among the home's containers (`--name`, or generated).
    #[serde(default)]
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's ID (its config digest).
    pub image_id: String,
    /// argv: the program inside the image and its arguments.
    pub command: Vec<String>,
    /// RFC 3339.
    pub created: String,
    /// Removed when its run ends (`run --rm`); one left behind by a killed run is
    /// removed by the next command that looks at containers.
    #[serde(default)]
    pub rm: bool,
    /// Everything a run is given (its writable layer is this container's directory).
    #[serde(default)]
    pub spec: Option<RunSpec>,
    /// Where the program is in the container's filesystem.
    #[serde(default)]
    pub program: Option<GuestPath>,
    /// The wasm features its engine enables (the image's labels and `-W`).
    #[serde(default)]
    pub features: FeatureSet,
    /// The image's ID when its layers alone are the root (no mounts), so that the
    /// program at a path is always the same module and the cache finds it by name.
    #[serde(default)]
    pub cache_image: Option<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Seconds `stop` waits before interrupting the guest (`--stop-timeout`; 10).
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// `--label`s (compose labels its containers with project and service).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `-i`: the guest reads the host's stdin (foreground runs only).
    #[serde(default)]
    pub interactive: bool,
    /// The volumes it mounts, named and anonymous (see [`volumes`]).
    #[serde(default)]
    pub volumes: Vec<crate::volume::VolumeUse>,
    /// Its health check (the image's, as flags changed it).
    #[serde(default)]
    pub healthcheck: Option<health::Healthcheck>,
}

/// Docker's `--restart` policies, carried out by a detached container's supervisor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name", content = "max_retries")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most N times when given.
    OnFailure(Option<u32>),
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Parses `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    ///
    /// # Errors
    /// A message naming the policies.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid restart policy '{text}': expected no, on-failure[:MAX_RETRIES], always or unless-stopped"
            )
        };
        Ok(match text {
            "no" => Self::No,
            "always" => Self::Always,
            "unless-stopped" => Self::UnlessStopped,
            "on-failure" => Self::OnFailure(None),
            other => match other.strip_prefix("on-failure:") {
                Some(n) => Self::OnFailure(Some(n.parse().map_err(|_| bad())?)),
                None => return Err(bad()),
            },
        })
    }

    /// Whether a run that ended with `exit_code` is followed by another, after
    /// `restarts` restarts; never after `stop` or `kill`.
    pub fn restarts(self, exit_code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Self::No => false,
            Self::OnFailure(max) => exit_code != 0 && max.is_none_or(|max| restarts < max),
            Self::Always | Self::UnlessStopped => true,
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::No => f.write_str("no"),
            Self::OnFailure(None) => f.write_str("on-failure"),
            Self::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
            Self::Always => f.write_str("always"),
            Self::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// Errors finding, creating or changing containers.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no such container: {0} (capsule ps -a lists them)")]
    NotFound(String),
    #[error("container reference {0} is ambiguous: give more of the ID, or the name")]
    Ambiguous(String),
    #[error(
        "the container name {name} is already in use by container {id}: remove it (capsule rm {name}) or choose another --name"
    )]
    NameTaken { name: String, id: String },
    #[error("invalid container name '{}': {}", shorten(.0), name_problem(.0))]
    InvalidName(String),
    #[error("container {0} already has the name {0}: give rename a new name")]
    SameName(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("container {name} was removed {when}")]
    Removed { name: String, when: &'static str },
    #[error("container {id} was created by another version of Capsule and cannot be run")]
    Unrunnable { id: String },
    #[error("container {name} could not start: {reason}")]
    Start { name: String, reason: String },
    /// The process that runs the container refused a request (its words).
    #[error("{0}")]
    Owner(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// The longest container name, as Docker's.
pub const MAX_NAME_LEN: usize = 128;

/// What is wrong with a name [`valid_name`] refuses.
fn name_problem(name: &str) -> String {
    if name.len() > MAX_NAME_LEN {
        format!(
            "it is {} characters long, and a name has at most {MAX_NAME_LEN}",
            name.chars().count()
        )
    } else {
        "use letters, digits, '_', '.' and '-', starting with a letter or digit".to_owned()
    }
}

/// A name cut short for a message.
fn shorten(name: &str) -> String {
    if name.chars().count() > 40 {
        format!("{}…", name.chars().take(40).collect::<String>())
    } else {
        name.to_owned()
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

/// A container's directory.
#[derive(Debug)]
pub struct Container {
    pub config: ContainerConfig,
    pub dir: PathBuf,
    /// [`RUN_LOCK`], when this process runs the container.
    running: Option<std::fs::File>,
}

/// The file the process that runs a container holds locked.
const RUN_LOCK: &str = "running.lock";
/// Locked while a name is checked and taken, so two `--name x` cannot both win.
const NAMES_LOCK: &str = "containers.lock";

/// Writes `bytes` as the file `name` of the container directory `dir` with the store's
/// [`crate::store::AtomicFile`], renamed into place so a reader never sees half of it;
/// not synced: a container is not worth an fsync on every change (it costs as much as
/// the run's whole filesystem set-up), and one lost in a crash is an empty directory
/// or an older state.
pub(crate) fn write_unsynced(dir: &std::path::Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let dir = crate::ambient::open_dir(dir)?;
    let mut file = crate::store::AtomicFile::create(&dir, name)?;
    file.write_all(bytes)?;
    file.commit(name)
}

/// Takes the names lock, held until dropped. It lives beside the containers'
/// directory, which holds containers only.
fn lock_names(home: &Home) -> Result<std::fs::File, ContainerError> {
    lock_names_at(home.root())
}

/// [`lock_names`] of the home at `root`.
fn lock_names_at(root: &std::path::Path) -> Result<std::fs::File, ContainerError> {
    let dir = crate::ambient::create_and_open_dir(root)
        .map_err(io_error(format!("cannot create {}", root.display())))?;
    crate::store::lock_exclusive(&dir, NAMES_LOCK)
        .map_err(io_error("cannot lock the container names"))
}

fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= MAX_NAME_LEN
}

/// A generated name, `adjective_noun`, as Docker makes them.
fn generated_name(taken: &dyn Fn(&str) -> bool) -> io::Result<String> {
    const ADJECTIVES: &[&str] = &[
        "agile", "bold", "brave", "calm", "clever", "crisp", "eager", "fancy", "gentle", "happy",
        "jolly", "keen", "lucid", "mellow", "nimble", "patient", "quiet", "rapid", "serene",
        "sharp", "steady", "swift", "tidy", "vivid", "wise", "zesty",
    ];
    const NOUNS: &[&str] = &[
        "albatross",
        "badger",
        "beaver",
        "cheetah",
        "dolphin",
        "falcon",
        "gecko",
        "heron",
        "ibis",
        "jaguar",
        "koala",
        "lemur",
        "lynx",
        "marmot",
        "narwhal",
        "otter",
        "panda",
        "puffin",
        "quokka",
        "raven",
        "salmon",
        "tapir",
        "walrus",
        "wombat",
        "yak",
        "zebra",
    ];
    for attempt in 0..64u32 {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        let adj = ADJECTIVES[usize::from(bytes[0]) % ADJECTIVES.len()];
        let noun = NOUNS[usize::from(bytes[1]) % NOUNS.len()];
        let name = if attempt < 8 {
            format!("{adj}_{noun}")
        } else {
            format!("{adj}_{noun}_{}", u16::from_le_bytes([bytes[2], bytes[3]]))
        };
        if !taken(&name) {
            return Ok(name);
        }
    }
    Err(io::Error::other("cannot find a free container name"))
}

/// What a new container is made of.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// `--name`; generated when `None`.
    pub name: Option<String>,
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub rm: bool,
    pub features: FeatureSet,
    pub restart: RestartPolicy,
    pub stop_timeout: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub interactive: bool,
    pub healthcheck: Option<health::Healthcheck>,
}

impl Container {
    /// Creates a container's directory and records its config and its `created`
    /// state (each written to a temporary file and renamed, so a reader never sees
    /// half of one). The spec is added by [`Container::set_spec`] once the directory
    /// (its writable layer) exists.
    ///
    /// # Errors
    /// [`ContainerError::NameTaken`] or [`ContainerError::InvalidName`] for the name;
    /// the host's error.
    pub fn create(home: &Home, new: NewContainer) -> Result<Self, ContainerError> {
        let root = home.containers_dir();
        let names = lock_names(home)?;
        let existing = Self::list(home);
        let taken = |name: &str| existing.iter().find(|c| c.config.name == name);
        let name = match new.name {
            Some(name) => {
                if !valid_name(&name) {
                    return Err(ContainerError::InvalidName(name));
                }
                if let Some(other) = taken(&name) {
                    return Err(ContainerError::NameTaken {
                        name,
                        id: short_id(&other.config.id).to_owned(),
                    });
                }
                name
            }
            None => generated_name(&|n| taken(n).is_some())
                .map_err(io_error("cannot name the container"))?,
        };
        let id = random_id().map_err(io_error("cannot make a container ID"))?;
        let dir = root.join(&id);
        let handle = crate::ambient::create_and_open_dir(&dir)
            .map_err(io_error("cannot create the container's directory"))?;
        let running = crate::store::open_lock_file(&handle, RUN_LOCK)
            .map_err(io_error("cannot create the container's lock"))?;
        // Held until the spec is recorded ([`Container::set_spec`]): a container being
        // created is neither started (its supervisor finds the lock taken) nor removed
        // or pruned under its creator (they wait for the lock), and `start` can tell it
        // from a record without a spec left by another version.
        running
            .lock()
            .map_err(io_error("cannot lock the container's lock"))?;
        let config = ContainerConfig {
            id,
            name,
            image: new.image,
            image_id: new.image_id,
            command: new.command,
            created: crate::image::oci::rfc3339(crate::time::now()),
            rm: new.rm,
            spec: None,
            program: None,
            features: new.features,
            cache_image: None,
            restart: new.restart,
            stop_timeout: new.stop_timeout,
            labels: new.labels,
            interactive: new.interactive,
            volumes: Vec::new(),
            healthcheck: new.healthcheck,
        };
        let container = Self {
            config,
            dir,
            running: Some(running),
        };
        container.write_state(&State::created())?;
        container.save_config()?;
        drop(names);
        Ok(container)
    }

    /// Records the resolved run spec and program (see [`prepare`]), which ends the
    /// container's creation: the run lock [`Container::create`] took is let go.
    ///
    /// # Errors
    /// [`ContainerError::Removed`] when it was removed meanwhile (`rm -f` during `run
    /// -d`'s start-up); the host's error.
    pub fn set_spec(
        &mut self,
        spec: RunSpec,
        program: GuestPath,
        cache_image: Option<String>,
    ) -> Result<(), ContainerError> {
        const WHEN: &str = "(capsule rm) while it was being created";
        self.config.spec = Some(spec);
        self.config.program = Some(program);
        self.config.cache_image = cache_image;
        {
            let _names = self.lock_home_names()?;
            // A rename since `create` is kept: the name is the one field of the record
            // another process changes, and it does so under the names lock.
            self.config.name = self.read_config(WHEN)?.name;
            self.write_json("config.json", &self.config)
                .map_err(|e| self.removed_or(e, WHEN))?;
        }
        self.unlock_running();
        Ok(())
    }

    /// The names lock of this container's home (its directory is
    /// `HOME/containers/ID`).
    fn lock_home_names(&self) -> Result<std::fs::File, ContainerError> {
        let root = self
            .dir
            .parent()
            .and_then(std::path::Path::parent)
            .ok_or_else(|| ContainerError::Io {
                what: "cannot lock the container names".to_owned(),
                source: io::Error::other(format!("{} is not in a home", self.dir.display())),
            })?;
        lock_names_at(root)
    }

    /// `config.json` as it is on disk now; [`ContainerError::Removed`] (saying
    /// `when`) once the container is gone.
    fn read_config(&self, when: &'static str) -> Result<ContainerConfig, ContainerError> {
        let text = match crate::ambient::read_text(&self.dir.join("config.json")) {
            Ok(text) => text,
            Err(e) => return Err(self.removed_or(io_error("cannot read config.json")(e), when)),
        };
        serde_json::from_str(&text).map_err(|e| ContainerError::Io {
            what: format!("config.json of container {} is damaged", self.config.name),
            source: io::Error::other(e),
        })
    }

    /// `error`, or [`ContainerError::Removed`] (saying `when`) when the container's
    /// directory is gone: another process removed it, which is why this one failed.
    fn removed_or(&self, error: ContainerError, when: &'static str) -> ContainerError {
        if self.is_removed() {
            ContainerError::Removed {
                name: self.config.name.clone(),
                when,
            }
        } else {
            error
        }
    }

    /// Whether the container's directory is gone (removed, by this process or another).
    pub fn is_removed(&self) -> bool {
        !crate::ambient::is_dir(&self.dir)
    }

    /// Writes `config.json`.
    ///
    /// # Errors
    /// The host's error.
    pub fn save_config(&self) -> Result<(), ContainerError> {
        self.write_json("config.json", &self.config)
    }

    /// Writes `state.json` (only the process that runs the container does, while it
    /// holds the run lock; or anyone while no process does).
    ///
    /// # Errors
    /// The host's error.
    pub fn write_state(&self, state: &State) -> Result<(), ContainerError> {
        self.write_json("state.json", state)
    }

    fn write_json(&self, name: &str, value: &impl Serialize) -> Result<(), ContainerError> {
        let what = || format!("cannot write {name} of container {}", self.config.name);
        let json =
            serde_json::to_vec_pretty(value).map_err(|e| io_error(what())(io::Error::other(e)))?;
        write_unsynced(&self.dir, name, &json).map_err(io_error(what()))
    }

    /// The recorded state, as it really is: `running` with no live process reads as
    /// `dead`, naming what happened.
    pub fn state(&self) -> State {
        let mut state = self.recorded_state().unwrap_or_else(State::created);
        if state.is_active() && self.running.is_none() && self.lock_is_free() {
            state.status = Status::Dead;
            state.error = Some(format!(
                "the process that ran it{} ended without recording how the guest ended",
                state.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ));
        }
        state
    }

    /// `state.json` as written, `None` when it cannot be read (the container is gone).
    pub fn recorded_state(&self) -> Option<State> {
        crate::ambient::read_file(&self.dir.join("state.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<State>(&bytes).ok())
    }

    /// Takes the run lock for this process; `false` when another process holds it.
    ///
    /// # Errors
    /// The host's error.
    pub fn lock_running(&mut self) -> Result<bool, ContainerError> {
        if self.running.is_some() {
            return Ok(true);
        }
        let file = crate::ambient::open_lock_file(&self.dir.join(RUN_LOCK))
            .map_err(io_error("cannot open the container's lock"))?;
        match file.try_lock() {
            Ok(()) => {
                self.running = Some(file);
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error("cannot lock the container")(e)),
        }
    }

    /// Lets go of the run lock.
    pub fn unlock_running(&mut self) {
        self.running = None;
    }

    /// Whether no process holds the run lock (false when unsure).
    pub fn lock_is_free(&self) -> bool {
        self.open_run_lock()
            .is_ok_and(|file| run_lock_is_free(&file))
    }

    /// The run lock's file, opened for [`run_lock_is_free`]: kept open, it still tells
    /// when the process that runs the container ends after `rm -f` removed the
    /// directory it was in.
    ///
    /// # Errors
    /// The host's error (`NotFound` once the container is removed).
    pub fn open_run_lock(&self) -> io::Result<std::fs::File> {
        crate::ambient::open_file(&self.dir.join(RUN_LOCK))
    }

    /// The container's display name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Removes the container and its writable layer.
    ///
    /// # Errors
    /// The host's error.
    pub fn remove(mut self) -> io::Result<()> {
        // Unlocked only once the directory is out of the list (or gone), as the
        // file closes: nothing can start it meanwhile.
        remove_dir_unlocking(&self.dir, self.running.take())
    }

    /// Renames the container.
    ///
    /// # Errors
    /// [`ContainerError::NameTaken`], [`ContainerError::InvalidName`], the host's
    /// error.
    ///
    /// The record is read again under the names lock and only its name changed: what
    /// another process recorded since this one read it (the spec `run -d` records
    /// once the container is prepared, another rename) is kept.
    pub fn rename(&mut self, home: &Home, name: &str) -> Result<(), ContainerError> {
        const WHEN: &str = "(capsule rm) while it was being renamed";
        if !valid_name(name) {
            return Err(ContainerError::InvalidName(name.to_owned()));
        }
        let _names = lock_names(home)?;
        let mut config = self.read_config(WHEN)?;
        if name == config.name {
            return Err(ContainerError::SameName(name.to_owned()));
        }
        if let Some(other) = Self::list(home)
            .into_iter()
            .find(|c| c.config.name == name && c.config.id != self.config.id)
        {
            return Err(ContainerError::NameTaken {
                name: name.to_owned(),
                id: short_id(&other.config.id).to_owned(),
            });
        }
        config.name = name.to_owned();
        self.write_json("config.json", &config)
            .map_err(|e| self.removed_or(e, WHEN))?;
        self.config = config;
        Ok(())
    }

    /// Finds a container by name, full ID or unique ID prefix.
    ///
    /// # Errors
    /// [`ContainerError::NotFound`], [`ContainerError::Ambiguous`].
    pub fn find(home: &Home, reference: &str) -> Result<Self, ContainerError> {
        let all = Self::list(home);
        if let Some(i) = all
            .iter()
            .position(|c| c.config.id == reference || c.config.name == reference)
        {
            return all
                .into_iter()
                .nth(i)
                .ok_or_else(|| ContainerError::NotFound(reference.to_owned()));
        }
        let valid_prefix =
            !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_hexdigit());
        let mut matches: Vec<Self> = all
            .into_iter()
            .filter(|c| valid_prefix && c.config.id.starts_with(reference))
            .collect();
        match matches.len() {
            0 => Err(ContainerError::NotFound(reference.to_owned())),
            1 => Ok(matches.remove(0)),
            _ => Err(ContainerError::Ambiguous(reference.to_owned())),
        }
    }

    /// The configs of a home's containers, read and nothing else (no clean-up, no
    /// locks): for a guest's name lookups, which must not change the store.
    pub fn configs(home: &Home) -> Vec<ContainerConfig> {
        records(&home.containers_dir())
            .into_iter()
            .filter_map(|(_, record)| record.ok())
            .map(|mut config| {
                if config.name.is_empty() {
                    config.name = short_id(&config.id).to_owned();
                }
                config
            })
            .collect()
    }

    /// The containers of a home, oldest first, after removing the `--rm` containers
    /// whose run was killed before it could remove them (their lock is free).
    pub fn list(home: &Home) -> Vec<Self> {
        let root = home.containers_dir();
        if cfg!(windows) {
            sweep_removing(&root);
        }
        let mut out = Vec::new();
        for (name, record) in records(&root) {
            let Ok(mut config) = record else {
                continue;
            };
            if config.name.is_empty() {
                config.name = short_id(&config.id).to_owned();
            }
            let mut container = Self {
                config,
                dir: root.join(&name),
                running: None,
            };
            // Removed holding its run lock: no process runs it, and none starts it
            // while it goes.
            if container.config.rm
                && container.lock_is_free()
                && container.state().status != Status::Created
                && container.lock_running().unwrap_or(false)
            {
                match remove_dir_unlocking(&container.dir, container.running.take()) {
                    Ok(()) => {
                        tracing::info!(container = %name, "removed a --rm container left by a killed run");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(container = %name, error = %e, "cannot remove a --rm container left by a killed run");
                    }
                }
                container.unlock_running();
            }
            out.push(container);
        }
        out.sort_by(|a, b| {
            (a.config.created.as_str(), a.config.id.as_str())
                .cmp(&(b.config.created.as_str(), b.config.id.as_str()))
        });
        out
    }
}

/// Each container directory under `root` (those being removed skipped) and its record
/// read: the config, or what is wrong with it. The one reading of the records that
/// [`Container::list`] and [`Damaged::list`] share.
fn records(root: &std::path::Path) -> Vec<(String, Result<ContainerConfig, String>)> {
    let Ok(dir) = crate::ambient::open_dir(root) else {
        return Vec::new();
    };
    let Ok(entries) = dir.entries() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let record = match dir.read_to_string(format!("{name}/config.json")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err("config.json is missing".to_owned())
            }
            Err(e) => Err(format!("config.json cannot be read: {e}")),
            Ok(text) => serde_json::from_str::<ContainerConfig>(&text)
                .map_err(|e| format!("config.json is damaged: {e}")),
        };
        out.push((name, record));
    }
    out
}

/// The prefix of a container directory being removed: [`Container::list`] skips it.
const REMOVING: &str = ".removing-";

/// Removes a container's directory: first renamed out of the list (so no reader sees
/// it half removed, without its `config.json`), then deleted. A directory left by an
/// interrupted removal is deleted by the next prune ([`prune_stopped`]).
fn remove_dir(dir: &std::path::Path) -> io::Result<()> {
    remove_dir_unlocking(dir, None)
}

/// [`remove_dir`] of a container whose run lock (`lock`, a file inside it) this
/// process holds: let go once the directory is out of the list, before it is deleted
/// (Windows deletes an open file only when it closes, so the directory would not be
/// empty), or, when it cannot be renamed, after it is deleted — but on Windows, where
/// it must close first.
fn remove_dir_unlocking(dir: &std::path::Path, lock: Option<std::fs::File>) -> io::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        drop(lock);
        return crate::ambient::remove_dir_all(dir);
    };
    let parent_dir = crate::ambient::open_dir(parent)?;
    let removing = format!("{REMOVING}{}", name.to_string_lossy());
    match parent_dir.rename(name, &parent_dir, &removing) {
        Ok(()) => {
            drop(lock);
            remove_dir_all_settled(&parent.join(removing))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) if cfg!(windows) => {
            drop(lock);
            remove_dir_all_settled(dir)
        }
        Err(_) => {
            let result = remove_dir_all_settled(dir);
            drop(lock);
            result
        }
    }
}

/// Deletes what removals left in `root` (`.removing-*`): one interrupted, or, on
/// Windows, one whose directory a process still held a file of (the supervisor of a
/// `--rm` container removing itself holds its own log until it exits), which
/// [`Container::list`] deletes there once that process has gone.
fn sweep_removing(root: &std::path::Path) {
    if let Ok(dir) = crate::ambient::open_dir(root)
        && let Ok(entries) = dir.entries()
    {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(REMOVING) {
                let _ = crate::ambient::remove_dir_all(&root.join(name));
            }
        }
    }
}

/// How long [`remove_dir_all_settled`] tries.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Deletes a directory that a late writer may still add to: a process that reached the
/// container's directory before it was renamed out of the list (a supervisor's log
/// opened by path as `start` spawns it, a record written through a handle opened
/// before, a `cp` into it) can create an entry after `remove_dir_all` listed the
/// directory, which then fails with "directory not empty". Such a writer finds the
/// directory gone on its next step, so trying again (for [`SETTLE`]) deletes it.
fn remove_dir_all_settled(path: &std::path::Path) -> io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match crate::ambient::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && start.elapsed() < SETTLE => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A directory among the containers whose record cannot be read: its `config.json`
/// is missing or damaged. It is no container [`Container::list`] gives; `system
/// check` reports it, `ps -a` shows it as dead, `rm` and the prunes remove it.
#[derive(Debug)]
pub struct Damaged {
    /// The directory's name (a container ID, unless someone put something else there).
    pub id: String,
    pub dir: PathBuf,
    /// What is wrong with its `config.json`.
    pub reason: String,
}

impl Damaged {
    /// The damaged records of a home. Taken under the names lock, so a container
    /// still being created (its record not written yet) is not one.
    pub fn list(home: &Home) -> Vec<Self> {
        let root = home.containers_dir();
        let Ok(_names) = lock_names(home) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, record) in records(&root) {
            let Err(reason) = record else {
                continue;
            };
            out.push(Self {
                dir: root.join(&name),
                id: name,
                reason,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The damaged record named by its full ID or a unique prefix of it.
    pub fn find(home: &Home, reference: &str) -> Option<Self> {
        if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut matches: Vec<Self> = Self::list(home)
            .into_iter()
            .filter(|d| d.id.starts_with(reference))
            .collect();
        (matches.len() == 1).then(|| matches.remove(0))
    }

    /// Whether a process still holds its run lock (its supervisor runs on).
    pub fn is_running(&self) -> bool {
        crate::ambient::open_file(&self.dir.join(RUN_LOCK)).is_ok_and(|f| !run_lock_is_free(&f))
    }

    /// Removes it; one whose process still runs only with `force`, which kills that
    /// process first (the `pid` of its `state.json`).
    ///
    /// # Errors
    /// [`StateError::RemoveRunning`] without `force`; the host's error.
    pub fn remove(self, force: bool) -> Result<(), ContainerError> {
        if self.is_running() {
            let short = short_id(&self.id).to_owned();
            if !force {
                return Err(StateError::RemoveRunning(short).into());
            }
            let pid = crate::ambient::read_file(&self.dir.join("state.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<State>(&bytes).ok())
                .and_then(|state| state.pid);
            if let Some(pid) = pid {
                process::kill(pid);
            }
            let start = std::time::Instant::now();
            while self.is_running() {
                if start.elapsed() > std::time::Duration::from_secs(5) {
                    return Err(ContainerError::Io {
                        what: format!("cannot remove the damaged container {short}"),
                        source: io::Error::other("its process does not end"),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        remove_dir(&self.dir).map_err(io_error(format!(
            "cannot remove the damaged container {}",
            short_id(&self.id)
        )))
    }
}

/// Whether no process holds the run lock opened as `file` (false when unsure).
pub fn run_lock_is_free(file: &std::fs::File) -> bool {
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            true
        }
        Err(_) => false,
    }
}

/// Removes every container that no process runs (`container prune`, `system
/// prune`), damaged records ([`Damaged`]) and what interrupted removals left included;
/// returns the IDs removed.
pub fn prune_stopped(home: &Home) -> Vec<String> {
    let mut removed = Vec::new();
    sweep_removing(&home.containers_dir());
    for damaged in Damaged::list(home) {
        let id = damaged.id.clone();
        if !damaged.is_running() && damaged.remove(false).is_ok() {
            removed.push(id);
        }
    }
    for mut container in Container::list(home) {
        let state = container.state();
        // Removed holding its run lock, as `rm` removes: a `start` meanwhile finds it
        // taken, and a container still being created holds it.
        if state.is_active() || !container.lock_running().unwrap_or(false) {
            continue;
        }
        let id = container.config.id.clone();
        if container.remove().is_ok() {
            removed.push(id);
        }
    }
    removed
}

/// The first 12 hex digits of an ID, as Docker shows them.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Which images containers use: the one rule every command that removes images
/// (`rmi`, `image prune`) applies. An image is in use while any container, running
/// or stopped, was created from it.
#[derive(Debug, Default)]
pub struct ImagesInUse {
    /// Image ID → the IDs of the containers created from it.
    users: std::collections::HashMap<String, Vec<String>>,
}

impl ImagesInUse {
    /// The containers of a home (see [`Container::list`]) by image.
    pub fn of(home: &Home) -> Self {
        let mut users: std::collections::HashMap<String, Vec<String>> = Default::default();
        for container in Container::list(home) {
            users
                .entry(container.config.image_id)
                .or_default()
                .push(container.config.id);
        }
        Self { users }
    }

    /// The containers using the image with this ID (its config digest).
    pub fn users(&self, image_id: &str) -> &[String] {
        self.users.get(image_id).map_or(&[], Vec::as_slice)
    }

    /// Whether any container uses the image with this ID.
    pub fn contains(&self, image_id: &str) -> bool {
        !self.users(image_id).is_empty()
    }

    /// How many containers there are.
    pub fn containers(&self) -> usize {
        self.users.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_and_decide() {
        assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
        assert_eq!(
            RestartPolicy::parse("on-failure:3"),
            Ok(RestartPolicy::OnFailure(Some(3)))
        );
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        let p = RestartPolicy::OnFailure(Some(2));
        assert!(p.restarts(1, 0, false));
        assert!(p.restarts(1, 1, false));
        assert!(!p.restarts(1, 2, false));
        assert!(!p.restarts(0, 0, false));
        assert!(RestartPolicy::Always.restarts(0, 100, false));
        assert!(!RestartPolicy::Always.restarts(0, 0, true));
        assert!(!RestartPolicy::No.restarts(1, 0, false));
        let json = serde_json::to_string(&p).expect("test");
        assert_eq!(
            serde_json::from_str::<RestartPolicy>(&json).expect("test"),
            p
        );
    }

    #[test]
    fn names_follow_docker() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
    }
}
