//! WebAssembly proposals the engine accepts, and the `-W NAME=y|n` syntax that toggles them.

use std::fmt;

/// A WebAssembly proposal that can be turned on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WasmFeature {
    MultiValue,
    BulkMemory,
    ReferenceTypes,
    Simd,
    RelaxedSimd,
    TailCall,
    MultiMemory,
    Exceptions,
    ExtendedConst,
    Memory64,
    FunctionReferences,
    Gc,
    WideArithmetic,
}

impl WasmFeature {
    /// Every feature, in the order `capsule info` lists them.
    pub const ALL: [WasmFeature; 13] = [
        WasmFeature::MultiValue,
        WasmFeature::BulkMemory,
        WasmFeature::ReferenceTypes,
        WasmFeature::Simd,
        WasmFeature::RelaxedSimd,
        WasmFeature::TailCall,
        WasmFeature::MultiMemory,
        WasmFeature::Exceptions,
        WasmFeature::ExtendedConst,
        WasmFeature::Memory64,
        WasmFeature::FunctionReferences,
        WasmFeature::Gc,
        WasmFeature::WideArithmetic,
    ];

    /// The name used on the command line (`-W tail-call=n`) and by `capsule info`.
    pub fn name(self) -> &'static str {
        match self {
            WasmFeature::MultiValue => "multi-value",
            WasmFeature::BulkMemory => "bulk-memory",
            WasmFeature::ReferenceTypes => "reference-types",
            WasmFeature::Simd => "simd",
            WasmFeature::RelaxedSimd => "relaxed-simd",
            WasmFeature::TailCall => "tail-call",
            WasmFeature::MultiMemory => "multi-memory",
            WasmFeature::Exceptions => "exceptions",
            WasmFeature::ExtendedConst => "extended-const",
            WasmFeature::Memory64 => "memory64",
            WasmFeature::FunctionReferences => "function-references",
            WasmFeature::Gc => "gc",
            WasmFeature::WideArithmetic => "wide-arithmetic",
        }
    }

    /// On by default: the finished proposals that current toolchains emit. The others
    /// are opt-in (`-W gc=y`).
    pub fn default_enabled(self) -> bool {
        !matches!(
            self,
            WasmFeature::Memory64
                | WasmFeature::FunctionReferences
                | WasmFeature::Gc
                | WasmFeature::WideArithmetic
        )
    }

    /// Features this one builds on: turning this one on turns them on, turning one of
    /// them off turns this one off (`-W simd=n` also means no relaxed SIMD).
    pub fn requires(self) -> &'static [WasmFeature] {
        match self {
            WasmFeature::RelaxedSimd => &[WasmFeature::Simd],
            WasmFeature::FunctionReferences => &[WasmFeature::ReferenceTypes],
            WasmFeature::Gc => &[WasmFeature::FunctionReferences, WasmFeature::ReferenceTypes],
            _ => &[],
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Applies this feature's setting to a wasmtime configuration.
    pub(crate) fn apply(self, config: &mut wasmtime::Config, enable: bool) {
        match self {
            WasmFeature::MultiValue => config.wasm_multi_value(enable),
            WasmFeature::BulkMemory => config.wasm_bulk_memory(enable),
            WasmFeature::ReferenceTypes => config.wasm_reference_types(enable),
            WasmFeature::Simd => config.wasm_simd(enable),
            WasmFeature::RelaxedSimd => config.wasm_relaxed_simd(enable),
            WasmFeature::TailCall => config.wasm_tail_call(enable),
            WasmFeature::MultiMemory => config.wasm_multi_memory(enable),
            WasmFeature::Exceptions => config.wasm_exceptions(enable),
            WasmFeature::ExtendedConst => config.wasm_extended_const(enable),
            WasmFeature::Memory64 => config.wasm_memory64(enable),
            WasmFeature::FunctionReferences => config.wasm_function_references(enable),
            WasmFeature::Gc => config.wasm_gc(enable),
            WasmFeature::WideArithmetic => config.wasm_wide_arithmetic(enable),
        };
    }
}

impl fmt::Display for WasmFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `-W` setting that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// The name is not a known proposal.
    #[error("unknown wasm feature '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    /// The value is not one of y/n/yes/no/true/false/on/off.
    #[error("wasm feature '{name}' takes y or n, not '{value}' (write {name}=y or {name}=n)")]
    BadValue { name: String, value: String },
}

/// The set of enabled features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FeatureSet(u32);

impl Default for FeatureSet {
    fn default() -> Self {
        let mut set = FeatureSet(0);
        for feature in WasmFeature::ALL {
            set.set(feature, feature.default_enabled());
        }
        set
    }
}

impl FeatureSet {
    /// Whether a feature is on.
    pub fn contains(self, feature: WasmFeature) -> bool {
        self.0 & feature.bit() != 0
    }

    /// Turns a feature on or off, with what it requires (on) or what requires it (off).
    pub fn set(&mut self, feature: WasmFeature, enable: bool) {
        if enable {
            self.0 |= feature.bit();
            for required in feature.requires() {
                self.set(*required, true);
            }
        } else {
            self.0 &= !feature.bit();
            for dependent in WasmFeature::ALL
                .into_iter()
                .filter(|f| f.requires().contains(&feature))
            {
                self.set(dependent, false);
            }
        }
    }

    /// Applies one `NAME=y|n` (or bare `NAME`, meaning on) setting.
    ///
    /// # Errors
    /// [`FeatureError`] for an unknown name or a value that is not a yes or a no.
    pub fn apply_setting(&mut self, setting: &str) -> Result<(), FeatureError> {
        let (name, value) = setting.split_once('=').unwrap_or((setting, "y"));
        let feature = WasmFeature::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| FeatureError::Unknown {
                name: name.to_owned(),
                known: WasmFeature::ALL.map(WasmFeature::name).join(", "),
            })?;
        let enable = match value {
            "y" | "yes" | "true" | "on" => true,
            "n" | "no" | "false" | "off" => false,
            _ => {
                return Err(FeatureError::BadValue {
                    name: name.to_owned(),
                    value: value.to_owned(),
                });
            }
        };
        self.set(feature, enable);
        Ok(())
    }

    /// The features that are on.
    pub fn enabled(self) -> impl Iterator<Item = WasmFeature> {
        WasmFeature::ALL
            .into_iter()
            .filter(move |f| self.contains(*f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_turn_on_the_finished_proposals() {
        let set = FeatureSet::default();
        for f in [
            WasmFeature::Exceptions,
            WasmFeature::TailCall,
            WasmFeature::MultiValue,
            WasmFeature::BulkMemory,
            WasmFeature::Simd,
            WasmFeature::ReferenceTypes,
            WasmFeature::MultiMemory,
        ] {
            assert!(set.contains(f), "{f} should be on by default");
        }
        assert!(!set.contains(WasmFeature::Gc));
    }

    #[test]
    fn settings_toggle_and_reject_nonsense() {
        let mut set = FeatureSet::default();
        set.apply_setting("tail-call=n").expect("valid");
        assert!(!set.contains(WasmFeature::TailCall));
        set.apply_setting("gc").expect("valid");
        assert!(set.contains(WasmFeature::Gc));
        assert!(
            set.contains(WasmFeature::FunctionReferences),
            "gc turns on what it needs"
        );
        set.apply_setting("simd=n").expect("valid");
        assert!(
            !set.contains(WasmFeature::RelaxedSimd),
            "no simd means no relaxed simd"
        );
        assert!(matches!(
            set.apply_setting("tailcall=n"),
            Err(FeatureError::Unknown { .. })
        ));
        assert!(matches!(
            set.apply_setting("simd=maybe"),
            Err(FeatureError::BadValue { .. })
        ));
    }
}
