//! What a plugin may reach: directories, environment, host functions, and the limits of
//! each call.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// A host directory a plugin sees at a guest path (a WASI preopen), read-only or
/// read-write, through Capsule's own WASI host: every path, `..` and symlink is resolved
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the plugin sees it (absolute, for example `/data`).
    pub guest: String,
    /// Whether the plugin may only read.
    pub read_only: bool,
}

/// The limits of every call of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// wasmtime fuel per call (about one unit per instruction); `None`: unmetered
    /// (default).
    pub fuel: Option<u64>,
    /// Wall-clock time a call may take, from when it is made: time waiting for an
    /// instance slot counts; `None`: no deadline. Default: 10 s. Checked at function
    /// entries and loop back-edges, to within about a millisecond.
    pub deadline: Option<Duration>,
    /// Bytes of linear memory (and tables) an instance may have. Default: 64 MiB.
    pub memory: u64,
}

impl PluginLimits {
    /// The default deadline of a call.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
    /// The default memory limit of an instance.
    pub const DEFAULT_MEMORY: u64 = 64 << 20;
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            fuel: None,
            deadline: Some(Self::DEFAULT_DEADLINE),
            memory: Self::DEFAULT_MEMORY,
        }
    }
}

/// What a plugin may reach. The default reaches nothing: no directories, an empty
/// environment, no host functions, output discarded, default [`PluginLimits`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginManifest {
    /// Directories, each a preopen.
    pub dirs: Vec<DirGrant>,
    /// Environment variables, in order (a later one replaces an earlier one of the same
    /// name). A plugin from an image starts from the image's `ENV`.
    pub env: Vec<(String, String)>,
    /// Host functions the plugin may import, by namespaced name (`kv.get`).
    pub allowed_host_functions: BTreeSet<String>,
    /// Limits of each call.
    pub limits: PluginLimits,
    /// Whether the plugin's stdout and stderr go to the host's stderr (else they are
    /// discarded).
    pub forward_output: bool,
}

impl PluginManifest {
    /// The environment as WASI hands it over (`KEY=VALUE`), later settings winning.
    pub(crate) fn environ(&self, base: &[(String, String)]) -> Vec<String> {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (k, v) in base.iter().chain(&self.env) {
            vars.retain(|(key, _)| key != k);
            vars.push((k.clone(), v.clone()));
        }
        vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_environment_settings_win() {
        let manifest = PluginManifest {
            env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
            ..Default::default()
        };
        let base = [
            ("A".to_owned(), "1".to_owned()),
            ("C".to_owned(), "4".to_owned()),
        ];
        assert_eq!(manifest.environ(&base), ["C=4", "A=2", "B=3"]);
    }
}
