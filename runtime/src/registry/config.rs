//! Capsule's registry settings and credentials: a `config.json` in Docker's format.
//!
//! The file is `$CAPSULE_CONFIG/config.json` when `CAPSULE_CONFIG` is set, else
//! `config.json` in the Capsule home. Docker's keys mean what they mean to Docker:
//! `auths` (`{"HOST": {"auth": base64("user:password")}}`), `credHelpers` and
//! `credsStore` (external `docker-credential-NAME` programs). Capsule adds two keys
//! Docker ignores: `insecureRegistries` (hosts that may be spoken to in plain HTTP)
//! and `defaultRegistry` (where unqualified names go; none by default). Other keys are
//! kept as they are when Capsule rewrites the file. It is written atomically with
//! mode 0600, under a lock, since it holds passwords.
//!
//! Credentials are looked up in Docker's order: the registry's `credHelpers` entry,
//! then `credsStore`, then `auths`; first in Capsule's file, then in Docker's own
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, read only), so that a
//! `docker login` is honoured. `login` always writes to Capsule's file.
//!
//! TLS roots for a registry with its own certificate authority are read, as Docker
//! reads `/etc/docker/certs.d`, from `certs.d/HOST[:PORT]/*.crt` beside the file.

use super::name::credential_key;
use base64::Engine as _;
use cap_std::fs::Dir;
use serde_json::{Map, Value};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the directory of Capsule's `config.json`.
pub const CONFIG_ENV: &str = "CAPSULE_CONFIG";
/// Environment variable naming the default registry for unqualified names.
pub const DEFAULT_REGISTRY_ENV: &str = "CAPSULE_DEFAULT_REGISTRY";
/// Environment variable listing insecure registries (comma-separated).
pub const INSECURE_ENV: &str = "CAPSULE_INSECURE_REGISTRIES";
const FILE: &str = "config.json";
const LOCK: &str = "config.lock";

/// A username and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Errors reading or writing the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{} is not valid JSON ({source}): fix or remove it", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper} failed: {reason}")]
    Helper { helper: String, reason: String },
}

/// Capsule's config file and the settings it holds.
#[derive(Debug)]
pub struct Config {
    dir: PathBuf,
    doc: Map<String, Value>,
}

impl Config {
    /// Where Capsule's config lives for a home: `$CAPSULE_CONFIG`, else the home.
    pub fn dir_for(home: &crate::home::Home) -> PathBuf {
        match crate::ambient::host_env(CONFIG_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => home.root().to_owned(),
        }
    }

    /// Reads the config in `dir` (empty when there is no file).
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or is not a JSON object.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let doc = read_doc(&dir.join(FILE))?.unwrap_or_default();
        Ok(Self {
            dir: dir.to_owned(),
            doc,
        })
    }

    /// The config file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The default registry for unqualified names: `CAPSULE_DEFAULT_REGISTRY`, else
    /// `defaultRegistry`; none by default.
    pub fn default_registry(&self) -> Option<String> {
        crate::ambient::host_env(DEFAULT_REGISTRY_ENV)
            .filter(|r| !r.is_empty())
            .or_else(|| self.doc.get("defaultRegistry")?.as_str().map(str::to_owned))
            .filter(|r| !r.is_empty())
    }

    /// Registries configured as insecure (plain HTTP allowed): `insecureRegistries`
    /// and `CAPSULE_INSECURE_REGISTRIES`.
    pub fn insecure_registries(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .doc
            .get("insecureRegistries")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(env) = crate::ambient::host_env(INSECURE_ENV) {
            out.extend(
                env.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
        out
    }

    /// PEM certificates trusted for `registry` (`certs.d/REGISTRY/*.crt`).
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the directory exists but cannot be read.
    pub fn registry_certificates(&self, registry: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
        let dir = self.dir.join("certs.d").join(registry);
        let io_err = |what| {
            let path = dir.clone();
            move |source| ConfigError::Io { path, what, source }
        };
        let handle = match crate::ambient::open_dir(&dir) {
            Ok(handle) => handle,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot open the certificate directory")(e)),
        };
        let mut names: Vec<String> = handle
            .entries()
            .map_err(io_err("cannot list the certificate directory"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".crt"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| handle.read(n).map_err(io_err("cannot read a certificate")))
            .collect()
    }

    /// The credentials for `registry`, in Docker's lookup order (see the module doc).
    ///
    /// # Errors
    /// [`ConfigError`] when Docker's file is unreadable or a helper fails.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, ConfigError> {
        if let Some(found) = lookup(&self.doc, &self.path(), registry)? {
            return Ok(Some(found));
        }
        let docker = crate::ambient::host_env("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                crate::ambient::host_env("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| Path::new(&h).join(".docker"))
            });
        let Some(docker) = docker else {
            return Ok(None);
        };
        let path = docker.join(FILE);
        if path == self.path() {
            return Ok(None);
        }
        match read_doc(&path)? {
            Some(doc) => lookup(&doc, &path, registry),
            None => Ok(None),
        }
    }

    /// Stores credentials for `registry` in `auths` (Capsule's file).
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be written.
    pub fn store_credentials(
        &mut self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), ConfigError> {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.username, credentials.password));
        let key = credential_key(registry);
        self.update(move |doc| {
            let auths = doc
                .entry("auths")
                .or_insert_with(|| Value::Object(Map::new()));
            if !auths.is_object() {
                *auths = Value::Object(Map::new());
            }
            if let Some(auths) = auths.as_object_mut() {
                auths.insert(key, serde_json::json!({ "auth": auth }));
            }
            true
        })
    }

    /// Removes the credentials stored for `registry`; whether there were any.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be written.
    pub fn remove_credentials(&mut self, registry: &str) -> Result<bool, ConfigError> {
        let key = credential_key(registry);
        let mut removed = false;
        self.update(|doc| {
            removed = doc
                .get_mut("auths")
                .and_then(Value::as_object_mut)
                .and_then(|auths| auths.remove(&key))
                .is_some();
            removed
        })?;
        Ok(removed)
    }

    /// Re-reads the file under the lock, applies `change` and writes it back (0600)
    /// when `change` says it changed something.
    fn update(
        &mut self,
        change: impl FnOnce(&mut Map<String, Value>) -> bool,
    ) -> Result<(), ConfigError> {
        let path = self.path();
        let io_err = |what| {
            let path = path.clone();
            move |source| ConfigError::Io { path, what, source }
        };
        let dir = crate::ambient::create_and_open_dir(&self.dir)
            .map_err(io_err("cannot create the config directory"))?;
        let lock = open_lock(&dir).map_err(io_err("cannot open config.lock"))?;
        lock.lock().map_err(io_err("cannot lock config.lock"))?;
        let mut doc = read_doc(&path)?.unwrap_or_default();
        if change(&mut doc) {
            let mut text = serde_json::to_vec_pretty(&doc).map_err(|source| ConfigError::Json {
                path: path.clone(),
                source,
            })?;
            text.push(b'\n');
            write_private(&dir, FILE, &text).map_err(io_err("cannot write"))?;
        }
        let _ = lock.unlock();
        self.doc = doc;
        Ok(())
    }
}

fn open_lock(dir: &Dir) -> io::Result<std::fs::File> {
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
    dir.open_with(LOCK, &options)
        .map(cap_std::fs::File::into_std)
}

/// Writes `name` in `dir` atomically, readable by its owner only.
fn write_private(dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!(".{name}-{}.tmp", std::process::id());
    let result = (|| {
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = dir.open_with(&tmp, &options)?;
        #[cfg(unix)]
        {
            // A file left by an earlier run keeps its mode through `truncate`.
            use cap_std::fs::PermissionsExt;
            file.set_permissions(cap_std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        dir.rename(&tmp, dir, name)
    })();
    if result.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    result
}

/// Reads a config file: `None` when it does not exist.
fn read_doc(path: &Path) -> Result<Option<Map<String, Value>>, ConfigError> {
    let bytes = match crate::ambient::read_file(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_owned(),
                what: "cannot read",
                source,
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ConfigError::Invalid {
            path: path.to_owned(),
            reason: "it is not a JSON object".to_owned(),
        }),
        Err(source) => Err(ConfigError::Json {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Docker's order within one file: `credHelpers`, `credsStore`, `auths`.
fn lookup(
    doc: &Map<String, Value>,
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, ConfigError> {
    let key = credential_key(registry);
    let helper = doc
        .get("credHelpers")
        .and_then(|h| h.get(&key).or_else(|| h.get(registry)))
        .or_else(|| doc.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty());
    if let Some(helper) = helper {
        return run_helper(helper, &key);
    }
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    // Docker also matches keys written as URLs (`https://HOST/v1/`).
    let entry = auths.get(&key).or_else(|| {
        auths.iter().find_map(|(k, v)| {
            let host = k
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            (host == registry).then_some(v)
        })
    });
    let Some(entry) = entry else {
        return Ok(None);
    };
    let invalid = |reason: &str| ConfigError::Invalid {
        path: path.to_owned(),
        reason: format!("the credentials for {registry} {reason}: run capsule login {registry}"),
    };
    if let Some(auth) = entry.get("auth").and_then(Value::as_str)
        && !auth.is_empty()
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| invalid("are not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| invalid("are not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| invalid("are not user:password"))?;
        return Ok(Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    let field = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
        _ => Ok(None),
    }
}

/// Asks `docker-credential-HELPER get` for a registry's credentials.
fn run_helper(helper: &str, server: &str) -> Result<Option<Credentials>, ConfigError> {
    let fail = |reason: String| ConfigError::Helper {
        helper: helper.to_owned(),
        reason,
    };
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(fail(
            "the helper's name is not a plain program name".to_owned(),
        ));
    }
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot start it ({e}); install it or remove it from the config"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&stdout);
        let said = format!("{said}{}", String::from_utf8_lossy(&output.stderr));
        if said.to_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(fail(said.trim().to_owned()));
    }
    let value: Value = serde_json::from_slice(&stdout)
        .map_err(|e| fail(format!("its answer is not JSON: {e}")))?;
    match (value["Username"].as_str(), value["Secret"].as_str()) {
        (Some(username), Some(secret)) => Ok(Some(Credentials {
            username: username.to_owned(),
            password: secret.to_owned(),
        })),
        _ => Err(fail("its answer lacks Username or Secret".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), r#"{"keep":{"me":1}}"#).expect("seed");
        let mut config = Config::load(dir.path()).expect("load");
        let creds = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        config
            .store_credentials("localhost:5000", &creds)
            .expect("store");
        let again = Config::load(dir.path()).expect("reload");
        assert_eq!(
            again.credentials("localhost:5000").expect("lookup"),
            Some(creds)
        );
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(text.contains("\"keep\""), "{text}");
        assert!(text.contains("\"auth\": \"dTpwOnc=\""), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut config = again;
        assert!(config.remove_credentials("localhost:5000").expect("remove"));
        assert!(
            !config
                .remove_credentials("localhost:5000")
                .expect("remove again")
        );
    }

    #[test]
    fn url_keys_match_their_host() {
        let mut doc = Map::new();
        doc.insert(
            "auths".into(),
            serde_json::json!({"https://reg.example/v1/": {"username": "a", "password": "b"}}),
        );
        let found = lookup(&doc, Path::new("x"), "reg.example").expect("lookup");
        assert_eq!(found.map(|c| c.username), Some("a".to_owned()));
    }
}
