//! Errors of the virtual filesystem, as the errno values a POSIX program expects, with
//! the host's `io::Error` kept as the source until the WASI boundary turns the error
//! into a number. This is the one mapping table from host errors to errno.

use std::fmt;
use std::io;

/// The WASI preview1 errno values the filesystem produces (numbering from
/// `wasi_snapshot_preview1`'s `errno` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Errno {
    TooBig = 1,
    Acces = 2,
    Again = 6,
    Badf = 8,
    Busy = 10,
    Exist = 20,
    Fault = 21,
    Fbig = 22,
    Ilseq = 25,
    Intr = 27,
    Inval = 28,
    Io = 29,
    Isdir = 31,
    Loop = 32,
    Mfile = 33,
    Mlink = 34,
    Nametoolong = 37,
    Nfile = 41,
    Nodev = 43,
    Noent = 44,
    Nomem = 48,
    Nospc = 51,
    Nosys = 52,
    Notdir = 54,
    Notempty = 55,
    Notsup = 58,
    Overflow = 61,
    Perm = 63,
    Pipe = 64,
    Range = 68,
    Rofs = 69,
    Spipe = 70,
    Xdev = 75,
    Notsock = 57,
    Notcapable = 76,
    Connaborted = 13,
    Connreset = 15,
    Notconn = 53,
}

impl Errno {
    /// The errno as WASI numbers it.
    pub fn raw(self) -> u16 {
        self as u16
    }

    /// What the errno means, in words (as `strerror` says it), for messages to people.
    pub fn describe(self) -> &'static str {
        match self {
            Errno::TooBig => "argument list too long",
            Errno::Acces => "permission denied",
            Errno::Again => "resource temporarily unavailable",
            Errno::Badf => "bad file descriptor",
            Errno::Busy => "device or resource busy",
            Errno::Exist => "file exists",
            Errno::Fault => "bad address",
            Errno::Fbig => "file too large",
            Errno::Ilseq => "illegal byte sequence",
            Errno::Intr => "interrupted",
            Errno::Inval => "invalid argument",
            Errno::Io => "input/output error",
            Errno::Isdir => "is a directory",
            Errno::Loop => "too many levels of symbolic links",
            Errno::Mfile => "too many open files",
            Errno::Mlink => "too many links",
            Errno::Nametoolong => "file name too long",
            Errno::Nfile => "too many open files in the system",
            Errno::Nodev => "no such device",
            Errno::Noent => "no such file or directory",
            Errno::Nomem => "out of memory",
            Errno::Nospc => "no space left (the writable layer's --storage-opt size, or the disk)",
            Errno::Nosys => "function not implemented",
            Errno::Notdir => "not a directory",
            Errno::Notempty => "directory not empty",
            Errno::Notsup => "not supported",
            Errno::Overflow => "value too large",
            Errno::Perm => "operation not permitted",
            Errno::Pipe => "broken pipe",
            Errno::Range => "result out of range",
            Errno::Rofs => "read-only file system",
            Errno::Spipe => "illegal seek",
            Errno::Xdev => "cross-device link",
            Errno::Notsock => "not a socket",
            Errno::Notcapable => "not permitted by the container's capabilities",
            Errno::Connaborted => "connection aborted",
            Errno::Connreset => "connection reset",
            Errno::Notconn => "not connected",
        }
    }

    /// The conventional C name, for messages and tests.
    pub fn name(self) -> &'static str {
        match self {
            Errno::TooBig => "E2BIG",
            Errno::Acces => "EACCES",
            Errno::Again => "EAGAIN",
            Errno::Badf => "EBADF",
            Errno::Busy => "EBUSY",
            Errno::Exist => "EEXIST",
            Errno::Fault => "EFAULT",
            Errno::Fbig => "EFBIG",
            Errno::Ilseq => "EILSEQ",
            Errno::Intr => "EINTR",
            Errno::Inval => "EINVAL",
            Errno::Io => "EIO",
            Errno::Isdir => "EISDIR",
            Errno::Loop => "ELOOP",
            Errno::Mfile => "EMFILE",
            Errno::Mlink => "EMLINK",
            Errno::Nametoolong => "ENAMETOOLONG",
            Errno::Nfile => "ENFILE",
            Errno::Nodev => "ENODEV",
            Errno::Noent => "ENOENT",
            Errno::Nomem => "ENOMEM",
            Errno::Nospc => "ENOSPC",
            Errno::Nosys => "ENOSYS",
            Errno::Notdir => "ENOTDIR",
            Errno::Notempty => "ENOTEMPTY",
            Errno::Notsup => "ENOTSUP",
            Errno::Overflow => "EOVERFLOW",
            Errno::Perm => "EPERM",
            Errno::Pipe => "EPIPE",
            Errno::Range => "ERANGE",
            Errno::Rofs => "EROFS",
            Errno::Spipe => "ESPIPE",
            Errno::Xdev => "EXDEV",
            Errno::Notsock => "ENOTSOCK",
            Errno::Notcapable => "ENOTCAPABLE",
            Errno::Connaborted => "ECONNABORTED",
            Errno::Connreset => "ECONNRESET",
            Errno::Notconn => "ENOTCONN",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A filesystem error: the errno the guest will see, and the host error behind it.
#[derive(Debug)]
pub struct FsError {
    errno: Errno,
    source: Option<io::Error>,
}

impl FsError {
    /// The errno.
    pub fn errno(&self) -> Errno {
        self.errno
    }
}

impl From<Errno> for FsError {
    fn from(errno: Errno) -> Self {
        Self {
            errno,
            source: None,
        }
    }
}

impl From<io::Error> for FsError {
    fn from(error: io::Error) -> Self {
        Self {
            errno: errno_of(&error),
            source: Some(error),
        }
    }
}

impl fmt::Display for FsError {
    /// The errno's name; the host error, if any, is the `source`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.errno)
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Result of filesystem operations.
pub type FsResult<T> = Result<T, FsError>;

/// Maps a host error to the errno a guest should see.
pub fn errno_of(error: &io::Error) -> Errno {
    use io::ErrorKind as K;
    match error.kind() {
        K::NotFound => Errno::Noent,
        K::PermissionDenied => Errno::Acces,
        K::AlreadyExists => Errno::Exist,
        K::WouldBlock => Errno::Again,
        K::InvalidInput | K::InvalidData => Errno::Inval,
        K::Interrupted => Errno::Intr,
        K::Unsupported => Errno::Notsup,
        K::OutOfMemory => Errno::Nomem,
        K::NotADirectory => Errno::Notdir,
        K::IsADirectory => Errno::Isdir,
        K::DirectoryNotEmpty => Errno::Notempty,
        K::ReadOnlyFilesystem => Errno::Rofs,
        K::StorageFull | K::QuotaExceeded => Errno::Nospc,
        K::FileTooLarge => Errno::Fbig,
        K::CrossesDevices => Errno::Xdev,
        K::TooManyLinks => Errno::Mlink,
        K::InvalidFilename => Errno::Nametoolong,
        K::BrokenPipe => Errno::Pipe,
        K::ConnectionReset => Errno::Connreset,
        K::ConnectionAborted => Errno::Connaborted,
        K::NotConnected => Errno::Notconn,
        K::NotSeekable => Errno::Spipe,
        K::ResourceBusy => Errno::Busy,
        _ => Errno::Io,
    }
}
