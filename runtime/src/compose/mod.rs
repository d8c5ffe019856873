//! Compose: several services from one TOML file (`compose.toml`). The file is read
//! and checked ([`file`]), variables substituted ([`interpolate`]), every service's
//! values parsed by the rules of `capsule create`'s flags when it is loaded
//! ([`model`], errors at file:line:column), and [`up`] does what `up`, `down`, `stop`
//! and `run` do to the project's containers, for the binary and the SDK alike. Each
//! service becomes a container named `PROJECT-SERVICE-1`, labelled with its project,
//! its service and a hash of its configuration — the labels Docker Compose uses — so
//! `ps` and `down` find a project's containers after the file changed, and `up`
//! recreates only the services whose configuration changed.

pub mod file;
pub mod interpolate;
pub mod model;
pub mod up;

use file::{ComposeFile, Condition, FileError, NetworkDef, Service};
use model::ServiceSpec;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The label naming a container's project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label naming a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The label holding the hash of the service's configuration.
pub const HASH_LABEL: &str = "com.docker.compose.config-hash";

/// Errors loading or planning a project.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(
        "{path}: cannot read the compose file: {source} (give one with -f, or create compose.toml)"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{file}: services.{service}: {message}")]
    Service {
        file: String,
        service: String,
        message: String,
    },
    #[error("{file}: the services depend on each other in a cycle: {}", cycle.join(" -> "))]
    Cycle { file: String, cycle: Vec<String> },
    #[error(
        "{file}: no services: a compose file needs at least one [services.NAME] table with an image or a build"
    )]
    NoServices { file: String },
    #[error("no such service: {0} (the compose file's services: {1})")]
    UnknownService(String, String),
    #[error(
        "{file}: volume {name} is external but there is no volume {name}: create it first (capsule volume create {name}), or drop external = true to let compose create it"
    )]
    ExternalMissing { file: String, name: String },
    #[error(
        "{file}: network {name} is external but there is no network {name}: create it first (capsule network create {name}), or drop external = true to let compose create it"
    )]
    ExternalNetworkMissing { file: String, name: String },
    #[error(transparent)]
    Network(#[from] crate::net::network::NetworkError),
    // The causes are part of the one line (not `#[source]`, which would print them
    // twice).
    #[error("{file}: services.{service}: {error}")]
    Bind {
        file: String,
        service: String,
        error: crate::spec::SpecError,
    },
    #[error("cannot lock project {project}: {error}")]
    Lock {
        project: String,
        error: std::io::Error,
    },
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error(
        "invalid project name '{0}': use lowercase letters, digits, '_' and '-', starting with a letter or digit (-p NAME)"
    )]
    ProjectName(String),
}

/// A project's lock, held until dropped.
#[derive(Debug)]
pub struct ProjectLock(#[allow(dead_code)] std::fs::File);

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// The directory of the compose file (relative paths are relative to it).
    pub dir: PathBuf,
    pub path: PathBuf,
    /// The file as written (variables substituted).
    pub file: ComposeFile,
    /// Each service, checked: what its container is made with.
    pub services: BTreeMap<String, ServiceSpec>,
    /// What Compose warns of while reading the file (variables that are not set).
    pub warnings: Vec<String>,
}

/// Compose's normalisation of a directory name into a project name.
fn normalise(name: &str) -> String {
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect::<String>()
        .trim_start_matches(['_', '-'])
        .to_owned()
}

fn valid_project(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

impl Project {
    /// Reads the compose file at `path`; the project is named `project`, else the
    /// file's `name`, else its directory's name.
    ///
    /// # Errors
    /// [`ComposeError`].
    pub fn load(path: &Path, project: Option<&str>) -> Result<Self, ComposeError> {
        let text = crate::ambient::read_text(path).map_err(|source| ComposeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let dir = crate::ambient::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("."));
        let vars = file::variables(&dir);
        let mut unset = BTreeSet::new();
        let file = file::parse_noting(path, &text, &vars, &mut unset)?;
        let name = match (project, &file.name) {
            (Some(p), _) => p.to_owned(),
            (None, Some(n)) => n.clone(),
            (None, None) => normalise(
                &dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        };
        if !valid_project(&name) {
            return Err(ComposeError::ProjectName(name));
        }
        let mut project = Self {
            name,
            dir,
            path: path.to_owned(),
            file,
            services: BTreeMap::new(),
            warnings: unset
                .into_iter()
                .map(|v| format!("the {v} variable is not set: it is read as an empty string"))
                .collect(),
        };
        project.check()?;
        project.services = project.specs(&model::Locator::new(path, &text))?;
        Ok(project)
    }

    /// Every service checked by the rules of `capsule create`'s flags, and the
    /// declared volumes' names.
    fn specs(
        &self,
        at: &model::Locator<'_>,
    ) -> Result<BTreeMap<String, ServiceSpec>, ComposeError> {
        for name in self.file.volumes.keys() {
            let on_disk = self.volume_name(name);
            if !crate::spec::valid_volume_name(&on_disk) {
                return Err(at
                    .error(&["volumes", name], crate::spec::volume_name_rule(&on_disk))
                    .into());
            }
        }
        let volume_name = |name: &str| {
            self.file
                .volumes
                .contains_key(name)
                .then(|| self.volume_name(name))
        };
        for (name, def) in &self.file.networks {
            let on_disk = self.network_name(name);
            if !crate::net::network::valid_name(&on_disk)
                || crate::net::network::PREDEFINED.contains(&on_disk.as_str())
            {
                return Err(at
                    .error(
                        &["networks", name],
                        format!("network name {on_disk:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit (none and host are Docker's modes: network_mode = \"none\")"),
                    )
                    .into());
            }
            if let Some(driver) = &def.driver
                && !matches!(driver.as_str(), "loopback" | "bridge")
            {
                return Err(at
                    .error(
                        &["networks", name, "driver"],
                        format!("driver {driver:?}: Capsule's networks use the loopback driver (bridge is accepted as its name)"),
                    )
                    .into());
            }
        }
        let network_name = |name: &str| {
            (name == "default" || self.file.networks.contains_key(name))
                .then(|| self.network_name(name))
        };
        let mut out = BTreeMap::new();
        for (name, service) in &self.file.services {
            let spec =
                model::service_spec(at, name, service, &self.dir, &volume_name, &network_name)?;
            out.insert(name.clone(), spec);
        }
        // A dependency that must be healthy needs a check; whether its image has one is
        // known when `up` finds the image, a file that turns it off is known now.
        for (name, service) in &self.file.services {
            for (dep, d) in &service.depends_on {
                if d.condition == Condition::Healthy
                    && out.get(dep).is_some_and(ServiceSpec::health_disabled)
                {
                    return Err(at
                        .error(
                            &["services", name, "depends_on", dep, "condition"],
                            format!(
                                "{dep} must be healthy first, but its healthcheck is turned off \
                                 (disable = true or test = [\"NONE\"]), so it never will be: \
                                 give {dep} a check, or use condition = \"service_started\""
                            ),
                        )
                        .into());
                }
            }
        }
        Ok(out)
    }

    fn service_error(&self, service: &str, message: impl Into<String>) -> ComposeError {
        ComposeError::Service {
            file: self.path.display().to_string(),
            service: service.to_owned(),
            message: message.into(),
        }
    }

    /// The rules serde cannot say: an image or a build for each service, known
    /// dependencies, no cycle.
    fn check(&self) -> Result<(), ComposeError> {
        if self.file.services.is_empty() {
            return Err(ComposeError::NoServices {
                file: self.path.display().to_string(),
            });
        }
        for (name, service) in &self.file.services {
            if service.image.is_none() && service.build.is_none() {
                return Err(self.service_error(name, "needs image or build"));
            }
            if !crate::container::valid_name(&format!("{}-{name}-1", self.name)) {
                return Err(
                    self.service_error(name, "service names use letters, digits, '_', '.' and '-'")
                );
            }
            for dep in service.depends_on.keys() {
                if !self.file.services.contains_key(dep) {
                    return Err(self.service_error(
                        name,
                        format!("depends_on names {dep}, which is not a service of the file"),
                    ));
                }
            }
        }
        self.order(&[]).map(|_| ())
    }

    /// The services to act on, dependencies first: `only` and what they depend on
    /// (every service when empty).
    ///
    /// # Errors
    /// [`ComposeError::UnknownService`], [`ComposeError::Cycle`].
    pub fn order(&self, only: &[String]) -> Result<Vec<String>, ComposeError> {
        for name in only {
            if !self.file.services.contains_key(name) {
                return Err(ComposeError::UnknownService(
                    name.clone(),
                    self.services_list(),
                ));
            }
        }
        let roots: Vec<String> = if only.is_empty() {
            self.file.services.keys().cloned().collect()
        } else {
            only.to_vec()
        };
        let mut done = BTreeSet::new();
        let mut out = Vec::new();
        for root in roots {
            let mut path = Vec::new();
            self.visit(&root, &mut path, &mut done, &mut out)?;
        }
        Ok(out)
    }

    fn visit(
        &self,
        name: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) -> Result<(), ComposeError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(i) = path.iter().position(|p| p == name) {
            let mut cycle = path[i..].to_vec();
            cycle.push(name.to_owned());
            return Err(ComposeError::Cycle {
                file: self.path.display().to_string(),
                cycle,
            });
        }
        path.push(name.to_owned());
        if let Some(service) = self.file.services.get(name) {
            for dep in service.depends_on.keys() {
                self.visit(dep, path, done, out)?;
            }
        }
        path.pop();
        done.insert(name.to_owned());
        out.push(name.to_owned());
        Ok(())
    }

    /// The file's services, for messages: `a, b, c`.
    pub fn services_list(&self) -> String {
        self.file
            .services
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The container of a service.
    pub fn container_name(&self, service: &str) -> String {
        format!("{}-{service}-1", self.name)
    }

    /// The image a service runs: its `image`, or `PROJECT-SERVICE` when it is built.
    pub fn image_of(&self, service: &str) -> String {
        match self
            .file
            .services
            .get(service)
            .and_then(|s| s.image.clone())
        {
            Some(image) => image,
            None => format!("{}-{service}", self.name),
        }
    }

    /// A volume of the file as it is named on disk (`PROJECT_NAME`, or the name
    /// itself when external).
    pub fn volume_name(&self, name: &str) -> String {
        match self.file.volumes.get(name) {
            Some(def) if def.external => name.to_owned(),
            _ => format!("{}_{name}", self.name),
        }
    }

    /// A network of the file as it is named on disk: `name`, or the name itself when
    /// external, else `PROJECT_NAME` (`PROJECT_default` for the default network).
    pub fn network_name(&self, name: &str) -> String {
        match self.file.networks.get(name) {
            Some(NetworkDef {
                name: Some(named), ..
            }) => named.clone(),
            Some(def) if def.external => name.to_owned(),
            _ => format!("{}_{name}", self.name),
        }
    }

    /// The networks the project makes (`up`): those of the file (`default` among them)
    /// that are not external and that a service joins, each as (its key in the file,
    /// its name on disk).
    pub fn own_networks(&self) -> Vec<(String, String)> {
        let keys = std::iter::once("default").chain(
            self.file
                .networks
                .iter()
                .filter(|(_, def)| !def.external)
                .map(|(key, _)| key.as_str()),
        );
        let mut out: Vec<(String, String)> = Vec::new();
        for key in keys {
            let on_disk = self.network_name(key);
            let joined = self
                .services
                .values()
                .any(|spec| spec.networks.iter().any(|n| n.name == on_disk));
            if joined && !out.iter().any(|(_, name)| *name == on_disk) {
                out.push((key.to_owned(), on_disk));
            }
        }
        out
    }

    /// What `services` (and what they depend on; every service when empty) need of
    /// the host before anything is created or removed: each external volume exists,
    /// each bind mount's host directory is one.
    ///
    /// # Errors
    /// [`ComposeError::ExternalMissing`], [`ComposeError::Bind`], and as
    /// [`Project::order`].
    pub fn check_host(
        &self,
        home: &crate::home::Home,
        services: &[String],
    ) -> Result<(), ComposeError> {
        let file = self.path.display().to_string();
        let order = self.order(services)?;
        let mut volumes = None;
        for (name, def) in &self.file.volumes {
            if !def.external {
                continue;
            }
            let used = order.iter().filter_map(|s| self.spec(s)).any(|s| {
                s.mounts
                    .iter()
                    .any(|m| m.source == crate::spec::MountSource::Volume(Some(name.clone())))
            });
            if !used {
                continue;
            }
            let store = match &volumes {
                Some(store) => store,
                None => volumes.insert(crate::volume::Volumes::open(home)?),
            };
            match store.get(name) {
                Ok(_) => {}
                Err(crate::volume::VolumeError::NotFound(_)) => {
                    return Err(ComposeError::ExternalMissing {
                        file,
                        name: name.clone(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        let external: Vec<String> = self
            .file
            .networks
            .iter()
            .filter(|(_, def)| def.external)
            .map(|(name, _)| self.network_name(name))
            .filter(|on_disk| {
                order
                    .iter()
                    .filter_map(|s| self.spec(s))
                    .any(|s| s.networks.iter().any(|n| &n.name == on_disk))
            })
            .collect();
        if !external.is_empty() {
            let networks = crate::net::network::Networks::open(home)?;
            for name in external {
                match networks.get(&name) {
                    Ok(_) => {}
                    Err(crate::net::network::NetworkError::NotFound(_)) => {
                        return Err(ComposeError::ExternalNetworkMissing { file, name });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        for service in &order {
            if let Some(spec) = self.spec(service) {
                crate::container::volumes::check_binds(&spec.mounts).map_err(|error| {
                    ComposeError::Bind {
                        file: file.clone(),
                        service: service.clone(),
                        error,
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Takes the project's lock (waiting for it): `up`, `down` and `run` change a
    /// project's containers under it, so that two at once do not race.
    ///
    /// # Errors
    /// [`ComposeError::Lock`].
    pub fn lock(&self, home: &crate::home::Home) -> Result<ProjectLock, ComposeError> {
        let fail = |error| ComposeError::Lock {
            project: self.name.clone(),
            error,
        };
        let dir =
            crate::ambient::create_and_open_dir(&home.root().join("compose")).map_err(fail)?;
        crate::store::lock_exclusive(&dir, format!("{}.lock", self.name))
            .map(ProjectLock)
            .map_err(fail)
    }

    /// A hash of everything that makes a service's container: its configuration and
    /// the image ID it would run. `up` recreates a container whose hash changed.
    pub fn config_hash(&self, service: &str, image_id: &str) -> String {
        let mut hasher = Sha256::new();
        if let Some(s) = self.file.services.get(service) {
            hasher.update(serde_json::to_vec(s).unwrap_or_default());
        }
        // The networks it joins (the default one is not in the file).
        for network in self.spec(service).iter().flat_map(|s| &s.networks) {
            hasher.update(b"network ");
            hasher.update(network.name.as_bytes());
        }
        hasher.update(image_id.as_bytes());
        hasher.update(self.name.as_bytes());
        hasher
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The service, if the file has it.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.file.services.get(name)
    }

    /// The service as checked: what its container is made with.
    pub fn spec(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.get(name)
    }

    /// The dependencies of a service and what each must reach first.
    pub fn dependencies(&self, name: &str) -> BTreeMap<String, Condition> {
        self.file
            .services
            .get(name)
            .map(|s| {
                s.depends_on
                    .iter()
                    .map(|(k, d)| (k.clone(), d.condition))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Result<Project, ComposeError> {
        let file = file::parse(Path::new("compose.toml"), text, &BTreeMap::new())?;
        let mut p = Project {
            name: "demo".into(),
            dir: PathBuf::from("/srv/demo"),
            path: PathBuf::from("compose.toml"),
            file,
            services: BTreeMap::new(),
            warnings: Vec::new(),
        };
        p.check()?;
        p.services = p.specs(&model::Locator::new(Path::new("compose.toml"), text))?;
        Ok(p)
    }

    #[test]
    fn dependencies_come_first_and_cycles_are_named() {
        let p = project(
            "[services.api]\nimage = \"a\"\ndepends_on = { db = {}, loader = { condition = \"completed_successfully\" } }\n[services.db]\nimage = \"d\"\n[services.loader]\nimage = \"l\"\ndepends_on = { db = {} }\n",
        )
        .expect("loads");
        assert_eq!(p.order(&[]).expect("order"), ["db", "loader", "api"]);
        assert_eq!(
            p.order(&["loader".into()]).expect("order"),
            ["db", "loader"]
        );
        let e = project(
            "[services.a]\nimage = \"x\"\ndepends_on = { b = {} }\n[services.b]\nimage = \"x\"\ndepends_on = { a = {} }\n",
        )
        .expect_err("cycle");
        assert!(e.to_string().contains("a -> b -> a"), "{e}");
        let e = project("[services.a]\nimage = \"x\"\ndepends_on = { nope = {} }\n")
            .expect_err("unknown");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = project("[services.a]\n").expect_err("no image");
        assert!(e.to_string().contains("needs image or build"), "{e}");
    }

    #[test]
    fn healthchecks_are_the_health_flags_and_service_healthy_needs_one() {
        use crate::container::health::HealthOverrides;
        use std::time::Duration;
        let p = project(
            "[services.db]\nimage = \"d\"\nhealthcheck = { test = [\"CMD\", \"/check.wasm\", \"-q\"], interval = \"200ms\", timeout = \"2s\", start_period = \"0s\", start_interval = \"1s\", retries = 3, disable = false }\n\
             [services.sh]\nimage = \"d\"\nhealthcheck = { test = \"curl -f http://localhost/ || exit 1\" }\n\
             [services.off]\nimage = \"d\"\nhealthcheck = { disable = true }\n\
             [services.none]\nimage = \"d\"\nhealthcheck = { test = [\"NONE\"] }\n\
             [services.tuned]\nimage = \"d\"\nhealthcheck = { retries = 5 }\n\
             [services.api]\nimage = \"a\"\ndepends_on = { db = { condition = \"service_healthy\" }, tuned = { condition = \"healthy\" } }\n",
        )
        .expect("loads");
        assert_eq!(
            p.spec("db").expect("db").health,
            HealthOverrides {
                test: Some(vec!["CMD".into(), "/check.wasm".into(), "-q".into()]),
                interval: Some(Duration::from_millis(200)),
                timeout: Some(Duration::from_secs(2)),
                start_period: Some(Duration::ZERO),
                start_interval: Some(Duration::from_secs(1)),
                retries: Some(3),
                disable: false,
            }
        );
        assert_eq!(
            p.spec("sh").expect("sh").health.test,
            Some(vec![
                "CMD-SHELL".into(),
                "curl -f http://localhost/ || exit 1".into()
            ])
        );
        for name in ["off", "none"] {
            let spec = p.spec(name).expect(name);
            assert!(spec.health_disabled(), "{name}");
            assert_eq!(spec.health.apply(None).expect("valid"), None, "{name}");
        }
        assert!(!p.spec("tuned").expect("tuned").health_disabled());
        assert_eq!(
            p.dependencies("api").into_iter().collect::<Vec<_>>(),
            [
                ("db".to_owned(), Condition::Healthy),
                ("tuned".to_owned(), Condition::Healthy)
            ]
        );
        // A dependency that can never be healthy is refused where the condition is.
        for off in ["disable = true", "test = [\"NONE\"]"] {
            let e = project(&format!(
                "[services.api]\nimage = \"a\"\ndepends_on = {{ db = {{ condition = \"service_healthy\" }} }}\n\
                 [services.db]\nimage = \"d\"\nhealthcheck = {{ {off} }}\n"
            ))
            .expect_err(off);
            let text = e.to_string();
            assert!(
                text.starts_with(
                    "compose.toml:3:35: services.api.depends_on.db.condition: db must be healthy \
                     first, but its healthcheck is turned off"
                ),
                "{off}: {text}"
            );
        }
    }

    #[test]
    fn the_project_makes_the_networks_its_services_join_but_not_external_ones() {
        let p = project(
            "[services.a]\nimage = \"x\"\n[services.b]\nimage = \"x\"\nnetworks = [\"back\", \"shared\", \"idle\"]\n\
             [networks.back]\nname = \"custom\"\n[networks.shared]\nexternal = true\n[networks.idle]\n",
        )
        .expect("valid");
        assert_eq!(
            p.own_networks(),
            [
                ("default".to_owned(), "demo_default".to_owned()),
                ("back".to_owned(), "custom".to_owned()),
                ("idle".to_owned(), "demo_idle".to_owned()),
            ]
        );
        let b: Vec<&str> = p
            .spec("b")
            .expect("b")
            .networks
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(b, ["custom", "demo_idle", "shared"]);
    }

    #[test]
    fn volumes_are_prefixed_and_paths_made_absolute() {
        use crate::spec::MountSource;
        let p = project(
            "[services.a]\nimage = \"x\"\nvolumes = [\"books:/data:ro\", \"./conf:/conf\", { type = \"tmpfs\", target = \"/cache\" }, \"/anon\"]\n[volumes.books]\n",
        )
        .expect("loads");
        let a = p.spec("a").expect("a");
        let sources: Vec<(&MountSource, &str, bool)> = a
            .mounts
            .iter()
            .map(|m| (&m.source, m.guest.as_str(), m.read_only))
            .collect();
        assert_eq!(
            sources,
            [
                (
                    &MountSource::Volume(Some("demo_books".into())),
                    "/data",
                    true
                ),
                (
                    &MountSource::Bind("/srv/demo/./conf".into()),
                    "/conf",
                    false
                ),
                (&MountSource::Volume(None), "/anon", false),
            ]
        );
        assert_eq!(a.tmpfs.len(), 1);
        assert_eq!(a.tmpfs[0].guest.as_str(), "/cache");
        let e = project("[services.a]\nimage = \"x\"\nvolumes = [\"undeclared:/d\"]\n")
            .expect_err("undeclared");
        assert!(
            e.to_string()
                .contains("compose.toml:3:12: services.a.volumes.0"),
            "{e}"
        );
        assert_eq!(normalise("My App_1"), "myapp_1");
    }

    #[test]
    fn every_value_is_checked_at_load_time_where_it_is() {
        let cases = [
            (
                "memory = \"1q\"",
                "3:10",
                "services.a",
                "memory: invalid size '1q'",
            ),
            (
                "memory = \"1k\"",
                "3:10",
                "services.a",
                "memory 1k is too small",
            ),
            (
                "timeout = \"0s\"",
                "3:11",
                "services.a",
                "timeout must be more than zero",
            ),
            (
                "stop_grace_period = \"18446744073709551615\"",
                "3:21",
                "services.a",
                "stop_grace_period 18446744073709551615: too long",
            ),
            (
                "storage = \"0\"",
                "3:11",
                "services.a",
                "storage 0: invalid size '0'",
            ),
            ("fuel = 0", "3:8", "services.a", "fuel: invalid amount '0'"),
            ("nofile = 0", "3:10", "services.a", "nofile 0: expected"),
            (
                "ports = [\"80\", \"70000:80\"]",
                "3:16",
                "services.a.ports.1",
                "70000",
            ),
            (
                "restart = \"sometimes\"",
                "3:11",
                "services.a.restart",
                "invalid restart policy",
            ),
            (
                "working_dir = \"app\"",
                "3:15",
                "services.a.working_dir",
                "must be absolute",
            ),
            (
                "volumes = [\"/d\", \"/d\"]",
                "3:11",
                "services.a.volumes",
                "both mount /d",
            ),
        ];
        let health = [
            (
                "healthcheck = { test = [\"CMD\"] }",
                "3:24",
                "services.a",
                "healthcheck.test [\"CMD\"]: expected [\"CMD\", program, args...]",
            ),
            (
                "healthcheck = { test = [\"CURL\", \"-f\"] }",
                "3:24",
                "services.a",
                "healthcheck.test",
            ),
            (
                "healthcheck = { test = \" \" }",
                "3:24",
                "services.a",
                "healthcheck.test",
            ),
            (
                "healthcheck = { test = [\"NONE\", \"x\"] }",
                "3:24",
                "services.a",
                "healthcheck.test",
            ),
            (
                "healthcheck = { interval = \"soon\" }",
                "3:28",
                "services.a",
                "healthcheck.interval: invalid duration 'soon'",
            ),
            (
                "healthcheck = { start_period = \"5ns\" }",
                "3:32",
                "services.a",
                "healthcheck.start_period 5ns: at least 1ms (or 0 for the default)",
            ),
            (
                "healthcheck = { retries = 0 }",
                "3:27",
                "services.a",
                "healthcheck.retries 0: expected a number of failed checks in a row, at least 1",
            ),
            (
                "healthcheck = { disable = true, interval = \"1s\" }",
                "3:27",
                "services.a",
                "healthcheck.disable = true turns the check off",
            ),
        ];
        for (line, at, key, needle) in cases.into_iter().chain(health) {
            let e = project(&format!("[services.a]\nimage = \"x\"\n{line}\n")).expect_err(line);
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("compose.toml:{at}: {key}: ")),
                "{line}: {text}"
            );
            assert!(text.contains(needle), "{line}: {text}");
        }
        let e = project("[services.a]\nimage = \"x\"\n[volumes.\"../x\"]\n").expect_err("name");
        assert!(
            e.to_string().contains("invalid volume name 'demo_../x'"),
            "{e}"
        );
        for empty in ["", "name = \"x\"\n"] {
            let e = project(empty).expect_err("no services");
            assert!(e.to_string().contains("no services"), "{e}");
        }
    }
}
