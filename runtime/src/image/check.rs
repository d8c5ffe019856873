//! `system check` for images: every image the index lists must find every blob it
//! names, and the merged layer index saved for its layer chain (if any) must be the one
//! its layers give. (Blobs are re-hashed by [`crate::store::Store::check_blobs`];
//! cached layers by [`super::layers::LayerCache::check`].)

use super::{Image, ImageError, Images, oci};
use crate::store::Digest;
use std::path::Path;

/// What `system check` found of the images in the index.
#[derive(Debug)]
pub struct ImagesCheck {
    /// How many entries the index lists.
    pub listed: usize,
    /// Each entry whose digest could be read, in index order.
    pub images: Vec<ImageCheck>,
}

/// One image of the index, checked.
#[derive(Debug)]
pub struct ImageCheck {
    /// Its name, `<none>` when it has none.
    pub name: String,
    /// Its manifest's digest.
    pub digest: Digest,
    pub health: ImageHealth,
}

/// How an image of the index was found.
#[derive(Debug)]
pub enum ImageHealth {
    /// Every blob is there; a damaged saved layer index was removed (the next run
    /// rebuilds it).
    Complete { saved_index_damaged: bool },
    /// It cannot be read, or a blob it names is missing.
    Broken(ImageError),
}

impl Images {
    /// Checks every image the index lists; saved layer indexes are looked for in
    /// `index_dir` (the home's layer index directory).
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be read.
    pub fn check_images(&self, index_dir: &Path) -> Result<ImagesCheck, ImageError> {
        let store = self.store();
        let index = store.index()?;
        let mut images = Vec::new();
        for desc in index.manifests() {
            let name = desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(oci::ANNOTATION_IMAGE_NAME))
                .cloned()
                .unwrap_or_else(|| "<none>".to_owned());
            let Ok(digest) = desc.digest().to_string().parse::<Digest>() else {
                continue;
            };
            let image = self.load(&digest).and_then(|image| {
                image
                    .blobs()
                    .into_iter()
                    .find(|b| !store.has_blob(&b.digest))
                    .map_or(Ok(image), |b| {
                        Err(ImageError::BlobMissing {
                            blob: b.digest.clone(),
                        })
                    })
            });
            let health = match image {
                Ok(image) => ImageHealth::Complete {
                    saved_index_damaged: !self.saved_layer_index_is_sound(index_dir, &image),
                },
                Err(e) => ImageHealth::Broken(e),
            };
            images.push(ImageCheck {
                name,
                digest,
                health,
            });
        }
        Ok(ImagesCheck {
            listed: index.manifests().len(),
            images,
        })
    }

    /// Whether the saved merged index of an image's layer chain (if there is one) is
    /// the one its layers give; a damaged one is removed (the next run rebuilds it).
    fn saved_layer_index_is_sound(&self, index_dir: &Path, image: &Image) -> bool {
        let Some(chain) = oci::chain_id(&image.diff_ids()) else {
            return true;
        };
        let name = format!("{}.idx", chain.hex());
        let Ok(dir) = crate::ambient::open_dir(index_dir) else {
            return true;
        };
        let Ok(saved) = dir.read(&name) else {
            return true;
        };
        let sound = self
            .rootfs(image)
            .ok()
            .and_then(|(paths, _)| crate::fs::rootfs::open_lower(&paths, None, None).ok())
            .is_some_and(|fresh| fresh.index().as_bytes() == saved.as_slice());
        if !sound {
            let _ = dir.remove_file(&name);
        }
        sound
    }
}
