//! The OCI documents of a Capsule image (manifest, config), their media types, and the
//! canonical JSON they are written in so that the same image always has the same
//! digest.

use crate::store::Digest;
use serde::Serialize;

/// Media types Capsule writes and reads.
pub mod media {
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// The CNCF wasm artifact (a config and one `application/wasm` layer).
    pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
    pub const WASM_LAYER: &str = "application/wasm";
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names; `None` for a type that is not a layer.
    pub fn of_layer(media_type: &str) -> Option<Self> {
        match media_type {
            media::LAYER_GZIP | media::DOCKER_LAYER_GZIP => Some(Self::Gzip),
            media::LAYER_TAR | media::DOCKER_LAYER_TAR => Some(Self::None),
            media::LAYER_ZSTD => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// Annotation naming an image in an index (`docker.io/library/app:1` in Docker's
/// saved layouts, the familiar `app:1` in Capsule's store).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation for the tag of a manifest in a layout.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The architecture and OS of WebAssembly images, as Docker's `--platform wasi/wasm`
/// images and containerd's runwasi use them.
pub const ARCHITECTURE: &str = "wasm";
pub const OS: &str = "wasip1";

/// Serialises `value` as JSON with object keys sorted at every level and no
/// whitespace: the same document always gives the same bytes (and digest), whatever
/// order maps were built in.
///
/// # Errors
/// serde's error if the value cannot be represented as JSON.
pub fn canonical_json(value: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::new();
    write_canonical(&value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_canonical(value, out)?;
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other)?,
    }
    Ok(())
}

/// An RFC 3339 UTC timestamp for seconds since the epoch.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of an RFC 3339 timestamp (fractions and offsets honoured
/// to the second); `None` when it cannot be read.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.chars().take_while(char::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6)?.parse::<i64>().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The chain ID of a stack of layers (OCI image-spec): the first diff_id, then
/// `sha256(parent_chain_id + " " + diff_id)` for each next one.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut iter = diff_ids.iter();
    let mut chain = iter.next()?.clone();
    for diff_id in iter {
        chain = Digest::of(format!("{chain} {diff_id}").as_bytes());
    }
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys() {
        let mut map = std::collections::HashMap::new();
        for k in ["z", "a", "m", "b"] {
            map.insert(k, vec![1, 2]);
        }
        assert_eq!(
            String::from_utf8(canonical_json(&map).expect("json")).expect("utf8"),
            r#"{"a":[1,2],"b":[1,2],"m":[1,2],"z":[1,2]}"#
        );
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456789+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
