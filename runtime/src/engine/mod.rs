//! The wasmtime engine Capsule runs guests on, and the cache of compiled modules.

pub mod cache;
pub mod features;
pub mod interrupt;

use std::hash::{Hash, Hasher};

pub use cache::{CacheError, CacheOutcome, CacheStats, ModuleCache};
pub use features::{FeatureError, FeatureSet, WasmFeature};
pub use interrupt::{Deadline, Interrupt, Interruption};

/// How to build an [`Engine`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// The WebAssembly proposals to accept (default: [`FeatureSet::default`]).
    pub features: FeatureSet,
    /// Meter instructions with wasmtime fuel (`--fuel`). It changes the compiled code
    /// (every block counts what it runs), so an engine either meters every store or
    /// none, and its modules are cached apart from unmetered ones.
    pub fuel: bool,
}

/// Errors building an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration (for example `-W gc=y` without
    /// `-W function-references=y`).
    #[error("wasmtime refused this engine configuration: {0}")]
    Config(String),
}

/// A configured wasmtime engine, shared by every module and run in a process.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    features: FeatureSet,
    fuel: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("features", &self.features)
            .field("fuel", &self.fuel)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds an engine: Cranelift optimising for speed, the requested wasm features, no
    /// wasmtime-side cache (Capsule keeps its own, see [`ModuleCache`]).
    ///
    /// # Errors
    /// [`EngineError::Config`] when wasmtime refuses the combination of features.
    pub fn new(options: &EngineOptions) -> Result<Self, EngineError> {
        Self::with_config(options, |_| {})
    }

    /// Builds an engine as [`Engine::new`] does, then lets `adjust` change wasmtime's
    /// configuration before the engine is made (the plugin engine adds the pooling
    /// allocator, see [`crate::plugin`]). Settings that change compiled code are part
    /// of [`Engine::compatibility_tag`], so the module cache keeps such modules apart.
    ///
    /// # Errors
    /// [`EngineError::Config`] when wasmtime refuses the configuration.
    pub fn with_config(
        options: &EngineOptions,
        adjust: impl FnOnce(&mut wasmtime::Config),
    ) -> Result<Self, EngineError> {
        let mut config = wasmtime::Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `stop`, `kill` and `--timeout` interrupt a guest at its next function entry
        // or loop back-edge (see [`interrupt`]).
        config.epoch_interruption(true);
        // `--fuel` only: metering slows every guest down.
        config.consume_fuel(options.fuel);
        for feature in WasmFeature::ALL {
            feature.apply(&mut config, options.features.contains(feature));
        }
        adjust(&mut config);
        let inner =
            wasmtime::Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        Ok(Self {
            inner,
            features: options.features,
            fuel: options.fuel,
        })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// The features this engine accepts.
    pub fn features(&self) -> FeatureSet {
        self.features
    }

    /// Whether runs on this engine are metered with fuel.
    pub fn fuel(&self) -> bool {
        self.fuel
    }

    /// The options this engine was built with.
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            features: self.features,
            fuel: self.fuel,
        }
    }

    /// A short tag that changes whenever compiled code from this engine would not load in
    /// another: the wasmtime version, its compiler settings and the features (fuel
    /// metering among them, hashed in explicitly as well), plus Capsule's own version.
    pub fn compatibility_tag(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner.precompile_compatibility_hash().hash(&mut hasher);
        crate::VERSION.hash(&mut hasher);
        if self.fuel {
            "fuel".hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_metered_code_is_cached_apart() {
        let plain = Engine::new(&EngineOptions::default()).expect("engine");
        let metered = Engine::new(&EngineOptions {
            fuel: true,
            ..EngineOptions::default()
        })
        .expect("engine");
        assert!(metered.fuel() && !plain.fuel());
        assert_ne!(plain.compatibility_tag(), metered.compatibility_tag());
        assert_eq!(
            plain.compatibility_tag(),
            Engine::new(&EngineOptions::default())
                .expect("engine")
                .compatibility_tag()
        );
    }
}
