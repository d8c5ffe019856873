//! Content digests: `sha256:` and 64 lowercase hex digits, nothing else. A digest names
//! a file in the store, so parsing it strictly is also what keeps a hostile reference
//! (`sha256:../../etc`) from naming anything outside `blobs/sha256/`.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A sha256 content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// A string that is not a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest '{0}': expected sha256: followed by 64 lowercase hex digits")]
pub struct DigestError(pub String);

impl Digest {
    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Self {
            hex: hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// As oci-spec's digest type, for descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // A valid sha256 digest is always a valid OCI digest.
        oci_spec::image::Digest::from_str(&self.to_string())
            .unwrap_or_else(|_| unreachable!("validated digest"))
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError(s.to_owned()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError(s.to_owned()));
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}
