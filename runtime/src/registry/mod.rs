//! Images to and from OCI registries: `pull`, `push`, `login`, `logout`.
//!
//! - [`name`]: Docker's rules for the registry part of a reference.
//! - [`config`]: Capsule's `config.json` (Docker's format): credentials, insecure and
//!   default registries, per-registry certificate authorities.
//! - [`client`]: a connection to one registry (HTTPS, or plain HTTP where allowed),
//!   its authentication, and registry errors turned into [`RegistryError`]s.
//! - [`pull`] and [`push`]: the transfers, blob by blob in parallel, with progress.
//! - [`login`]: checking credentials before they are stored.
//!
//! The wire protocol is the `oci-client` crate (the OCI distribution client that
//! runwasi and wasmCloud use): it speaks the distribution API, Docker's bearer-token
//! flow (`WWW-Authenticate`) and basic authentication, over reqwest with rustls. It is
//! async; each command runs it on a small tokio runtime of its own. Everything a
//! registry sends is hostile until checked: every blob streams into the store's
//! temporary files while it is hashed, and an image becomes visible only once every
//! one of its blobs has its digest and size (a failed pull leaves nothing).

pub mod client;
pub mod config;
pub mod login;
pub mod name;
pub mod pull;
pub mod push;

use crate::image::ImageError;
use crate::store::{Digest, StoreError};

/// Errors of registry work, each saying what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    NoRegistry(#[from] name::NoRegistry),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry cannot be reached at all.
    #[error("cannot reach registry {registry}: {cause}{hint}")]
    Unreachable {
        registry: String,
        cause: String,
        hint: &'static str,
    },
    /// The registry refused access.
    #[error("{}", unauthorized_message(.registry, .what, *.had_credentials))]
    Unauthorized {
        registry: String,
        what: String,
        had_credentials: bool,
    },
    /// `login` with credentials the registry refuses.
    #[error("login to {registry} failed: the registry refused the username or password ({detail})")]
    LoginRefused { registry: String, detail: String },
    /// The reference names nothing in the registry.
    #[error("image '{reference}' not found in registry {registry}: check the name and the tag")]
    NotFound { reference: String, registry: String },
    /// An index without a WebAssembly entry.
    #[error(
        "'{reference}' has no WebAssembly image: its index lists {platforms} but no wasm/wasip1 (or wasi/wasm) entry"
    )]
    NoWasmPlatform {
        reference: String,
        platforms: String,
    },
    /// An image for another platform.
    #[error(
        "'{reference}' is a {platform} image, not WebAssembly: Capsule runs wasm/wasip1 images"
    )]
    NotWasm { reference: String, platform: String },
    /// A blob or manifest whose content is not what its digest says.
    #[error(
        "{what} {expected} from {registry} hashes to {actual}: refused (the registry's copy is corrupt or was tampered with); nothing was stored"
    )]
    DigestMismatch {
        what: &'static str,
        registry: String,
        expected: Digest,
        actual: Digest,
    },
    /// A blob of another size than its descriptor says.
    #[error(
        "blob {digest} from {registry} is {actual} bytes, not the {expected} its manifest says: refused; nothing was stored"
    )]
    SizeMismatch {
        registry: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// A document the registry sent that Capsule cannot use.
    #[error("{reference}: {reason}")]
    Unsupported { reference: String, reason: String },
    /// Any other answer of the registry.
    #[error("registry {registry} {doing}: {message}")]
    Registry {
        registry: String,
        doing: &'static str,
        message: String,
    },
    /// A name that cannot be pushed.
    #[error("cannot push '{name}': {reason}")]
    NotPushable { name: String, reason: String },
    /// The async runtime could not start.
    #[error("cannot start the network runtime")]
    Runtime(#[source] std::io::Error),
}

fn unauthorized_message(registry: &str, what: &str, had_credentials: bool) -> String {
    if had_credentials {
        format!(
            "{registry} refused access to {what} with the stored credentials: check that the account may do this, or run capsule login {registry} again"
        )
    } else {
        format!(
            "{registry} requires authentication for {what} (or it does not exist): run capsule login {registry}"
        )
    }
}

/// One blob's fate in a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination already had it (not sent again).
    Existed,
    /// Sent or received.
    Transferred,
    /// Mounted from another repository of the same registry (push).
    Mounted { from: String },
}

/// Which part of an image a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Config,
    Layer,
}

/// Progress of a transfer, blob by blob (the CLI draws bars from it).
pub trait Progress: Send + Sync {
    /// A blob's transfer starts.
    fn begin(&self, digest: &Digest, size: u64, kind: BlobKind);
    /// `bytes` more of it moved.
    fn advance(&self, digest: &Digest, bytes: u64);
    /// It is done.
    fn end(&self, digest: &Digest, outcome: &Outcome);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &Digest, _: u64, _: BlobKind) {}
    fn advance(&self, _: &Digest, _: u64) {}
    fn end(&self, _: &Digest, _: &Outcome) {}
}

/// A small multi-threaded tokio runtime for one command's transfers.
///
/// # Errors
/// [`RegistryError::Runtime`].
pub fn runtime() -> Result<tokio::runtime::Runtime, RegistryError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("capsule-net")
        .build()
        .map_err(RegistryError::Runtime)
}
