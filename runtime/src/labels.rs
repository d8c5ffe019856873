//! What an image's labels say about how its program runs, so that a user of the image
//! need not know it: `io.capsule.unknown-imports=trap` (imports Capsule does not provide
//! are linked to stubs that trap if called, as `--unknown-imports trap`) and
//! `io.capsule.wasm-features=exceptions,tail-call=n` (wasm features set on top of the
//! defaults, as `-W` settings) and `io.capsule.allow-outbound=tcp://db:5432
//! https://api.example.com` (the connections the program needs, as `--allow-outbound`
//! rules, applied with a warning that names them). The flags of `capsule run` still win
//! over them.
//!
//! Labels come from images, so they are hostile input: a value must be one of the
//! spellings below and short, or the run stops with an error naming the label.

use crate::engine::FeatureSet;
use crate::spec::UnknownImports;

/// `trap` or `refuse`: what to do with imports Capsule does not provide.
pub const UNKNOWN_IMPORTS: &str = "io.capsule.unknown-imports";
/// A comma-separated list of `-W` settings (`exceptions`, `gc=y`, `simd=n`).
pub const WASM_FEATURES: &str = "io.capsule.wasm-features";
/// `--allow-outbound` rules, separated by spaces or commas.
pub const ALLOW_OUTBOUND: &str = "io.capsule.allow-outbound";

/// The longest value of the outbound label.
const MAX_OUTBOUND_LEN: usize = 2048;

/// The longest value of a feature label, and the most settings in it.
const MAX_FEATURES_LEN: usize = 512;
const MAX_FEATURES: usize = 32;

/// A label whose value Capsule cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {label}={value}: {reason}")]
pub struct LabelError {
    pub label: &'static str,
    /// The value, quoted and cut short for a message.
    pub value: String,
    pub reason: String,
}

/// The run settings an image's labels record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLabels {
    /// From [`UNKNOWN_IMPORTS`]; `None` when the image says nothing.
    pub unknown_imports: Option<UnknownImports>,
    /// From [`WASM_FEATURES`], checked: each setting is valid for [`FeatureSet::apply_setting`].
    pub wasm_features: Vec<String>,
    /// From [`ALLOW_OUTBOUND`], checked: each rule parses.
    pub allow_outbound: Vec<String>,
}

fn quoted(value: &str) -> String {
    let cut: String = value.chars().take(64).collect();
    if cut.len() < value.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

impl RunLabels {
    /// Reads and checks Capsule's labels among an image's; other labels are ignored.
    ///
    /// # Errors
    /// [`LabelError`] for a value that is not one Capsule understands.
    pub fn from_labels<'a>(
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LabelError> {
        let mut out = Self::default();
        for (key, value) in labels {
            match key {
                UNKNOWN_IMPORTS => {
                    out.unknown_imports = Some(match value {
                        "trap" => UnknownImports::Trap,
                        "refuse" => UnknownImports::Refuse,
                        _ => {
                            return Err(LabelError {
                                label: UNKNOWN_IMPORTS,
                                value: quoted(value),
                                reason: "the value is trap or refuse".to_owned(),
                            });
                        }
                    });
                }
                WASM_FEATURES => out.wasm_features = check_features(value)?,
                ALLOW_OUTBOUND => out.allow_outbound = check_outbound(value)?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The image's feature settings applied over `features`.
    pub fn apply_features(&self, features: &mut FeatureSet) {
        for setting in &self.wasm_features {
            // Checked in from_labels; a failure cannot happen and would change nothing.
            let _ = features.apply_setting(setting);
        }
    }
}

fn check_outbound(value: &str) -> Result<Vec<String>, LabelError> {
    let bad = |reason: String| LabelError {
        label: ALLOW_OUTBOUND,
        value: quoted(value),
        reason,
    };
    if value.len() > MAX_OUTBOUND_LEN {
        return Err(bad(format!("longer than {MAX_OUTBOUND_LEN} bytes")));
    }
    let rules: Vec<String> = value
        .split([',', ' ', '\t', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    crate::net::allow::AllowList::parse(&rules).map_err(|e| bad(e.to_string()))?;
    Ok(rules)
}

fn check_features(value: &str) -> Result<Vec<String>, LabelError> {
    let bad = |reason: String| LabelError {
        label: WASM_FEATURES,
        value: quoted(value),
        reason,
    };
    if value.len() > MAX_FEATURES_LEN {
        return Err(bad(format!("longer than {MAX_FEATURES_LEN} bytes")));
    }
    let settings: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if settings.len() > MAX_FEATURES {
        return Err(bad(format!("more than {MAX_FEATURES} settings")));
    }
    let mut scratch = FeatureSet::default();
    for setting in &settings {
        scratch
            .apply_setting(setting)
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::WasmFeature;

    #[test]
    fn the_outbound_label_is_a_list_of_checked_rules() {
        let labels = RunLabels::from_labels([(
            ALLOW_OUTBOUND,
            "tcp://db:5432, https://*.example.com\ttcp://10.0.0.0/8:*",
        )])
        .expect("valid");
        assert_eq!(
            labels.allow_outbound,
            [
                "tcp://db:5432",
                "https://*.example.com",
                "tcp://10.0.0.0/8:*"
            ]
        );
        let e = RunLabels::from_labels([(ALLOW_OUTBOUND, "db:5432")]).expect_err("no scheme");
        assert!(e.to_string().contains("no scheme"), "{e}");
        let long = "tcp://a:1 ".repeat(300);
        let e = RunLabels::from_labels([(ALLOW_OUTBOUND, long.as_str())]).expect_err("long");
        assert!(e.to_string().contains("longer than"), "{e}");
    }

    #[test]
    fn reads_capsule_labels_and_ignores_others() {
        let labels = RunLabels::from_labels([
            (UNKNOWN_IMPORTS, "trap"),
            (WASM_FEATURES, "gc, tail-call=n"),
            ("org.opencontainers.image.title", "anything \u{7}"),
        ])
        .expect("valid");
        assert_eq!(labels.unknown_imports, Some(UnknownImports::Trap));
        let mut set = FeatureSet::default();
        labels.apply_features(&mut set);
        assert!(set.contains(WasmFeature::Gc));
        assert!(!set.contains(WasmFeature::TailCall));
        assert_eq!(RunLabels::from_labels([]), Ok(RunLabels::default()));
    }

    #[test]
    fn refuses_values_it_does_not_understand() {
        let err = RunLabels::from_labels([(UNKNOWN_IMPORTS, "TRAP\n")]).expect_err("bad");
        assert!(err.to_string().contains("\"TRAP\\n\""), "{err}");
        let err =
            RunLabels::from_labels([(WASM_FEATURES, "exceptions,teleport")]).expect_err("bad");
        assert!(err.to_string().contains("teleport"), "{err}");
        let err = RunLabels::from_labels([(WASM_FEATURES, "simd=maybe")]).expect_err("bad value");
        assert!(err.to_string().contains("maybe"), "{err}");
        let long = "simd,".repeat(200);
        let err = RunLabels::from_labels([(WASM_FEATURES, long.as_str())]).expect_err("long");
        assert!(err.to_string().contains("longer than"), "{err}");
        assert!(err.to_string().len() < 200, "the value is cut short: {err}");
        let many = "simd,".repeat(40);
        let err = RunLabels::from_labels([(WASM_FEATURES, many.as_str())]).expect_err("many");
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
