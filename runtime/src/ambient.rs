//! The one module in Capsule that uses ambient authority.
//!
//! Everything else receives handles (`cap_std::fs::Dir`) or values that were read here.
//! A function in this module is the place to look when asking "what can Capsule reach on
//! the host": it opens user-named host paths (modules, env files, volume directories,
//! the Capsule home) and reads the host's environment for `-e KEY`.
//!
//! The rule is enforced: the workspace's `clippy.toml` disallows the path-based
//! `std::fs` and `std::env` functions (and `cap_std::ambient_authority`) everywhere but
//! here. A new way to reach the host is a new, small, named function in this module.
#![allow(clippy::disallowed_methods)]

use cap_std::fs::Dir;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Directories opened before the process gave up the identity that could open them.
static PREOPENED: Mutex<Option<HashMap<PathBuf, Dir>>> = Mutex::new(None);

/// Opens `path` now and answers [`open_dir`] of the same path with this handle from
/// then on, for a process that is about to change to a user who may not reach it (the
/// containerd shim's task process opens its rootfs and bind mounts as root, as runc
/// mounts them, then takes the spec's user, who sees inside only what the directories'
/// permissions allow).
///
/// # Errors
/// The host's error from opening it.
pub fn preopen_dir(path: &Path) -> io::Result<()> {
    let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
    PREOPENED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(path.to_owned(), dir);
    Ok(())
}

/// Opens a host directory by path, as a capability handle.
///
/// # Errors
/// The host's error: not found, not a directory, permission denied.
pub fn open_dir(path: &Path) -> io::Result<Dir> {
    if let Some(dir) = PREOPENED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|dirs| dirs.get(path))
    {
        return dir.try_clone();
    }
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
}

/// Creates a host directory and its parents if missing, then opens it.
///
/// # Errors
/// The host's error from creating or opening it.
pub fn create_and_open_dir(path: &Path) -> io::Result<Dir> {
    match open_dir(path) {
        Ok(dir) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path)?;
            open_dir(path)
        }
        Err(e) => Err(e),
    }
}

/// Reads a whole host file named by the user (a module, an env file).
///
/// # Errors
/// The host's error.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// Reads a whole host file as UTF-8 text (a compose file, its `.env`, the build
/// cache's record of a context, a file under `/proc`).
///
/// # Errors
/// The host's error; `InvalidData` when it is not UTF-8.
pub fn read_text(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// Removes a host file.
///
/// # Errors
/// The host's error.
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

/// Opens a host file for appending, creating it if missing (a container's log).
///
/// # Errors
/// The host's error.
pub fn open_append(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Opens a host file for reading and writing, creating it if missing and keeping what
/// it holds: a file to take a lock on.
///
/// # Errors
/// The host's error.
pub fn open_lock_file(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Opens an existing host file for reading and writing (a containerd task's stdio:
/// a FIFO opened so does not wait for the other end).
///
/// # Errors
/// The host's error.
pub fn open_read_write(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

/// Whether a host path names an existing regular file (following symlinks).
pub fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The host's value of an environment variable, for `-e KEY` without a value.
pub fn host_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The host's value of an environment variable as the host has it (Capsule's own
/// settings: `CAPSULE_HOME`, `CAPSULE_LOG`, `NO_COLOR`, ...).
pub fn host_env_os(key: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(key)
}

/// The path of the running program (the `capsule` binary starts itself again as a
/// detached container's supervisor).
///
/// # Errors
/// The host's error.
pub fn current_exe() -> io::Result<PathBuf> {
    std::env::current_exe()
}

/// The platform's directory for a user's application data (`~/.local/share` on Linux),
/// where the Capsule home is by default.
pub fn data_dir() -> Option<PathBuf> {
    dirs::data_dir()
}

/// Every variable of the host's environment that is valid Unicode (compose files
/// substitute them).
pub fn host_env_all() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The host's absolute form of a path, for messages and for wasmtime-wasi preopens.
///
/// # Errors
/// The host's error (the path must exist).
pub fn canonicalize(path: &Path) -> io::Result<std::path::PathBuf> {
    std::fs::canonicalize(path)
}

/// Whether a host path names an existing directory (following symlinks).
pub fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Opens a host file for reading (a layer tar).
///
/// # Errors
/// The host's error.
pub fn open_file(path: &Path) -> io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Opens the directory a user-named output file goes in (`save -o FILE`), and gives the
/// file's name in it, for a write through [`crate::store::AtomicFile`].
///
/// # Errors
/// The host's error; `InvalidInput` when the path names no file.
pub fn open_parent(path: &Path) -> io::Result<(Dir, std::ffi::OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((open_dir(parent)?, name.to_owned()))
}

/// Creates a fresh private scratch directory under the system's temporary directory.
///
/// # Errors
/// The host's error.
pub fn scratch_dir() -> io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            "capsule-run-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("could not create a scratch directory"))
}

/// Removes a scratch directory and everything in it.
///
/// # Errors
/// The host's error.
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    std::fs::remove_dir_all(path)
}

/// A string that changes when a regular file is replaced or modified: its canonical
/// path, size, modification time and (on Unix) device and inode. `None` for anything
/// that is not a regular file.
pub fn file_identity(path: &Path) -> Option<String> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&canonical).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    #[cfg(unix)]
    let node = {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let node = String::new();
    Some(format!(
        "{}|{}|{mtime}|{node}",
        canonical.display(),
        meta.len()
    ))
}

/// `path` made absolute against the current directory (not resolved: no link is
/// followed), for handing a user-named path to another process.
///
/// # Errors
/// The host's error reading the current directory.
pub fn absolute(path: &Path) -> io::Result<PathBuf> {
    std::path::absolute(path)
}

/// The path a Unix socket `name` in `dir` is bound or reached by: as it is when short
/// enough for `sockaddr_un` (108 bytes on Linux, 104 on macOS), else through
/// `/proc/self/fd` and the handle `dir` (Linux), which the caller keeps open meanwhile.
#[cfg(unix)]
fn socket_path(dir: &Path, name: &str, handle: &Dir) -> PathBuf {
    let direct = dir.join(name);
    if direct.as_os_str().len() < 100 || !cfg!(target_os = "linux") {
        return direct;
    }
    use std::os::fd::{AsFd, AsRawFd};
    PathBuf::from(format!(
        "/proc/self/fd/{}/{name}",
        handle.as_fd().as_raw_fd()
    ))
}

/// Listens on a Unix socket `name` in `dir`, reachable by its owner only (mode 0600;
/// made under a temporary name and renamed into place, so it is never seen with
/// another mode). A stale socket there is replaced.
///
/// # Errors
/// The host's error.
#[cfg(unix)]
pub fn bind_unix(dir: &Path, name: &str) -> io::Result<std::os::unix::net::UnixListener> {
    let handle = open_dir(dir)?;
    let temp = format!(".{name}.{}", std::process::id());
    let _ = handle.remove_file(&temp);
    let listener = std::os::unix::net::UnixListener::bind(socket_path(dir, &temp, &handle))?;
    // By name, without following a symlink there: a socket cannot be opened to be
    // `fchmod`ed.
    let done = crate::fs::sys::set_permission_bits(&handle, &temp, 0o600)
        .and_then(|()| handle.rename(&temp, &handle, name));
    if let Err(e) = done {
        let _ = handle.remove_file(&temp);
        return Err(e);
    }
    Ok(listener)
}

/// Connects to the Unix socket `name` in `dir`.
///
/// # Errors
/// The host's error (`NotFound`, `ConnectionRefused` when nothing listens).
#[cfg(unix)]
pub fn connect_unix(dir: &Path, name: &str) -> io::Result<std::os::unix::net::UnixStream> {
    let handle = open_dir(dir)?;
    std::os::unix::net::UnixStream::connect(socket_path(dir, name, &handle))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_bound_socket_is_its_owners_only_and_answers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = bind_unix(dir.path(), "control.sock").expect("bind");
        let mode = std::fs::symlink_metadata(dir.path().join("control.sock"))
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, ["control.sock"]);
        let _client = std::os::unix::net::UnixStream::connect(dir.path().join("control.sock"))
            .expect("connect");
        listener.accept().expect("accept");
    }
}
