//! The work directory of a build's RUN steps: private, locked while the build runs,
//! and removed by the next build when a killed one left it.

use std::path::PathBuf;

/// A private work directory under the home's `tmp/`, locked while in use; stale ones
/// (left by a killed build, their lock free) are removed by the next build.
pub(super) struct TmpDir {
    path: PathBuf,
    _lock: std::fs::File,
}

impl TmpDir {
    /// Where it is.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Removes work directories whose build is gone (killed: its lock is free).
    pub(super) fn clean_stale(root: &std::path::Path) {
        let Ok(dir) = crate::ambient::open_dir(root) else {
            return;
        };
        if let Ok(entries) = dir.entries() {
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let Some(stem) = name.strip_suffix(".lock") else {
                    continue;
                };
                if let Ok(file) = dir.open_with(
                    &name,
                    cap_std::fs::OpenOptions::new().read(true).write(true),
                ) {
                    let file = file.into_std();
                    if file.try_lock().is_ok() {
                        let _ = crate::ambient::remove_dir_all(&root.join(stem));
                        let _ = dir.remove_file(&name);
                        let _ = file.unlock();
                    }
                }
            }
        }
    }

    /// Makes a fresh work directory under `root`, locked until it is dropped.
    ///
    /// # Errors
    /// The host's error.
    pub(super) fn new(root: &std::path::Path) -> std::io::Result<Self> {
        let dir = crate::ambient::create_and_open_dir(root)?;
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name: String = format!(
            "build-{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let lock = dir
            .open_with(
                format!("{name}.lock"),
                cap_std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true),
            )?
            .into_std();
        lock.lock()?;
        dir.create_dir(&name)?;
        Ok(Self {
            path: root.join(name),
            _lock: lock,
        })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = crate::ambient::remove_dir_all(&self.path);
        if let Some(parent) = self.path.parent()
            && let Some(name) = self.path.file_name()
        {
            let _ = crate::ambient::remove_file(
                &parent.join(format!("{}.lock", name.to_string_lossy())),
            );
        }
    }
}
