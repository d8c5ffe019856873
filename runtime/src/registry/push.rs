//! `push`: an image's blobs to a registry, then its manifest (the exact bytes in the
//! store, so the digest is the same on both sides). A blob the registry already has
//! (a `HEAD`) is not sent again; one that another repository of the same registry
//! holds (by the names of the local images that contain it) is mounted from there
//! when the registry offers it; the rest stream from the store, checked as they are
//! read, several at once.

use super::client::{Connection, Settings, connect};
use super::name::{Remote, split_domain};
use super::{BlobKind, Outcome, Progress, RegistryError};
use crate::image::oci::media;
use crate::image::reference::Reference;
use crate::image::{Image, Images};
use crate::store::{Blob, Digest, Store};
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::RegistryOperation;
use std::io::Read;
use std::sync::Arc;

/// Blobs sent at once.
const PARALLEL: usize = 4;
/// Bytes read from the store per request body chunk.
const CHUNK: usize = 1 << 20;

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub remote: Remote,
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    /// Each blob and what happened to it: config first, then the layers.
    pub blobs: Vec<(Blob, Outcome)>,
}

/// Pushes the image named `name` to the registry its name gives.
///
/// # Errors
/// [`RegistryError`] saying what failed.
pub fn push(
    images: &Images,
    settings: &Settings,
    name: &str,
    progress: Arc<dyn Progress>,
) -> Result<Pushed, RegistryError> {
    let reference = Reference::parse(name).map_err(crate::image::ImageError::from)?;
    if reference.digest.is_some() {
        return Err(RegistryError::NotPushable {
            name: name.to_owned(),
            reason: "a push names a tag, not a digest (capsule tag IMAGE NAME:TAG first)"
                .to_owned(),
        });
    }
    let image = images.resolve(name)?;
    let remote = Remote::resolve(&reference, settings.config.default_registry().as_deref())?;
    let sources = mount_sources(images, &image, &remote)?;
    let manifest_bytes = images.store().read_blob(&image.manifest_digest)?;
    let runtime = super::runtime()?;
    let blobs = runtime.block_on(async {
        let conn = connect(settings, &remote).await?;
        let target = remote.to_client();
        let what = remote.to_string();
        conn.client
            .auth(&target, &conn.auth, RegistryOperation::Push)
            .await
            .map_err(|e| conn.error(e, &what, "refused the login"))?;
        let store = images.store();
        let mut all = vec![(
            Blob {
                digest: image.config_digest.clone(),
                size: image.manifest.config().size(),
            },
            BlobKind::Config,
        )];
        all.extend(image.layers.iter().map(|l| {
            (
                Blob {
                    digest: l.digest.clone(),
                    size: l.size,
                },
                BlobKind::Layer,
            )
        }));
        let outcomes: Vec<Outcome> = stream::iter(all.iter())
            .map(|(blob, kind)| {
                send_blob(
                    &conn,
                    &remote,
                    store,
                    blob,
                    *kind,
                    sources.get(&blob.digest),
                    progress.clone(),
                )
            })
            .buffered(PARALLEL)
            .try_collect()
            .await?;
        let content_type = manifest_media_type(&manifest_bytes);
        conn.client
            .push_manifest_raw(
                &target,
                manifest_bytes.clone(),
                content_type
                    .parse()
                    .unwrap_or(reqwest::header::HeaderValue::from_static(media::MANIFEST)),
            )
            .await
            .map_err(|e| conn.error(e, &what, "refused the manifest"))?;
        Ok::<_, RegistryError>(
            all.into_iter()
                .map(|(b, _)| b)
                .zip(outcomes)
                .collect::<Vec<_>>(),
        )
    })?;
    Ok(Pushed {
        remote,
        manifest_digest: image.manifest_digest.clone(),
        manifest_size: image.manifest_size,
        blobs,
    })
}

/// The manifest's own media type (a Docker manifest stays one).
fn manifest_media_type(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| media::MANIFEST.to_owned())
}

/// For each blob of `image`, other repositories of the same registry that local
/// images with that blob are named after (candidates for a cross-repository mount).
fn mount_sources(
    images: &Images,
    image: &Image,
    remote: &Remote,
) -> Result<std::collections::HashMap<Digest, Vec<String>>, RegistryError> {
    let wanted: std::collections::HashSet<Digest> =
        image.blobs().into_iter().map(|b| b.digest).collect();
    let mut out: std::collections::HashMap<Digest, Vec<String>> = Default::default();
    for listed in images.list()? {
        let Some(name) = &listed.name else { continue };
        let Some((registry, repository)) = split_domain(&name.repository) else {
            continue;
        };
        if registry != remote.registry || repository == remote.repository {
            continue;
        }
        for blob in listed.image.blobs() {
            if wanted.contains(&blob.digest) {
                let entry = out.entry(blob.digest).or_default();
                if !entry.iter().any(|r| r == repository) {
                    entry.push(repository.to_owned());
                }
            }
        }
    }
    Ok(out)
}

async fn send_blob(
    conn: &Connection,
    remote: &Remote,
    store: &Store,
    blob: &Blob,
    kind: BlobKind,
    sources: Option<&Vec<String>>,
    progress: Arc<dyn Progress>,
) -> Result<Outcome, RegistryError> {
    let target = remote.to_client();
    let what = format!("blob {} of {remote}", blob.digest);
    let digest = blob.digest.to_string();
    let exists = conn
        .client
        .blob_exists(&target, &digest)
        .await
        .map_err(|e| conn.error(e, &what, "refused a blob query"))?;
    if exists {
        progress.end(&blob.digest, &Outcome::Existed);
        return Ok(Outcome::Existed);
    }
    for source in sources.into_iter().flatten() {
        let from = remote.with(None, None);
        let from = Remote {
            repository: source.clone(),
            ..from
        };
        if conn
            .client
            .mount_blob(&target, &from.to_client(), &digest)
            .await
            .is_ok()
        {
            let outcome = Outcome::Mounted {
                from: source.clone(),
            };
            progress.end(&blob.digest, &outcome);
            return Ok(outcome);
        }
    }
    progress.begin(&blob.digest, blob.size, kind);
    let file = store.open_blob_checked(&blob.digest, blob.size)?;
    let body = body_stream(file, blob.digest.clone(), progress.clone());
    conn.client
        .push_blob_stream(&target, body, &digest, Some(blob.size))
        .await
        .map_err(|e| conn.error(e, &what, "refused a blob"))?;
    progress.end(&blob.digest, &Outcome::Transferred);
    Ok(Outcome::Transferred)
}

/// A blob from the store as a request body, in [`CHUNK`]s, reporting progress.
fn body_stream(
    file: crate::store::CheckedBlob,
    digest: Digest,
    progress: Arc<dyn Progress>,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    stream::try_unfold(file, move |mut file| {
        let digest = digest.clone();
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(oci_client::errors::OciDistributionError::IoError(e)),
                }
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            progress.advance(&digest, filled as u64);
            Ok(Some((bytes::Bytes::from(buf), file)))
        }
    })
}
