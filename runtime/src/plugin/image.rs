//! A plugin from an image: the module its command names (ENTRYPOINT, else CMD; resolved
//! against WORKDIR as a container's would be), read from the image's layers.

use super::PluginError;
use crate::fs::rootfs::RootFs;
use crate::home::Home;
use crate::spec::{GuestPath, RunSpec};
use std::path::PathBuf;

/// Where an image keeps its program, and what a plugin made from it starts with.
#[derive(Debug, Clone)]
pub struct ImageModule {
    /// `REFERENCE:PATH`, for messages.
    pub name: String,
    /// The module cache's name for this program (as containers name it).
    pub alias: String,
    /// The image's `ENV`.
    pub env: Vec<(String, String)>,
    image: String,
    path: GuestPath,
    layers: Vec<PathBuf>,
    chain_id: Option<String>,
    index_cache: PathBuf,
}

impl ImageModule {
    /// Finds the program of the image `reference` in the store of `home`.
    ///
    /// # Errors
    /// [`PluginError::Image`] when there is no such image, it is not a WebAssembly
    /// image, or it has no command.
    pub fn find(home: &Home, reference: &str) -> Result<Self, PluginError> {
        let error = |reason: String| PluginError::Image {
            image: reference.to_owned(),
            reason,
        };
        let images = crate::image::Images::open(home).map_err(|e| error(e.to_string()))?;
        let image = match images.resolve(reference) {
            Ok(image) => image,
            Err(crate::image::ImageError::NotFound(name)) => {
                crate::builtin::ensure_image(&images, reference)
                    .map_err(|e| error(e.to_string()))?
                    .ok_or_else(|| error(format!("no such image: {name}")))?
            }
            Err(e) => return Err(error(e.to_string())),
        };
        let arch = image.config.architecture().to_string();
        let os = image.config.os().to_string();
        if arch != "wasm" && !os.starts_with("wasi") {
            return Err(error(format!(
                "it is an image for {os}/{arch}, not WebAssembly"
            )));
        }
        let config = image.config.config().clone().unwrap_or_default();
        let program = config
            .entrypoint()
            .iter()
            .flatten()
            .chain(config.cmd().iter().flatten())
            .next()
            .cloned()
            .ok_or_else(|| {
                error("it has neither ENTRYPOINT nor CMD naming its module".to_owned())
            })?;
        let (program, _export) = crate::spec::split_program(&program);
        let workdir = config
            .working_dir()
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or("/");
        let path = if program.starts_with('/') {
            GuestPath::parse(program)
        } else {
            GuestPath::parse(&format!("{}/{program}", workdir.trim_end_matches('/')))
        }
        .map_err(|e| error(e.to_string()))?;
        let env = config
            .env()
            .iter()
            .flatten()
            .filter_map(|var| var.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let (layers, chain_id) = images.rootfs(&image).map_err(|e| error(e.to_string()))?;
        Ok(Self {
            name: format!("{reference}:{path}"),
            alias: format!("image {} program {path}", image.id()),
            env,
            image: reference.to_owned(),
            path,
            layers,
            chain_id: chain_id.map(|c| c.hex().to_owned()),
            index_cache: home.layer_index_dir(),
        })
    }

    /// Reads the module from the image's layers.
    ///
    /// # Errors
    /// [`PluginError::Image`] when the layers cannot be opened or the file read.
    pub fn read(&self) -> Result<Vec<u8>, PluginError> {
        let error = |reason: String| PluginError::Image {
            image: self.image.clone(),
            reason,
        };
        let mut spec = RunSpec::new(self.path.as_str());
        spec.layers = self.layers.clone();
        spec.layer_chain_id = self.chain_id.clone();
        spec.layer_index_cache = Some(self.index_cache.clone());
        let root = RootFs::of_image(&spec).map_err(|e| error(e.to_string()))?;
        root.read_file(&self.path)
            .map_err(|e| error(format!("cannot read its program {}: {e}", self.path)))
    }
}
