//! A container from an image with Docker's rules, and the overrides of `run`/`create`.

use super::{Container, ContainerError, NewContainer, RestartPolicy};
use crate::engine::FeatureSet;
use crate::home::Home;
use crate::spec::{GuestPath, Limits, RunSpec};
use std::collections::BTreeMap;

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
    /// Host directories already checked (embedders); mounted before `requests`.
    pub mounts: Vec<crate::spec::Mount>,
    /// `-v` and `--mount` as parsed: host directories are checked, and volumes
    /// created and filled from the image, when the container is prepared.
    pub requests: Vec<crate::spec::MountRequest>,
    pub tmpfs: Vec<crate::spec::Tmpfs>,
    /// `--read-only`: the root filesystem refuses writes.
    pub read_only: bool,
    /// `--rm`: the container is removed when its run ends.
    pub rm: bool,
    /// `--name`.
    pub name: Option<String>,
    /// `-W` settings, applied after the image's labels.
    pub wasm: Vec<String>,
    pub limits: Limits,
    pub restart: RestartPolicy,
    pub stop_timeout: Option<u64>,
    pub labels: BTreeMap<String, String>,
    /// `-i`.
    pub interactive: bool,
    /// `--unknown-imports`, over the image's label.
    pub unknown_imports: Option<crate::spec::UnknownImports>,
    /// `-p`: ports to publish.
    pub ports: Vec<crate::net::PortRequest>,
    /// `-P`: publish every port the image EXPOSEs on an ephemeral host port.
    pub publish_all: bool,
    /// `--health-*`, `--no-healthcheck`, over the image's HEALTHCHECK.
    pub health: super::health::HealthOverrides,
    /// `--network NAME` (with `--network-alias`): the user-defined networks it joins.
    pub networks: Vec<crate::net::network::NetworkRequest>,
    /// Whether the image's `io.capsule.allow-outbound` label applies: the user gave
    /// neither `--allow-outbound` nor `--network none|host`.
    pub image_outbound: bool,
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
    #[error("image {image}: {source}")]
    Health {
        image: String,
        #[source]
        source: super::health::HealthError,
    },
    #[error(transparent)]
    Limits(#[from] crate::spec::grammar::LimitError),
    #[error("--rm and --restart cannot be combined: a container that restarts is never removed")]
    RmWithRestart,
    #[error(transparent)]
    Mount(crate::spec::SpecError),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Feature(#[from] crate::engine::FeatureError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Ports(#[from] crate::net::NetError),
    #[error(transparent)]
    Network(#[from] crate::net::network::NetworkError),
}

/// Docker's rule: a container removed when it ends cannot also restart.
///
/// # Errors
/// [`PrepareError::RmWithRestart`].
pub fn check_rm_restart(rm: bool, restart: RestartPolicy) -> Result<(), PrepareError> {
    if rm && restart != RestartPolicy::No {
        return Err(PrepareError::RmWithRestart);
    }
    Ok(())
}

/// A container ready to run: its record, the run spec over the image's layers and its
/// writable layer, and where the program is inside the image (a `PATH#EXPORT` program
/// is split: `program` is the path, and the spec's entry names the export).
#[derive(Debug)]
pub struct Prepared {
    pub container: Container,
    pub spec: RunSpec,
    pub program: GuestPath,
    /// The wasm features its engine needs (defaults, the image's labels, `-W`).
    pub features: FeatureSet,
    /// The image's ID when the program is always the same module (no mounts): the
    /// cache finds it by the image and its path.
    pub cache_image: Option<String>,
    /// What to tell the user: what `-P` left out of what the image exposes (a UDP port),
    /// the outbound connections the image's label allows.
    pub warnings: Vec<String>,
}

/// What a container of an image runs, by Docker's rules, before any container exists:
/// ENTRYPOINT + CMD (arguments replace CMD, `--entrypoint` replaces both), WORKDIR
/// unless overridden, the engine's features from the image's labels and `-W`.
#[derive(Debug, Clone)]
pub struct ImageCommand {
    /// The image's config (ENV, labels, volumes, ports).
    pub config: oci_spec::image::Config,
    /// The image's run labels.
    pub labels: crate::labels::RunLabels,
    /// The command line; `argv[0]` is the program as written.
    pub argv: Vec<String>,
    /// `argv[0]` without a `#EXPORT` suffix.
    pub program: String,
    /// The export a `PATH#EXPORT` program names.
    pub export: Option<String>,
    /// The program's path in the image (relative names start at the working directory).
    pub program_path: GuestPath,
    pub workdir: GuestPath,
    pub features: FeatureSet,
}

impl ImageCommand {
    /// The command of `image` (named `name` by the user) under `overrides`' entrypoint,
    /// arguments, working directory and `-W` settings.
    ///
    /// # Errors
    /// [`PrepareError`] for an image of another platform, without a command, with bad
    /// labels or paths.
    pub fn of(
        image: &crate::image::Image,
        name: &str,
        overrides: &Overrides,
    ) -> Result<Self, PrepareError> {
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
            argv.extend(overrides.args.iter().cloned());
        } else if overrides.entrypoint.is_none() {
            argv.extend(config.cmd().clone().unwrap_or_default());
        }
        let Some(first) = argv.first() else {
            return Err(PrepareError::NoCommand(name.to_owned()));
        };
        let path_err = |source| PrepareError::Path {
            image: name.to_owned(),
            source,
        };
        let workdir = match (&overrides.workdir, config.working_dir()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) if !dir.is_empty() => GuestPath::parse(dir).map_err(path_err)?,
            _ => GuestPath::root(),
        };
        // `PATH#EXPORT` names an export of a reactor; argv[0] is the path.
        let (program, export) = match crate::spec::split_program(first) {
            (path, Some(export)) => (path.to_owned(), Some(export.to_owned())),
            (path, None) => (path.to_owned(), None),
        };
        let program_path = if program.starts_with('/') {
            GuestPath::parse(&program)
        } else {
            GuestPath::parse(&format!("{}/{program}", workdir.as_str()))
        }
        .map_err(path_err)?;
        let mut features = FeatureSet::default();
        labels.apply_features(&mut features);
        for setting in &overrides.wasm {
            features.apply_setting(setting)?;
        }
        Ok(Self {
            config,
            labels,
            argv,
            program,
            export,
            program_path,
            workdir,
            features,
        })
    }

    /// The run spec of this command over `image`'s layers (made ready in `images`, their
    /// index cached in `home`): the program and its arguments, the export, the image's
    /// ENV, the working directory (no mounts or limits yet).
    ///
    /// # Errors
    /// [`crate::image::ImageError`] when a layer cannot be made ready.
    pub fn spec(
        &self,
        home: &Home,
        images: &crate::image::Images,
        image: &crate::image::Image,
    ) -> Result<RunSpec, crate::image::ImageError> {
        let (layers, chain_id) = images.rootfs(image)?;
        let mut spec = RunSpec::new(self.program.clone());
        spec.args.extend(self.argv.iter().skip(1).cloned());
        if let Some(export) = &self.export {
            spec.entry = crate::spec::Entry::Program(export.clone());
        }
        for var in self.config.env().iter().flatten() {
            if let Some((k, v)) = var.split_once('=') {
                spec.env.set(k, v);
            }
        }
        spec.workdir = self.workdir.clone();
        spec.layers = layers;
        spec.layer_chain_id = chain_id.map(|c| c.hex().to_owned());
        spec.layer_index_cache = Some(home.layer_index_dir());
        Ok(spec)
    }
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
    // The rules the flags obey hold for values given directly (the SDK's) too.
    overrides.limits.check()?;
    check_rm_restart(overrides.rm, overrides.restart)?;
    if let Some(secs) = overrides.stop_timeout {
        crate::spec::grammar::seconds("stop timeout", &secs.to_string())?;
    }
    let command = ImageCommand::of(image, name, &overrides)?;
    let (config, labels, features) = (&command.config, &command.labels, command.features);
    let program_path = command.program_path.clone();
    let image_check = config
        .labels()
        .as_ref()
        .and_then(|l| l.get(super::health::LABEL))
        .map(|text| super::health::Healthcheck::from_label(text))
        .transpose()
        .map_err(|source| PrepareError::Health {
            image: name.to_owned(),
            source,
        })?;
    let healthcheck =
        overrides
            .health
            .apply(image_check)
            .map_err(|source| PrepareError::Health {
                image: name.to_owned(),
                source,
            })?;

    // Host directories are checked before anything is created.
    // An image brings its root: only a module run mounts a host directory at `/`.
    if let Some(r) = overrides.requests.iter().find(|r| r.guest.is_root()) {
        return Err(PrepareError::Mount(crate::spec::SpecError::Volume {
            spec: r.flag.clone(),
            reason: crate::spec::ROOT_MOUNT.to_owned(),
        }));
    }
    let binds = super::volumes::check_binds(&overrides.requests).map_err(PrepareError::Mount)?;
    let image_volumes = config
        .volumes()
        .iter()
        .flatten()
        .map(|path| GuestPath::parse(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PrepareError::Path {
            image: name.to_owned(),
            source,
        })?;
    // Published ports are checked (and ephemeral ones chosen) before anything is
    // created: a port in use leaves nothing behind.
    let mut exposed: Vec<u16> = Vec::new();
    let mut warnings = Vec::new();
    if overrides.publish_all {
        for entry in config.exposed_ports().iter().flatten() {
            match crate::net::exposed_ports(entry) {
                Ok(ports) => exposed.extend(ports),
                Err(why) => warnings.push(why),
            }
        }
        exposed.sort_unstable();
        exposed.dedup();
    }
    let ports = crate::net::allocate(&overrides.ports, &exposed)?;
    let mut spec = command.spec(home, images, image)?;
    let mut container = Container::create(
        home,
        NewContainer {
            name: overrides.name,
            image: name.to_owned(),
            image_id: image.id().to_string(),
            command: command.argv.clone(),
            rm: overrides.rm,
            features,
            restart: overrides.restart,
            stop_timeout: overrides.stop_timeout,
            labels: overrides.labels,
            interactive: overrides.interactive,
            healthcheck,
        },
    )?;
    for (k, v) in overrides.env {
        spec.env.set(k, v);
    }
    spec.tmpfs = overrides.tmpfs;
    spec.read_only = overrides.read_only;
    spec.ports = ports;
    // Volumes are attached, and recorded in the container's config, under the
    // volumes' lock (held by `attached` until it is dropped).
    let taken: Vec<GuestPath> = overrides
        .mounts
        .iter()
        .map(|m| m.guest.clone())
        .chain(spec.tmpfs.iter().map(|t| t.guest.clone()))
        .collect();
    let attached = match super::volumes::attach(
        home,
        &overrides.requests,
        binds,
        &image_volumes,
        &taken,
        Some(&spec),
    ) {
        Ok(attached) => attached,
        Err(e) => {
            let _ = container.remove();
            return Err(e.into());
        }
    };
    spec.mounts = overrides.mounts;
    spec.mounts.extend(attached.mounts.iter().cloned());
    container.config.volumes = attached.volumes.clone();
    spec.upper = Some(container.dir.clone());
    if let Some(policy) = overrides.unknown_imports.or(labels.unknown_imports) {
        spec.unknown_imports = policy;
    }
    spec.limits = overrides.limits;
    if overrides.image_outbound && !labels.allow_outbound.is_empty() {
        warnings.push(format!(
            "the image allows outbound connections to {} (its label {}); --allow-outbound replaces them, --network none drops them",
            labels.allow_outbound.join(" "),
            crate::labels::ALLOW_OUTBOUND
        ));
        spec.limits.outbound.clone_from(&labels.allow_outbound);
    }
    // Addresses are given, and recorded in the container's config, under the networks'
    // lock (held by `_networks` until the config is written).
    let (attachments, _networks) = match super::networks::attach(home, &overrides.networks) {
        Ok(attached) => attached,
        Err(e) => {
            let _ = container.remove();
            attached.undo();
            return Err(e.into());
        }
    };
    if !attachments.is_empty() {
        spec.home = Some(home.root().to_path_buf());
    }
    spec.networks = attachments;
    // An image's layers never change, and a new container's writable layer is empty:
    // without mounts, the program at a path of an image is always the same module, so
    // the cache finds it by that name without reading and hashing it (CPython's module
    // is 95 MB).
    let cache_image =
        (spec.mounts.is_empty() && spec.tmpfs.is_empty()).then(|| image.id().to_string());
    if let Err(e) = container.set_spec(spec.clone(), program_path.clone(), cache_image.clone()) {
        let _ = container.remove();
        attached.undo();
        return Err(e.into());
    }
    drop(attached);
    Ok(Prepared {
        container,
        spec,
        program: program_path,
        features,
        cache_image,
        warnings,
    })
}
