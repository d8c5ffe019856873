//! Images: OCI manifests and configs in the [`Store`], the names that point at them
//! (annotations in the store's `index.json`), and what it takes to run one (its
//! layers as uncompressed tars, [`layers::LayerCache`]).
//!
//! An image's ID is the digest of its config, as in Docker; `IMAGE ID` columns show
//! its first 12 hex digits. Every index entry names one manifest: named entries carry
//! `io.containerd.image.name` (`app:1`) and `org.opencontainers.image.ref.name` (`1`);
//! an image that lost its last name keeps an unnamed entry (Docker's dangling
//! `<none>:<none>`) until `image prune` removes it.

pub mod archive;
pub mod check;
pub mod layer_writer;
pub mod layers;
pub mod oci;
pub mod reference;
pub mod removal;
pub mod usage;

use crate::home::Home;
use crate::store::{Blob, Digest, Store, StoreError};
use oci::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, media};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest, MediaType};
use reference::{Reference, ReferenceError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// Errors of the image layer, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "image '{0}' not found: build it (capsule build -t {0} DIR), load it (capsule load -i FILE), or see capsule images"
    )]
    NotFound(String),
    #[error("image ID prefix '{prefix}' is ambiguous: it matches {}", matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    /// An archive given to `load` is not a valid image archive.
    #[error("the archive is not a valid image archive: {reason}")]
    Archive { reason: String },
    /// An archive's Docker `manifest.json` is wrong.
    #[error("the archive's manifest.json: {reason}")]
    ArchiveManifest { reason: String },
    /// An archive's `index.json` is not an OCI image index.
    #[error("the archive's index.json is invalid")]
    ArchiveIndex {
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An archive names a blob it does not hold.
    #[error("the archive lacks blob {blob} of image {image}")]
    ArchiveLacksBlob { blob: Digest, image: String },
    /// A blob an image needs is not in the store.
    #[error("blob {blob} is missing")]
    BlobMissing { blob: Digest },
    /// An image index in the store is not valid.
    #[error("image index {digest} is invalid")]
    Index {
        digest: Digest,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An image index lists no manifest.
    #[error("image index {digest} lists no manifest")]
    EmptyIndex { digest: Digest },
    /// A manifest in the store is not an OCI image manifest.
    #[error("manifest {digest} is not an OCI image manifest")]
    Manifest {
        digest: Digest,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A config in the store is not an OCI image config.
    #[error("config {digest} is not an OCI image config")]
    Config {
        digest: Digest,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A manifest and its config disagree on the number of layers.
    #[error(
        "image {config}: the manifest has {layers} layers but the config lists {diff_ids} diff_ids"
    )]
    LayerCount {
        config: Digest,
        layers: usize,
        diff_ids: usize,
    },
    /// A digest in a manifest is not one Capsule supports.
    #[error("unsupported digest {digest}")]
    UnsupportedDigest {
        digest: String,
        #[source]
        source: crate::store::DigestError,
    },
    /// A diff_id in a config is not a digest.
    #[error("bad diff_id {diff_id}")]
    BadDiffId {
        diff_id: String,
        #[source]
        source: crate::store::DigestError,
    },
    /// A wasm artifact without exactly one module layer.
    #[error(
        "a wasm artifact needs exactly one {} layer, this one has {count}",
        oci::media::WASM_LAYER
    )]
    ArtifactLayers { count: usize },
    /// A wasm artifact's config is not JSON.
    #[error("the wasm artifact's config is not JSON")]
    ArtifactConfig {
        #[source]
        source: serde_json::Error,
    },
    /// A layer whose media type is not a tar Capsule can read.
    #[error("layer {blob} has media type {media_type}, which is not a tar layer Capsule can read")]
    LayerMediaType { blob: Digest, media_type: String },
    /// A layer that cannot be decompressed (`what` says how it failed).
    #[error("layer {blob} {what}")]
    Decompress {
        blob: Digest,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// oci-spec refused a config, history entry or manifest Capsule made.
    #[error("{what}")]
    Make {
        what: &'static str,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A document Capsule made could not be serialised (`what` says which).
    #[error("{what}")]
    Serialise {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Source {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "layer {blob} decompresses to {actual}, but the image says {expected}: the image is corrupt (run capsule system check)"
    )]
    LayerDigest {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}")]
    Conflict(String),
}

/// One layer of an image: its blob and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
}

/// An image read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    pub layers: Vec<LayerRef>,
}

impl Image {
    /// The image ID: the digest of its config.
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// The first 12 hex digits of the ID, as `IMAGE ID` columns show it.
    pub fn short_id(&self) -> &str {
        &self.config_digest.hex()[..12]
    }

    /// Bytes the image takes in the store: its layers, config and manifest.
    pub fn size(&self) -> u64 {
        self.blobs().iter().map(|b| b.size).sum()
    }

    /// When the image was created, in seconds since the epoch.
    pub fn created(&self) -> Option<i64> {
        self.config
            .created()
            .as_deref()
            .and_then(oci::parse_rfc3339)
    }

    /// The diff_ids of its layers, lowest first.
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// The blobs the image is made of, with their sizes: manifest, config, layers.
    pub fn blobs(&self) -> Vec<Blob> {
        let mut out = vec![
            Blob {
                digest: self.manifest_digest.clone(),
                size: self.manifest_size,
            },
            Blob {
                digest: self.config_digest.clone(),
                size: self.manifest.config().size(),
            },
        ];
        out.extend(self.layers.iter().map(|l| Blob {
            digest: l.digest.clone(),
            size: l.size,
        }));
        out
    }
}

/// What [`Images::rebuild_index`] did.
#[derive(Debug)]
pub struct RebuiltIndex {
    /// The images the index did not list, with the names they were given.
    pub recovered: Vec<(Image, Reference)>,
    /// Where the damaged index was kept, if there was one.
    pub damaged_kept_as: Option<PathBuf>,
}

/// An entry of the store's index: an image and the name it is listed under.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: Option<Reference>,
    pub image: Image,
}

/// The image store under a Capsule home.
#[derive(Debug)]
pub struct Images {
    store: Store,
    layers: layers::LayerCache,
}

/// Converts a store digest to oci-spec's.
pub fn oci_digest(digest: &Digest) -> oci_spec::image::Digest {
    // Our digests are valid sha256 digests, which oci-spec always accepts.
    digest
        .to_string()
        .parse()
        .unwrap_or_else(|_| unreachable!("a checked sha256 digest"))
}

fn our_digest(digest: &oci_spec::image::Digest) -> Result<Digest, ImageError> {
    digest
        .to_string()
        .parse()
        .map_err(|source| ImageError::UnsupportedDigest {
            digest: digest.to_string(),
            source,
        })
}

impl Images {
    /// Opens the images of a home (creating an empty store).
    ///
    /// # Errors
    /// [`ImageError`] when the store cannot be opened.
    pub fn open(home: &Home) -> Result<Self, ImageError> {
        Ok(Self {
            store: Store::open(&home.store_dir())?,
            layers: layers::LayerCache::open(&home.layer_tar_dir())?,
        })
    }

    /// The content store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The uncompressed layer cache.
    pub fn layer_cache(&self) -> &layers::LayerCache {
        &self.layers
    }

    /// Reads the image whose manifest is `digest`.
    ///
    /// # Errors
    /// [`ImageError`] for a missing or corrupt blob, or a manifest or config Capsule
    /// cannot run.
    pub fn load(&self, digest: &Digest) -> Result<Image, ImageError> {
        let bytes = self.store.read_blob(digest)?;
        let manifest = ImageManifest::from_reader(bytes.as_slice()).map_err(|source| {
            ImageError::Manifest {
                digest: digest.clone(),
                source,
            }
        })?;
        let config_digest = our_digest(manifest.config().digest())?;
        let config_media = manifest.config().media_type().to_string();
        let config_bytes = self.store.read_blob(&config_digest)?;
        let config = if config_media == media::WASM_CONFIG {
            archive::wasm_artifact_config(&manifest, &config_bytes)?
        } else {
            ImageConfiguration::from_reader(config_bytes.as_slice()).map_err(|source| {
                ImageError::Config {
                    digest: config_digest.clone(),
                    source,
                }
            })?
        };
        let layers = if config_media == media::WASM_CONFIG {
            archive::wasm_artifact_layers(&manifest)?
        } else {
            let diff_ids = config.rootfs().diff_ids();
            if diff_ids.len() != manifest.layers().len() {
                return Err(ImageError::LayerCount {
                    config: config_digest,
                    layers: manifest.layers().len(),
                    diff_ids: diff_ids.len(),
                });
            }
            manifest
                .layers()
                .iter()
                .zip(diff_ids)
                .map(|(desc, diff_id)| {
                    Ok(LayerRef {
                        digest: our_digest(desc.digest())?,
                        size: desc.size(),
                        media_type: desc.media_type().to_string(),
                        diff_id: diff_id.parse().map_err(|source| ImageError::BadDiffId {
                            diff_id: diff_id.clone(),
                            source,
                        })?,
                    })
                })
                .collect::<Result<_, ImageError>>()?
        };
        Ok(Image {
            manifest_digest: digest.clone(),
            manifest_size: bytes.len() as u64,
            manifest,
            config_digest,
            config,
            layers,
        })
    }

    /// Every index entry with its image, newest first (then by name).
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be read; an entry whose blobs are missing
    /// or corrupt is skipped with a warning (`system check` reports it).
    pub fn list(&self) -> Result<Vec<Listed>, ImageError> {
        let index = self.store.index()?;
        let mut cache: HashMap<Digest, Image> = HashMap::new();
        let mut out = Vec::new();
        for desc in index.manifests() {
            let Ok(digest) = our_digest(desc.digest()) else {
                continue;
            };
            let image = match cache.get(&digest) {
                Some(image) => image.clone(),
                None => match self.load(&digest) {
                    Ok(image) => {
                        cache.insert(digest.clone(), image.clone());
                        image
                    }
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "skipping an unreadable image");
                        continue;
                    }
                },
            };
            out.push(Listed {
                name: entry_name(desc),
                image,
            });
        }
        out.sort_by(|a, b| {
            b.image
                .created()
                .cmp(&a.image.created())
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }

    /// Finds an image by `name[:tag]`, `name@digest`, a full `sha256:` ID or manifest
    /// digest, or a unique prefix of an ID.
    ///
    /// # Errors
    /// [`ImageError::NotFound`], [`ImageError::Ambiguous`], [`ImageError::Reference`]
    /// for a reference that is neither a valid name nor an ID.
    pub fn resolve(&self, text: &str) -> Result<Image, ImageError> {
        let full = text.strip_prefix("sha256:").unwrap_or(text);
        let is_hex = !full.is_empty() && full.chars().all(|c| c.is_ascii_hexdigit());
        if text.starts_with("sha256:") || (is_hex && full.len() == 64) {
            return self
                .list()?
                .into_iter()
                .map(|l| l.image)
                .find(|i| i.config_digest.hex() == full || i.manifest_digest.hex() == full)
                .ok_or_else(|| ImageError::NotFound(text.to_owned()));
        }
        let parsed = Reference::parse(text);
        if let Ok(reference) = &parsed {
            // A name is found in the index alone; only the image it names is read (the
            // start-up of `capsule run NAME` does not grow with the number of images).
            let index = self.store.index()?;
            let digest_of = |d: &Descriptor| our_digest(d.digest()).ok();
            let by_name = index.manifests().iter().find(|d| {
                let Some(name) = entry_name(d) else {
                    return false;
                };
                name.repository == reference.repository
                    && (reference.tag.is_none() || name.tag == reference.tag)
                    && reference
                        .digest
                        .as_ref()
                        .is_none_or(|want| digest_of(d).as_ref() == Some(want))
            });
            let by_digest = || {
                let want = reference.digest.as_ref()?;
                index
                    .manifests()
                    .iter()
                    .find(|d| digest_of(d).as_ref() == Some(want))
            };
            if let Some(digest) = by_name.or_else(by_digest).and_then(digest_of) {
                // An unreadable image is not listed, and so not found, as in `list`.
                match self.load(&digest) {
                    Ok(image) => return Ok(image),
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "skipping an unreadable image");
                    }
                }
            }
        }
        if is_hex && full.len() >= 4 {
            let listed = self.list()?;
            let mut matches: Vec<&Image> = listed
                .iter()
                .map(|l| &l.image)
                .filter(|i| i.config_digest.hex().starts_with(full))
                .collect();
            matches.sort_by(|a, b| a.config_digest.cmp(&b.config_digest));
            matches.dedup_by(|a, b| a.config_digest == b.config_digest);
            match matches.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {}
                many => {
                    return Err(ImageError::Ambiguous {
                        prefix: full.to_owned(),
                        matches: many.iter().map(|i| i.short_id().to_owned()).collect(),
                    });
                }
            }
        }
        match parsed {
            Ok(_) => Err(ImageError::NotFound(text.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes an image's config and manifest (canonical JSON) for layers already in the
    /// store, and returns it unnamed.
    ///
    /// # Errors
    /// [`ImageError`] when the store cannot be written.
    pub fn write_image(
        &self,
        config: &ImageConfiguration,
        layers: &[LayerRef],
    ) -> Result<Image, ImageError> {
        let config_bytes = oci::canonical_json(config).map_err(|source| ImageError::Serialise {
            what: "cannot serialise the image config",
            source,
        })?;
        let config_blob = self.store.put_blob(config_bytes.as_slice())?;
        self.write_manifest(
            Descriptor::new(
                MediaType::ImageConfig,
                config_blob.size,
                oci_digest(&config_blob.digest),
            ),
            layers,
        )
    }

    /// Writes the manifest (canonical JSON) of a config already in the store and its
    /// layers, and returns the image unnamed.
    ///
    /// # Errors
    /// [`ImageError`] when the store cannot be written.
    pub fn write_manifest(
        &self,
        config: Descriptor,
        layers: &[LayerRef],
    ) -> Result<Image, ImageError> {
        let layer_descs = layers
            .iter()
            .map(|l| {
                Descriptor::new(
                    MediaType::from(l.media_type.as_str()),
                    l.size,
                    oci_digest(&l.digest),
                )
            })
            .collect::<Vec<_>>();
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layer_descs)
            .build()
            .map_err(|source| ImageError::Make {
                what: "cannot build the manifest",
                source,
            })?;
        let manifest_bytes =
            oci::canonical_json(&manifest).map_err(|source| ImageError::Serialise {
                what: "cannot serialise the image manifest",
                source,
            })?;
        let blob = self.store.put_blob(manifest_bytes.as_slice())?;
        self.load(&blob.digest)
    }

    /// Gives `image` the name `name` (moving it from whatever image had it; that
    /// image stays, unnamed, when it has no other name), or records it unnamed when
    /// `name` is `None`.
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be updated.
    pub fn set_name(&self, image: &Image, name: Option<&Reference>) -> Result<(), ImageError> {
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            image.manifest_size,
            oci_digest(&image.manifest_digest),
        );
        let manifest = image.manifest_digest.to_string();
        // A name is repository:tag; a digest in the reference is not part of it.
        let name = name.filter(|n| n.tag.is_some()).map(|n| Reference {
            repository: n.repository.clone(),
            tag: n.tag.clone(),
            digest: None,
        });
        self.store.update_index(|index| {
            let mut entries = index.manifests().clone();
            if let Some(name) = &name {
                // The name moves: whatever held it loses it.
                let mut orphaned = Vec::new();
                entries.retain(|d| {
                    let holds = entry_name(d).as_ref() == Some(name);
                    if holds && d.digest().to_string() != manifest {
                        orphaned.push(d.clone());
                    }
                    !holds
                });
                for old in orphaned {
                    let digest = old.digest().to_string();
                    if !entries.iter().any(|d| d.digest().to_string() == digest) {
                        let mut unnamed = old.clone();
                        unnamed.set_annotations(None);
                        entries.push(unnamed);
                    }
                }
                // A named entry replaces the unnamed one.
                entries
                    .retain(|d| !(d.digest().to_string() == manifest && entry_name(d).is_none()));
                let mut named = desc.clone();
                let mut annotations = HashMap::new();
                annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), name.to_string());
                if let Some(tag) = &name.tag {
                    annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag.clone());
                }
                named.set_annotations(Some(annotations));
                entries.push(named);
            } else if !entries.iter().any(|d| d.digest().to_string() == manifest) {
                entries.push(desc.clone());
            }
            index.set_manifests(entries);
        })?;
        Ok(())
    }

    /// Removes a name. Returns whether the image it named is now without any entry
    /// (and so deleted once its blobs are collected).
    ///
    /// # Errors
    /// [`ImageError::NotFound`] when no image has that name.
    pub fn remove_name(&self, name: &Reference) -> Result<bool, ImageError> {
        let result = self.store.update_index(|index| {
            let mut entries = index.manifests().clone();
            let pos = entries
                .iter()
                .position(|d| entry_name(d).as_ref() == Some(name))?;
            let removed = entries.remove(pos);
            let digest = removed.digest().to_string();
            let gone = !entries.iter().any(|d| d.digest().to_string() == digest);
            index.set_manifests(entries);
            Some(gone)
        })?;
        result.ok_or_else(|| ImageError::NotFound(name.to_string()))
    }

    /// Removes every entry of an image (all its names).
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be updated.
    pub fn remove_image(&self, image: &Image) -> Result<(), ImageError> {
        let manifest = image.manifest_digest.to_string();
        self.store.update_index(|index| {
            let mut entries = index.manifests().clone();
            entries.retain(|d| d.digest().to_string() != manifest);
            index.set_manifests(entries);
        })?;
        Ok(())
    }

    /// The names of an image.
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be read.
    pub fn names_of(&self, image: &Image) -> Result<Vec<Reference>, ImageError> {
        let manifest = image.manifest_digest.to_string();
        let index = self.store.index()?;
        let mut names: Vec<Reference> = index
            .manifests()
            .iter()
            .filter(|d| d.digest().to_string() == manifest)
            .filter_map(entry_name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes blobs no index entry reaches, and cached layers no image uses, when no
    /// other process is writing blobs (a build or load in progress keeps its blobs;
    /// they are collected next time). Returns the bytes freed, or `None` when another
    /// process held the store.
    ///
    /// # Errors
    /// [`ImageError`] when the store cannot be read.
    pub fn collect_garbage(&self, wait: bool) -> Result<Option<u64>, ImageError> {
        let lock = if wait {
            self.store.gc_lock(true)?
        } else {
            match self.store.try_gc_lock()? {
                Some(lock) => lock,
                None => return Ok(None),
            }
        };
        let index = self.store.index()?;
        let mut keep = HashSet::new();
        let mut keep_layers = HashSet::new();
        for desc in index.manifests() {
            let Ok(digest) = our_digest(desc.digest()) else {
                continue;
            };
            keep.insert(digest.clone());
            match self.load(&digest) {
                Ok(image) => {
                    keep.extend(image.blobs().into_iter().map(|b| b.digest));
                    keep_layers.extend(image.diff_ids());
                }
                Err(e) => {
                    // Keep whatever this manifest names: never delete on a guess.
                    tracing::warn!(%digest, error = %e, "cannot read an image; keeping its blobs");
                    if let Ok(bytes) = self.store.read_blob(&digest)
                        && let Ok(manifest) = ImageManifest::from_reader(bytes.as_slice())
                    {
                        keep.extend(our_digest(manifest.config().digest()));
                        for layer in manifest.layers() {
                            keep.extend(our_digest(layer.digest()));
                        }
                    }
                }
            }
        }
        let mut freed = 0;
        for blob in self.store.blobs()? {
            if !keep.contains(&blob.digest) {
                self.store.remove_blob(&blob.digest)?;
                crate::failpoint::hit("prune");
                freed += blob.size;
            }
        }
        freed += self.layers.retain(&keep_layers);
        freed += self.store.remove_stale_temps(&lock);
        Ok(Some(freed))
    }

    /// Rebuilds the store's index from the image manifests among its blobs: entries of
    /// a readable index stay; every complete image it does not list is added under the
    /// name `recovered:` + the first 12 hex digits of its manifest digest (a name, so
    /// that `image prune` does not take it for a dangling image). An unreadable index
    /// is kept as `index.json.damaged`. Returns the images added and that path.
    ///
    /// # Errors
    /// [`ImageError`] when the store cannot be read or written.
    pub fn rebuild_index(&self) -> Result<RebuiltIndex, ImageError> {
        // Manifests are small JSON documents; anything large is a layer.
        const MAX_MANIFEST: u64 = 4 << 20;
        let mut found = Vec::new();
        for blob in self.store.blobs()? {
            if blob.size > MAX_MANIFEST {
                continue;
            }
            let Ok(bytes) = self.store.read_blob(&blob.digest) else {
                continue;
            };
            let is_manifest = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .is_some_and(|v| v.get("config").is_some() && v.get("layers").is_some());
            if !is_manifest {
                continue;
            }
            if let Ok(image) = self.load(&blob.digest)
                && image.blobs().iter().all(|b| self.store.has_blob(&b.digest))
            {
                found.push(image);
            }
        }
        let mut added = Vec::new();
        let kept = self.store.replace_index(|current| {
            let mut index = current.unwrap_or_default();
            let mut entries = index.manifests().clone();
            for image in found {
                let manifest = image.manifest_digest.to_string();
                if entries.iter().any(|d| d.digest().to_string() == manifest) {
                    continue;
                }
                let name = Reference {
                    repository: "recovered".to_owned(),
                    tag: Some(image.manifest_digest.hex()[..12].to_owned()),
                    digest: None,
                };
                let mut desc = Descriptor::new(
                    MediaType::ImageManifest,
                    image.manifest_size,
                    oci_digest(&image.manifest_digest),
                );
                let mut annotations = HashMap::new();
                annotations.insert(ANNOTATION_IMAGE_NAME.to_owned(), name.to_string());
                if let Some(tag) = &name.tag {
                    annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag.clone());
                }
                desc.set_annotations(Some(annotations));
                entries.push(desc);
                added.push((image, name));
            }
            index.set_manifests(entries);
            index
        })?;
        Ok(RebuiltIndex {
            recovered: added,
            damaged_kept_as: kept,
        })
    }

    /// The uncompressed tars of an image's layers (lowest first), made from the blobs
    /// where they are not cached yet, and the chain ID that names the stack.
    ///
    /// # Errors
    /// [`ImageError`] when a blob is missing or corrupt.
    pub fn rootfs(&self, image: &Image) -> Result<(Vec<PathBuf>, Option<Digest>), ImageError> {
        let mut paths = Vec::new();
        for layer in &image.layers {
            paths.push(self.layers.ensure(
                &self.store,
                &layer.digest,
                layer.size,
                &layer.media_type,
                &layer.diff_id,
            )?);
        }
        Ok((paths, oci::chain_id(&image.diff_ids())))
    }

    /// Distinct images (by ID) and the names each has.
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be read.
    pub fn distinct(&self) -> Result<Vec<(Image, BTreeSet<String>)>, ImageError> {
        let mut by_id: Vec<(Image, BTreeSet<String>)> = Vec::new();
        for listed in self.list()? {
            let names = listed.name.iter().map(ToString::to_string);
            match by_id
                .iter_mut()
                .find(|(i, _)| i.manifest_digest == listed.image.manifest_digest)
            {
                Some((_, set)) => set.extend(names),
                None => by_id.push((listed.image, names.collect())),
            }
        }
        Ok(by_id)
    }
}

/// The damaged blob an I/O error reports (from a checked blob), or the error itself.
pub(crate) fn damaged_or(source: std::io::Error, what: &'static str) -> ImageError {
    match StoreError::from_io(&source) {
        Some(StoreError::Damaged { digest, reason }) => ImageError::Store(StoreError::Damaged {
            digest: digest.clone(),
            reason: reason.clone(),
        }),
        _ => ImageError::Io { what, source },
    }
}

/// The name an index entry gives its manifest.
fn entry_name(desc: &Descriptor) -> Option<Reference> {
    let annotations = desc.annotations().as_ref()?;
    let name = annotations.get(ANNOTATION_IMAGE_NAME)?;
    Reference::parse_familiar(name).ok()
}
