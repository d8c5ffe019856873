//! The preview1 adapter: one guest's descriptor table, rights and streams, and each
//! call marshalled between guest memory and the world-neutral core
//! ([`crate::wasi::core`]), which does what the call means.
//!
//! Descriptors name nodes: a file descriptor holds an open file (which survives renames
//! and unlinks of its path); a directory descriptor holds a core [`Dir`], which follows
//! renames.

use super::abi::{
    self, MAX_IO, Mem, R, clock, event, fdflags, filetype, fstflags, oflags, rights, whence,
};
use super::sockets::{self, Socket};
use super::stdio::{Input, Output};
use crate::fs::layer::Kind;
use crate::fs::{Errno, FsError, SetTime, Stat, Vfs};
use crate::wasi::core::{self, Clock, Core, Dir, File, Open, Opened};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most descriptors a guest may hold open at once (`EMFILE` past it) unless
/// `--ulimit nofile=N` says otherwise: Linux's default soft `RLIMIT_NOFILE`. As there,
/// the limit bounds descriptor numbers: stdio and the preopens count.
pub const MAX_FDS: usize = 1024;
/// Largest `random_get` request.
pub const MAX_RANDOM: u32 = 16 << 20;

/// Rights, as the reference has them: a descriptor reports what its kind and open mode
/// allow ([`rights::opened`]; a fixed set for preopens), and a request for rights is
/// trimmed to that, never refused. Capsule adds what the reference leaves out:
/// `fd_fdstat_set_rights` narrows a descriptor's rights for good, and they are
/// enforced. `rights_base`/`rights_inheriting` hold what the guest has left: all rights
/// until it narrows them.
#[derive(Debug)]
struct FileDesc {
    /// The file and its open mode: what the host file allows, whatever the rights say.
    file: File,
    pos: u64,
    flags: u16,
    rights_base: u64,
    rights_inheriting: u64,
}

impl FileDesc {
    /// The rights this descriptor reports: (base, inheriting).
    fn rights(&self) -> (u64, u64) {
        let opened = rights::opened(false, self.file.read, self.file.write);
        (opened & self.rights_base, opened & self.rights_inheriting)
    }
}

#[derive(Debug)]
struct DirDesc {
    dir: Dir,
    preopen: Option<String>,
    /// What the guest has left of the rights (see [`FileDesc`]); for a preopen, the
    /// reference's fixed set.
    rights_base: u64,
    rights_inheriting: u64,
    /// Whether the guest narrowed this directory's rights: descriptors opened through
    /// it then get at most its inheriting rights.
    narrowed: bool,
    /// The listing `fd_readdir` is serving, taken when it is asked for cookie 0.
    snapshot: Option<Vec<core::Entry>>,
}

#[derive(Debug)]
enum Desc {
    Stdin,
    Stdout,
    Stderr,
    File(FileDesc),
    Dir(DirDesc),
    /// A published port's listener, or a connection accepted on one.
    Socket(Socket),
}

/// One guest's WASI state.
#[derive(Debug)]
pub struct WasiP1 {
    args: Vec<String>,
    env: Vec<String>,
    core: Core,
    fds: Vec<Option<Desc>>,
    /// Most descriptors open at once ([`MAX_FDS`] by default).
    max_fds: usize,
    stdin: Input,
    stdout: Output,
    stderr: Output,
    /// Wakes a sleeping guest when it is stopped.
    interrupt: crate::engine::Interrupt,
    /// The guest's exported `memory`, once an import has looked it up: a store holds
    /// one instance that calls these imports, and its export never changes.
    pub(super) memory: Option<wasmtime::Memory>,
}

fn file_type(kind: Kind) -> u8 {
    match kind {
        Kind::File => filetype::REGULAR_FILE,
        Kind::Dir => filetype::DIRECTORY,
        Kind::Symlink => filetype::SYMBOLIC_LINK,
    }
}

/// The directory rights `path_open` needs for `oflags`: `PATH_OPEN`, and
/// `PATH_CREATE_FILE` to create. (Not `PATH_FILESTAT_SET_SIZE` for `O_TRUNC`, which
/// preview1 also names: preopens, here as in the reference, do not hold it, and
/// every libc truncates through them.)
fn open_rights(oflags: u16) -> u64 {
    if oflags & oflags::CREAT != 0 {
        rights::PATH_OPEN | rights::PATH_CREATE_FILE
    } else {
        rights::PATH_OPEN
    }
}

fn nanos((secs, nanos): (i64, u32)) -> u64 {
    u64::try_from(secs)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(nanos))
}

fn timestamp(ns: u64) -> (i64, u32) {
    (
        i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
        (ns % 1_000_000_000) as u32,
    )
}

fn write_filestat(mem: &mut Mem, ptr: u32, dev: u64, stat: &Stat) -> R<()> {
    let mut b = [0u8; abi::FILESTAT_SIZE];
    b[0..8].copy_from_slice(&dev.to_le_bytes());
    b[8..16].copy_from_slice(&stat.ino.to_le_bytes());
    b[16] = file_type(stat.kind);
    b[24..32].copy_from_slice(&stat.nlink.to_le_bytes());
    b[32..40].copy_from_slice(&stat.size.to_le_bytes());
    b[40..48].copy_from_slice(&nanos(stat.atime).to_le_bytes());
    b[48..56].copy_from_slice(&nanos(stat.mtime).to_le_bytes());
    b[56..64].copy_from_slice(&nanos(stat.ctime).to_le_bytes());
    mem.write(ptr, &b)
}

/// A guest pointer plus an offset; `EFAULT` past the 32-bit address space (never a
/// panic or a wrap, whatever the guest passes).
fn ptr_add(base: u32, offset: u64) -> R<u32> {
    u32::try_from(u64::from(base) + offset).map_err(|_| Errno::Fault)
}

fn set_time(flags: u16, value: u64, set: u16, now: u16) -> R<SetTime> {
    match (flags & set != 0, flags & now != 0) {
        (true, true) => Err(Errno::Inval),
        (true, false) => Ok(SetTime::At(timestamp(value))),
        (false, true) => Ok(SetTime::Now),
        (false, false) => Ok(SetTime::Keep),
    }
}

impl DirDesc {
    /// The rights this descriptor reports: (base, inheriting).
    fn rights(&self) -> (u64, u64) {
        if self.preopen.is_some() {
            return (self.rights_base, self.rights_inheriting);
        }
        let opened = rights::opened(true, true, false);
        (opened & self.rights_base, opened & self.rights_inheriting)
    }

    /// The most a descriptor opened through this directory may keep.
    fn child_rights(&self) -> u64 {
        if self.narrowed {
            self.rights_inheriting
        } else {
            rights::ALL
        }
    }
}

/// What a subscription of `kind` (`FD_READ` or `FD_WRITE`) waits for on a socket.
fn interest_of(kind: u8) -> sockets::Interest {
    if kind == event::FD_READ {
        sockets::Interest::Read
    } else {
        sockets::Interest::Write
    }
}

impl WasiP1 {
    /// The filesystem the guest sees.
    pub fn vfs(&self) -> &Arc<Vfs> {
        self.core.vfs()
    }

    /// Keeps the number of open descriptors in `open` from now on.
    pub fn count_open_in(&mut self, open: Arc<std::sync::atomic::AtomicUsize>) {
        let now = self.fds.iter().flatten().count();
        self.core.count_open_in(open, now);
    }

    fn opened(&self) {
        self.core.opened();
    }

    fn closed(&self) {
        self.core.closed();
    }

    /// A world with `args`, `env`, the namespace `vfs` and these streams. `preopens` are
    /// (guest name, canonical guest path) pairs, in the order the guest sees them
    /// (fd 3 onward).
    ///
    /// # Errors
    /// The filesystem's error when a preopen does not resolve to a directory.
    pub fn new(
        args: Vec<String>,
        env: Vec<String>,
        vfs: Arc<Vfs>,
        preopens: &[(String, String)],
        stdin: Input,
        stdout: Output,
        stderr: Output,
    ) -> Result<Self, FsError> {
        let mut core = Core::new(vfs);
        let mut fds = vec![Some(Desc::Stdin), Some(Desc::Stdout), Some(Desc::Stderr)];
        for (name, path) in preopens {
            fds.push(Some(Desc::Dir(DirDesc {
                dir: core.open_root(&format!("/{path}"))?,
                preopen: Some(name.clone()),
                rights_base: rights::PREOPEN_BASE,
                rights_inheriting: rights::PREOPEN_INHERITING,
                narrowed: false,
                snapshot: None,
            })));
        }
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        core.count_open_in(open, fds.len());
        Ok(Self {
            args,
            env,
            core,
            fds,
            max_fds: MAX_FDS,
            stdin,
            stdout,
            stderr,
            interrupt: crate::engine::Interrupt::default(),
            memory: None,
        })
    }

    /// Hands the guest listening sockets, on the descriptors after the preopens (in
    /// order): where wasi-libc's scan for preopens, which stops at the first `EBADF`
    /// from `fd_prestat_get`, has already found every directory.
    ///
    /// # Errors
    /// The host's error making a socket non-blocking.
    pub fn add_listeners(
        &mut self,
        listeners: impl IntoIterator<Item = std::net::TcpListener>,
    ) -> std::io::Result<()> {
        for listener in listeners {
            self.fds
                .push(Some(Desc::Socket(Socket::listener(listener)?)));
            self.opened();
        }
        Ok(())
    }

    /// Sets the most descriptors the guest may hold open at once (`--ulimit nofile`):
    /// opening one more answers `EMFILE`. Those already open (stdio, preopens) stay.
    pub fn set_max_fds(&mut self, max: usize) {
        self.max_fds = max;
    }

    /// Lets `interrupt` wake the guest from a `poll_oneoff` sleep.
    pub fn set_interrupt(&mut self, interrupt: crate::engine::Interrupt) {
        self.interrupt = interrupt;
    }

    fn desc(&mut self, fd: u32) -> R<&mut Desc> {
        self.fds
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::Badf)
    }

    fn file(&mut self, fd: u32) -> R<&mut FileDesc> {
        match self.desc(fd)? {
            Desc::File(f) => Ok(f),
            Desc::Dir(_) => Err(Errno::Isdir),
            _ => Err(Errno::Badf),
        }
    }

    fn dir(&mut self, fd: u32) -> R<&mut DirDesc> {
        match self.desc(fd)? {
            Desc::Dir(d) => Ok(d),
            _ => Err(Errno::Notdir),
        }
    }

    /// `EMFILE` when the table has no room for one more descriptor.
    fn check_room(&self) -> R<()> {
        if self.fds.len() >= self.max_fds && self.fds.iter().all(Option::is_some) {
            return Err(Errno::Mfile);
        }
        Ok(())
    }

    /// The directory a `path_*` call starts from, holding the rights it needs:
    /// `EBADF` for anything but a directory (as the reference), `ENOTCAPABLE` when the
    /// guest narrowed the directory's rights (`fd_fdstat_set_rights`) below `needed`, as
    /// preview1 specifies.
    fn require(&mut self, fd: u32, needed: u64) -> R<()> {
        if self.dir_fd(fd)?.rights_base & needed != needed {
            return Err(Errno::Notcapable);
        }
        Ok(())
    }

    fn insert(&mut self, desc: Desc) -> R<u32> {
        if let Some(index) = self.fds.iter().position(Option::is_none) {
            self.fds[index] = Some(desc);
            self.opened();
            return Ok(index as u32);
        }
        if self.fds.len() >= self.max_fds {
            return Err(Errno::Mfile);
        }
        self.fds.push(Some(desc));
        self.opened();
        Ok((self.fds.len() - 1) as u32)
    }

    /// The directory a `path_*` call starts from: `EBADF` for anything else, as the
    /// reference answers.
    fn dir_fd(&mut self, fd: u32) -> R<&mut DirDesc> {
        self.dir(fd)
            .map_err(|e| if e == Errno::Notdir { Errno::Badf } else { e })
    }

    /// The directory handle of a `path_*` call's descriptor (`EBADF` for anything
    /// else).
    fn base(&mut self, fd: u32) -> R<Dir> {
        Ok(self.dir_fd(fd)?.dir.clone())
    }

    // ---- args, environment, clocks, random, scheduling ----------------------------------

    fn strings_get(list: &[String], mem: &mut Mem, ptrs: u32, buf: u32) -> R<()> {
        let mut offset = buf;
        for (i, s) in list.iter().enumerate() {
            mem.put_u32(ptr_add(ptrs, i as u64 * 4)?, offset)?;
            mem.write(offset, s.as_bytes())?;
            mem.put_u8(ptr_add(offset, s.len() as u64)?, 0)?;
            offset = ptr_add(offset, s.len() as u64 + 1)?;
        }
        Ok(())
    }

    fn sizes_get(list: &[String], mem: &mut Mem, count: u32, size: u32) -> R<()> {
        mem.put_u32(count, list.len() as u32)?;
        mem.put_u32(size, list.iter().map(|s| s.len() as u32 + 1).sum())
    }

    pub fn args_get(&mut self, mem: &mut Mem, argv: u32, buf: u32) -> R<()> {
        Self::strings_get(&self.args, mem, argv, buf)
    }

    pub fn args_sizes_get(&mut self, mem: &mut Mem, count: u32, size: u32) -> R<()> {
        Self::sizes_get(&self.args, mem, count, size)
    }

    pub fn environ_get(&mut self, mem: &mut Mem, environ: u32, buf: u32) -> R<()> {
        Self::strings_get(&self.env, mem, environ, buf)
    }

    pub fn environ_sizes_get(&mut self, mem: &mut Mem, count: u32, size: u32) -> R<()> {
        Self::sizes_get(&self.env, mem, count, size)
    }

    pub fn clock_res_get(&mut self, mem: &mut Mem, id: u32, out: u32) -> R<()> {
        let res = match id {
            clock::REALTIME | clock::MONOTONIC => 1,
            clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => return Err(Errno::Badf),
            _ => return Err(Errno::Inval),
        };
        mem.put_u64(out, res)
    }

    fn now(&self, id: u32) -> R<u64> {
        match id {
            clock::REALTIME => self.core.now(Clock::Realtime),
            clock::MONOTONIC => self.core.now(Clock::Monotonic),
            clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => Err(Errno::Badf),
            _ => Err(Errno::Inval),
        }
    }

    pub fn clock_time_get(&mut self, mem: &mut Mem, id: u32, _precision: u64, out: u32) -> R<()> {
        let now = self.now(id)?;
        mem.put_u64(out, now)
    }

    pub fn random_get(&mut self, mem: &mut Mem, buf: u32, len: u32) -> R<()> {
        if len > MAX_RANDOM {
            return Err(Errno::Inval);
        }
        let out = mem.slice_mut(buf, len)?;
        super::random::fill(out)
    }

    pub fn sched_yield(&mut self) -> R<()> {
        std::thread::yield_now();
        Ok(())
    }

    pub fn proc_raise(&mut self, _sig: u32) -> R<()> {
        Err(Errno::Notsup)
    }

    // ---- descriptors ----------------------------------------------------------------------

    pub fn fd_close(&mut self, fd: u32) -> R<()> {
        let slot = self.fds.get_mut(fd as usize).ok_or(Errno::Badf)?;
        if slot.take().is_none() {
            return Err(Errno::Badf);
        }
        self.closed();
        Ok(())
    }

    pub fn fd_renumber(&mut self, from: u32, to: u32) -> R<()> {
        self.desc(from)?;
        self.desc(to)?;
        if from == to {
            return Ok(());
        }
        let desc = self.fds[from as usize].take();
        self.fds[to as usize] = desc;
        self.closed();
        Ok(())
    }

    pub fn fd_advise(&mut self, fd: u32, _offset: u64, _len: u64, advice: u8) -> R<()> {
        self.file(fd)
            .map_err(|e| if e == Errno::Isdir { Errno::Badf } else { e })?;
        if advice > 5 {
            return Err(Errno::Inval);
        }
        Ok(())
    }

    pub fn fd_allocate(&mut self, fd: u32, _offset: u64, _len: u64) -> R<()> {
        // As the reference: preview1's allocate is gone from later WASI; refuse.
        self.file(fd)?;
        Err(Errno::Notsup)
    }

    pub fn fd_datasync(&mut self, fd: u32) -> R<()> {
        self.fd_sync(fd)
    }

    pub fn fd_sync(&mut self, fd: u32) -> R<()> {
        match self.desc(fd)? {
            Desc::File(f) => f.file.sync(),
            Desc::Dir(_) => Ok(()),
            _ => Err(Errno::Badf),
        }
    }

    pub fn fd_fdstat_get(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        let stdio_type = |tty: bool| {
            if tty {
                filetype::CHARACTER_DEVICE
            } else {
                filetype::UNKNOWN
            }
        };
        let (ft, flags, base, inheriting) = match self
            .fds
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(Errno::Badf)?
        {
            Desc::Stdin => (
                stdio_type(self.stdin.is_terminal()),
                0,
                rights::FD_READ,
                rights::FD_READ,
            ),
            Desc::Stdout => (
                stdio_type(self.stdout.is_terminal()),
                0,
                rights::FD_WRITE,
                rights::FD_WRITE,
            ),
            Desc::Stderr => (
                stdio_type(self.stderr.is_terminal()),
                0,
                rights::FD_WRITE,
                rights::FD_WRITE,
            ),
            Desc::Dir(d) => {
                let (base, inheriting) = d.rights();
                (filetype::DIRECTORY, 0, base, inheriting)
            }
            Desc::File(f) => {
                let (base, inheriting) = f.rights();
                (filetype::REGULAR_FILE, f.flags, base, inheriting)
            }
            Desc::Socket(s) => {
                let (base, inheriting) = s.rights();
                (s.filetype(), s.fdflags(), base, inheriting)
            }
        };
        let mut b = [0u8; abi::FDSTAT_SIZE];
        b[0] = ft;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&base.to_le_bytes());
        b[16..24].copy_from_slice(&inheriting.to_le_bytes());
        mem.write(out, &b)
    }

    pub fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u16) -> R<()> {
        if let Desc::Socket(s) = self.desc(fd)? {
            return s.set_flags(flags);
        }
        let file = self
            .file(fd)
            .map_err(|e| if e == Errno::Isdir { Errno::Badf } else { e })?;
        if flags & (fdflags::DSYNC | fdflags::SYNC | fdflags::RSYNC) != 0 {
            return Err(Errno::Inval);
        }
        file.flags = flags & (fdflags::APPEND | fdflags::NONBLOCK);
        Ok(())
    }

    /// Narrows a descriptor's rights; asking for rights it does not report is
    /// `ENOTCAPABLE`. (The reference answers `ENOTSUP` to every call.)
    pub fn fd_fdstat_set_rights(&mut self, fd: u32, base: u64, inheriting: u64) -> R<()> {
        let (cur_base, cur_inh) = match self.desc(fd)? {
            Desc::File(f) => f.rights(),
            Desc::Dir(d) => d.rights(),
            _ => return Err(Errno::Notsup),
        };
        if base & !cur_base != 0 || inheriting & !cur_inh != 0 {
            return Err(Errno::Notcapable);
        }
        match self.desc(fd)? {
            Desc::File(f) => (f.rights_base, f.rights_inheriting) = (base, inheriting),
            Desc::Dir(d) => {
                (d.rights_base, d.rights_inheriting) = (base, inheriting);
                d.narrowed = true;
            }
            _ => {}
        }
        Ok(())
    }

    pub fn fd_filestat_get(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        let (dev, stat) = match self.desc(fd)? {
            Desc::File(f) => (f.file.dev, f.file.stat()?),
            Desc::Dir(d) => {
                let dir = d.dir.clone();
                (dir.dev(), self.core.stat_dir(&dir)?)
            }
            Desc::Socket(s) => {
                // As wasi-common: zeros, but the type.
                let mut b = [0u8; abi::FILESTAT_SIZE];
                b[16] = s.filetype();
                return mem.write(out, &b);
            }
            Desc::Stdin | Desc::Stdout | Desc::Stderr => {
                let tty = match fd {
                    0 => self.stdin.is_terminal(),
                    1 => self.stdout.is_terminal(),
                    _ => self.stderr.is_terminal(),
                };
                let mut b = [0u8; abi::FILESTAT_SIZE];
                b[16] = if tty {
                    filetype::CHARACTER_DEVICE
                } else {
                    filetype::UNKNOWN
                };
                return mem.write(out, &b);
            }
        };
        write_filestat(mem, out, dev, &stat)
    }

    pub fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> R<()> {
        let file = self
            .file(fd)
            .map_err(|e| if e == Errno::Isdir { Errno::Badf } else { e })?;
        if !file.file.write {
            // As the reference and Linux: EINVAL for a descriptor not open for writing.
            return Err(Errno::Inval);
        }
        if rights::FD_FILESTAT_SET_SIZE & file.rights_base == 0 {
            return Err(Errno::Notcapable);
        }
        file.file.set_len(size)
    }

    pub fn fd_filestat_set_times(&mut self, fd: u32, atim: u64, mtim: u64, flags: u16) -> R<()> {
        let atime = set_time(flags, atim, fstflags::ATIM, fstflags::ATIM_NOW)?;
        let mtime = set_time(flags, mtim, fstflags::MTIM, fstflags::MTIM_NOW)?;
        match self.desc(fd)? {
            Desc::File(f) => f.file.set_times(atime, mtime),
            Desc::Dir(d) => {
                let dir = d.dir.clone();
                self.core.set_dir_times(&dir, atime, mtime)
            }
            _ => Err(Errno::Badf),
        }
    }

    fn read_into(
        &mut self,
        fd: u32,
        mem: &mut Mem,
        iovs: &[(u32, u32)],
        offset: Option<u64>,
    ) -> R<u32> {
        if let Some(Some(Desc::Socket(s))) = self.fds.get(fd as usize) {
            if offset.is_some() {
                return Err(Errno::Spipe);
            }
            return s.recv(mem, iovs, 0, &self.interrupt);
        }
        let mut total = 0u32;
        match self.desc(fd)? {
            Desc::Stdin => {
                if offset.is_some() {
                    return Err(Errno::Spipe);
                }
                if let Some((buf, len)) = iovs.iter().copied().find(|(_, len)| *len > 0) {
                    let len = len.min(MAX_IO as u32);
                    let mut tmp = vec![0u8; len as usize];
                    let n = self
                        .stdin
                        .read(&mut tmp)
                        .map_err(|e| crate::fs::errno::errno_of(&e))?;
                    mem.write(buf, &tmp[..n])?;
                    total = n as u32;
                }
                Ok(total)
            }
            Desc::File(f) => {
                if !f.file.read {
                    return Err(Errno::Badf);
                }
                if f.rights_base & rights::FD_READ == 0 {
                    return Err(Errno::Notcapable);
                }
                let mut pos = offset.unwrap_or(f.pos);
                for (buf, len) in iovs.iter().copied() {
                    // At most MAX_IO bytes per call, however many iovecs (a short
                    // read, as POSIX allows).
                    let len = len.min(MAX_IO as u32 - total);
                    let dst = mem.slice_mut(buf, len)?;
                    let n = f.file.read_at(dst, pos)?;
                    total += n as u32;
                    pos += n as u64;
                    if n < len as usize || total as usize >= MAX_IO {
                        break;
                    }
                }
                if offset.is_none() {
                    f.pos = pos;
                }
                Ok(total)
            }
            // The reference answers EBADF (a directory descriptor has no FD_READ right);
            // Linux would say EISDIR.
            Desc::Dir(_) | Desc::Stdout | Desc::Stderr | Desc::Socket(_) => Err(Errno::Badf),
        }
    }

    fn write_from(
        &mut self,
        fd: u32,
        mem: &mut Mem,
        iovs: &[(u32, u32)],
        offset: Option<u64>,
    ) -> R<u32> {
        if let Some(Some(Desc::Socket(s))) = self.fds.get(fd as usize) {
            if offset.is_some() {
                return Err(Errno::Spipe);
            }
            return s.send(mem, iovs, &self.interrupt);
        }
        let mut total = 0u32;
        let stream = match self.desc(fd)? {
            Desc::Stdout => Some(1),
            Desc::Stderr => Some(2),
            Desc::File(f) => {
                if !f.file.write {
                    return Err(Errno::Badf);
                }
                if f.rights_base & rights::FD_WRITE == 0 {
                    return Err(Errno::Notcapable);
                }
                // On an O_APPEND descriptor every write goes to the end, pwrite's too
                // (Linux's rule, and the reference's); pwrite leaves the offset alone.
                let append = f.flags & fdflags::APPEND != 0;
                let mut pos = match offset {
                    _ if append => f.file.size()?,
                    Some(o) => o,
                    None => f.pos,
                };
                for (buf, len) in iovs.iter().copied() {
                    // At most MAX_IO bytes per call (a short write, as POSIX allows).
                    let src = mem.slice(buf, len.min(MAX_IO as u32 - total))?;
                    let (n, after) = f.file.write_at(src, pos, false)?;
                    total += n as u32;
                    pos = after;
                    if total as usize >= MAX_IO {
                        break;
                    }
                }
                if offset.is_none() {
                    f.pos = pos;
                }
                if f.flags & (fdflags::SYNC | fdflags::DSYNC) != 0 {
                    f.file.sync()?;
                }
                None
            }
            Desc::Dir(_) | Desc::Stdin | Desc::Socket(_) => return Err(Errno::Badf),
        };
        if let Some(which) = stream {
            if offset.is_some() {
                return Err(Errno::Spipe);
            }
            let data = mem.gather(iovs)?;
            let out = if which == 1 {
                &mut self.stdout
            } else {
                &mut self.stderr
            };
            out.write(&data)
                .map_err(|e| crate::fs::errno::errno_of(&e))?;
            total = data.len() as u32;
        }
        Ok(total)
    }

    pub fn fd_read(&mut self, mem: &mut Mem, fd: u32, iovs: u32, count: u32, out: u32) -> R<()> {
        let iovs = mem.iovecs(iovs, count)?;
        let n = self.read_into(fd, mem, &iovs, None)?;
        mem.put_u32(out, n)
    }

    pub fn fd_pread(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        iovs: u32,
        count: u32,
        offset: u64,
        out: u32,
    ) -> R<()> {
        let iovs = mem.iovecs(iovs, count)?;
        let n = self.read_into(fd, mem, &iovs, Some(offset))?;
        mem.put_u32(out, n)
    }

    pub fn fd_write(&mut self, mem: &mut Mem, fd: u32, iovs: u32, count: u32, out: u32) -> R<()> {
        let iovs = mem.iovecs(iovs, count)?;
        let n = self.write_from(fd, mem, &iovs, None)?;
        mem.put_u32(out, n)
    }

    pub fn fd_pwrite(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        iovs: u32,
        count: u32,
        offset: u64,
        out: u32,
    ) -> R<()> {
        let iovs = mem.iovecs(iovs, count)?;
        let n = self.write_from(fd, mem, &iovs, Some(offset))?;
        mem.put_u32(out, n)
    }

    pub fn fd_seek(&mut self, mem: &mut Mem, fd: u32, offset: i64, how: u8, out: u32) -> R<()> {
        let file = match self.desc(fd)? {
            Desc::File(f) => f,
            Desc::Dir(_) => return Err(Errno::Badf),
            _ => return Err(Errno::Spipe),
        };
        let base = match how {
            whence::SET => 0i128,
            whence::CUR => i128::from(file.pos),
            whence::END => i128::from(file.file.size()?),
            _ => return Err(Errno::Inval),
        };
        let new = base + i128::from(offset);
        let new = u64::try_from(new).map_err(|_| Errno::Inval)?;
        file.pos = new;
        mem.put_u64(out, new)
    }

    pub fn fd_tell(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        let pos = match self.desc(fd)? {
            Desc::File(f) => f.pos,
            Desc::Dir(_) => return Err(Errno::Badf),
            _ => return Err(Errno::Spipe),
        };
        mem.put_u64(out, pos)
    }

    pub fn fd_prestat_get(&mut self, mem: &mut Mem, fd: u32, out: u32) -> R<()> {
        match self.desc(fd)? {
            Desc::Dir(DirDesc {
                preopen: Some(name),
                ..
            }) => {
                let len = name.len() as u32;
                mem.put_u8(out, 0)?;
                mem.put_u32(ptr_add(out, 4)?, len)
            }
            _ => Err(Errno::Badf),
        }
    }

    pub fn fd_prestat_dir_name(&mut self, mem: &mut Mem, fd: u32, buf: u32, len: u32) -> R<()> {
        match self.desc(fd)? {
            Desc::Dir(DirDesc {
                preopen: Some(name),
                ..
            }) => {
                if name.len() > len as usize {
                    return Err(Errno::Nametoolong);
                }
                let name = name.clone();
                mem.write(buf, name.as_bytes())
            }
            Desc::Dir(_) => Err(Errno::Notdir),
            _ => Err(Errno::Badf),
        }
    }

    pub fn fd_readdir(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        buf: u32,
        len: u32,
        cookie: u64,
        out: u32,
    ) -> R<()> {
        let handle = self
            .dir(fd)
            .map_err(|e| if e == Errno::Notdir { Errno::Badf } else { e })?
            .dir
            .clone();
        let fresh = if cookie == 0 || self.dir(fd)?.snapshot.is_none() {
            Some(self.core.list(&handle)?)
        } else {
            None
        };
        let dir = self.dir(fd)?;
        if let Some(listing) = fresh {
            dir.snapshot = Some(listing);
        }
        let listing = dir.snapshot.as_deref().unwrap_or_default();
        let start = usize::try_from(cookie).map_err(|_| Errno::Overflow)?;
        let dst = mem.slice_mut(buf, len)?;
        let mut used = 0usize;
        for (index, core::Entry { name, ino, kind }) in listing.iter().enumerate().skip(start) {
            let mut entry = Vec::with_capacity(abi::DIRENT_SIZE + name.len());
            entry.extend_from_slice(&(index as u64 + 1).to_le_bytes());
            entry.extend_from_slice(&ino.to_le_bytes());
            entry.extend_from_slice(&(name.len() as u32).to_le_bytes());
            entry.push(file_type(*kind));
            entry.extend_from_slice(&[0, 0, 0]);
            entry.extend_from_slice(name.as_bytes());
            let room = dst.len() - used;
            let n = room.min(entry.len());
            dst[used..used + n].copy_from_slice(&entry[..n]);
            used += n;
            if n < entry.len() {
                break;
            }
        }
        mem.put_u32(out, used as u32)
    }

    // ---- paths ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments, reason = "the WASI signature")]
    pub fn path_open(
        &mut self,
        mem: &mut Mem,
        dirfd: u32,
        lookup: u32,
        path: u32,
        path_len: u32,
        oflags: u16,
        base: u64,
        // The reference ignores the inheriting rights asked for; a new descriptor's
        // inheriting rights are what it may pass on (see `DirDesc::child_rights`).
        _inheriting: u64,
        fdflags: u16,
        out: u32,
    ) -> R<()> {
        let path = mem.str(path, path_len)?;
        // What a new descriptor may keep: everything, unless the guest narrowed the
        // directory's inheriting rights.
        let child_rights = match self.desc(dirfd)? {
            Desc::Dir(d) => d.child_rights(),
            Desc::File(_) => return Err(Errno::Notdir),
            _ => return Err(Errno::Badf),
        };
        self.require(dirfd, open_rights(oflags))?;
        let creat = oflags & oflags::CREAT != 0;
        let trunc = oflags & oflags::TRUNC != 0;
        // The open mode, as the reference decides it: rights are a request, trimmed to
        // what the file allows, never a reason to refuse. Creating or truncating writes;
        // a descriptor that does not ask to write reads (so no rights at all reads).
        let how = Open {
            follow: lookup & abi::LOOKUP_SYMLINK_FOLLOW != 0,
            create: creat,
            exclusive: oflags & oflags::EXCL != 0,
            truncate: trunc,
            directory: oflags & oflags::DIRECTORY != 0,
            write: base & rights::FD_WRITE != 0 || creat || trunc,
            read: base & rights::FD_READ != 0 || base & rights::FD_WRITE == 0,
        };
        self.core.check_open(&how)?;
        // Room for the descriptor before any side effect: at the limit, EMFILE and
        // nothing created or truncated.
        self.check_room()?;
        let dir = self.base(dirfd)?;
        let desc = match self.core.open(&dir, path, how)? {
            Opened::Dir(dir) => Desc::Dir(DirDesc {
                dir,
                preopen: None,
                rights_base: child_rights,
                rights_inheriting: child_rights,
                narrowed: false,
                snapshot: None,
            }),
            Opened::File(file) => Desc::File(FileDesc {
                file,
                pos: 0,
                flags: fdflags
                    & (fdflags::APPEND
                        | fdflags::NONBLOCK
                        | fdflags::DSYNC
                        | fdflags::RSYNC
                        | fdflags::SYNC),
                rights_base: child_rights,
                rights_inheriting: child_rights,
            }),
        };
        let fd = self.insert(desc)?;
        mem.put_u32(out, fd)
    }

    pub fn path_create_directory(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        self.require(fd, rights::PATH_CREATE_DIRECTORY)?;
        let path = mem.str(path, len)?;
        let dir = self.base(fd)?;
        self.core.mkdir(&dir, path)
    }

    pub fn path_filestat_get(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        lookup: u32,
        path: u32,
        len: u32,
        out: u32,
    ) -> R<()> {
        self.require(fd, rights::PATH_FILESTAT_GET)?;
        let path = mem.str(path, len)?;
        let dir = self.base(fd)?;
        let follow = lookup & abi::LOOKUP_SYMLINK_FOLLOW != 0;
        let (dev, stat) = self.core.stat_at(&dir, path, follow)?;
        write_filestat(mem, out, dev, &stat)
    }

    #[allow(clippy::too_many_arguments, reason = "the WASI signature")]
    pub fn path_filestat_set_times(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        lookup: u32,
        path: u32,
        len: u32,
        atim: u64,
        mtim: u64,
        flags: u16,
    ) -> R<()> {
        let path = mem.str(path, len)?;
        // As the reference: the flags are checked before the descriptor.
        let atime = set_time(flags, atim, fstflags::ATIM, fstflags::ATIM_NOW)?;
        let mtime = set_time(flags, mtim, fstflags::MTIM, fstflags::MTIM_NOW)?;
        self.require(fd, rights::PATH_FILESTAT_SET_TIMES)?;
        let dir = self.base(fd)?;
        let follow = lookup & abi::LOOKUP_SYMLINK_FOLLOW != 0;
        self.core.set_times_at(&dir, path, follow, atime, mtime)
    }

    #[allow(clippy::too_many_arguments, reason = "the WASI signature")]
    pub fn path_link(
        &mut self,
        mem: &mut Mem,
        old_fd: u32,
        lookup: u32,
        old_path: u32,
        old_len: u32,
        new_fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> R<()> {
        self.require(old_fd, rights::PATH_LINK_SOURCE)?;
        self.require(new_fd, rights::PATH_LINK_TARGET)?;
        let old_path = mem.str(old_path, old_len)?;
        let new_path = mem.str(new_path, new_len)?;
        let (old_dir, new_dir) = (self.base(old_fd)?, self.base(new_fd)?);
        let follow = lookup & abi::LOOKUP_SYMLINK_FOLLOW != 0;
        self.core
            .link(&old_dir, old_path, follow, &new_dir, new_path)
    }

    #[allow(clippy::too_many_arguments, reason = "the WASI signature")]
    pub fn path_readlink(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        path: u32,
        len: u32,
        buf: u32,
        buf_len: u32,
        out: u32,
    ) -> R<()> {
        self.require(fd, rights::PATH_READLINK)?;
        let path = mem.str(path, len)?;
        let dir = self.base(fd)?;
        let target = self.core.readlink(&dir, path)?;
        let n = target.len().min(buf_len as usize);
        mem.write(buf, &target.as_bytes()[..n])?;
        mem.put_u32(out, n as u32)
    }

    pub fn path_remove_directory(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        self.require(fd, rights::PATH_REMOVE_DIRECTORY)?;
        let path = mem.str(path, len)?;
        let dir = self.base(fd)?;
        self.core.rmdir(&dir, path)
    }

    #[allow(clippy::too_many_arguments, reason = "the WASI signature")]
    pub fn path_rename(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        old: u32,
        old_len: u32,
        new_fd: u32,
        new: u32,
        new_len: u32,
    ) -> R<()> {
        self.require(fd, rights::PATH_RENAME_SOURCE)?;
        self.require(new_fd, rights::PATH_RENAME_TARGET)?;
        let old = mem.str(old, old_len)?;
        let new = mem.str(new, new_len)?;
        let (old_dir, new_dir) = (self.base(fd)?, self.base(new_fd)?);
        self.core.rename(&old_dir, old, &new_dir, new)
    }

    pub fn path_symlink(
        &mut self,
        mem: &mut Mem,
        old: u32,
        old_len: u32,
        fd: u32,
        new: u32,
        new_len: u32,
    ) -> R<()> {
        self.require(fd, rights::PATH_SYMLINK)?;
        let target = mem.str(old, old_len)?;
        let path = mem.str(new, new_len)?;
        let dir = self.base(fd)?;
        self.core.symlink(target, &dir, path)
    }

    pub fn path_unlink_file(&mut self, mem: &mut Mem, fd: u32, path: u32, len: u32) -> R<()> {
        self.require(fd, rights::PATH_UNLINK_FILE)?;
        let path = mem.str(path, len)?;
        let dir = self.base(fd)?;
        self.core.unlink(&dir, path)
    }

    // ---- polling ----------------------------------------------------------------------------

    /// Waits for subscriptions: sockets (and the host's stdin) with a real `poll(2)`,
    /// clocks as its timeout (the earliest one); files, directories, output streams
    /// and in-memory stdin are ready at once, as the reference reports them.
    pub fn poll_oneoff(
        &mut self,
        mem: &mut Mem,
        subs: u32,
        events: u32,
        count: u32,
        out: u32,
    ) -> R<()> {
        if count == 0 || count > abi::MAX_SUBSCRIPTIONS {
            return Err(Errno::Inval);
        }
        // (userdata, error, type, nbytes, flags)
        let mut ready: Vec<(u64, u16, u8, u64, u16)> = Vec::new();
        let mut earliest: Option<(Duration, u64)> = None;
        // (userdata, type, fd) of the descriptors to wait on.
        let mut waits: Vec<(u64, u8, u32)> = Vec::new();
        for i in 0..count {
            let sub = ptr_add(subs, u64::from(i) * abi::SUBSCRIPTION_SIZE as u64)?;
            // The fields below lie within the subscription, which `mem` bounds-checks.
            let field = |at: u64| ptr_add(sub, at);
            let userdata = mem.u64(sub)?;
            match mem.u8(field(8)?)? {
                event::CLOCK => {
                    let id = mem.u32(field(16)?)?;
                    let timeout = mem.u64(field(24)?)?;
                    let flags = mem.u16(field(40)?)?;
                    let now = match self.now(id) {
                        Ok(now) => now,
                        Err(e) => {
                            ready.push((userdata, e.raw(), event::CLOCK, 0, 0));
                            continue;
                        }
                    };
                    let wait = if flags & event::SUBSCRIPTION_CLOCK_ABSTIME != 0 {
                        timeout.saturating_sub(now)
                    } else {
                        timeout
                    };
                    let wait = Duration::from_nanos(wait);
                    if earliest.is_none_or(|(w, _)| wait < w) {
                        earliest = Some((wait, userdata));
                    }
                }
                kind @ (event::FD_READ | event::FD_WRITE) => {
                    let fd = mem.u32(field(16)?)?;
                    // As the reference: a subscription to a descriptor that does not
                    // exist fails the whole call.
                    let host_stdin = matches!(self.stdin, Input::Inherit | Input::File(_));
                    match self.desc(fd)? {
                        Desc::Socket(_) => waits.push((userdata, kind, fd)),
                        Desc::Stdin if host_stdin && kind == event::FD_READ => {
                            waits.push((userdata, kind, fd));
                        }
                        _ => ready.push((userdata, 0, kind, 0, 0)),
                    }
                }
                _ => return Err(Errno::Inval),
            }
        }
        let started = Instant::now();
        loop {
            let left = earliest.map(|(w, _)| w.saturating_sub(started.elapsed()));
            if waits.is_empty() {
                if ready.is_empty()
                    && let (Some(left), Some((_, userdata))) = (left, earliest)
                {
                    // Woken early when the guest is stopped; it then traps at its
                    // next check.
                    self.interrupt.sleep(left);
                    ready.push((userdata, 0, event::CLOCK, 0, 0));
                }
                break;
            }
            let timeout = if ready.is_empty() {
                left.map_or(sockets::WAIT_SLICE, |l| l.min(sockets::WAIT_SLICE))
            } else {
                Duration::ZERO
            };
            for ((userdata, kind, fd), result) in
                waits.iter().zip(self.wait_descriptors(&waits, timeout)?)
            {
                let Some(result) = result else { continue };
                let nbytes = match self.fds.get(*fd as usize).and_then(Option::as_ref) {
                    Some(Desc::Socket(s)) if *kind == event::FD_READ => s.ready_bytes(),
                    _ => 0,
                };
                let flags = if result.hangup {
                    event::FD_READWRITE_HANGUP
                } else {
                    0
                };
                ready.push((*userdata, 0, *kind, nbytes, flags));
            }
            if !ready.is_empty() {
                break;
            }
            if let (Some(left), Some((_, userdata))) = (left, earliest)
                && left <= timeout
            {
                ready.push((userdata, 0, event::CLOCK, 0, 0));
                break;
            }
            if self.interrupt.reason().is_some() {
                return Err(Errno::Intr);
            }
        }
        for (i, (userdata, error, kind, nbytes, flags)) in ready.iter().enumerate() {
            let mut b = [0u8; abi::EVENT_SIZE];
            b[0..8].copy_from_slice(&userdata.to_le_bytes());
            b[8..10].copy_from_slice(&error.to_le_bytes());
            b[10] = *kind;
            b[16..24].copy_from_slice(&nbytes.to_le_bytes());
            b[24..26].copy_from_slice(&flags.to_le_bytes());
            mem.write(ptr_add(events, (i * abi::EVENT_SIZE) as u64)?, &b)?;
        }
        mem.put_u32(out, ready.len() as u32)
    }

    /// One `poll(2)` over the sockets (and host stdin) of `waits`, for at most
    /// `timeout`.
    #[cfg(unix)]
    fn wait_descriptors(
        &self,
        waits: &[(u64, u8, u32)],
        timeout: Duration,
    ) -> R<Vec<Option<sockets::Ready>>> {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin();
        let mut fds = Vec::with_capacity(waits.len());
        for (_, kind, fd) in waits {
            let interest = interest_of(*kind);
            let host = match (
                self.fds.get(*fd as usize).and_then(Option::as_ref),
                &self.stdin,
            ) {
                (Some(Desc::Socket(s)), _) => s.as_fd(),
                (_, Input::File(file)) => file.as_fd(),
                _ => stdin.as_fd(),
            };
            fds.push((host, interest));
        }
        sockets::wait_fds(&fds, Some(timeout))
    }

    /// Windows: one `WSAPoll` over the sockets of `waits`, for at most `timeout`; stdin
    /// (which `WSAPoll` cannot wait on) is reported ready at once.
    #[cfg(windows)]
    fn wait_descriptors(
        &self,
        waits: &[(u64, u8, u32)],
        timeout: Duration,
    ) -> R<Vec<Option<sockets::Ready>>> {
        let mut ready = vec![None; waits.len()];
        let (mut polled, mut at) = (Vec::new(), Vec::new());
        for (i, (_, kind, fd)) in waits.iter().enumerate() {
            let interest = interest_of(*kind);
            match self.fds.get(*fd as usize).and_then(Option::as_ref) {
                Some(Desc::Socket(s)) => {
                    polled.push((s.as_raw_socket(), interest));
                    at.push(i);
                }
                _ => ready[i] = Some(sockets::Ready { hangup: false }),
            }
        }
        if !polled.is_empty() {
            let wait = if ready.iter().any(Option::is_some) {
                Duration::ZERO
            } else {
                timeout
            };
            for (i, r) in at
                .into_iter()
                .zip(sockets::wait_sockets(&polled, Some(wait))?)
            {
                ready[i] = r;
            }
        }
        Ok(ready)
    }

    /// Without `poll(2)`, every descriptor is reported ready.
    #[cfg(not(any(unix, windows)))]
    fn wait_descriptors(
        &self,
        waits: &[(u64, u8, u32)],
        _timeout: Duration,
    ) -> R<Vec<Option<sockets::Ready>>> {
        Ok(vec![Some(sockets::Ready { hangup: false }); waits.len()])
    }

    // ---- sockets ------------------------------------------------------------------------

    /// The socket behind `fd`: `EBADF` for no descriptor, `ENOTSOCK` for another kind
    /// (as wasmtime-wasi and Linux).
    fn socket(&self, fd: u32) -> R<&Socket> {
        match self.fds.get(fd as usize).and_then(Option::as_ref) {
            Some(Desc::Socket(s)) => Ok(s),
            Some(_) => Err(Errno::Notsock),
            None => Err(Errno::Badf),
        }
    }

    pub fn sock_accept(&mut self, mem: &mut Mem, fd: u32, flags: u16, out: u32) -> R<()> {
        let conn = self.socket(fd)?.accept(flags, &self.interrupt)?;
        let new = self.insert(Desc::Socket(conn))?;
        mem.put_u32(out, new)
    }

    #[allow(clippy::too_many_arguments, reason = "the WASI signature")]
    pub fn sock_recv(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        iovs: u32,
        count: u32,
        flags: u16,
        out: u32,
        out_flags: u32,
    ) -> R<()> {
        let iovs = mem.iovecs(iovs, count)?;
        let n = self.socket(fd)?.recv(mem, &iovs, flags, &self.interrupt)?;
        mem.put_u32(out, n)?;
        // `roflags`: RECV_DATA_TRUNCATED is for datagrams only.
        mem.put_u16(out_flags, 0)
    }

    pub fn sock_send(
        &mut self,
        mem: &mut Mem,
        fd: u32,
        iovs: u32,
        count: u32,
        flags: u16,
        out: u32,
    ) -> R<()> {
        let iovs = mem.iovecs(iovs, count)?;
        let socket = self.socket(fd)?;
        if flags != 0 {
            return Err(Errno::Notsup);
        }
        let n = socket.send(mem, &iovs, &self.interrupt)?;
        mem.put_u32(out, n)
    }

    pub fn sock_shutdown(&mut self, fd: u32, how: u8) -> R<()> {
        self.socket(fd)?.shutdown(how)
    }
}
