//! Platform differences, chosen once: every Unix/other difference of the filesystem and
//! the builder is a function here, with one fallback for hosts without Unix metadata
//! (each fallback says what it gives).

use cap_std::fs::{Dir, Metadata, OpenOptions};
use std::fs::File;
use std::io;

/// Positioned read that does not move the file's cursor (shared handles stay valid).
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Positioned read (Windows moves the cursor, which no caller relies on).
#[cfg(windows)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Positioned write.
#[cfg(unix)]
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, offset)
}

/// Positioned write.
#[cfg(windows)]
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, buf, offset)
}

/// Permission bits of a host entry (`0o7777` at most). Elsewhere: 0755 for a
/// directory, 0444 for a read-only file, 0644 for others.
#[cfg(unix)]
pub fn permission_bits(meta: &Metadata) -> u32 {
    use cap_std::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Permission bits of a host entry (`0o7777` at most). Elsewhere: 0755 for a
/// directory, 0444 for a read-only file, 0644 for others.
#[cfg(not(unix))]
pub fn permission_bits(meta: &Metadata) -> u32 {
    match (meta.is_dir(), meta.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    }
}

/// A host entry's inode number, link count and status-change time. Elsewhere: inode
/// 0, one link, and no ctime (callers use the mtime).
#[cfg(unix)]
pub fn identity(meta: &Metadata) -> (u64, u64, Option<(i64, u32)>) {
    use cap_std::fs::MetadataExt;
    let ctime = (meta.ctime(), u32::try_from(meta.ctime_nsec()).unwrap_or(0));
    (meta.ino(), meta.nlink(), Some(ctime))
}

/// A host entry's inode number, link count and status-change time. Elsewhere: inode
/// 0, one link, and no ctime (callers use the mtime).
#[cfg(not(unix))]
pub fn identity(_meta: &Metadata) -> (u64, u64, Option<(i64, u32)>) {
    (0, 1, None)
}

/// The permission bits a file created with `options` gets (before the umask).
/// Elsewhere: nothing (the host's default).
#[cfg(unix)]
pub fn set_create_mode(options: &mut OpenOptions, mode: u32) {
    use cap_std::fs::OpenOptionsExt;
    options.mode(mode & 0o777);
}

/// The permission bits a file created with `options` gets (before the umask).
/// Elsewhere: nothing (the host's default).
#[cfg(not(unix))]
pub fn set_create_mode(_options: &mut OpenOptions, _mode: u32) {}

/// Sets the permission bits of `path` in `dir`, not following a symlink there: on
/// Linux one `fchmodat2(..., AT_SYMLINK_NOFOLLOW)` where the kernel has it (6.6), else
/// cap-std's way, through `/proc/self/fd`, whose first use in a process lists `/proc` to
/// check it (a cost that grows with the host's processes). Elsewhere: nothing (the host
/// keeps its own).
///
/// # Errors
/// The host's error.
#[cfg(unix)]
pub fn set_permission_bits(dir: &Dir, path: &str, mode: u32) -> io::Result<()> {
    use cap_std::fs::PermissionsExt;
    #[cfg(target_os = "linux")]
    if fchmodat2_nofollow(dir, path, mode & 0o7777) {
        return Ok(());
    }
    dir.set_permissions(path, cap_std::fs::Permissions::from_mode(mode & 0o7777))
}

/// `fchmodat2(dir, path, mode, AT_SYMLINK_NOFOLLOW)` for a `path` that is one plain name
/// (a longer path would be walked by the kernel, following symlinks and `..` out of
/// `dir`: cap-std's way keeps such a walk beneath it); false when it was not tried or
/// did not succeed (an older kernel, a seccomp filter that refuses it, a symlink, any
/// error): the caller then takes the way that reports the host's error.
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "a raw system call libc has no wrapper for: see SAFETY"
)]
fn fchmodat2_nofollow(dir: &Dir, path: &str, mode: u32) -> bool {
    use std::os::fd::{AsFd, AsRawFd};
    if path.is_empty() || path.contains('/') || path == "." || path == ".." {
        return false;
    }
    let Ok(path) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: the arguments are a descriptor this process holds open (`dir`), a
    // NUL-terminated path it owns for the call's length, and two integers; the call
    // writes no memory.
    let result = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            mode,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    result == 0
}

/// Sets the permission bits of the directory `name` Capsule has just made in `dir`:
/// through a descriptor of it (`fchmod`), which needs no `/proc` on any kernel (by path,
/// [`set_permission_bits`] needs it where `fchmodat2` is missing: the first use in a
/// process lists `/proc`, a tenth of a short container's start). Not following a
/// symlink; by path if it cannot be opened. Elsewhere: nothing (a directory keeps its
/// own).
///
/// # Errors
/// The host's error.
#[cfg(unix)]
pub fn set_dir_permission_bits(dir: &Dir, name: &str, mode: u32) -> io::Result<()> {
    use cap_std::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits().cast_signed());
    cap_fs_ext::OpenOptionsFollowExt::follow(&mut options, cap_fs_ext::FollowSymlinks::No);
    match dir.open_with(name, &options) {
        Ok(opened) => opened.set_permissions(cap_std::fs::Permissions::from_mode(mode & 0o7777)),
        Err(_) => set_permission_bits(dir, name, mode),
    }
}

/// Elsewhere: nothing (a directory keeps its own, as [`set_permission_bits`] says).
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn set_dir_permission_bits(_dir: &Dir, _name: &str, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Sets the permission bits of an open file (`fchmod`). Elsewhere (Windows): a file
/// without any write bit becomes read-only, as [`set_permission_bits`] does.
///
/// # Errors
/// The host's error.
pub fn set_open_file_permission_bits(file: &cap_std::fs::File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use cap_std::fs::PermissionsExt;
        file.set_permissions(cap_std::fs::Permissions::from_mode(mode & 0o7777))
    }
    #[cfg(not(unix))]
    {
        let mut permissions = file.metadata()?.permissions();
        permissions.set_readonly(mode & 0o222 == 0);
        file.set_permissions(permissions)
    }
}

/// Sets the permission bits of `path` in `dir`. Elsewhere (Windows): a file without
/// any write bit becomes read-only (the one bit the host keeps; [`permission_bits`]
/// reads it back as 0444), one with a write bit writable; a directory keeps its own.
///
/// # Errors
/// The host's error.
#[cfg(not(unix))]
pub fn set_permission_bits(dir: &Dir, path: &str, mode: u32) -> io::Result<()> {
    let meta = dir.symlink_metadata(path)?;
    if !meta.is_file() {
        return Ok(());
    }
    let mut permissions = meta.permissions();
    permissions.set_readonly(mode & 0o222 == 0);
    dir.set_permissions(path, permissions)
}

/// Creates a symlink `path` in `dir` whose text is `target`.
///
/// # Errors
/// The host's error.
#[cfg(unix)]
pub fn symlink(dir: &Dir, target: &str, path: impl AsRef<std::path::Path>) -> io::Result<()> {
    dir.symlink_contents(target, path)
}

/// Creates a symlink `path` in `dir` whose text is `target`. Windows: always a file
/// symlink (Capsule resolves a guest's symlinks itself and never lets the host follow
/// one, so the kind Windows asks for does not matter to it); creating one needs
/// Developer Mode or the "Create symbolic links" privilege: without it the guest gets
/// `ENOTSUP` (as where symlinks do not exist) and Capsule says once what to enable.
///
/// # Errors
/// The host's error; `Unsupported` without the privilege.
#[cfg(windows)]
pub fn symlink(dir: &Dir, target: &str, path: impl AsRef<std::path::Path>) -> io::Result<()> {
    /// ERROR_PRIVILEGE_NOT_HELD.
    const NO_PRIVILEGE: i32 = 1314;
    let path = path.as_ref();
    dir.symlink_file(target, path).map_err(|e| {
        if e.raw_os_error() == Some(NO_PRIVILEGE) {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "this Windows account may not create symlinks: a guest's symlink() gets ENOTSUP \
                     (turn on Developer Mode, or grant the \"Create symbolic links\" privilege)"
                );
            });
            io::Error::new(io::ErrorKind::Unsupported, e)
        } else {
            e
        }
    })?;
    // A host that says it made one and did not (Wine 8's CreateSymbolicLinkW is a stub
    // that reports success): the guest must not be told it has a symlink.
    if !dir
        .symlink_metadata(path)
        .is_ok_and(|meta| meta.file_type().is_symlink())
    {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the host reported a symlink made, but none is there",
        ));
    }
    Ok(())
}

/// Creates a symlink. Elsewhere: [`io::ErrorKind::Unsupported`] (ENOTSUP to a guest).
///
/// # Errors
/// Always.
#[cfg(not(any(unix, windows)))]
pub fn symlink(_dir: &Dir, _target: &str, _path: impl AsRef<std::path::Path>) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are not supported on this host",
    ))
}

/// Renames `from` to `to` in `dir` (both plain relative paths) as POSIX `rename` does.
///
/// # Errors
/// The host's error.
#[cfg(not(windows))]
pub fn rename(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    dir.rename(from, dir, to)
}

/// Renames `from` to `to` in `dir` (both plain relative paths) as POSIX `rename` does,
/// where Windows' own rename differs: a directory never replaces a file (`ENOTDIR`) nor
/// a file a directory (`EISDIR`), a directory replaces only an empty one (removed
/// first: two steps, where POSIX has one), and a directory never moves into itself
/// (`EINVAL`).
///
/// # Errors
/// The host's error, or the POSIX one above.
#[cfg(windows)]
pub fn rename(dir: &Dir, from: &str, to: &str) -> io::Result<()> {
    let from_is_dir = dir.symlink_metadata(from)?.is_dir();
    if from == to {
        return Ok(());
    }
    if from_is_dir && to.starts_with(&format!("{from}/")) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    match dir.symlink_metadata(to) {
        Ok(meta) => match (from_is_dir, meta.is_dir()) {
            (true, false) => return Err(io::Error::from(io::ErrorKind::NotADirectory)),
            (false, true) => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
            (true, true) => dir.remove_dir(to)?,
            (false, false) => {}
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    dir.rename(from, dir, to)
}

/// Whether the host can hold `name` (one path component) as the guest means it: any
/// name on Unix; on Windows, [`windows_can_name`].
pub fn host_can_name(name: &str) -> bool {
    !cfg!(windows) || windows_can_name(name)
}

/// Whether Windows holds `name` (one path component) as itself: not a name with `\\`
/// (a separator there), `:` (an alternate data stream), `* ? " < > |` or a control
/// character, ending in a dot or a space, or a DOS device name (`CON`, `PRN`, `AUX`,
/// `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, with any extension): such a name would name
/// something else there, so a guest gets `EINVAL` making one. (Checked on every system
/// by the unit tests; applied on Windows.)
pub fn windows_can_name(name: &str) -> bool {
    const DEVICES: &[&str] = &["CON", "PRN", "AUX", "NUL"];
    if name
        .chars()
        .any(|c| c.is_control() || "\\:*?\"<>|".contains(c))
        || name.ends_with('.') && name != "." && name != ".."
        || name.ends_with(' ')
    {
        return false;
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or(name)
        .trim_end()
        .to_ascii_uppercase();
    let numbered = stem.len() == 4
        && (stem.starts_with("COM") || stem.starts_with("LPT"))
        && stem.as_bytes()[3].is_ascii_digit()
        && stem.as_bytes()[3] != b'0';
    !(DEVICES.contains(&stem.as_str()) || numbered)
}

#[cfg(test)]
mod tests {
    use super::windows_can_name;

    /// By name, a mode change reaches the entry in `dir` and nothing outside it: not
    /// through `..`, a symlinked directory on the way, or a symlink in the last place.
    #[cfg(unix)]
    #[test]
    fn permission_bits_are_set_beneath_the_directory_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("temp dir");
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"x").expect("outside file");
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("mode");
        let inner = tmp.path().join("inner");
        std::fs::create_dir(&inner).expect("inner");
        std::fs::create_dir(inner.join("sub")).expect("sub");
        std::fs::write(inner.join("sub/own"), b"y").expect("own file");
        std::fs::write(inner.join("plain"), b"z").expect("plain file");
        std::os::unix::fs::symlink(&outside, inner.join("link")).expect("link");
        std::os::unix::fs::symlink(tmp.path(), inner.join("up")).expect("dir link");
        let dir =
            cap_std::fs::Dir::open_ambient_dir(&inner, cap_std::ambient_authority()).expect("open");
        let mode_of = |path: &std::path::Path| {
            std::fs::symlink_metadata(path)
                .expect("stat")
                .permissions()
                .mode()
                & 0o7777
        };
        super::set_permission_bits(&dir, "plain", 0o600).expect("plain name");
        assert_eq!(mode_of(&inner.join("plain")), 0o600);
        super::set_permission_bits(&dir, "sub/own", 0o640).expect("a path beneath");
        assert_eq!(mode_of(&inner.join("sub/own")), 0o640);
        for escape in ["link", "../outside", "up/outside", ".."] {
            let _ = super::set_permission_bits(&dir, escape, 0o600);
            assert_eq!(mode_of(&outside), 0o644, "{escape} reached outside");
        }
        assert_ne!(mode_of(tmp.path()), 0o600, ".. reached the parent");
    }

    #[test]
    fn names_windows_would_read_as_something_else_are_told_apart() {
        for name in [
            "a:b",
            "a\\b",
            "con",
            "CON",
            "con.txt",
            "Nul.tar.gz",
            "aux",
            "prn",
            "com1",
            "LPT9.log",
            "trail.",
            "space ",
            "q?",
            "star*",
            "pipe|",
            "lt<",
            "gt>",
            "quote\"",
            "tab\t",
            "nul ",
        ] {
            assert!(!windows_can_name(name), "{name:?} must be refused");
        }
        for name in [
            ".",
            "..",
            ".hidden",
            "console",
            "conx",
            "com0",
            "com10",
            "lpt",
            "a.b",
            "file.txt",
            "naïve",
            "with space inside",
            "UPPER",
        ] {
            assert!(windows_can_name(name), "{name:?} must be allowed");
        }
    }
}
