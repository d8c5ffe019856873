//! Health checks, as Docker's: a program run in the container every `interval`
//! (through the same path as `capsule exec`), healthy when it exits 0. A container
//! starts `starting`; a success makes it `healthy`; `retries` failures in a row make
//! it `unhealthy`, except that failures in the `start_period` before its first success
//! do not count. Each check may take `timeout`, then it is stopped and counts as
//! failed. The container's owner runs them and keeps the result in `health.json`
//! (the last five results with their output), which `ps`, `inspect` and compose's
//! `service_healthy` read.
//!
//! A check comes from the image (a recipe's `HEALTHCHECK`, kept in the image's
//! [`LABEL`]), is replaced or tuned by `run`/`create`'s `--health-*` flags or a
//! compose file's `healthcheck`, and is turned off by `HEALTHCHECK NONE` or
//! `--no-healthcheck`.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The image label that carries a recipe's `HEALTHCHECK` (Docker keeps it in the
/// image config's `Healthcheck`, which the OCI config does not have).
pub const LABEL: &str = "io.capsule.healthcheck";

/// The file in the container's directory that holds its health.
const FILE: &str = "health.json";

/// Output kept of each check, as Docker keeps it.
pub const MAX_OUTPUT: usize = 4096;

/// Results kept.
const MAX_LOG: usize = 5;

/// Docker's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

/// A health check, in Docker's form (`Test` is `["CMD", prog, args…]`,
/// `["CMD-SHELL", "command"]` or `["NONE"]`; durations in nanoseconds, 0 for the
/// default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub start_interval: u64,
    #[serde(default)]
    pub retries: u32,
}

/// Why a health check cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(
        "health check test {0:?}: expected [\"CMD\", program, args...], [\"CMD-SHELL\", command] or [\"NONE\"]"
    )]
    Test(Vec<String>),
    #[error("the image's {LABEL} label is not a health check: {0}")]
    Label(String),
}

impl Healthcheck {
    /// Whether it turns checks off (`NONE`).
    pub fn is_none(&self) -> bool {
        self.test.first().is_some_and(|t| t == "NONE")
    }

    /// The program and arguments to run: `CMD`'s as given, `CMD-SHELL`'s through
    /// `/bin/sh -c`, as Docker runs them.
    ///
    /// # Errors
    /// [`HealthError::Test`] for any other form.
    pub fn command(&self) -> Result<Vec<String>, HealthError> {
        match self.test.split_first() {
            Some((kind, args)) if kind == "CMD" && !args.is_empty() => Ok(args.to_vec()),
            Some((kind, [command])) if kind == "CMD-SHELL" => {
                Ok(vec!["/bin/sh".into(), "-c".into(), command.clone()])
            }
            _ => Err(HealthError::Test(self.test.clone())),
        }
    }

    /// Checks its form.
    ///
    /// # Errors
    /// [`HealthError::Test`].
    pub fn check(&self) -> Result<(), HealthError> {
        if self.is_none() && self.test.len() == 1 {
            return Ok(());
        }
        self.command().map(|_| ())
    }

    fn duration(nanos: u64, default: Duration) -> Duration {
        if nanos == 0 {
            default
        } else {
            Duration::from_nanos(nanos)
        }
    }

    pub fn interval(&self) -> Duration {
        Self::duration(self.interval, DEFAULT_INTERVAL)
    }

    pub fn timeout(&self) -> Duration {
        Self::duration(self.timeout, DEFAULT_TIMEOUT)
    }

    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period)
    }

    pub fn start_interval(&self) -> Duration {
        Self::duration(self.start_interval, DEFAULT_START_INTERVAL)
    }

    pub fn retries(&self) -> u32 {
        if self.retries == 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }

    /// The check an image's label holds.
    ///
    /// # Errors
    /// [`HealthError::Label`] for a label that is not one.
    pub fn from_label(text: &str) -> Result<Self, HealthError> {
        let check: Self =
            serde_json::from_str(text).map_err(|e| HealthError::Label(e.to_string()))?;
        check.check()?;
        Ok(check)
    }

    /// The label's text.
    pub fn to_label(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What `run`/`create`'s flags (or a compose file) say about the check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOverrides {
    /// `--health-cmd` (a test: `CMD-SHELL` for a command line, `CMD` for a JSON array).
    pub test: Option<Vec<String>>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
    /// `--no-healthcheck`.
    pub disable: bool,
}

impl HealthOverrides {
    /// `--health-cmd`'s value as a test: a JSON array is `CMD` with those arguments
    /// (Capsule's addition: many images have no shell), anything else a command line
    /// for the shell (`CMD-SHELL`, as Docker).
    pub fn test_of(command: &str) -> Vec<String> {
        match serde_json::from_str::<Vec<String>>(command) {
            Ok(args) if !args.is_empty() => std::iter::once("CMD".to_owned()).chain(args).collect(),
            _ => vec!["CMD-SHELL".to_owned(), command.to_owned()],
        }
    }

    /// Whether any flag but `--no-healthcheck` was given.
    pub fn any_but_disable(&self) -> bool {
        *self
            != Self {
                disable: self.disable,
                ..Self::default()
            }
    }

    /// The check a container runs: the image's, as these flags change it; `None` when
    /// there is none or it is turned off.
    ///
    /// # Errors
    /// [`HealthError`] for a test of the wrong form.
    pub fn apply(&self, image: Option<Healthcheck>) -> Result<Option<Healthcheck>, HealthError> {
        if self.disable {
            return Ok(None);
        }
        let mut check = image.unwrap_or_default();
        if let Some(test) = &self.test {
            check.test.clone_from(test);
        }
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(d) = self.interval {
            check.interval = nanos(d);
        }
        if let Some(d) = self.timeout {
            check.timeout = nanos(d);
        }
        if let Some(d) = self.start_period {
            check.start_period = nanos(d);
        }
        if let Some(d) = self.start_interval {
            check.start_interval = nanos(d);
        }
        if let Some(n) = self.retries {
            check.retries = n;
        }
        if check.test.is_empty() || check.is_none() {
            return Ok(None);
        }
        check.check()?;
        Ok(Some(check))
    }
}

/// A container's health, as `inspect` shows it (`State.Health`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

/// One check's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

impl Health {
    /// A container just started.
    pub fn starting() -> Self {
        Self {
            status: STARTING.to_owned(),
            ..Self::default()
        }
    }

    /// Records a result: `counts` is false for a failure in the start period before
    /// the first success.
    pub fn record(&mut self, result: Probe, retries: u32, counts: bool) {
        if result.exit_code == 0 {
            self.status = HEALTHY.to_owned();
            self.failing_streak = 0;
        } else if counts {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = UNHEALTHY.to_owned();
            }
        }
        self.log.push(result);
        if self.log.len() > MAX_LOG {
            self.log.remove(0);
        }
    }
}

/// The health recorded in the container directory `dir`, if it has a check.
pub fn read(dir: &Path) -> Option<Health> {
    let bytes = crate::ambient::read_file(&dir.join(FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Forgets the health recorded in `dir` (a new run starts).
pub fn clear(dir: &Path) {
    let _ = crate::ambient::remove_file(&dir.join(FILE));
}

/// Records `health` in the container directory `dir` (renamed into place).
pub fn write(dir: &Path, health: &Health) {
    if let Ok(json) = serde_json::to_vec_pretty(health) {
        let _ = super::write_unsynced(dir, FILE, &json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> Probe {
        Probe {
            exit_code: code,
            ..Probe::default()
        }
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_and_one_success_healthy() {
        let mut health = Health::starting();
        health.record(result(1), 2, false);
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            (STARTING, 0)
        );
        health.record(result(1), 2, true);
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            (STARTING, 1)
        );
        health.record(result(1), 2, true);
        assert_eq!(health.status, UNHEALTHY);
        health.record(result(0), 2, true);
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            (HEALTHY, 0)
        );
        for _ in 0..10 {
            health.record(result(0), 2, true);
        }
        assert_eq!(health.log.len(), 5, "the last five are kept");
    }

    #[test]
    fn flags_change_the_images_check_and_no_healthcheck_turns_it_off() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "/check".into()],
            interval: 5_000_000_000,
            ..Healthcheck::default()
        };
        let flags = HealthOverrides {
            retries: Some(7),
            ..HealthOverrides::default()
        };
        let check = flags
            .apply(Some(image.clone()))
            .expect("valid")
            .expect("a check");
        assert_eq!(check.retries(), 7);
        assert_eq!(check.interval(), Duration::from_secs(5));
        assert_eq!(check.timeout(), DEFAULT_TIMEOUT);
        let off = HealthOverrides {
            disable: true,
            ..HealthOverrides::default()
        };
        assert_eq!(off.apply(Some(image.clone())).expect("valid"), None);
        let none = Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        };
        assert_eq!(
            HealthOverrides::default().apply(Some(none)).expect("valid"),
            None
        );
        assert_eq!(
            HealthOverrides::test_of("curl -f http://localhost/"),
            ["CMD-SHELL", "curl -f http://localhost/"]
        );
        assert_eq!(
            HealthOverrides::test_of(r#"["/check", "-q"]"#),
            ["CMD", "/check", "-q"]
        );
        let bad = HealthOverrides {
            test: Some(vec!["CMD".into()]),
            ..HealthOverrides::default()
        };
        assert!(bad.apply(None).is_err());
        let label = image.to_label();
        assert_eq!(Healthcheck::from_label(&label).expect("a label"), image);
        assert!(Healthcheck::from_label("{\"Test\":[\"WHAT\"]}").is_err());
    }
}
