//! Images in and out of the store: `save` (an OCI layout in a tar, with Docker's
//! `manifest.json`, as `docker save` writes since Docker 25), `load` (that, the
//! pre-25 `docker save` format, and the CNCF wasm artifact), and `image import` (a
//! wasm module as a one-layer image).
//!
//! An archive is hostile: entry names are checked, every blob is verified against its
//! name while it streams into the store, every blob an image needs must be present,
//! and names are given only once the whole image is in the store.

use super::layer_writer::{LayerPlan, Planned};
pub use super::layers::ARTIFACT_MODULE_PATH;
use super::layers::tar_header;
use super::oci::{self, media};
use super::reference::Reference;
use super::{Image, ImageError, Images, LayerRef, oci_digest};
use crate::store::Digest;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageIndex, ImageManifest, MediaType, Os, RootFsBuilder,
};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Largest JSON document read from an archive.
const MAX_JSON: u64 = 16 << 20;

/// What a load brought in.
#[derive(Debug)]
pub struct Loaded {
    /// Each image with the names it was given.
    pub images: Vec<(Image, Vec<Reference>)>,
}

/// Writes `images` (with the names to record for each) as a tar to `out`.
///
/// # Errors
/// [`ImageError`] when a blob is missing or `out` cannot be written.
pub fn save(
    images: &Images,
    selected: &[(Image, Vec<Reference>)],
    out: impl Write,
    progress: &dyn Fn(u64),
) -> Result<(), ImageError> {
    let io = |what| move |source| ImageError::Io { what, source };
    let mut tar = tar::Builder::new(out);
    let mut blobs = BTreeMap::new();
    let mut index_entries = Vec::new();
    let mut docker_manifest = Vec::new();
    for (image, names) in selected {
        for blob in image.blobs() {
            blobs.insert(blob.digest, blob.size);
        }
        let entry = |name: Option<&Reference>| {
            let mut desc = Descriptor::new(
                MediaType::ImageManifest,
                image.manifest_size,
                oci_digest(&image.manifest_digest),
            );
            if let Some(name) = name {
                let mut annotations = HashMap::new();
                if let Some(qualified) = name.qualified_name() {
                    annotations.insert(oci::ANNOTATION_IMAGE_NAME.to_owned(), qualified);
                }
                if let Some(tag) = &name.tag {
                    annotations.insert(oci::ANNOTATION_REF_NAME.to_owned(), tag.clone());
                }
                desc.set_annotations(Some(annotations));
            }
            desc
        };
        if names.is_empty() {
            index_entries.push(entry(None));
        }
        for name in names {
            index_entries.push(entry(Some(name)));
        }
        docker_manifest.push(serde_json::json!({
            "Config": format!("blobs/sha256/{}", image.config_digest.hex()),
            "RepoTags": names.iter().filter_map(Reference::name).collect::<Vec<_>>(),
            "Layers": image.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }));
    }
    let mut index = ImageIndex::default();
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(index_entries);
    let json = |source| ImageError::Serialise {
        what: "cannot write JSON",
        source,
    };
    let files: [(&str, Vec<u8>); 3] = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", oci::canonical_json(&index).map_err(json)?),
        (
            "manifest.json",
            serde_json::to_vec(&docker_manifest).map_err(json)?,
        ),
    ];
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut header, dir, io::empty())
            .map_err(io("cannot write the archive"))?;
    }
    for (digest, size) in &blobs {
        // Checked while it streams: a damaged blob fails the save instead of leaving
        // an archive that no tool can read.
        let blob = images.store().open_blob_checked(digest, *size)?;
        let mut header = header(tar::EntryType::Regular, 0o644, *size);
        tar.append_data(&mut header, format!("blobs/sha256/{}", digest.hex()), blob)
            .map_err(|source| super::damaged_or(source, "cannot write the archive"))?;
        progress(*size);
    }
    for (name, bytes) in files {
        let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        tar.append_data(&mut header, name, bytes.as_slice())
            .map_err(io("cannot write the archive"))?;
    }
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io("cannot write the archive"))?;
    Ok(())
}

/// Why a stream is not a readable tar, in words of our own: the tar reader's messages
/// quote the bytes it choked on, which for a text file given by mistake would print
/// the file (`load -i /etc/passwd`).
fn not_a_tar(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("entire block") {
        "it ends in the middle of a tar block (a truncated archive, or not a tar)".into()
    } else {
        "it is not a tar archive (a tar header is damaged or missing)".into()
    }
}

/// An entry's data, which must be as long as its header says: a short read is an
/// archive cut off in the middle of the entry, said as such (not as a digest mismatch
/// of what was read).
struct WholeEntry<R> {
    inner: R,
    left: u64,
    truncated: bool,
}

impl<R: Read> WholeEntry<R> {
    fn new(inner: R, size: u64) -> Self {
        Self {
            inner,
            left: size,
            truncated: false,
        }
    }
}

impl<R: Read> Read for WholeEntry<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.truncated = true;
                return Err(e);
            }
            read => read?,
        };
        if n == 0 && self.left > 0 && !buf.is_empty() {
            self.truncated = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends in the middle of an entry",
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// The archive's bytes, decompressed when gzip or zstd compressed them (`docker load`
/// takes `docker save | gzip` too).
fn decompressed<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    use std::io::BufRead;
    let mut input = io::BufReader::with_capacity(256 * 1024, input);
    let head = input.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        )
    } else {
        Box::new(input)
    })
}

/// Archive entries are dated 0: an archive's bytes depend only on its images.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    tar_header(kind, mode, size, 0)
}

/// Reads an archive from `input` into the store and names its images.
///
/// # Errors
/// [`ImageError`] naming what is wrong with the archive; no name is given then (blobs
/// already stored are collected by the next prune).
pub fn load(
    images: &Images,
    input: impl Read,
    progress: &dyn Fn(u64),
) -> Result<Loaded, ImageError> {
    let store = images.store();
    let _gc = store.gc_lock(false)?;
    let bad = |reason: String| ImageError::Archive { reason };
    let input = decompressed(input).map_err(|e| bad(not_a_tar(&e)))?;
    let mut archive = tar::Archive::new(input);
    let mut docs: HashMap<String, Vec<u8>> = HashMap::new();
    // Every regular file's path → the digest it was stored under (legacy format).
    let mut files: HashMap<String, Digest> = HashMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let entries = archive.entries().map_err(|e| bad(not_a_tar(&e)))?;
    let mut any = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(not_a_tar(&e)))?;
        any = true;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8(raw).map_err(|_| bad("an entry name is not UTF-8".into()))?;
        let path =
            clean_path(&path).ok_or_else(|| bad(format!("entry '{path}' escapes the archive")))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .and_then(|t| t.to_str().map(str::to_owned))
                .ok_or_else(|| bad(format!("link '{path}' has no target")))?;
            let target = if kind.is_symlink() {
                let base = path.rsplit_once('/').map_or("", |(d, _)| d);
                clean_path(&format!("{base}/{target}"))
            } else {
                clean_path(&target)
            }
            .ok_or_else(|| bad(format!("link '{path}' points outside the archive")))?;
            links.push((path, target));
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!("entry '{path}' is not a file or directory")));
        }
        let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
        let truncated = || {
            bad(format!(
                "it ends in the middle of '{path}': the archive is truncated (copy or save it again)"
            ))
        };
        let mut data = WholeEntry::new(&mut entry, size);
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let digest: Digest = format!("sha256:{hex}")
                .parse()
                .map_err(|e| bad(format!("'{path}' is not named by a sha256 digest: {e}")))?;
            match store.put_blob_verified(&mut data, &digest, size) {
                Err(_) if data.truncated => return Err(truncated()),
                stored => stored?,
            };
            crate::failpoint::hit("load");
            files.insert(path, digest);
            progress(size);
        } else if path.ends_with(".json") || path == "oci-layout" || path == "repositories" {
            if size > MAX_JSON {
                return Err(bad(format!("'{path}' is larger than 16 MiB")));
            }
            let mut bytes = Vec::new();
            data.read_to_end(&mut bytes).map_err(|e| {
                if data.truncated {
                    truncated()
                } else {
                    bad(e.to_string())
                }
            })?;
            if path.ends_with(".json") && path != "index.json" && path != "manifest.json" {
                // A legacy config: store it, and keep it by path.
                let blob = store.put_blob(bytes.as_slice())?;
                files.insert(path.clone(), blob.digest);
            }
            docs.insert(path, bytes);
        } else {
            let blob = match store.put_blob(&mut data) {
                Err(_) if data.truncated => return Err(truncated()),
                stored => stored?,
            };
            files.insert(path, blob.digest);
            progress(size);
        }
    }
    if !any {
        return Err(bad(
            "it holds nothing (an empty file or an empty tar archive)".into(),
        ));
    }
    for (path, target) in links {
        if let Some(digest) = files.get(&target).cloned() {
            files.insert(path, digest);
        }
    }
    if let Some(index) = docs.get("index.json") {
        load_oci(images, index, docs.get("manifest.json").map(Vec::as_slice))
    } else if let Some(manifest) = docs.get("manifest.json") {
        load_legacy(images, manifest, &files)
    } else {
        Err(bad(
            "it has neither index.json (an OCI layout) nor manifest.json (docker save)".into(),
        ))
    }
}

fn load_oci(
    images: &Images,
    index: &[u8],
    docker_manifest: Option<&[u8]>,
) -> Result<Loaded, ImageError> {
    let index =
        ImageIndex::from_reader(index).map_err(|source| ImageError::ArchiveIndex { source })?;
    // Names from Docker's manifest.json, by config path, when the index has none.
    let mut repo_tags: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(bytes) = docker_manifest
        && let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(bytes)
    {
        for item in items {
            let config = item["Config"].as_str().unwrap_or_default().to_owned();
            let tags = item["RepoTags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            repo_tags.insert(config, tags);
        }
    }
    let mut loaded: Vec<(Image, Vec<Reference>)> = Vec::new();
    for desc in index.manifests() {
        let digest = super::our_digest(desc.digest())?;
        let manifest_digest = match desc.media_type() {
            MediaType::ImageIndex => pick_from_index(images, &digest)?,
            _ => digest,
        };
        let image = images.load(&manifest_digest)?;
        check_blobs(images, &image)?;
        let mut names = Vec::new();
        if let Some(annotations) = desc.annotations() {
            if let Some(name) = annotations.get(oci::ANNOTATION_IMAGE_NAME) {
                names.push(Reference::parse_familiar(name)?);
            } else if let Some(tag) = annotations.get(oci::ANNOTATION_REF_NAME)
                && Reference::parse(tag).is_ok_and(|r| {
                    r.repository.contains(['/', '.', ':'])
                        || r.tag.as_deref() != Some("latest")
                        || !tag.contains(':')
                })
                && tag.contains(':')
            {
                names.push(Reference::parse_familiar(tag)?);
            }
        }
        if names.is_empty()
            && let Some(tags) =
                repo_tags.get(&format!("blobs/sha256/{}", image.config_digest.hex()))
        {
            for tag in tags {
                names.push(Reference::parse_familiar(tag)?);
            }
        }
        match loaded
            .iter_mut()
            .find(|(i, _)| i.manifest_digest == image.manifest_digest)
        {
            Some((_, existing)) => existing.extend(names),
            None => loaded.push((image, names)),
        }
    }
    name_loaded(images, loaded)
}

fn pick_from_index(images: &Images, digest: &Digest) -> Result<Digest, ImageError> {
    let bytes = images.store().read_blob(digest)?;
    let index = ImageIndex::from_reader(bytes.as_slice()).map_err(|source| ImageError::Index {
        digest: digest.clone(),
        source,
    })?;
    let manifests = index.manifests();
    let wasm = manifests.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.architecture() == &Arch::Wasm)
    });
    let chosen = wasm
        .or(manifests.first())
        .ok_or_else(|| ImageError::EmptyIndex {
            digest: digest.clone(),
        })?;
    super::our_digest(chosen.digest())
}

fn check_blobs(images: &Images, image: &Image) -> Result<(), ImageError> {
    for blob in image.blobs() {
        if !images.store().has_blob(&blob.digest) {
            return Err(ImageError::ArchiveLacksBlob {
                blob: blob.digest.clone(),
                image: image.short_id().to_string(),
            });
        }
    }
    Ok(())
}

fn name_loaded(
    images: &Images,
    loaded: Vec<(Image, Vec<Reference>)>,
) -> Result<Loaded, ImageError> {
    for (image, names) in &loaded {
        if names.is_empty() {
            images.set_name(image, None)?;
        }
        for name in names {
            images.set_name(image, Some(name))?;
        }
    }
    Ok(Loaded { images: loaded })
}

/// The `docker save` format before Docker 25: `manifest.json` naming a config file and
/// uncompressed layer tars by path.
fn load_legacy(
    images: &Images,
    manifest: &[u8],
    files: &HashMap<String, Digest>,
) -> Result<Loaded, ImageError> {
    let bad = |reason: String| ImageError::ArchiveManifest { reason };
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(manifest).map_err(|e| bad(e.to_string()))?;
    let mut loaded = Vec::new();
    for item in items {
        let path = |v: &serde_json::Value| -> Result<Digest, ImageError> {
            let p = v
                .as_str()
                .ok_or_else(|| bad("a path is not a string".into()))?;
            let p = clean_path(p).ok_or_else(|| bad(format!("bad path {p}")))?;
            files
                .get(&p)
                .cloned()
                .ok_or_else(|| bad(format!("'{p}' is not in the archive")))
        };
        let config_digest = path(&item["Config"])?;
        let config_bytes = images.store().read_blob(&config_digest)?;
        let config = ImageConfiguration::from_reader(config_bytes.as_slice())
            .map_err(|e| bad(format!("config is invalid: {e}")))?;
        let layer_paths = item["Layers"].as_array().cloned().unwrap_or_default();
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != layer_paths.len() {
            return Err(bad("the number of layers does not match the config".into()));
        }
        let mut layers = Vec::new();
        for (p, diff_id) in layer_paths.iter().zip(diff_ids) {
            let digest = path(p)?;
            let size = images
                .store()
                .open_blob(&digest)?
                .metadata()
                .map_err(|source| ImageError::Io {
                    what: "cannot stat a layer",
                    source,
                })?
                .len();
            layers.push(LayerRef {
                digest,
                size,
                media_type: media::LAYER_TAR.to_owned(),
                diff_id: diff_id
                    .parse()
                    .map_err(|e| bad(format!("bad diff_id {diff_id}: {e}")))?,
            });
        }
        // Keep the original config bytes (and so the image ID).
        let image = images.write_manifest(
            Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                oci_digest(&config_digest),
            ),
            &layers,
        )?;
        let names = item["RepoTags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str())
                    .map(Reference::parse_familiar)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        loaded.push((image, names));
    }
    name_loaded(images, loaded)
}

/// Normalises an archive path; `None` when it is absolute or climbs out.
fn clean_path(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    crate::fs::lower::normalize(path)
}

/// What `image import` and the built-in images record.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Where the module goes in the image (absolute), also its entrypoint.
    pub path: String,
    /// Seconds since the epoch for timestamps (SOURCE_DATE_EPOCH).
    pub epoch: i64,
    /// The history entry's `created_by`.
    pub created_by: String,
}

/// `capsule image import FILE [-t NAME]`: a one-layer image of the module `wasm` read
/// from `file`, at `/STEM.wasm` (its entrypoint; `/app.wasm` for a name without a
/// usable stem), named `name` when given.
///
/// # Errors
/// [`ImageError`] when the store cannot be written.
pub fn import_file(
    images: &Images,
    file: &std::path::Path,
    wasm: Vec<u8>,
    epoch: i64,
    name: Option<&Reference>,
) -> Result<Image, ImageError> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && !s.contains(['/', '\\']))
        .unwrap_or("app");
    let image = import_module(
        images,
        wasm,
        &ImportOptions {
            path: format!("/{stem}.wasm"),
            epoch,
            created_by: format!("capsule image import {stem}.wasm"),
        },
    )?;
    images.set_name(&image, name)?;
    Ok(image)
}

/// Writes `selected` as an archive (as [`save`]) to the file `path`, atomically: a
/// temporary file beside it, synced, renamed over it; nothing is left on failure.
///
/// # Errors
/// [`ImageError`] when a blob is missing or the file cannot be written.
pub fn save_to_file(
    images: &Images,
    selected: &[(Image, Vec<Reference>)],
    path: &std::path::Path,
    progress: &dyn Fn(u64),
) -> Result<(), ImageError> {
    let cannot = |source| ImageError::Write {
        path: path.display().to_string(),
        source,
    };
    let (dir, name) = crate::ambient::open_parent(path).map_err(cannot)?;
    let mut file =
        crate::store::AtomicFile::create(&dir, &name.to_string_lossy()).map_err(cannot)?;
    save(images, selected, io::BufWriter::new(&mut file), progress)?;
    file.sync().map_err(cannot)?;
    file.commit(&name).map_err(cannot)
}

/// Makes a one-layer image holding `wasm` at `options.path`, with it as entrypoint.
///
/// # Errors
/// [`ImageError`] when the store cannot be written.
pub fn import_module(
    images: &Images,
    wasm: Vec<u8>,
    options: &ImportOptions,
) -> Result<Image, ImageError> {
    let _gc = images.store().gc_lock(false)?;
    let size = wasm.len() as u64;
    let bytes: Arc<[u8]> = wasm.into();
    let mut plan = LayerPlan::new();
    plan.add(
        &options.path,
        Planned::File {
            mode: 0o755,
            size,
            open: Arc::new(move || Ok(Box::new(io::Cursor::new(bytes.clone())) as Box<dyn Read>)),
        },
    );
    let layer = plan.write(images.store(), images.layer_cache(), options.epoch)?;
    let config = image_config(
        ConfigBuilder::default()
            .entrypoint(vec![options.path.clone()])
            .build()
            .map_err(|source| ImageError::Make {
                what: "cannot make the image config",
                source,
            })?,
        std::slice::from_ref(&layer.diff_id),
        vec![
            HistoryBuilder::default()
                .created(oci::rfc3339(options.epoch))
                .created_by(options.created_by.clone())
                .build()
                .map_err(|source| ImageError::Make {
                    what: "cannot make the image history",
                    source,
                })?,
        ],
        options.epoch,
    )?;
    images.write_image(
        &config,
        &[LayerRef {
            digest: layer.digest,
            size: layer.size,
            media_type: layer.media_type.to_owned(),
            diff_id: layer.diff_id,
        }],
    )
}

/// An image config for WebAssembly (`wasm`/`wasip1`).
///
/// # Errors
/// [`ImageError::Make`] if oci-spec refuses it.
pub fn image_config(
    config: oci_spec::image::Config,
    diff_ids: &[Digest],
    history: Vec<oci_spec::image::History>,
    created: i64,
) -> Result<ImageConfiguration, ImageError> {
    ImageConfigurationBuilder::default()
        .created(oci::rfc3339(created))
        .architecture(Arch::Wasm)
        .os(Os::Other(oci::OS.to_owned()))
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>())
                .build()
                .map_err(|source| ImageError::Make {
                    what: "cannot make the image rootfs",
                    source,
                })?,
        )
        .history(history)
        .build()
        .map_err(|source| ImageError::Make {
            what: "cannot make the image config",
            source,
        })
}

fn artifact_layer(manifest: &ImageManifest) -> Result<&Descriptor, ImageError> {
    let wasm: Vec<&Descriptor> = manifest
        .layers()
        .iter()
        .filter(|l| l.media_type().to_string() == media::WASM_LAYER)
        .collect();
    match wasm.as_slice() {
        [one] => Ok(one),
        _ => Err(ImageError::ArtifactLayers { count: wasm.len() }),
    }
}

/// The diff_id Capsule gives the single-file layer it makes of an artifact's module.
fn artifact_diff_id(blob: &Digest) -> Digest {
    Digest::of(format!("capsule wasm artifact layer {blob}").as_bytes())
}

/// The runnable config of a CNCF wasm artifact: its module as entrypoint, at
/// [`ARTIFACT_MODULE_PATH`].
pub(super) fn wasm_artifact_config(
    manifest: &ImageManifest,
    config_bytes: &[u8],
) -> Result<ImageConfiguration, ImageError> {
    let value: serde_json::Value = serde_json::from_slice(config_bytes)
        .map_err(|source| ImageError::ArtifactConfig { source })?;
    let layer = artifact_layer(manifest)?;
    let created = value["created"]
        .as_str()
        .and_then(oci::parse_rfc3339)
        .unwrap_or(0);
    image_config(
        ConfigBuilder::default()
            .entrypoint(vec![ARTIFACT_MODULE_PATH.to_owned()])
            .build()
            .map_err(|source| ImageError::Make {
                what: "cannot make the image config",
                source,
            })?,
        &[artifact_diff_id(&super::our_digest(layer.digest())?)],
        Vec::new(),
        created,
    )
}

/// The one layer of a wasm artifact.
pub(super) fn wasm_artifact_layers(manifest: &ImageManifest) -> Result<Vec<LayerRef>, ImageError> {
    let layer = artifact_layer(manifest)?;
    let digest = super::our_digest(layer.digest())?;
    Ok(vec![LayerRef {
        diff_id: artifact_diff_id(&digest),
        digest,
        size: layer.size(),
        media_type: media::WASM_LAYER.to_owned(),
    }])
}
