//! Compose: several services from one TOML file (`compose.toml`). The file is read
//! and checked ([`file`]), variables substituted ([`interpolate`]), and each service
//! becomes a container named `PROJECT-SERVICE-1`, labelled with its project, its
//! service and a hash of its configuration — the labels Docker Compose uses — so `ps`
//! and `down` find a project's containers after the file changed, and `up` recreates
//! only the services whose configuration changed.

pub mod file;
pub mod interpolate;

use file::{ComposeFile, Condition, FileError, Service, VolumeEntry};
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
    #[error("no such service: {0} (the compose file's services: {1})")]
    UnknownService(String, String),
    #[error(
        "invalid project name '{0}': use lowercase letters, digits, '_' and '-', starting with a letter or digit (-p NAME)"
    )]
    ProjectName(String),
}

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// The directory of the compose file (relative paths are relative to it).
    pub dir: PathBuf,
    pub path: PathBuf,
    pub file: ComposeFile,
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
        let file = file::parse(path, &text, &vars)?;
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
        let project = Self {
            name,
            dir,
            path: path.to_owned(),
            file,
        };
        project.check()?;
        Ok(project)
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
                    self.file
                        .services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
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

    /// A service's volumes in `-v`/`--mount` syntax: the file's named volumes
    /// prefixed with the project, bind sources made absolute against the file's
    /// directory.
    ///
    /// # Errors
    /// A volume that names an undeclared named volume.
    pub fn mounts_of(&self, service: &str) -> Result<Vec<MountFlag>, ComposeError> {
        let Some(s) = self.file.services.get(service) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in &s.volumes {
            let (source, target, read_only, kind) = match entry {
                VolumeEntry::Short(text) => {
                    let (rest, ro) = match text.strip_suffix(":ro") {
                        Some(rest) => (rest, true),
                        None => (text.strip_suffix(":rw").unwrap_or(text), false),
                    };
                    match rest.rsplit_once(':') {
                        Some((source, target)) => {
                            (Some(source.to_owned()), target.to_owned(), ro, None)
                        }
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
            let is_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.contains('/');
            let flag = match (kind.as_deref(), source) {
                (Some("tmpfs"), _) => MountFlag::Tmpfs(target),
                (Some("bind"), Some(src)) | (None, Some(src)) if is_path(&src) => {
                    let abs = if Path::new(&src).is_absolute() {
                        PathBuf::from(&src)
                    } else {
                        self.dir.join(&src)
                    };
                    MountFlag::Volume(format!(
                        "{}:{target}{}",
                        abs.display(),
                        if read_only { ":ro" } else { "" }
                    ))
                }
                (Some("volume") | None, Some(name)) => {
                    if !self.file.volumes.contains_key(&name) {
                        return Err(self.service_error(
                            service,
                            format!(
                                "volume {name} is not declared: add [volumes.{name}] to the file"
                            ),
                        ));
                    }
                    MountFlag::Volume(format!(
                        "{}:{target}{}",
                        self.volume_name(&name),
                        if read_only { ":ro" } else { "" }
                    ))
                }
                (Some("volume") | None, None) => MountFlag::Volume(target),
                (Some(other), _) => {
                    return Err(self.service_error(
                        service,
                        format!("unknown volume type '{other}' (bind, volume or tmpfs)"),
                    ));
                }
            };
            out.push(flag);
        }
        Ok(out)
    }

    /// A hash of everything that makes a service's container: its configuration and
    /// the image ID it would run. `up` recreates a container whose hash changed.
    pub fn config_hash(&self, service: &str, image_id: &str) -> String {
        let mut hasher = Sha256::new();
        if let Some(s) = self.file.services.get(service) {
            hasher.update(serde_json::to_vec(s).unwrap_or_default());
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

/// A mount in the CLI's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountFlag {
    /// `-v` text.
    Volume(String),
    /// `--tmpfs` path.
    Tmpfs(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Result<Project, ComposeError> {
        let file = file::parse(Path::new("compose.toml"), text, &BTreeMap::new())?;
        let p = Project {
            name: "demo".into(),
            dir: PathBuf::from("/srv/demo"),
            path: PathBuf::from("compose.toml"),
            file,
        };
        p.check()?;
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
    fn volumes_are_prefixed_and_paths_made_absolute() {
        let p = project(
            "[services.a]\nimage = \"x\"\nvolumes = [\"books:/data:ro\", \"./conf:/conf\", { type = \"tmpfs\", target = \"/cache\" }, \"/anon\"]\n[volumes.books]\n",
        )
        .expect("loads");
        assert_eq!(
            p.mounts_of("a").expect("mounts"),
            [
                MountFlag::Volume("demo_books:/data:ro".into()),
                MountFlag::Volume("/srv/demo/./conf:/conf".into()),
                MountFlag::Tmpfs("/cache".into()),
                MountFlag::Volume("/anon".into()),
            ]
        );
        let p =
            project("[services.a]\nimage = \"x\"\nvolumes = [\"undeclared:/d\"]\n").expect("loads");
        assert!(p.mounts_of("a").is_err());
        assert_eq!(normalise("My App_1"), "myapp_1");
    }
}
