//! Host functions: closures of the embedder that plugins may call, by namespaced name.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The wasm import module plugins import host functions from.
pub const IMPORT_MODULE: &str = "capsule_host";

/// A host function: bytes from the plugin in, bytes back, or an error message that the
/// plugin receives as an error result.
pub type HostFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// The host functions a [`super::PluginHost`] offers, by namespaced name (`kv.get`).
/// Which of them a plugin may import is up to its [`super::PluginManifest`].
#[derive(Clone, Default)]
pub struct HostFunctions {
    functions: BTreeMap<String, HostFn>,
}

impl std::fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.functions.keys()).finish()
    }
}

impl HostFunctions {
    /// No host functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the function `name`.
    pub fn register(&mut self, name: impl Into<String>, function: HostFn) {
        self.functions.insert(name.into(), function);
    }

    /// The function `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&HostFn> {
        self.functions.get(name)
    }

    /// The names registered, sorted.
    pub fn names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }
}

/// Checks that a host function's name is namespaced: `namespace.function`, each part
/// made of ASCII letters, digits, `_` and `-`, possibly with more dots.
///
/// # Errors
/// The reason the name is not usable.
pub fn check_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() < 2 {
        return Err(format!(
            "host function name '{name}' has no namespace (write it as namespace.function, for example kv.get)"
        ));
    }
    if parts.iter().any(|p| {
        p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }) {
        return Err(format!(
            "host function name '{name}' may hold only letters, digits, '_' and '-' between its dots"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_namespaced() {
        assert!(check_name("kv.get").is_ok());
        assert!(check_name("app.v2.log-line").is_ok());
        for bad in ["get", ".get", "kv.", "kv..get", "kv.g et", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
