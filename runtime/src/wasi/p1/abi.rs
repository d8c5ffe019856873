//! The `wasi_snapshot_preview1` ABI: constants from its witx, struct layouts on wasm32,
//! and bounds-checked access to guest memory.

use crate::fs::Errno;

pub type R<T> = Result<T, Errno>;

pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_ACCEPT: u64 = 1 << 29;
    pub const ALL: u64 = (1 << 30) - 1;

    /// What the reference reports for a preopened directory (a set many userlands expect).
    pub const PREOPEN_BASE: u64 = PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES;
    pub const PREOPEN_INHERITING: u64 = PREOPEN_BASE
        | FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | FD_FILESTAT_SET_TIMES
        | POLL_FD_READWRITE;

    /// The rights the reference reports for a descriptor it opened (not a preopen):
    /// every right, less those the descriptor's kind and open mode cannot use. The
    /// inheriting rights are the same set.
    pub const fn opened(dir: bool, read: bool, write: bool) -> u64 {
        let mut r = ALL;
        if dir {
            r &= !(FD_SEEK | FD_FILESTAT_SET_SIZE | PATH_FILESTAT_SET_SIZE);
        }
        if !read {
            r &= !(FD_READ | FD_READDIR);
        }
        if !write {
            r &= !FD_WRITE;
        }
        r
    }
}

pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

pub mod fdflags {
    pub const APPEND: u16 = 1;
    pub const DSYNC: u16 = 2;
    pub const NONBLOCK: u16 = 4;
    pub const RSYNC: u16 = 8;
    pub const SYNC: u16 = 16;
}

pub mod oflags {
    pub const CREAT: u16 = 1;
    pub const DIRECTORY: u16 = 2;
    pub const EXCL: u16 = 4;
    pub const TRUNC: u16 = 8;
}

pub mod fstflags {
    pub const ATIM: u16 = 1;
    pub const ATIM_NOW: u16 = 2;
    pub const MTIM: u16 = 4;
    pub const MTIM_NOW: u16 = 8;
}

pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

pub mod whence {
    pub const SET: u8 = 0;
    pub const CUR: u8 = 1;
    pub const END: u8 = 2;
}

pub mod clock {
    pub const REALTIME: u32 = 0;
    pub const MONOTONIC: u32 = 1;
    pub const PROCESS_CPUTIME: u32 = 2;
    pub const THREAD_CPUTIME: u32 = 3;
}

pub mod event {
    pub const CLOCK: u8 = 0;
    pub const FD_READ: u8 = 1;
    pub const FD_WRITE: u8 = 2;
    pub const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1;
    /// `eventrwflags`: the peer hung up.
    pub const FD_READWRITE_HANGUP: u16 = 1;
}

pub const DIRENT_SIZE: usize = 24;
pub const FILESTAT_SIZE: usize = 64;
pub const FDSTAT_SIZE: usize = 24;
pub const SUBSCRIPTION_SIZE: usize = 48;
pub const EVENT_SIZE: usize = 32;

/// Most iovecs one call takes (wasi-libc's and Linux's IOV_MAX).
pub const IOV_MAX: u32 = 1024;

/// Largest single read, write, receive or send buffer honoured at once (larger ones
/// are shortened, as POSIX allows).
pub const MAX_IO: usize = 16 << 20;

/// Most subscriptions one `poll_oneoff` takes.
pub const MAX_SUBSCRIPTIONS: u32 = 4096;

/// Guest linear memory, every access bounds-checked (`EFAULT` when out of range).
pub struct Mem<'a>(pub &'a mut [u8]);

impl std::fmt::Debug for Mem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mem({} bytes)", self.0.len())
    }
}

fn range(ptr: u32, len: usize, mem_len: usize) -> R<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(len).ok_or(Errno::Fault)?;
    if end > mem_len {
        return Err(Errno::Fault);
    }
    Ok(start..end)
}

impl Mem<'_> {
    pub fn slice(&self, ptr: u32, len: u32) -> R<&[u8]> {
        let r = range(ptr, len as usize, self.0.len())?;
        Ok(&self.0[r])
    }

    /// The bytes of the guest's iovecs `(buf, len)`, in order, at most [`MAX_IO`] of
    /// them (a longer write is shortened, as POSIX allows).
    pub fn gather(&self, iovs: &[(u32, u32)]) -> R<Vec<u8>> {
        let mut data = Vec::new();
        for (buf, len) in iovs.iter().copied() {
            let room = (MAX_IO - data.len()) as u32;
            data.extend_from_slice(self.slice(buf, len.min(room))?);
            if data.len() >= MAX_IO {
                break;
            }
        }
        Ok(data)
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> R<&mut [u8]> {
        let r = range(ptr, len as usize, self.0.len())?;
        Ok(&mut self.0[r])
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> R<()> {
        let r = range(ptr, bytes.len(), self.0.len())?;
        self.0[r].copy_from_slice(bytes);
        Ok(())
    }

    pub fn u8(&self, ptr: u32) -> R<u8> {
        Ok(self.slice(ptr, 1)?[0])
    }

    pub fn u16(&self, ptr: u32) -> R<u16> {
        let b = self.slice(ptr, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&self, ptr: u32) -> R<u32> {
        let b = self.slice(ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&self, ptr: u32) -> R<u64> {
        let b = self.slice(ptr, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn put_u8(&mut self, ptr: u32, v: u8) -> R<()> {
        self.write(ptr, &[v])
    }

    pub fn put_u16(&mut self, ptr: u32, v: u16) -> R<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u32(&mut self, ptr: u32, v: u32) -> R<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn put_u64(&mut self, ptr: u32, v: u64) -> R<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// A guest string (UTF-8 required, as wasi-libc passes paths).
    /// A string in guest memory, borrowed (the memory is this call's alone while it
    /// lasts).
    pub fn str(&self, ptr: u32, len: u32) -> R<&str> {
        let bytes = self.slice(ptr, len)?;
        std::str::from_utf8(bytes).map_err(|_| Errno::Ilseq)
    }

    /// An array of `(buf, len)` iovecs; more than [`IOV_MAX`] is `EINVAL`, as POSIX's
    /// readv/writev say (and it keeps a guest from making the host allocate gigabytes).
    pub fn iovecs(&self, ptr: u32, count: u32) -> R<Vec<(u32, u32)>> {
        if count > IOV_MAX {
            return Err(Errno::Inval);
        }
        let bytes = count.checked_mul(8).ok_or(Errno::Fault)?;
        let raw = self.slice(ptr, bytes)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect())
    }
}
