//! The build state and the OCI image config, both ways: a FROM image's config as the
//! state a stage starts with, and the last stage's state written as the image.

use super::cache::{CachedLayer, ExecConfig, HistoryEntry, State};
use super::error::BuildError;
use crate::image::{Image, Images, LayerRef, archive, oci};
use crate::store::Digest;
use std::collections::{BTreeMap, HashMap};

/// The label that keeps an image's `SHELL` (OCI configs have no field for it).
pub const SHELL_LABEL: &str = "io.capsule.shell";

/// Writes the image of a build state (its layers are in the store already), dated
/// `epoch`.
pub(super) fn write_image(images: &Images, state: &State, epoch: i64) -> Result<Image, BuildError> {
    let c = &state.config;
    let mut builder = oci_spec::image::ConfigBuilder::default();
    if !c.env.is_empty() {
        builder = builder.env(
            c.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(e) = &c.entrypoint {
        builder = builder.entrypoint(e.clone());
    }
    if let Some(cmd) = &c.cmd {
        builder = builder.cmd(cmd.clone());
    }
    if let Some(w) = &c.workdir {
        builder = builder.working_dir(w.clone());
    }
    let mut labels: HashMap<String, String> = c.labels.clone().into_iter().collect();
    if let Some(shell) = &c.shell {
        labels.insert(SHELL_LABEL.to_owned(), json_list(shell));
    }
    if !labels.is_empty() {
        builder = builder.labels(labels);
    }
    if !c.exposed.is_empty() {
        builder = builder.exposed_ports(c.exposed.clone());
    }
    if !c.volumes.is_empty() {
        builder = builder.volumes(c.volumes.clone());
    }
    if let Some(u) = &c.user {
        builder = builder.user(u.clone());
    }
    if let Some(s) = &c.stop_signal {
        builder = builder.stop_signal(s.clone());
    }
    let config = builder
        .build()
        .map_err(|source| BuildError::Config { source })?;
    let created = oci::rfc3339(epoch);
    let history = state
        .history
        .iter()
        .map(|h| {
            let mut b = oci_spec::image::HistoryBuilder::default()
                .created(created.clone())
                .created_by(h.created_by.clone());
            if h.empty_layer {
                b = b.empty_layer(true);
            }
            b.build().map_err(|source| BuildError::Config { source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let layers: Vec<LayerRef> = state
        .layers
        .iter()
        .map(|l| {
            Ok(LayerRef {
                digest: l.digest.parse::<Digest>().map_err(|e| BuildError::Cache {
                    what: "bad digest in the build cache",
                    source: e.into(),
                })?,
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: l.diff_id.parse::<Digest>().map_err(|e| BuildError::Cache {
                    what: "bad digest in the build cache",
                    source: e.into(),
                })?,
            })
        })
        .collect::<Result<_, BuildError>>()?;
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = archive::image_config(config, &diff_ids, history, epoch)?;
    Ok(images.write_image(&config, &layers)?)
}

/// The build state an image starts a stage with.
pub(super) fn state_of_image(image: &Image) -> State {
    let config = image.config.config().clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = config
        .labels()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let shell = labels
        .remove(SHELL_LABEL)
        .and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok());
    let mut exposed = config.exposed_ports().clone().unwrap_or_default();
    exposed.sort();
    let mut volumes = config.volumes().clone().unwrap_or_default();
    volumes.sort();
    State {
        layers: image
            .layers
            .iter()
            .map(|l| CachedLayer {
                digest: l.digest.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: l.diff_id.to_string(),
            })
            .collect(),
        config: ExecConfig {
            env: config
                .env()
                .iter()
                .flatten()
                .filter_map(|v| v.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect(),
            entrypoint: config.entrypoint().clone(),
            cmd: config.cmd().clone(),
            workdir: config.working_dir().clone().filter(|w| !w.is_empty()),
            labels,
            exposed,
            volumes,
            user: config.user().clone(),
            stop_signal: config.stop_signal().clone(),
            shell,
        },
        history: image
            .config
            .history()
            .iter()
            .flatten()
            .map(|h| HistoryEntry {
                created_by: h.created_by().clone().unwrap_or_default(),
                empty_layer: h.empty_layer().unwrap_or(false),
            })
            .collect(),
    }
}

/// An argv as the JSON array the recipe would write.
pub(super) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}
