//! What `compose up`, `down`, `stop` and `start` do to a project's containers, for
//! every front end (the `capsule` binary prints the [`Event`]s): build what must be
//! built, then for each service in dependency order wait for what it depends on
//! (started, completed successfully, or healthy: its check said so, within a bound),
//! leave a container whose configuration hash is unchanged, recreate one whose hash
//! changed, create a missing one, and start it.
//!
//! Nothing is stopped or removed before the whole file was checked (when it was
//! loaded), each service's host needs were met ([`Project::check_host`]), each image
//! was built or found; a container that cannot be recreated is given back its name and
//! runs again as before. One `up` or `down` changes a project at a time (its lock).

use super::file::Condition;
use super::model::Make;
use super::{ComposeError, HASH_LABEL, PROJECT_LABEL, Project, SERVICE_LABEL};
use crate::builder::{BuildError, BuildOptions, Observer};
use crate::container::health::{self, Healthcheck};
use crate::container::logs::Reader;
use crate::container::{Container, ContainerError, PrepareError, lifecycle, supervisor};
use crate::home::Home;
use crate::image::reference::Reference;
use crate::image::{Image, ImageError, Images};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What happened, for the front end to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A service's image is being built from this context.
    Building { service: &'a str, context: &'a Path },
    /// Something happened to a container: `Running` (left as it was), `Recreate`,
    /// `Recreated`, `Created`, `Started`, `Stopped`, `Removed`.
    Container { name: &'a str, what: &'a str },
    /// `down --volumes` removed one of the file's volumes.
    VolumeRemoved(&'a str),
    /// One of the project's networks was `Created` (by `up`) or `Removed` (by `down`).
    Network { name: &'a str, what: &'a str },
}

/// What a front end is told, and how it watches a build.
pub trait Events {
    fn event(&mut self, event: Event<'_>);
    /// The observer of a service's build (its steps).
    fn builder(&mut self) -> &mut dyn Observer;
}

/// Why `up`, `down`, `start` or `stop` stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(
        "service {service}: no image {image}: build it (capsule build -t {image} DIR, or give the service a build section) or load it (capsule load -i FILE)"
    )]
    NoImage { service: String, image: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    // The causes are part of the one line (not `#[source]`, which would print them
    // twice).
    #[error("service {service}: {error}")]
    Build { service: String, error: BuildError },
    #[error("service {service}: {reason}")]
    BuildOptions { service: String, reason: String },
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(
        "service {service} depends on {dependency} completing successfully, but {container} exited with {code}"
    )]
    Dependency {
        service: String,
        dependency: String,
        container: String,
        code: i32,
    },
    #[error(
        "service {service} waits for {dependency} to be healthy, but {dependency} has no health check: give it one (healthcheck = {{ test = [\"CMD\", \"/app/check.wasm\"] }}, or HEALTHCHECK in its image), or use condition = \"service_started\""
    )]
    NoHealthcheck { service: String, dependency: String },
    #[error(
        "dependency failed to start: container {container} {reason} (service {service} waits for {dependency} to be healthy)"
    )]
    Unhealthy {
        service: String,
        dependency: String,
        container: String,
        reason: String,
    },
    #[error("cannot remove {name}: {error}")]
    Remove { name: String, error: std::io::Error },
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
}

/// How to bring a project up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Only these services and what they depend on (every one when empty).
    pub services: Vec<String>,
    /// Build the images of services with a build section even when they exist.
    pub build: bool,
    /// SOURCE_DATE_EPOCH of what builds write.
    pub epoch: i64,
    /// The `capsule` binary that supervises each container (`capsule __supervise`).
    pub supervisor: PathBuf,
}

/// A container `up` brought up, with a reader of its log from before it started.
#[derive(Debug)]
pub struct Up {
    pub container: Container,
    pub log: Reader,
}

/// The project's containers (those labelled with its name), oldest first.
pub fn containers(home: &Home, project: &Project) -> Vec<Container> {
    Container::list(home)
        .into_iter()
        .filter(|c| c.config.labels.get(PROJECT_LABEL) == Some(&project.name))
        .collect()
}

/// The service a container of a project was made for (its label; empty if none).
pub fn service_of(container: &Container) -> &str {
    container
        .config
        .labels
        .get(SERVICE_LABEL)
        .map_or("", String::as_str)
}

/// The container of a service, if it has one.
pub fn container_of(home: &Home, project: &Project, service: &str) -> Option<Container> {
    Container::find(home, &project.container_name(service)).ok()
}

/// The build of a service's image, named as [`Project::image_of`] says (`None`: it
/// has no build section).
///
/// # Errors
/// [`UpError::BuildOptions`] for an image name that is not a reference.
pub fn build_options(
    project: &Project,
    service: &str,
    epoch: i64,
) -> Result<Option<BuildOptions>, UpError> {
    let Some(table) = project
        .service(service)
        .and_then(|s| s.build.as_ref())
        .map(super::file::Build::table)
    else {
        return Ok(None);
    };
    let tag = Reference::parse(&project.image_of(service)).map_err(|e| UpError::BuildOptions {
        service: service.to_owned(),
        reason: e.to_string(),
    })?;
    let context = project.dir.join(&table.context);
    Ok(Some(BuildOptions {
        recipe: table.file.as_ref().map(|f| context.join(f)),
        context,
        tags: vec![tag],
        build_args: table.args.clone().into_iter().collect(),
        no_cache: false,
        target: table.target.clone(),
        epoch,
        features: crate::engine::FeatureSet::default(),
    }))
}

/// Builds a service's image (nothing when it has no build section).
///
/// # Errors
/// [`UpError::Build`].
pub fn build(
    home: &Home,
    images: &Images,
    project: &Project,
    service: &str,
    epoch: i64,
    events: &mut dyn Events,
) -> Result<(), UpError> {
    let Some(options) = build_options(project, service, epoch)? else {
        return Ok(());
    };
    events.event(Event::Building {
        service,
        context: &options.context,
    });
    crate::builder::build(home, images, &options, events.builder()).map_err(|error| {
        UpError::Build {
            service: service.to_owned(),
            error,
        }
    })?;
    Ok(())
}

/// The image a service runs (a built-in one is added to the store when first asked
/// for).
///
/// # Errors
/// [`UpError::NoImage`], or the store's error.
pub fn image(images: &Images, project: &Project, service: &str) -> Result<Image, UpError> {
    let name = project.image_of(service);
    match images.resolve(&name) {
        Ok(image) => Ok(image),
        Err(ImageError::NotFound(_)) => {
            crate::builtin::ensure_image(images, &name)?.ok_or(UpError::NoImage {
                service: service.to_owned(),
                image: name,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates a service's container as `capsule create` makes one from its flags.
///
/// # Errors
/// As [`image`] and [`crate::container::prepare`].
pub fn create(
    home: &Home,
    images: &Images,
    project: &Project,
    service: &str,
    make: Make<'_>,
) -> Result<Container, UpError> {
    let spec = project
        .spec(service)
        .ok_or_else(|| ComposeError::UnknownService(service.to_owned(), project.services_list()))?;
    let image = image(images, project, service)?;
    let hash = project.config_hash(service, &image.id().to_string());
    let mut make = make;
    make.labels.extend([
        (PROJECT_LABEL.to_owned(), project.name.clone()),
        (SERVICE_LABEL.to_owned(), service.to_owned()),
        (HASH_LABEL.to_owned(), hash),
    ]);
    // `compose run` before any `up` finds the project's networks too.
    create_networks(home, project)?;
    let overrides = spec.overrides(make);
    let name = project.image_of(service);
    Ok(crate::container::prepare(home, images, &image, &name, overrides)?.container)
}

/// The health check a service's container runs: its image's HEALTHCHECK as the
/// file's `healthcheck` changes it (`None`: it has none, or it is turned off).
///
/// # Errors
/// [`PrepareError::Health`] for an image whose label is not a check, and as [`image`].
pub fn healthcheck_of(
    images: &Images,
    project: &Project,
    service: &str,
) -> Result<Option<Healthcheck>, UpError> {
    let image = image(images, project, service)?;
    let name = project.image_of(service);
    let fail = |source| PrepareError::Health {
        image: name.clone(),
        source,
    };
    let image_check = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|labels| labels.get(health::LABEL))
        .map(|text| Healthcheck::from_label(text))
        .transpose()
        .map_err(fail)?;
    let overrides = project
        .spec(service)
        .map(|s| s.health.clone())
        .unwrap_or_default();
    Ok(overrides.apply(image_check).map_err(fail)?)
}

/// Refuses, before anything is started, a `service_healthy` dependency of one of
/// `services` that will have no health check.
///
/// # Errors
/// [`UpError::NoHealthcheck`], and as [`healthcheck_of`].
pub fn check_healthy_dependencies(
    images: &Images,
    project: &Project,
    services: &[String],
) -> Result<(), UpError> {
    for service in services {
        for (dep, condition) in project.dependencies(service) {
            if condition == Condition::Healthy && healthcheck_of(images, project, &dep)?.is_none() {
                return Err(UpError::NoHealthcheck {
                    service: service.clone(),
                    dependency: dep,
                });
            }
        }
    }
    Ok(())
}

/// The longest `up` waits for a dependency to be healthy: its start period, then
/// `retries` checks that may each take `interval` and `timeout` (one more for the
/// first), and a margin — past this its check would have said `unhealthy` already.
pub fn health_wait_limit(check: &Healthcheck) -> Duration {
    let round = check.interval().saturating_add(check.timeout());
    check
        .start_period()
        .saturating_add(round.saturating_mul(check.retries().saturating_add(1)))
        .saturating_add(Duration::from_secs(10))
}

/// Waits for a service's dependencies to be ready as `depends_on` says.
///
/// # Errors
/// [`UpError::Dependency`] for one that had to complete successfully and did not;
/// [`UpError::NoHealthcheck`] and [`UpError::Unhealthy`] for one that had to be healthy
/// and has no check, is unhealthy, ended, or was not healthy in time
/// ([`health_wait_limit`]).
pub fn wait_for_dependencies(
    home: &Home,
    project: &Project,
    service: &str,
    events: &mut dyn Events,
) -> Result<(), UpError> {
    for (dep, condition) in project.dependencies(service) {
        let Some(container) = container_of(home, project, &dep) else {
            continue;
        };
        match condition {
            Condition::Started => {}
            Condition::CompletedSuccessfully => {
                supervisor::wait_stopped(&container, None);
                let state = container.state();
                if state.exit_code != Some(0) {
                    return Err(UpError::Dependency {
                        service: service.to_owned(),
                        dependency: dep,
                        container: container.name().to_owned(),
                        code: state.exit_code.unwrap_or(-1),
                    });
                }
            }
            Condition::Healthy => {
                events.event(Event::Container {
                    name: container.name(),
                    what: "Waiting",
                });
                wait_healthy(&container, Instant::now()).map_err(|reason| UpError::Unhealthy {
                    service: service.to_owned(),
                    dependency: dep.clone(),
                    container: container.name().to_owned(),
                    reason,
                })?;
                events.event(Event::Container {
                    name: container.name(),
                    what: "Healthy",
                });
            }
        }
    }
    Ok(())
}

/// Waits until `container`'s check says `healthy` in its current run; why not
/// otherwise (`is unhealthy ...`, `exited with 1`, `has no health check`, `was not
/// healthy after 12s`).
fn wait_healthy(container: &Container, since: Instant) -> Result<(), String> {
    let Some(check) = container.config.healthcheck.clone() else {
        return Err("has no health check".to_owned());
    };
    let limit = health_wait_limit(&check);
    let mut pause = Duration::from_millis(10);
    loop {
        let state = container.state();
        if !state.is_active() {
            return Err(match state.exit_code {
                Some(code) => format!("exited with {code} before it was healthy"),
                None => format!("is {} and was never healthy", state.status.as_str()),
            });
        }
        // A verdict counts once a check of this run gave it: `health.json` still holds
        // the last run's until the first check (both times are RFC 3339 with
        // nanoseconds, so they compare as text).
        let started = state.started_at.unwrap_or_default();
        if let Some(h) = health::read(&container.dir)
            && let Some(last) = h.log.last()
            && last.start >= started
        {
            if h.status == health::HEALTHY {
                return Ok(());
            }
            if h.status == health::UNHEALTHY {
                let output = last.output.lines().next().unwrap_or("").trim();
                let output: String = output.chars().take(120).collect();
                return Err(if output.is_empty() {
                    format!("is unhealthy (its last check exited {})", last.exit_code)
                } else {
                    format!(
                        "is unhealthy (its last check exited {}: {output})",
                        last.exit_code
                    )
                });
            }
        }
        if since.elapsed() >= limit {
            return Err(format!(
                "was not healthy after {}",
                crate::spec::format_duration(limit)
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Brings the project's services up (see the module's documentation); the containers
/// of the services acted on, each with a reader of its log from before this `up`.
///
/// # Errors
/// [`UpError`]; containers already handled stay as they are.
pub fn up(
    home: &Home,
    images: &Images,
    project: &Project,
    options: &UpOptions,
    events: &mut dyn Events,
) -> Result<Vec<Up>, UpError> {
    let order = project.order(&options.services)?;
    project.check_host(home, &options.services)?;
    let _lock = project.lock(home)?;
    // Services that share an image (the same `image` and a `build`) build it once.
    let mut built = std::collections::BTreeSet::new();
    for name in &order {
        let image = project.image_of(name);
        if project.service(name).is_some_and(|s| s.build.is_some())
            && !built.contains(&image)
            && (options.build || images.resolve(&image).is_err())
        {
            build(home, images, project, name, options.epoch, events)?;
            built.insert(image);
        }
    }
    // Every image is there before any container is stopped or removed, and every
    // dependency that must be healthy will have a check.
    for name in &order {
        image(images, project, name)?;
    }
    check_healthy_dependencies(images, project, &order)?;
    for name in create_networks(home, project)? {
        events.event(Event::Network {
            name: &name,
            what: "Created",
        });
    }
    let mut out = Vec::new();
    let mut follow = |container: &Container| {
        let mut log = Reader::new(&container.dir);
        let _ = log.next_entries();
        if let Ok(container) = Container::find(home, &container.config.id) {
            out.push(Up { container, log });
        }
    };
    let say = |events: &mut dyn Events, c: &Container, what: &str| {
        events.event(Event::Container {
            name: c.name(),
            what,
        });
    };
    for name in &order {
        wait_for_dependencies(home, project, name, events)?;
        let image = image(images, project, name)?;
        let hash = project.config_hash(name, &image.id().to_string());
        let container_name = project.container_name(name);
        let make = || {
            create(
                home,
                images,
                project,
                name,
                Make {
                    name: &container_name,
                    publish: true,
                    ..Make::default()
                },
            )
        };
        let container = match container_of(home, project, name) {
            Some(c) if c.config.labels.get(HASH_LABEL) == Some(&hash) => {
                if c.state().is_active() && !c.lock_is_free() {
                    say(events, &c, "Running");
                    follow(&c);
                    continue;
                }
                c
            }
            Some(old) => {
                say(events, &old, "Recreate");
                let c = recreate(home, old, &options.supervisor, make)?;
                say(events, &c, "Recreated");
                c
            }
            None => {
                let c = make()?;
                say(events, &c, "Created");
                c
            }
        };
        follow(&container);
        lifecycle::start(home, &container, &options.supervisor)?;
        say(events, &container, "Started");
    }
    Ok(out)
}

/// Creates the project's networks that do not exist yet (labelled with the project,
/// as Compose labels them, so that `down` and `network prune --filter` find them);
/// returns their names.
fn create_networks(home: &Home, project: &Project) -> Result<Vec<String>, UpError> {
    let own = project.own_networks();
    let mut created = Vec::new();
    if own.is_empty() {
        return Ok(created);
    }
    let networks = crate::net::network::Networks::open(home).map_err(ComposeError::from)?;
    let lock = networks.lock().map_err(ComposeError::from)?;
    for (key, name) in own {
        if networks.get(&name).is_ok() {
            continue;
        }
        let mut labels = std::collections::BTreeMap::from([
            (PROJECT_LABEL.to_owned(), project.name.clone()),
            ("com.docker.compose.network".to_owned(), key.clone()),
        ]);
        if let Some(def) = project.file.networks.get(&key) {
            labels.extend(def.labels.clone());
        }
        networks
            .create(&lock, &name, labels)
            .map_err(ComposeError::from)?;
        created.push(name);
    }
    Ok(created)
}

/// Replaces `old` with the container `make` creates: `old` is stopped (freeing its
/// ports) and set aside under another name; if the new one cannot be made, `old` gets
/// its name back and runs again as it did, otherwise it is removed with its anonymous
/// volumes.
fn recreate(
    home: &Home,
    mut old: Container,
    supervisor: &Path,
    make: impl FnOnce() -> Result<Container, UpError>,
) -> Result<Container, UpError> {
    let was_running = old.state().is_active() && !old.lock_is_free();
    let grace = lifecycle::grace(&old, None);
    lifecycle::stop(&mut old, grace)?;
    let name = old.name().to_owned();
    let aside = format!("{}_{name}", &old.config.id[..12.min(old.config.id.len())]);
    old.rename(home, &aside)?;
    match make() {
        Ok(new) => {
            let volumes = old.config.volumes.clone();
            old.remove()
                .map_err(|error| UpError::Remove { name: aside, error })?;
            let _ = crate::container::volumes::remove_anonymous(home, &volumes);
            Ok(new)
        }
        Err(e) => {
            if old.rename(home, &name).is_ok()
                && was_running
                && let Err(again) = lifecycle::start(home, &old, supervisor)
            {
                tracing::warn!(error = %again, "cannot start {name} again");
            }
            Err(e)
        }
    }
}

/// Stops containers together, as Compose does: every one is asked first, then each is
/// waited for (a WASI guest cannot be told to shut down, so each runs out its grace
/// period; asked together, they do so at the same time). `timeout`: each one's grace
/// period, else its own.
///
/// # Errors
/// The host's error asking one or recording its state.
pub fn stop_all(
    containers: &mut [Container],
    timeout: Option<u64>,
    events: &mut dyn Events,
) -> Result<(), UpError> {
    let mut asked = Vec::new();
    for c in containers.iter() {
        let grace = lifecycle::grace(c, timeout);
        asked.push((supervisor::request_stop(c, grace)?, grace));
    }
    for (c, (was_running, grace)) in containers.iter_mut().zip(asked) {
        if was_running
            && !supervisor::wait_stopped(c, Some(grace.saturating_add(Duration::from_secs(3))))
        {
            supervisor::force_kill(c)?;
        }
        events.event(Event::Container {
            name: c.name(),
            what: "Stopped",
        });
    }
    Ok(())
}

/// Stops the containers of `services` (every one when empty), dependents first.
///
/// # Errors
/// As [`Project::order`] and [`stop_all`].
pub fn stop(
    home: &Home,
    project: &Project,
    services: &[String],
    timeout: Option<u64>,
    events: &mut dyn Events,
) -> Result<(), UpError> {
    let order = project.order(services)?;
    let mut containers: Vec<Container> = order
        .iter()
        .rev()
        .filter_map(|name| container_of(home, project, name))
        .collect();
    stop_all(&mut containers, timeout, events)
}

/// Stops and removes the project's containers, dependents first (those of services no
/// longer in the file too, found by their label); with `volumes`, the file's named
/// volumes (not external ones) and the containers' anonymous volumes as well.
///
/// # Errors
/// [`UpError`]; what was removed stays removed.
pub fn down(
    home: &Home,
    project: &Project,
    timeout: Option<u64>,
    volumes: bool,
    events: &mut dyn Events,
) -> Result<(), UpError> {
    let order = project.order(&[])?;
    let _lock = project.lock(home)?;
    let mut containers = containers(home, project);
    containers.sort_by_key(|c| {
        let service = service_of(c);
        std::cmp::Reverse(
            order
                .iter()
                .position(|s| s == service)
                .unwrap_or(usize::MAX),
        )
    });
    stop_all(&mut containers, timeout, events)?;
    for c in containers {
        let used = c.config.volumes.clone();
        let name = c.name().to_owned();
        c.remove().map_err(|error| UpError::Remove {
            name: name.clone(),
            error,
        })?;
        events.event(Event::Container {
            name: &name,
            what: "Removed",
        });
        if volumes {
            let _ = crate::container::volumes::remove_anonymous(home, &used);
        }
    }
    // The project's networks, once no container of it is on them (a container of
    // another project, or one run by hand, keeps a network: it is left, and said).
    let store = crate::net::network::Networks::open(home).map_err(ComposeError::from)?;
    for network in store.list() {
        if network.labels.get(PROJECT_LABEL) != Some(&project.name) {
            continue;
        }
        match crate::container::networks::remove(home, &store, &network.name) {
            Ok(name) => events.event(Event::Network {
                name: &name,
                what: "Removed",
            }),
            Err(e) => tracing::warn!(network = %network.name, error = %e, "network left"),
        }
    }
    if volumes {
        let store = crate::volume::Volumes::open(home)?;
        for (name, def) in &project.file.volumes {
            if def.external {
                continue;
            }
            let on_disk = project.volume_name(name);
            match crate::container::volumes::remove(home, &store, &on_disk) {
                Ok(()) => events.event(Event::VolumeRemoved(&on_disk)),
                Err(crate::volume::VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
