//! `pull`: a reference's manifest (through an index to its WebAssembly entry), then
//! its config and layers in parallel, each streamed into the store's temporary files
//! while it is hashed. Nothing becomes visible until every blob has the digest and
//! size its manifest gives it; then the blobs are published, the manifest stored and
//! the name set (the same path `load` takes: `Images::load` checks the image).

use super::client::{Connection, Settings, connect};
use super::name::Remote;
use super::{BlobKind, Outcome, Progress, RegistryError};
use crate::image::oci::media;
use crate::image::reference::Reference;
use crate::image::{Image, Images};
use crate::store::{Blob, Digest, StagedBlob, Store, StoreError};
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_spec::image::{ImageIndex, ImageManifest};
use std::io::Write;

/// Largest manifest or index accepted (registries keep them under 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;
/// Blobs fetched at once.
const PARALLEL: usize = 4;

/// The manifest types a pull asks for.
const ACCEPT: &[&str] = &[
    media::MANIFEST,
    media::INDEX,
    media::DOCKER_MANIFEST,
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub image: Image,
    /// Where it came from.
    pub remote: Remote,
    /// The digest the reference resolved to (an index's, when it named one).
    pub digest: Digest,
    /// The name it was given (none for a pull by digest alone).
    pub name: Option<Reference>,
    /// Each blob and what happened to it: config first, then the layers.
    pub blobs: Vec<(Blob, Outcome)>,
    /// Whether the image was already complete in the store before.
    pub up_to_date: bool,
}

/// Pulls `reference` into the store and names it.
///
/// # Errors
/// [`RegistryError`] saying what failed; nothing is stored then.
pub fn pull(
    images: &Images,
    settings: &Settings,
    reference: &Reference,
    progress: &dyn Progress,
) -> Result<Pulled, RegistryError> {
    let remote = Remote::resolve(reference, settings.config.default_registry().as_deref())?;
    let runtime = super::runtime()?;
    // Blobs written but not yet named must survive a concurrent `image prune`.
    let _gc = images.store().gc_lock(false)?;
    let pulled = runtime.block_on(fetch_image(images, settings, &remote, progress))?;
    let (image, digest, blobs, up_to_date) = pulled;
    let name = reference.tag.is_some().then(|| Reference {
        repository: reference.repository.clone(),
        tag: reference.tag.clone(),
        digest: None,
    });
    images.set_name(&image, name.as_ref())?;
    Ok(Pulled {
        image,
        remote,
        digest,
        name,
        blobs,
        up_to_date,
    })
}

type Fetched = (Image, Digest, Vec<(Blob, Outcome)>, bool);

async fn fetch_image(
    images: &Images,
    settings: &Settings,
    remote: &Remote,
    progress: &dyn Progress,
) -> Result<Fetched, RegistryError> {
    let conn = connect(settings, remote).await?;
    let what = remote.to_string();
    let (bytes, digest) = fetch_manifest(&conn, remote, remote.digest.as_ref(), &what).await?;
    let (manifest_bytes, manifest_digest) = if is_index(&bytes) {
        let chosen = choose_wasm(&bytes, &what)?;
        let (bytes, _) = fetch_manifest(&conn, remote, Some(&chosen), &what).await?;
        (bytes, chosen)
    } else {
        (bytes, digest.clone())
    };
    let manifest = ImageManifest::from_reader(manifest_bytes.as_slice()).map_err(|e| {
        RegistryError::Unsupported {
            reference: what.clone(),
            reason: format!("its manifest is not an OCI or Docker image manifest ({e})"),
        }
    })?;
    let store = images.store();
    let config = descriptor_blob(manifest.config(), &what)?;
    let layers = manifest
        .layers()
        .iter()
        .map(|d| descriptor_blob(d, &what))
        .collect::<Result<Vec<_>, _>>()?;
    let up_to_date = store.has_blob(&manifest_digest)
        && store.has_blob(&config.digest)
        && layers.iter().all(|l| store.has_blob(&l.digest));

    // The config first: it says whether this is a WebAssembly image at all.
    let config_media = manifest.config().media_type().to_string();
    let config_staged =
        fetch_blob(&conn, remote, store, &config, BlobKind::Config, progress).await?;
    let config_bytes = match &config_staged {
        Some(staged) => staged_bytes(store, staged)?,
        None => store.read_blob(&config.digest)?,
    };
    check_platform(&config_media, &config_bytes, &what)?;

    let fetched: Vec<Option<StagedBlob<'_>>> = stream::iter(layers.iter())
        .map(|layer| fetch_blob(&conn, remote, store, layer, BlobKind::Layer, progress))
        .buffered(PARALLEL)
        .try_collect()
        .await?;

    // Every blob is verified: publish them, then the manifest that names them.
    let mut blobs = Vec::new();
    for (blob, staged) in
        std::iter::once((&config, config_staged)).chain(layers.iter().zip(fetched))
    {
        let outcome = match staged {
            Some(staged) => {
                staged.publish()?;
                Outcome::Transferred
            }
            None => Outcome::Existed,
        };
        blobs.push((blob.clone(), outcome));
    }
    store.put_blob_verified(
        manifest_bytes.as_slice(),
        &manifest_digest,
        manifest_bytes.len() as u64,
    )?;
    let image = images.load(&manifest_digest)?;
    Ok((image, digest, blobs, up_to_date))
}

/// Fetches a manifest or index by `digest` (or by the reference's tag) and checks it.
async fn fetch_manifest(
    conn: &Connection,
    remote: &Remote,
    digest: Option<&Digest>,
    what: &str,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    let target = match digest {
        Some(d) => remote.with(None, Some(d.clone())),
        None => remote.clone(),
    };
    let (bytes, _) = conn
        .client
        .pull_manifest_raw(&target.to_client(), &conn.auth, ACCEPT)
        .await
        .map_err(|e| match e {
            // oci-client checks a pinned digest itself; say it in our words.
            oci_client::errors::OciDistributionError::DigestError(_) => RegistryError::Registry {
                registry: conn.registry.clone(),
                doing: "sent a manifest",
                message: format!("its content does not match {}", target),
            },
            e => conn.error(e, what, "refused the manifest"),
        })?;
    if bytes.len() > MAX_MANIFEST {
        return Err(RegistryError::Unsupported {
            reference: what.to_owned(),
            reason: "its manifest is larger than 4 MiB".to_owned(),
        });
    }
    let actual = Digest::of(&bytes);
    if let Some(expected) = digest
        && &actual != expected
    {
        return Err(RegistryError::DigestMismatch {
            what: "manifest",
            registry: conn.registry.clone(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok((bytes.to_vec(), actual))
}

fn is_index(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|v| v.get("manifests").is_some_and(serde_json::Value::is_array))
}

/// The wasm entry of an index: `wasm`/`wasip1` first, then Docker's `wasi/wasm`.
fn choose_wasm(bytes: &[u8], what: &str) -> Result<Digest, RegistryError> {
    let index = ImageIndex::from_reader(bytes).map_err(|e| RegistryError::Unsupported {
        reference: what.to_owned(),
        reason: format!("its image index is invalid ({e})"),
    })?;
    let platform_of = |d: &oci_spec::image::Descriptor| {
        d.platform()
            .as_ref()
            .map(|p| (p.os().to_string(), p.architecture().to_string()))
    };
    let mut best: Option<(u8, &oci_spec::image::Descriptor)> = None;
    for desc in index.manifests() {
        let rank = match platform_of(desc) {
            Some((os, arch)) if arch == "wasm" && os == "wasip1" => 0,
            Some((os, arch)) if arch == "wasm" && os == "wasi" => 1,
            _ => continue,
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, desc));
        }
    }
    let Some((_, desc)) = best else {
        let platforms: Vec<String> = index
            .manifests()
            .iter()
            .map(|d| match platform_of(d) {
                Some((os, arch)) => format!("{os}/{arch}"),
                None => "an entry without platform".to_owned(),
            })
            .collect();
        return Err(RegistryError::NoWasmPlatform {
            reference: what.to_owned(),
            platforms: if platforms.is_empty() {
                "nothing".to_owned()
            } else {
                platforms.join(", ")
            },
        });
    };
    desc.digest()
        .to_string()
        .parse()
        .map_err(|e| RegistryError::Unsupported {
            reference: what.to_owned(),
            reason: format!("its index names {e}"),
        })
}

/// Refuses an image config for another platform (a wasm artifact has none).
fn check_platform(config_media: &str, config: &[u8], what: &str) -> Result<(), RegistryError> {
    if config_media == media::WASM_CONFIG {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| RegistryError::Unsupported {
            reference: what.to_owned(),
            reason: format!("its image config is not JSON ({e})"),
        })?;
    let arch = value["architecture"].as_str().unwrap_or_default();
    let os = value["os"].as_str().unwrap_or_default();
    if arch == "wasm" || (arch.is_empty() && os.is_empty()) {
        Ok(())
    } else {
        Err(RegistryError::NotWasm {
            reference: what.to_owned(),
            platform: format!("{os}/{arch}"),
        })
    }
}

fn descriptor_blob(desc: &oci_spec::image::Descriptor, what: &str) -> Result<Blob, RegistryError> {
    Ok(Blob {
        digest: desc
            .digest()
            .to_string()
            .parse()
            .map_err(|e| RegistryError::Unsupported {
                reference: what.to_owned(),
                reason: format!("its manifest names {e}"),
            })?,
        size: desc.size(),
    })
}

/// Reads a staged (verified, small) blob back: the config.
fn staged_bytes(store: &Store, staged: &StagedBlob<'_>) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    let mut reader = staged.open()?;
    std::io::Read::read_to_end(&mut reader, &mut bytes).map_err(|source| StoreError::Io {
        path: store.root().to_owned(),
        what: "cannot read a downloaded blob",
        source,
    })?;
    Ok(bytes)
}

/// Streams one blob into a staged store file; `None` when the store has it already.
async fn fetch_blob<'s>(
    conn: &Connection,
    remote: &Remote,
    store: &'s Store,
    blob: &Blob,
    kind: BlobKind,
    progress: &dyn Progress,
) -> Result<Option<StagedBlob<'s>>, RegistryError> {
    if store.has_blob(&blob.digest) {
        progress.end(&blob.digest, &Outcome::Existed);
        return Ok(None);
    }
    progress.begin(&blob.digest, blob.size, kind);
    let what = format!("blob {} of {remote}", blob.digest);
    let mut stream = conn
        .client
        .pull_blob_stream(&remote.to_client(), blob.digest.to_string().as_str())
        .await
        .map_err(|e| conn.error(e, &what, "refused a blob"))?;
    let too_long = |actual| RegistryError::SizeMismatch {
        registry: conn.registry.clone(),
        digest: blob.digest.clone(),
        expected: blob.size,
        actual,
    };
    if let Some(length) = stream.content_length
        && length != blob.size
    {
        return Err(too_long(length));
    }
    let mut writer = store.blob_writer()?;
    let io_err = |source| StoreError::Io {
        path: store.root().to_owned(),
        what: "cannot write a downloaded blob",
        source,
    };
    let mut stream_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if writer.written() + chunk.len() as u64 > blob.size {
                    return Err(too_long(writer.written() + chunk.len() as u64));
                }
                writer.write_all(&chunk).map_err(io_err)?;
                progress.advance(&blob.digest, chunk.len() as u64);
            }
            Err(e) => {
                stream_error = Some(e);
                break;
            }
        }
    }
    // The store's own check decides: a digest error from the client's check is a
    // mismatch the store reports in its words; a broken transfer is short.
    let staged = writer
        .finish_staged(Some((&blob.digest, blob.size)))
        .map_err(|e| match e {
            StoreError::DigestMismatch { expected, actual } => RegistryError::DigestMismatch {
                what: "blob",
                registry: conn.registry.clone(),
                expected,
                actual,
            },
            StoreError::SizeMismatch { actual, .. } => match &stream_error {
                Some(err) => RegistryError::Registry {
                    registry: conn.registry.clone(),
                    doing: "broke off a blob",
                    message: super::client::root_cause(err),
                },
                None => too_long(actual),
            },
            e => RegistryError::Store(e),
        })?;
    progress.end(&blob.digest, &Outcome::Transferred);
    Ok(Some(staged))
}
