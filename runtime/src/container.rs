//! Containers on disk: `$CAPSULE_HOME/containers/ID/` holds `config.json` (what the
//! container runs) and the writable layer (`upper/`, `work/`) above its image's layers.
//!
//! Lifecycle commands (`ps`, `start`, `rm`, logs) build on this; for now a container is
//! created by `capsule run IMAGE` and removed after it with `--rm`.

use crate::home::Home;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

/// What a container was created from and runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerConfig {
    /// 64 hex digits.
    pub id: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's ID (its config digest).
    pub image_id: String,
    /// argv: the program inside the image and its arguments.
    pub command: Vec<String>,
    /// RFC 3339.
    pub created: String,
}

/// A container's directory.
#[derive(Debug)]
pub struct Container {
    pub config: ContainerConfig,
    pub dir: PathBuf,
}

fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Container {
    /// Creates a container's directory and records its config (written to a temporary
    /// file and renamed, so a reader never sees half of it).
    ///
    /// # Errors
    /// The host's error.
    pub fn create(
        home: &Home,
        image: &str,
        image_id: &str,
        command: Vec<String>,
    ) -> io::Result<Self> {
        let id = random_id()?;
        let dir = home.containers_dir().join(&id);
        let handle = crate::ambient::create_and_open_dir(&dir)?;
        let config = ContainerConfig {
            id,
            image: image.to_owned(),
            image_id: image_id.to_owned(),
            command,
            created: crate::image::oci::rfc3339(now()),
        };
        let json = serde_json::to_vec_pretty(&config).map_err(io::Error::other)?;
        crate::store::write_atomically(&handle, "config.json", &json)?;
        Ok(Self { config, dir })
    }

    /// Removes the container and its writable layer.
    ///
    /// # Errors
    /// The host's error.
    pub fn remove(self) -> io::Result<()> {
        crate::ambient::remove_dir_all(&self.dir)
    }

    /// The IDs of the images that containers were created from.
    pub fn image_ids(home: &Home) -> Vec<String> {
        let Ok(dir) = crate::ambient::open_dir(&home.containers_dir()) else {
            return Vec::new();
        };
        let Ok(entries) = dir.entries() else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let text = dir.read_to_string(format!("{name}/config.json")).ok()?;
                let config: ContainerConfig = serde_json::from_str(&text).ok()?;
                Some(config.image_id)
            })
            .collect()
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
