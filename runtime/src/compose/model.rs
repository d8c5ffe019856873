//! A service as Capsule runs it: every value of the file parsed and checked by the
//! rules `capsule create`'s flags obey (the library's [`crate::spec::grammar`],
//! [`crate::spec`]'s mount grammar, [`crate::net::PortRequest`],
//! [`RestartPolicy`]) when the file is loaded, each error at its file, line and column.
//! [`ServiceSpec::overrides`] turns one into the same container options `capsule
//! create` builds from its flags.

use super::file::{FileError, HealthcheckTable, Service, VolumeEntry};
use crate::container::health::{HealthOverrides, Healthcheck};
use crate::container::{Overrides, RestartPolicy};
use crate::net::PortRequest;
use crate::spec::{Env, GuestPath, Limits, MountRequest, Tmpfs, grammar};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One service, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    /// `--entrypoint`: the first word of the service's `entrypoint`.
    pub entrypoint: Option<String>,
    /// The rest of a multi-word `entrypoint`.
    pub entrypoint_args: Vec<String>,
    /// `command`, which replaces the image's `CMD`.
    pub command: Vec<String>,
    /// `env_file` (read when the file is loaded), then `environment`.
    pub env: Env,
    pub ports: Vec<PortRequest>,
    /// Bind mounts and volumes, sources made absolute and named volumes named as on
    /// disk (`PROJECT_NAME`).
    pub mounts: Vec<MountRequest>,
    pub tmpfs: Vec<Tmpfs>,
    pub restart: RestartPolicy,
    pub workdir: Option<GuestPath>,
    pub read_only: bool,
    pub labels: BTreeMap<String, String>,
    pub limits: Limits,
    /// `stop_grace_period`, in whole seconds.
    pub stop_timeout: Option<u64>,
    /// `healthcheck`, over the image's.
    pub health: HealthOverrides,
    /// The networks it joins, named as on disk, with the service's name among the
    /// aliases of each (`network_mode` none or host: none).
    pub networks: Vec<crate::net::network::NetworkRequest>,
    /// Whether the image's outbound label applies (no `allow_outbound`, no
    /// `network_mode`).
    pub image_outbound: bool,
}

/// What to make a service's container with, beyond the service itself.
#[derive(Debug, Clone, Default)]
pub struct Make<'a> {
    /// The container's name.
    pub name: &'a str,
    /// Labels over the service's (project, service, config hash).
    pub labels: BTreeMap<String, String>,
    /// A command replacing the service's (`compose run SERVICE CMD...`).
    pub command: Option<&'a [String]>,
    /// `--rm`.
    pub rm: bool,
    /// Whether the service's ports are published (not for `compose run` without
    /// `--service-ports`, as Docker Compose).
    pub publish: bool,
}

impl ServiceSpec {
    /// The options `capsule create` would build from the service's flags.
    pub fn overrides(&self, make: Make<'_>) -> Overrides {
        let mut args = self.entrypoint_args.clone();
        match make.command {
            Some(command) => args.extend(command.iter().cloned()),
            None => args.extend(self.command.iter().cloned()),
        }
        let mut labels = self.labels.clone();
        labels.extend(make.labels);
        Overrides {
            entrypoint: self.entrypoint.clone(),
            args,
            env: self.env.vars().to_vec(),
            workdir: self.workdir.clone(),
            mounts: Vec::new(),
            requests: self.mounts.clone(),
            tmpfs: self.tmpfs.clone(),
            read_only: self.read_only,
            rm: make.rm,
            name: Some(make.name.to_owned()),
            wasm: Vec::new(),
            limits: self.limits.clone(),
            // A one-off removed when it ends does not restart (Docker Compose clears
            // the policy, which the engine refuses beside auto-removal).
            restart: if make.rm {
                crate::container::RestartPolicy::No
            } else {
                self.restart
            },
            stop_timeout: self.stop_timeout,
            labels,
            interactive: false,
            unknown_imports: None,
            ports: if make.publish {
                self.ports.clone()
            } else {
                Vec::new()
            },
            publish_all: false,
            health: self.health.clone(),
            networks: self.networks.clone(),
            image_outbound: self.image_outbound,
        }
    }
}

/// Where a key path (`services.api.memory`, `services.api.ports.1`) is in the file.
#[derive(Debug)]
pub struct Locator<'a> {
    file: String,
    text: &'a str,
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    /// A locator over the text of `file` (as written, before substitution).
    pub fn new(file: &Path, text: &'a str) -> Self {
        Self {
            file: file.display().to_string(),
            text,
            root: toml::de::DeTable::parse(text).ok(),
        }
    }

    /// An error at the value of `path` (or the nearest key above it that is in the
    /// file).
    pub fn error(&self, path: &[&str], message: impl Into<String>) -> FileError {
        let offset = self.offset(path);
        let (line, column) = super::file::line_col(self.text, offset);
        FileError {
            file: self.file.clone(),
            line,
            column,
            key: path.join("."),
            message: message.into(),
        }
    }

    fn offset(&self, path: &[&str]) -> usize {
        use toml::de::DeValue;
        let Some(root) = &self.root else {
            return 0;
        };
        let mut offset = 0;
        let mut table = Some(root.get_ref());
        let mut array: Option<&toml::de::DeArray<'_>> = None;
        for part in path {
            let value = if let Some(t) = table {
                t.iter()
                    .find(|(k, _)| k.get_ref().as_ref() == *part)
                    .map(|(_, v)| v)
            } else if let Some(a) = array {
                part.parse::<usize>().ok().and_then(|i| a.get(i))
            } else {
                None
            };
            let Some(value) = value else {
                break;
            };
            offset = value.span().start;
            (table, array) = match value.get_ref() {
                DeValue::Table(t) => (Some(t), None),
                DeValue::Array(a) => (None, Some(a)),
                _ => (None, None),
            };
        }
        offset
    }
}

/// Checks a service and makes its [`ServiceSpec`]: `volume_name` names a declared
/// volume as on disk (`None`: not declared), `dir` is the project's directory.
///
/// # Errors
/// [`FileError`] at the first value that breaks its rule.
pub fn service_spec(
    at: &Locator<'_>,
    name: &str,
    service: &Service,
    dir: &Path,
    volume_name: &dyn Fn(&str) -> Option<String>,
    network_name: &dyn Fn(&str) -> Option<String>,
) -> Result<ServiceSpec, FileError> {
    let err = |key: &str, message: String| at.error(&["services", name, key], message);
    // A limit's message names its key already: the path stops at the service, the
    // place is the value's.
    let limit = |key: &str, e: grammar::LimitError| {
        let mut error = at.error(&["services", name, key], e.to_string());
        error.key = format!("services.{name}");
        error
    };
    let mut spec = ServiceSpec::default();
    if let Some(words) = &service.entrypoint {
        let mut words = words.words().into_iter();
        spec.entrypoint = words.next();
        spec.entrypoint_args = words.collect();
    }
    spec.command = service
        .command
        .as_ref()
        .map(super::file::Words::words)
        .unwrap_or_default();
    for file in service.env_file.iter().flat_map(|w| w.words()) {
        spec.env
            .apply_file_at(&dir.join(&file))
            .map_err(|e| err("env_file", e.to_string()))?;
    }
    for (k, v) in &service.environment {
        spec.env
            .apply_flag(&format!("{k}={v}"))
            .map_err(|e| err("environment", e.to_string()))?;
    }
    for (i, port) in service.ports.iter().enumerate() {
        spec.ports.push(
            PortRequest::parse(port).map_err(|e| {
                at.error(&["services", name, "ports", &i.to_string()], e.to_string())
            })?,
        );
    }
    for (i, entry) in service.volumes.iter().enumerate() {
        let here =
            |message: String| at.error(&["services", name, "volumes", &i.to_string()], message);
        match mount_of(entry, dir, volume_name).map_err(&here)? {
            Mount::Request(text) => spec
                .mounts
                .push(MountRequest::parse_volume(&text).map_err(|e| here(e.to_string()))?),
            Mount::Tmpfs(target) => spec
                .tmpfs
                .push(Tmpfs::parse(&target).map_err(|e| here(e.to_string()))?),
        }
    }
    crate::spec::check_mount_points(&spec.mounts, &spec.tmpfs)
        .map_err(|e| err("volumes", e.to_string()))?;
    if let Some(restart) = &service.restart {
        spec.restart = RestartPolicy::parse(restart).map_err(|e| err("restart", e))?;
    }
    if let Some(dir) = &service.working_dir {
        spec.workdir = Some(GuestPath::parse(dir).map_err(|e| err("working_dir", e.to_string()))?);
    }
    spec.read_only = service.read_only;
    spec.labels = service.labels.clone();
    if let Some(text) = &service.memory {
        spec.limits.memory = Some(grammar::memory("memory", text).map_err(|e| limit("memory", e))?);
    }
    if let Some(text) = &service.timeout {
        spec.limits.timeout =
            Some(grammar::timeout("timeout", text).map_err(|e| limit("timeout", e))?);
    }
    if let Some(units) = service.fuel {
        spec.limits.fuel =
            Some(grammar::fuel("fuel", &units.to_string()).map_err(|e| limit("fuel", e))?);
    }
    if let Some(n) = service.nofile {
        spec.limits.nofile = Some(grammar::nofile("nofile", n).map_err(|e| limit("nofile", e))?);
    }
    if let Some(text) = &service.storage {
        spec.limits.storage =
            Some(grammar::storage("storage", text).map_err(|e| limit("storage", e))?);
    }
    if let Some(text) = &service.stop_grace_period {
        let grace = grammar::duration("stop_grace_period", text)
            .map_err(|e| limit("stop_grace_period", e))?;
        spec.stop_timeout = Some(grace.as_secs());
    }
    if let Some(table) = &service.healthcheck {
        spec.health = health_overrides(at, name, table)?;
    }
    service_networks(at, name, service, network_name, &mut spec)?;
    Ok(spec)
}

/// `networks`, `network_mode` and `allow_outbound`: the networks the service joins
/// (the project's `default` unless it names others), or none, or the host's.
fn service_networks(
    at: &Locator<'_>,
    name: &str,
    service: &Service,
    network_name: &dyn Fn(&str) -> Option<String>,
    spec: &mut ServiceSpec,
) -> Result<(), FileError> {
    crate::net::allow::AllowList::parse(&service.allow_outbound)
        .map_err(|e| at.error(&["services", name, "allow_outbound"], e.to_string()))?;
    spec.limits.outbound.clone_from(&service.allow_outbound);
    spec.image_outbound = service.allow_outbound.is_empty() && service.network_mode.is_none();
    match service.network_mode.as_deref() {
        None => {}
        Some(mode @ ("none" | "host")) => {
            if service.networks.is_some() {
                return Err(at.error(
                    &["services", name, "network_mode"],
                    format!("network_mode = \"{mode}\" cannot be combined with networks: give one or the other"),
                ));
            }
            spec.limits.network_host = mode == "host";
            return Ok(());
        }
        Some(other) => {
            return Err(at.error(
                &["services", name, "network_mode"],
                format!("network_mode {other:?}: expected \"none\" or \"host\" (to join networks, use networks = [...])"),
            ));
        }
    }
    let default = BTreeMap::from([("default".to_owned(), Default::default())]);
    let joined = service.networks.as_ref().unwrap_or(&default);
    for (network, entry) in joined {
        let Some(on_disk) = network_name(network) else {
            return Err(at.error(
                &["services", name, "networks", network],
                format!("network {network:?} is not declared: add a [networks.{network}] table"),
            ));
        };
        let mut aliases = vec![name.to_owned()];
        for alias in &entry.aliases {
            if !crate::net::network::valid_name(alias) {
                return Err(at.error(
                    &["services", name, "networks", network, "aliases"],
                    format!("invalid alias {alias:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"),
                ));
            }
            if !aliases.contains(alias) {
                aliases.push(alias.clone());
            }
        }
        spec.networks.push(crate::net::network::NetworkRequest {
            name: on_disk,
            aliases,
        });
    }
    Ok(())
}

/// The shortest duration Docker takes for a check's timing (0 means the default).
const MIN_HEALTH_DURATION: std::time::Duration = std::time::Duration::from_millis(1);

/// A service's `healthcheck` as the `--health-*` flags it stands for, each value checked
/// by their rules.
fn health_overrides(
    at: &Locator<'_>,
    name: &str,
    table: &HealthcheckTable,
) -> Result<HealthOverrides, FileError> {
    let err = |key: &str, message: String| {
        let mut error = at.error(&["services", name, "healthcheck", key], message);
        // The message names the key: the path stops at the service.
        error.key = format!("services.{name}");
        error
    };
    let duration = |key: &str, text: &Option<String>| {
        let Some(text) = text else {
            return Ok(None);
        };
        let flag = format!("healthcheck.{key}");
        let d = grammar::duration(&flag, text).map_err(|e| err(key, e.to_string()))?;
        if !d.is_zero() && d < MIN_HEALTH_DURATION {
            return Err(err(
                key,
                format!("{flag} {text}: at least 1ms (or 0 for the default)"),
            ));
        }
        Ok(Some(d))
    };
    let test = match &table.test {
        Some(test) => {
            let test = test.test();
            let check = Healthcheck {
                test: test.clone(),
                ..Healthcheck::default()
            };
            let blank = !check.is_none() && test.iter().skip(1).all(|a| a.trim().is_empty());
            if check.check().is_err() || blank {
                return Err(err(
                    "test",
                    format!(
                        "healthcheck.test {test:?}: expected [\"CMD\", program, args...], \
                         [\"CMD-SHELL\", command], [\"NONE\"] or a command line for the shell"
                    ),
                ));
            }
            Some(test)
        }
        None => None,
    };
    if let Some(0) = table.retries {
        return Err(err(
            "retries",
            "healthcheck.retries 0: expected a number of failed checks in a row, at least 1"
                .to_owned(),
        ));
    }
    let health = HealthOverrides {
        test,
        interval: duration("interval", &table.interval)?,
        timeout: duration("timeout", &table.timeout)?,
        start_period: duration("start_period", &table.start_period)?,
        start_interval: duration("start_interval", &table.start_interval)?,
        retries: table.retries,
        disable: table.disable,
    };
    if health.disable && health.any_but_disable() {
        return Err(err(
            "disable",
            "healthcheck.disable = true turns the check off: give it alone, or test and the \
             timings without it"
                .to_owned(),
        ));
    }
    Ok(health)
}

impl ServiceSpec {
    /// Whether the service's `healthcheck` turns every check off (`disable = true` or
    /// `test = ["NONE"]`): it can never be healthy.
    pub fn health_disabled(&self) -> bool {
        self.health.disable
            || self
                .health
                .test
                .as_ref()
                .is_some_and(|t| t.first().is_some_and(|k| k == "NONE"))
    }
}

/// A service's volume in `-v`'s syntax, or a tmpfs path.
enum Mount {
    Request(String),
    Tmpfs(String),
}

/// A volume entry as `-v` text: named volumes named as on disk, bind sources made
/// absolute against `dir`.
fn mount_of(
    entry: &VolumeEntry,
    dir: &Path,
    volume_name: &dyn Fn(&str) -> Option<String>,
) -> Result<Mount, String> {
    let (source, target, read_only, kind) = match entry {
        VolumeEntry::Short(text) => {
            let (rest, ro) = match text.strip_suffix(":ro") {
                Some(rest) => (rest, true),
                None => (text.strip_suffix(":rw").unwrap_or(text), false),
            };
            match rest.rsplit_once(':') {
                Some((source, target)) => (Some(source.to_owned()), target.to_owned(), ro, None),
                None => (None, rest.to_owned(), ro, None),
            }
        }
        VolumeEntry::Long(t) => (
            t.source.clone(),
            t.target.clone(),
            t.read_only,
            Some(t.kind.clone()),
        ),
    };
    let ro = if read_only { ":ro" } else { "" };
    let is_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.contains('/');
    Ok(match (kind.as_deref(), source) {
        (Some("tmpfs"), _) => Mount::Tmpfs(target),
        (Some("bind"), Some(src)) | (None, Some(src)) if is_path(&src) => {
            let abs = if Path::new(&src).is_absolute() {
                PathBuf::from(&src)
            } else {
                dir.join(&src)
            };
            Mount::Request(format!("{}:{target}{ro}", abs.display()))
        }
        (Some("volume") | None, Some(name)) => match volume_name(&name) {
            Some(on_disk) => Mount::Request(format!("{on_disk}:{target}{ro}")),
            None => {
                return Err(format!(
                    "volume {name} is not declared: add [volumes.{name}] to the file"
                ));
            }
        },
        (Some("volume") | None, None) => Mount::Request(format!("{target}{ro}")),
        (Some(other), _) => {
            return Err(format!(
                "unknown volume type '{other}' (bind, volume or tmpfs)"
            ));
        }
    })
}
