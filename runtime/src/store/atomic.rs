//! Files that appear whole or not at all: written under a temporary name beside their
//! final one and renamed into place once complete. Dropped unfinished, the temporary
//! file is removed; a crash leaves it behind under a name of the `.NAME-PID-N.tmp`
//! shape, which the directories' cleaners recognise.

use cap_std::fs::{Dir, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name for a file about to be `prefix`: `.PREFIX-PID-N.tmp`.
pub(crate) fn tmp_name(prefix: &str) -> String {
    format!(
        ".{prefix}-{}-{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A file being written under a temporary name in a directory; [`AtomicFile::commit`]
/// gives it its name.
#[derive(Debug)]
pub struct AtomicFile<'d> {
    dir: &'d Dir,
    /// The temporary name, until the file is committed or discarded.
    tmp: Option<String>,
    file: File,
}

impl<'d> AtomicFile<'d> {
    /// Creates an empty temporary file in `dir`, its name made from `prefix`.
    ///
    /// # Errors
    /// The host's error.
    pub fn create(dir: &'d Dir, prefix: &str) -> io::Result<Self> {
        let tmp = tmp_name(prefix);
        let file = dir.create(&tmp)?;
        Ok(Self {
            dir,
            tmp: Some(tmp),
            file,
        })
    }

    /// Syncs what was written to the disk (before [`AtomicFile::commit`], for a file
    /// that must survive a power loss once it has its name).
    ///
    /// # Errors
    /// The host's error.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Renames the file to `name` in its directory, replacing what is there; on failure
    /// the temporary file is removed.
    ///
    /// # Errors
    /// The host's error.
    pub fn commit(mut self, name: impl AsRef<Path>) -> io::Result<()> {
        let tmp = self.tmp.take().unwrap_or_default();
        let result = self.dir.rename(&tmp, self.dir, name);
        if result.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        result
    }

    /// Opens what was written so far for reading, by its temporary name.
    ///
    /// # Errors
    /// The host's error.
    pub fn reopen(&self) -> io::Result<std::fs::File> {
        self.dir
            .open(self.tmp.as_deref().unwrap_or_default())
            .map(File::into_std)
    }

    /// Removes the temporary file now, saying whether that worked (dropping it removes
    /// it silently).
    ///
    /// # Errors
    /// The host's error.
    pub fn discard(mut self) -> io::Result<()> {
        let tmp = self.tmp.take().unwrap_or_default();
        self.dir.remove_file(&tmp)
    }
}

impl Write for AtomicFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = self.dir.remove_file(tmp);
        }
    }
}

/// Writes `bytes` as the file `name` under `dir`: a temporary sibling, synced, then
/// renamed over it. A failure leaves what was there.
///
/// # Errors
/// The host's error.
pub fn write_atomically(dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(dir, name)?;
    file.write_all(bytes)?;
    file.sync()?;
    crate::failpoint::hit(name);
    file.commit(name)
}
