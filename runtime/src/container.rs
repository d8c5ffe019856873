//! Containers on disk: `$CAPSULE_HOME/containers/ID/` holds `config.json` (what the
//! container runs) and the writable layer (`upper/`, `work/`) above its image's layers.
//!
//! Lifecycle commands (`ps`, `start`, `rm`, logs) build on this; for now a container is
//! created by `capsule run IMAGE` and removed after it with `--rm`.

use crate::home::Home;
use crate::spec::{GuestPath, RunSpec};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

/// What a container was created from and runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerConfig {
    /// 64 hex digits.
    pub id: String,
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
}

/// A container's directory.
#[derive(Debug)]
pub struct Container {
    pub config: ContainerConfig,
    pub dir: PathBuf,
    /// [`RUN_LOCK`] in the directory, locked while the process that runs the container
    /// lives: a container whose lock is free has no process.
    _running: Option<std::fs::File>,
}

/// The file a running container's process holds locked.
const RUN_LOCK: &str = "running.lock";

fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Container {
    /// Creates a container's directory and records its config (written to a temporary
    /// file and renamed, so a reader never sees half of it).
    ///
    /// # Errors
    /// The host's error.
    pub fn create(
        home: &Home,
        image: &str,
        image_id: &str,
        command: Vec<String>,
        rm: bool,
    ) -> io::Result<Self> {
        let id = random_id()?;
        let dir = home.containers_dir().join(&id);
        let handle = crate::ambient::create_and_open_dir(&dir)?;
        let mut options = cap_std::fs::OpenOptions::new();
        options.read(true).write(true).create(true);
        let running = handle.open_with(RUN_LOCK, &options)?.into_std();
        running.lock()?;
        let config = ContainerConfig {
            id,
            image: image.to_owned(),
            image_id: image_id.to_owned(),
            command,
            created: crate::image::oci::rfc3339(now()),
            rm,
        };
        let json = serde_json::to_vec_pretty(&config).map_err(io::Error::other)?;
        // Renamed into place so a reader never sees half of it; not synced: a
        // container is not worth an fsync on every run (it costs as much as the run's
        // whole filesystem set-up), and one lost in a crash is an empty directory.
        handle.write(".config.json.tmp", &json)?;
        handle.rename(".config.json.tmp", &handle, "config.json")?;
        Ok(Self {
            config,
            dir,
            _running: Some(running),
        })
    }

    /// Removes the container and its writable layer.
    ///
    /// # Errors
    /// The host's error.
    pub fn remove(mut self) -> io::Result<()> {
        // Unlocked only once the directory is gone (or not), as the file closes.
        let running = self._running.take();
        let result = crate::ambient::remove_dir_all(&self.dir);
        drop(running);
        result
    }

    /// The containers of a home, after removing the `--rm` containers whose run was
    /// killed before it could remove them (their lock is free).
    pub fn list(home: &Home) -> Vec<ContainerConfig> {
        let Ok(dir) = crate::ambient::open_dir(&home.containers_dir()) else {
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
            let Ok(text) = dir.read_to_string(format!("{name}/config.json")) else {
                continue;
            };
            let Ok(config) = serde_json::from_str::<ContainerConfig>(&text) else {
                continue;
            };
            if config.rm && Self::lock_is_free(&dir, &name) {
                match crate::ambient::remove_dir_all(&home.containers_dir().join(&name)) {
                    Ok(()) => {
                        tracing::info!(container = %name, "removed a --rm container left by a killed run");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(container = %name, error = %e, "cannot remove a --rm container left by a killed run");
                    }
                }
            }
            out.push(config);
        }
        out
    }

    /// Whether no process holds a container's run lock (false when unsure).
    fn lock_is_free(dir: &cap_std::fs::Dir, name: &str) -> bool {
        let Ok(file) = dir.open(format!("{name}/{RUN_LOCK}")) else {
            return false;
        };
        let file = file.into_std();
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                true
            }
            Err(_) => false,
        }
    }
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
        for config in Container::list(home) {
            users.entry(config.image_id).or_default().push(config.id);
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

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Docker's overrides on top of an image's config (`capsule run` flags, SDK options).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--entrypoint`: replaces the image's ENTRYPOINT and drops its CMD (`Some("")`
    /// clears it).
    pub entrypoint: Option<String>,
    /// Arguments after the image: replace CMD.
    pub args: Vec<String>,
    /// Applied over the image's ENV, in order.
    pub env: Vec<(String, String)>,
    /// `-w`: replaces WORKDIR.
    pub workdir: Option<GuestPath>,
    pub mounts: Vec<crate::spec::Mount>,
    pub tmpfs: Vec<crate::spec::Tmpfs>,
    /// `--rm`: the container is removed when its run ends.
    pub rm: bool,
}

/// Why a container could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(
        "image {image} is built for {platform}; Capsule runs WebAssembly images (wasip1/wasm), such as those from capsule build or docker build --platform wasi/wasm"
    )]
    Platform { image: String, platform: String },
    #[error(
        "image {0} has no ENTRYPOINT or CMD: name the module to run (capsule run {0} /path/in/image/app.wasm, or --entrypoint)"
    )]
    NoCommand(String),
    #[error("image {image}: {source}")]
    Path {
        image: String,
        #[source]
        source: crate::spec::SpecError,
    },
    #[error("image {image}: {source}")]
    Label {
        image: String,
        #[source]
        source: crate::labels::LabelError,
    },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("cannot create the container")]
    Create(#[source] io::Error),
}

/// A container ready to run: its record, the run spec over the image's layers and its
/// writable layer, and where the program is inside the image (a `PATH#EXPORT` program
/// is split: `program` is the path, and the spec's entry names the export).
#[derive(Debug)]
pub struct Prepared {
    pub container: Container,
    pub spec: RunSpec,
    pub program: GuestPath,
    /// What the image's labels say about running it (the spec already has their
    /// unknown-imports policy; the wasm features are the caller's, for its engine).
    pub labels: crate::labels::RunLabels,
}

/// Creates a container for `image` (named `name` by the user) with Docker's rules:
/// ENTRYPOINT + CMD, arguments replace CMD, `--entrypoint` replaces both; ENV then the
/// overrides; WORKDIR unless overridden.
///
/// # Errors
/// [`PrepareError`] for an image of another platform, without a command, or whose
/// layers cannot be made ready.
pub fn prepare(
    home: &Home,
    images: &crate::image::Images,
    image: &crate::image::Image,
    name: &str,
    overrides: Overrides,
) -> Result<Prepared, PrepareError> {
    let arch = image.config.architecture().to_string();
    let os = image.config.os().to_string();
    if arch != "wasm" && !os.starts_with("wasi") {
        return Err(PrepareError::Platform {
            image: name.to_owned(),
            platform: format!("{os}/{arch}"),
        });
    }
    let config = image.config.config().clone().unwrap_or_default();
    let labels = crate::labels::RunLabels::from_labels(
        config
            .labels()
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .map_err(|source| PrepareError::Label {
        image: name.to_owned(),
        source,
    })?;
    let mut argv: Vec<String> = match &overrides.entrypoint {
        Some(entrypoint) if entrypoint.is_empty() => Vec::new(),
        Some(entrypoint) => vec![entrypoint.clone()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    if !overrides.args.is_empty() {
        argv.extend(overrides.args);
    } else if overrides.entrypoint.is_none() {
        argv.extend(config.cmd().clone().unwrap_or_default());
    }
    let Some(program) = argv.first().cloned() else {
        return Err(PrepareError::NoCommand(name.to_owned()));
    };
    let path_err = |source| PrepareError::Path {
        image: name.to_owned(),
        source,
    };
    let workdir = match (overrides.workdir, config.working_dir()) {
        (Some(dir), _) => dir,
        (None, Some(dir)) if !dir.is_empty() => GuestPath::parse(dir).map_err(path_err)?,
        _ => GuestPath::root(),
    };
    // `PATH#EXPORT` names an export of a reactor; argv[0] is the path.
    let (program, export) = match crate::spec::split_program(&program) {
        (path, Some(export)) => (path.to_owned(), Some(export.to_owned())),
        (path, None) => (path.to_owned(), None),
    };
    let program_path = if program.starts_with('/') {
        GuestPath::parse(&program)
    } else {
        GuestPath::parse(&format!("{}/{program}", workdir.as_str()))
    }
    .map_err(path_err)?;

    let (layers, chain_id) = images.rootfs(image)?;
    let container = Container::create(
        home,
        name,
        &image.id().to_string(),
        argv.clone(),
        overrides.rm,
    )
    .map_err(PrepareError::Create)?;
    let mut spec = RunSpec::new(program);
    spec.args.extend(argv.into_iter().skip(1));
    if let Some(export) = export {
        spec.entry = crate::spec::Entry::Program(export);
    }
    for var in config.env().iter().flatten() {
        if let Some((k, v)) = var.split_once('=') {
            spec.env.set(k, v);
        }
    }
    for (k, v) in overrides.env {
        spec.env.set(k, v);
    }
    spec.workdir = workdir;
    spec.mounts = overrides.mounts;
    spec.tmpfs = overrides.tmpfs;
    spec.layers = layers;
    spec.layer_chain_id = chain_id.map(|c| c.hex().to_owned());
    spec.layer_index_cache = Some(home.layer_index_dir());
    spec.upper = Some(container.dir.clone());
    if let Some(policy) = labels.unknown_imports {
        spec.unknown_imports = policy;
    }
    Ok(Prepared {
        container,
        spec,
        program: program_path,
        labels,
    })
}
