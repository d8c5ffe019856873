//! `system df` accounting for images: what the images take, what of it containers
//! hold on to, and what is stored that no image uses.

use super::{ImageError, Images};
use std::collections::{HashMap, HashSet};

/// The Images row of `system df`, and the blobs no image uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageUsage {
    /// Distinct images (by ID).
    pub images: usize,
    /// Of them, those a container uses.
    pub active: usize,
    /// Bytes of the blobs the images use, each blob counted once.
    pub size: u64,
    /// Of `size`, the bytes no image a container uses needs.
    pub reclaimable: u64,
    /// Bytes of stored blobs that no image uses (`image prune` frees them).
    pub unreferenced: u64,
}

impl Images {
    /// What the images take; `in_use` says, by image ID, which a container uses.
    ///
    /// # Errors
    /// [`ImageError`] when the index or the blobs cannot be listed.
    pub fn usage(&self, in_use: impl Fn(&str) -> bool) -> Result<ImageUsage, ImageError> {
        let distinct = self.distinct()?;
        let mut blobs = HashMap::new();
        let mut active_blobs = HashSet::new();
        let mut active_images = 0;
        for (image, _) in &distinct {
            let active = in_use(&image.id().to_string());
            active_images += usize::from(active);
            for blob in image.blobs() {
                if active {
                    active_blobs.insert(blob.digest.clone());
                }
                blobs.insert(blob.digest, blob.size);
            }
        }
        let size: u64 = blobs.values().sum();
        let active: u64 = blobs
            .iter()
            .filter(|(d, _)| active_blobs.contains(*d))
            .map(|(_, s)| s)
            .sum();
        let stored: u64 = self.store().blobs()?.iter().map(|b| b.size).sum();
        Ok(ImageUsage {
            images: distinct.len(),
            active: active_images,
            size,
            reclaimable: size - active,
            unreferenced: stored.saturating_sub(size),
        })
    }
}
