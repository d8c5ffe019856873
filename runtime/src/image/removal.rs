//! The rules of removing images, as Docker has them (`rmi`, `image prune`): a name
//! removes that name and the image goes with its last one; an ID removes the image
//! with all its names, only with `-f` when it has several; an image a container uses
//! stays (named or not) unless forced.

use super::reference::Reference;
use super::{Image, ImageError, Images};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// What `rmi TARGET` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Remove this name only; the image keeps its other names.
    Untag(Reference),
    /// Remove the image and every name it has (listed here).
    Delete(Vec<Reference>),
}

/// Why `rmi` refused (`-f` overrides either).
#[derive(Debug, thiserror::Error)]
pub enum RemovalRefused {
    /// An ID was given for an image with several names.
    #[error(
        "image {image} is referenced by several names ({}): remove them by name, or use -f",
        names.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    SeveralNames {
        image: String,
        names: Vec<Reference>,
    },
    /// The image would go, and containers use it.
    #[error(
        "image {target} is used by container {}: remove the container first (capsule rm {}), or use -f",
        containers.iter().map(|c| c.get(..12).unwrap_or(c)).collect::<Vec<_>>().join(", "),
        containers.iter().map(|c| c.get(..12).unwrap_or(c)).collect::<Vec<_>>().join(" ")
    )]
    InUse {
        target: String,
        /// The containers' IDs.
        containers: Vec<String>,
        /// Where containers are kept, for the message.
        containers_dir: PathBuf,
    },
}

/// The rule of `rmi TARGET`: `target` as typed resolved to `image`, which has `names`;
/// `users` are the containers created from it (their files under `containers_dir`).
///
/// # Errors
/// [`RemovalRefused`] when the removal needs `-f` and `force` is not set.
pub fn removal(
    target: &str,
    image: &Image,
    names: Vec<Reference>,
    users: &[String],
    containers_dir: PathBuf,
    force: bool,
) -> Result<Removal, RemovalRefused> {
    let by_name = Reference::parse(target).ok().filter(|r| {
        names
            .iter()
            .any(|n| n.repository == r.repository && n.tag == r.tag)
    });
    let removing_image = match &by_name {
        Some(_) => names.len() <= 1,
        None => true,
    };
    if by_name.is_none() && names.len() > 1 && !force {
        return Err(RemovalRefused::SeveralNames {
            image: image.short_id().to_owned(),
            names,
        });
    }
    if removing_image && !force && !users.is_empty() {
        return Err(RemovalRefused::InUse {
            target: target.to_owned(),
            containers: users.to_vec(),
            containers_dir,
        });
    }
    Ok(match by_name {
        Some(name) if !removing_image => Removal::Untag(name),
        _ => Removal::Delete(names),
    })
}

impl Images {
    /// The images `image prune` removes, with their names: those no container uses
    /// (`in_use` says which do, by image ID), and of them only the unnamed (dangling)
    /// ones unless `all`.
    ///
    /// # Errors
    /// [`ImageError`] when the index cannot be read.
    pub fn prunable(
        &self,
        all: bool,
        in_use: impl Fn(&str) -> bool,
    ) -> Result<Vec<(Image, BTreeSet<String>)>, ImageError> {
        Ok(self
            .distinct()?
            .into_iter()
            .filter(|(image, names)| !in_use(&image.id().to_string()) && (all || names.is_empty()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Digest;

    fn image() -> Image {
        let config_digest = Digest::of(b"config");
        let config = oci_spec::image::ImageConfigurationBuilder::default()
            .build()
            .expect("config");
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .config(
                oci_spec::image::DescriptorBuilder::default()
                    .media_type(oci_spec::image::MediaType::ImageConfig)
                    .digest(super::super::oci_digest(&config_digest))
                    .size(6u64)
                    .build()
                    .expect("descriptor"),
            )
            .layers(Vec::new())
            .build()
            .expect("manifest");
        Image {
            manifest_digest: Digest::of(b"manifest"),
            manifest_size: 8,
            manifest,
            config_digest,
            config,
            layers: Vec::new(),
        }
    }

    fn names(list: &[&str]) -> Vec<Reference> {
        list.iter()
            .map(|n| Reference::parse(n).expect("name"))
            .collect()
    }

    fn rule(target: &str, named: &[&str], users: &[&str], force: bool) -> Result<Removal, String> {
        let users: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
        removal(
            target,
            &image(),
            names(named),
            &users,
            PathBuf::from("/c"),
            force,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_name_of_several_removes_only_that_name() {
        assert_eq!(
            rule("app:1", &["app:1", "app:2"], &["c0ffee"], false),
            Ok(Removal::Untag(names(&["app:1"]).remove(0)))
        );
    }

    #[test]
    fn the_last_name_removes_the_image_unless_a_container_uses_it() {
        assert_eq!(
            rule("app:1", &["app:1"], &[], false),
            Ok(Removal::Delete(names(&["app:1"])))
        );
        let refused = rule("app:1", &["app:1"], &["0123456789abcdef"], false).expect_err("refused");
        assert!(
            refused.contains("used by container 0123456789ab:")
                && refused.contains("capsule rm 0123456789ab"),
            "{refused}"
        );
        assert_eq!(
            rule("app:1", &["app:1"], &["0123456789abcdef"], true),
            Ok(Removal::Delete(names(&["app:1"])))
        );
    }

    #[test]
    fn an_id_of_an_image_with_several_names_needs_force() {
        let id = image().short_id().to_owned();
        let refused = rule(&id, &["app:1", "app:2"], &[], false).expect_err("refused");
        assert!(
            refused.contains("several names (app:1, app:2)"),
            "{refused}"
        );
        assert_eq!(
            rule(&id, &["app:1", "app:2"], &[], true),
            Ok(Removal::Delete(names(&["app:1", "app:2"])))
        );
    }
}
