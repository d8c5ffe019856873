//! `compose.toml`: Docker Compose's model in TOML, read with serde (unknown keys
//! refused), with Compose's variable substitution from the environment and a `.env`
//! file beside it. Every error names the file, line, column and key path.

use super::interpolate::{InterpolateError, interpolate_noting};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    /// The project name (default: `-p`, else the directory's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, VolumeDef>,
    /// `[networks.NAME]`: the project's networks (named `PROJECT_NAME` on disk); every
    /// project has `default`, which services without `networks` join.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkDef>,
}

/// A `[networks.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    /// Use a network made outside the project (`capsule network create`), under
    /// exactly this name (or `name`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// The name on disk instead of `PROJECT_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only `loopback` (or `bridge`, its Docker name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A service's place on one of the project's networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Other names it is reached by there (the service's name always is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A `[volumes.NAME]` table (named `PROJECT_NAME` on disk, as Compose does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeDef {
    /// Use a volume made outside the project, under exactly this name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Words>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Words>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<Words>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeEntry>,
    /// `depends_on = ["db"]` (each started) or `depends_on = { db = { condition = ... } }`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "depends_on"
    )]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The limits of `capsule run`: `memory = "64m"`, `timeout = "30s"`, `fuel`,
    /// `nofile`, `storage = "10m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<String>,
    /// `healthcheck = { test = ["CMD", "/app/check.wasm"], interval = "10s", ... }`:
    /// Compose's keys, over the image's HEALTHCHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthcheckTable>,
    /// `networks = ["front", "back"]` or `networks = { back = { aliases = ["db"] } }`
    /// (default: the project's `default` network).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "service_networks"
    )]
    pub networks: Option<BTreeMap<String, ServiceNetwork>>,
    /// `network_mode = "none"` (no network at all) or `"host"` (the escape hatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `allow_outbound = ["tcp://db.example.com:5432"]`: `--allow-outbound`'s rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_outbound: Vec<String>,
}

/// A service's `healthcheck`, with Compose's keys; each value is checked when the file
/// is loaded ([`super::model`]). Keys left out keep the image's HEALTHCHECK values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckTable {
    /// `["CMD", program, args...]`, `["CMD-SHELL", "command"]`, `["NONE"]`, or a
    /// command line for the image's `/bin/sh` (`CMD-SHELL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<HealthTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Turns the image's check off (as `test = ["NONE"]`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// A `healthcheck.test`: a command line for the shell, or Docker's list form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HealthTest {
    Shell(String),
    List(Vec<String>),
}

impl HealthTest {
    /// Docker's form: a command line is `["CMD-SHELL", line]`.
    pub fn test(&self) -> Vec<String> {
        match self {
            HealthTest::Shell(line) => vec!["CMD-SHELL".to_owned(), line.clone()],
            HealthTest::List(items) => items.clone(),
        }
    }
}

/// Read by hand, so that a wrong type says what a test is rather than "did not match
/// any variant".
impl<'de> Deserialize<'de> for HealthTest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HealthTest;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a command line for the shell, or a list: [\"CMD\", program, args...], [\"CMD-SHELL\", command] or [\"NONE\"]",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HealthTest, E> {
                Ok(HealthTest::Shell(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<HealthTest, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(HealthTest::List(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A list of words, or one string split at whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Words {
    One(String),
    List(Vec<String>),
}

impl Words {
    /// The words.
    pub fn words(&self) -> Vec<String> {
        match self {
            Words::One(s) => s.split_whitespace().map(str::to_owned).collect(),
            Words::List(l) => l.clone(),
        }
    }
}

/// `build = "dir"` or `build = { context, file, args, target }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Build {
    Context(String),
    Full(BuildTable),
}

/// Read by hand rather than as an untagged enum, so that a bad key or type is named
/// ("unknown field `dockerfile` ... did you mean `file`?") instead of "did not match
/// any variant".
impl<'de> Deserialize<'de> for Build {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Build;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a directory (build = \"dir\") or a table (build = { context = \"dir\", file = \"Dockerfile\", args = {...}, target = \"stage\" })",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Build, E> {
                Ok(Build::Context(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Build, A::Error> {
                /// The long form with every key kept, to name an unknown one.
                #[derive(Deserialize)]
                struct Raw {
                    #[serde(default = "dot")]
                    context: String,
                    #[serde(default)]
                    file: Option<String>,
                    #[serde(default)]
                    args: BTreeMap<String, String>,
                    #[serde(default)]
                    target: Option<String>,
                    #[serde(flatten)]
                    rest: BTreeMap<String, serde::de::IgnoredAny>,
                }
                let raw = Raw::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                if let Some(key) = raw.rest.keys().next() {
                    let hint = match key.as_str() {
                        "dockerfile" | "recipe" | "capsulefile" => {
                            " (did you mean `file`? it names the recipe, relative to the context)"
                        }
                        "arg" | "build_args" | "build-args" => " (did you mean `args`?)",
                        "dir" | "path" | "directory" => " (did you mean `context`?)",
                        _ => "",
                    };
                    return Err(serde::de::Error::custom(format!(
                        "unknown field `{key}`, expected one of `context`, `file`, `args`, `target`{hint}"
                    )));
                }
                Ok(Build::Full(BuildTable {
                    context: raw.context,
                    file: raw.file,
                    args: raw.args,
                    target: raw.target,
                }))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The long form of `build`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildTable {
    #[serde(default = "dot")]
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn dot() -> String {
    ".".to_owned()
}

impl Build {
    /// The long form.
    pub fn table(&self) -> BuildTable {
        match self {
            Build::Context(c) => BuildTable {
                context: c.clone(),
                ..Default::default()
            },
            Build::Full(t) => t.clone(),
        }
    }
}

/// A volume: the short form (`-v` syntax) or the long one (`--mount`'s keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VolumeEntry {
    Short(String),
    Long(VolumeTable),
}

/// The long form of a service's volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeTable {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// `depends_on.NAME = { condition = "started" | "completed_successfully" | "healthy" }`
/// (or Compose's `service_started`, `service_completed_successfully`,
/// `service_healthy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    #[serde(default)]
    pub condition: Condition,
}

/// `depends_on` as Compose writes it: a list of services (each `started`), or a table
/// of service to condition.
fn depends_on<'de, D>(deserializer: D) -> Result<BTreeMap<String, Dependency>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    list_or_table(
        deserializer,
        "a list of services or a table of service = { condition = \"...\" }",
    )
}

fn service_networks<'de, D>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, ServiceNetwork>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    list_or_table(
        deserializer,
        "a list of networks or a table of network = { aliases = [...] }",
    )
    .map(Some)
}

/// Compose's two ways of writing a set of names with options: a list of names (each
/// with the default options) or a table of name = { options }.
fn list_or_table<'de, D, T>(
    deserializer: D,
    expected: &'static str,
) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    struct Visitor<T>(&'static str, std::marker::PhantomData<T>);
    impl<'de, T: Default + Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = seq.next_element::<String>()? {
                out.insert(name, T::default());
            }
            Ok(out)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(Visitor(expected, std::marker::PhantomData))
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Its container is running (`service_started` in Compose).
    #[default]
    #[serde(alias = "service_started")]
    Started,
    /// Its container ran and exited 0 (`service_completed_successfully`).
    #[serde(alias = "service_completed_successfully")]
    CompletedSuccessfully,
    /// Its container runs and its health check says `healthy` (`service_healthy`).
    #[serde(alias = "service_healthy")]
    Healthy,
}

/// An error in a compose file, where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {key}: {message}")]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The key path, e.g. `services.api.ports`.
    pub key: String,
    pub message: String,
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// The key path at a byte offset, read from the text: the last table header before
/// it and the key on its line.
fn key_path_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let mut table = String::new();
    for line in before.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = header.trim_matches('[').trim().to_owned();
        }
    }
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.starts_with('['))
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// Reads and checks a compose file, then substitutes variables (`vars`: the
/// environment over the `.env` file).
///
/// # Errors
/// [`FileError`] naming the place of the first problem.
pub fn parse(
    file: &Path,
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<ComposeFile, FileError> {
    parse_noting(file, text, vars, &mut BTreeSet::new())
}

/// [`parse`], noting in `unset` the variables used without a default that are not
/// set.
///
/// # Errors
/// As [`parse`].
pub fn parse_noting(
    file: &Path,
    text: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<ComposeFile, FileError> {
    let name = file.display().to_string();
    // Checked as written first, so that structure errors point into the file.
    if let Err(e) = toml::from_str::<ComposeFile>(text) {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_col(text, offset);
        return Err(FileError {
            file: name,
            line,
            column,
            key: key_path_at(text, offset),
            message: e.message().trim().to_owned(),
        });
    }
    let mut value: toml::Value = toml::from_str(text).map_err(|e| FileError {
        file: name.clone(),
        line: 1,
        column: 1,
        key: String::new(),
        message: e.message().trim().to_owned(),
    })?;
    substitute(&mut value, "", vars, unset).map_err(|(key, e)| {
        let needle = match &e {
            InterpolateError::Required { name, .. } => format!("${{{name}"),
            InterpolateError::Syntax { text } => text.chars().take(8).collect(),
        };
        let offset = text.find(&needle).unwrap_or(0);
        let (line, column) = line_col(text, offset);
        FileError {
            file: name.clone(),
            line,
            column,
            key,
            message: e.to_string(),
        }
    })?;
    value.try_into::<ComposeFile>().map_err(|e| FileError {
        file: name,
        line: 1,
        column: 1,
        key: String::new(),
        message: e.message().trim().to_owned(),
    })
}

fn substitute(
    value: &mut toml::Value,
    path: &str,
    vars: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<(), (String, InterpolateError)> {
    match value {
        toml::Value::String(s) => {
            *s = interpolate_noting(s, vars, unset).map_err(|e| (path.to_owned(), e))?;
        }
        toml::Value::Array(items) => {
            for item in items {
                substitute(item, path, vars, unset)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute(v, &path, vars, unset)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The variables a compose file in `dir` sees: the `.env` file beside it, then the
/// process environment over it (as Compose).
pub fn variables(dir: &Path) -> BTreeMap<String, String> {
    let mut vars = crate::ambient::read_text(&dir.join(".env"))
        .map(|t| super::interpolate::parse_dotenv(&t))
        .unwrap_or_default();
    vars.extend(crate::ambient::host_env_all());
    vars
}

/// The file to use: `-f FILE`, else `compose.toml` in the working directory.
pub fn locate(file: Option<&Path>) -> PathBuf {
    file.map_or_else(|| PathBuf::from("compose.toml"), Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_full_file_parses_and_substitutes() {
        let text = r#"
[services.api]
image = "library-api:${TAG:-latest}"
ports = ["8000:8000"]
volumes = ["books:/data", { type = "bind", source = "./x", target = "/x", read_only = true }]
environment = { MODE = "${MODE}" }
depends_on = { loader = { condition = "completed_successfully" } }
restart = "on-failure"

[services.loader]
build = { context = ".", args = { A = "1" } }
command = "load /data"

[volumes.books]
"#;
        let file =
            parse(Path::new("compose.toml"), text, &vars(&[("MODE", "prod")])).expect("parses");
        let api = &file.services["api"];
        assert_eq!(api.image.as_deref(), Some("library-api:latest"));
        assert_eq!(api.environment["MODE"], "prod");
        assert_eq!(
            api.depends_on["loader"].condition,
            Condition::CompletedSuccessfully
        );
        assert_eq!(
            file.services["loader"].command.as_ref().map(Words::words),
            Some(vec!["load".to_owned(), "/data".to_owned()])
        );
        assert!(file.volumes.contains_key("books"));
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let text = "[services.api]\nimage = \"x\"\nimagee = \"y\"\n";
        let e = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect_err("unknown key");
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert_eq!(e.key, "services.api.imagee", "{e}");
        assert!(e.message.contains("imagee"), "{e}");
        let text = "[services.api]\nimage = \"${NEED:?set NEED}\"\n";
        let e = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect_err("required");
        assert_eq!(e.key, "services.api.image");
        assert_eq!((e.line, e.column), (2, 10), "{e}");
        assert!(e.to_string().contains("set NEED"), "{e}");
        let text = "[services.api]\nports = 8000\n";
        let e = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect_err("type");
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn healthcheck_keys_and_types_are_checked() {
        let text = "[services.api]\nimage = \"x\"\nhealthcheck = { test = [\"CMD\", \"/c\"], retries = 2 }\n";
        let file = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect("parses");
        let check = file.services["api"].healthcheck.as_ref().expect("a check");
        assert_eq!(
            check.test.as_ref().map(HealthTest::test),
            Some(vec!["CMD".to_owned(), "/c".to_owned()])
        );
        assert_eq!(check.retries, Some(2));
        for (line, needle) in [
            ("healthcheck = { tests = [\"CMD\", \"/c\"] }", "tests"),
            (
                "healthcheck = { test = 3 }",
                "a command line for the shell, or a list",
            ),
            ("healthcheck = { test = [\"CMD\", 3] }", "string"),
            ("healthcheck = { retries = -1 }", "u32"),
            ("healthcheck = { interval = 10 }", "string"),
        ] {
            let text = format!("[services.api]\nimage = \"x\"\n{line}\n");
            let e = parse(Path::new("c.toml"), &text, &BTreeMap::new()).expect_err(line);
            assert_eq!(e.line, 3, "{line}: {e}");
            assert!(e.message.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn depends_on_is_a_list_or_a_table() {
        let text = "[services.api]\nimage = \"x\"\ndepends_on = [\"db\", \"cache\"]\n";
        let file = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect("a list");
        let deps = &file.services["api"].depends_on;
        assert_eq!(deps.keys().collect::<Vec<_>>(), ["cache", "db"]);
        assert!(deps.values().all(|d| d.condition == Condition::Started));
        let text =
            "[services.api]\nimage = \"x\"\ndepends_on = { db = { conditon = \"started\" } }\n";
        let e = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect_err("unknown key");
        assert!(e.message.contains("conditon"), "{e}");
        assert_eq!(e.line, 3, "{e}");
        let text = "[services.api]\nimage = \"x\"\ndepends_on = { db = { condition = \"service_healthy\" } }\n";
        let file = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect("service_healthy");
        assert_eq!(
            file.services["api"].depends_on["db"].condition,
            Condition::Healthy
        );
        let text = "[services.api]\nimage = \"x\"\ndepends_on = \"db\"\n";
        let e = parse(Path::new("c.toml"), text, &BTreeMap::new()).expect_err("a string");
        assert!(e.message.contains("a list of services"), "{e}");
    }
}
