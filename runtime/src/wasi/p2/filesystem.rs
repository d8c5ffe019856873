//! `wasi:filesystem/types` and `wasi:filesystem/preopens`: the preview2 adapter over
//! the world-neutral core. Each method looks up its resources, turns WASI 0.2's flags
//! into the core's words, calls the core and maps its errno to an `error-code`. The
//! answers follow wasmtime-wasi's preview2 host where the core leaves a choice (a
//! directory's flags, which call refuses a directory with which code), so that a
//! component sees what it would see under wasmtime.

use super::WasiP2;
use crate::fs::layer::Kind;
use crate::fs::{Errno, SetTime, Stat};
use crate::wasi::core::{self, Dir, File, Open, Opened};
use crate::wasi::freeze::Freeze;
use bytes::Bytes;
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "capsule:host/filesystem",
        imports: { default: trappable },
        trappable_error_type: {
            "wasi:filesystem/types.error-code" => super::FsError,
        },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "wasi:filesystem/types.descriptor": super::Descriptor,
            "wasi:filesystem/types.directory-entry-stream": super::DirStream,
        },
        require_store_data_send: true,
    });
}

use bindings::wasi::filesystem::types::{
    self, Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

/// A filesystem call's error: an `error-code` for the guest, or a trap.
pub type FsError = wasmtime_wasi::TrappableError<ErrorCode>;
type FsResult<T> = Result<T, FsError>;

/// An open file or directory.
#[derive(Debug)]
pub enum Descriptor {
    File(File),
    Dir {
        dir: Dir,
        /// A preopen may be changed below (`mutate-directory`); a directory opened
        /// later reports `read` alone, as wasmtime's do.
        preopen: bool,
    },
}

/// What `read-directory` lists: a snapshot taken when it is asked for, without `.`
/// and `..`.
#[derive(Debug)]
pub struct DirStream {
    entries: std::vec::IntoIter<core::Entry>,
}

fn code(errno: Errno) -> ErrorCode {
    use ErrorCode as C;
    match errno {
        Errno::Acces => C::Access,
        Errno::Again => C::WouldBlock,
        Errno::Badf => C::BadDescriptor,
        Errno::Busy => C::Busy,
        Errno::Exist => C::Exist,
        Errno::Fbig => C::FileTooLarge,
        Errno::Ilseq => C::IllegalByteSequence,
        Errno::Intr => C::Interrupted,
        Errno::Inval => C::Invalid,
        Errno::Isdir => C::IsDirectory,
        Errno::Loop => C::Loop,
        // WASI 0.2 has no "too many open files".
        Errno::Mfile | Errno::Nfile | Errno::Nomem => C::InsufficientMemory,
        Errno::Mlink => C::TooManyLinks,
        Errno::Nametoolong => C::NameTooLong,
        Errno::Nodev => C::NoDevice,
        Errno::Noent => C::NoEntry,
        Errno::Nospc => C::InsufficientSpace,
        Errno::Notdir => C::NotDirectory,
        Errno::Notempty => C::NotEmpty,
        Errno::Notsup | Errno::Nosys => C::Unsupported,
        Errno::Overflow | Errno::Range => C::Overflow,
        Errno::Perm | Errno::Notcapable => C::NotPermitted,
        Errno::Pipe => C::Pipe,
        Errno::Rofs => C::ReadOnly,
        Errno::Spipe => C::InvalidSeek,
        Errno::Xdev => C::CrossDevice,
        Errno::TooBig | Errno::Fault => C::Invalid,
        Errno::Io | Errno::Notsock | Errno::Connaborted | Errno::Connreset | Errno::Notconn => {
            C::Io
        }
    }
}

/// A resource table's error: the guest named a resource it does not hold (a trap).
fn table<T>(result: Result<T, wasmtime::component::ResourceTableError>) -> FsResult<T> {
    result.map_err(FsError::trap)
}

fn fs<T>(result: core::R<T>) -> FsResult<T> {
    result.map_err(|e| code(e).into())
}

fn kind_type(kind: Kind) -> DescriptorType {
    match kind {
        Kind::File => DescriptorType::RegularFile,
        Kind::Dir => DescriptorType::Directory,
        Kind::Symlink => DescriptorType::SymbolicLink,
    }
}

fn datetime((secs, nanos): (i64, u32)) -> Option<Datetime> {
    Some(Datetime {
        seconds: u64::try_from(secs).unwrap_or(0),
        nanoseconds: nanos,
    })
}

fn descriptor_stat(stat: &Stat) -> DescriptorStat {
    DescriptorStat {
        type_: kind_type(stat.kind),
        link_count: stat.nlink,
        size: stat.size,
        data_access_timestamp: datetime(stat.atime),
        data_modification_timestamp: datetime(stat.mtime),
        status_change_timestamp: datetime(stat.ctime),
    }
}

fn set_time(t: NewTimestamp) -> FsResult<SetTime> {
    Ok(match t {
        NewTimestamp::NoChange => SetTime::Keep,
        NewTimestamp::Now => SetTime::Now,
        NewTimestamp::Timestamp(Datetime {
            seconds,
            nanoseconds,
        }) => {
            if nanoseconds >= 1_000_000_000 {
                return Err(ErrorCode::Invalid.into());
            }
            let secs = i64::try_from(seconds).map_err(|_| ErrorCode::Overflow)?;
            SetTime::At((secs, nanoseconds))
        }
    })
}

fn hash(dev: u64, ino: u64) -> MetadataHashValue {
    MetadataHashValue {
        lower: ino,
        upper: dev,
    }
}

impl WasiP2 {
    fn descriptor(&self, fd: &Resource<Descriptor>) -> FsResult<&Descriptor> {
        table(self.table.get(fd))
    }

    fn file(&self, fd: &Resource<Descriptor>) -> FsResult<File> {
        match self.descriptor(fd)? {
            Descriptor::File(f) => Ok(f.clone()),
            // File-only calls are bad-descriptor on a directory (as wasmtime).
            Descriptor::Dir { .. } => Err(ErrorCode::BadDescriptor.into()),
        }
    }

    fn dir(&self, fd: &Resource<Descriptor>) -> FsResult<Dir> {
        match self.descriptor(fd)? {
            Descriptor::Dir { dir, .. } => Ok(dir.clone()),
            Descriptor::File(_) => Err(ErrorCode::NotDirectory.into()),
        }
    }

    /// Holds the container's files still while a call changes them.
    fn pass(&self) -> Option<crate::wasi::freeze::Pass<'_>> {
        self.freeze.as_deref().map(Freeze::enter)
    }

    /// A call on one directory that changes what is below it (mkdir, rmdir, symlink,
    /// unlink): `change` runs in the core with the container's freeze gate passed.
    fn change_at(
        &self,
        fd: &Resource<Descriptor>,
        change: impl FnOnce(&core::Core, &Dir) -> core::R<()>,
    ) -> FsResult<()> {
        let dir = self.dir(fd)?;
        let _pass = self.pass();
        fs(change(&self.core, &dir))
    }

    fn push(&mut self, desc: Descriptor) -> FsResult<Resource<Descriptor>> {
        let fd = table(self.table.push(desc))?;
        self.core.opened();
        Ok(fd)
    }
}

impl types::Host for WasiP2 {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        err.downcast()
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<StreamCode>().map(|c| c.0))
    }
}

/// The `error-code` of a failed stream operation, carried in its `wasi:io/error`.
#[derive(Debug, Clone, Copy)]
struct StreamCode(ErrorCode);

impl std::fmt::Display for StreamCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for StreamCode {}

fn stream_error(errno: Errno) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(StreamCode(code(errno))))
}

impl types::HostDescriptor for WasiP2 {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: u64,
    ) -> FsResult<Resource<wasmtime_wasi::p2::DynInputStream>> {
        let file = match self.descriptor(&fd)? {
            Descriptor::File(f) => f.clone(),
            Descriptor::Dir { .. } => return Err(ErrorCode::IsDirectory.into()),
        };
        let stream: wasmtime_wasi::p2::DynInputStream = Box::new(FileInput { file, pos: offset });
        table(self.table.push(stream))
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: u64,
    ) -> FsResult<Resource<wasmtime_wasi::p2::DynOutputStream>> {
        let file = self.file(&fd)?;
        let stream: wasmtime_wasi::p2::DynOutputStream = Box::new(FileOutput {
            file,
            pos: offset,
            append: false,
            freeze: self.freeze.clone(),
        });
        table(self.table.push(stream))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<wasmtime_wasi::p2::DynOutputStream>> {
        let file = self.file(&fd)?;
        let stream: wasmtime_wasi::p2::DynOutputStream = Box::new(FileOutput {
            file,
            pos: 0,
            append: true,
            freeze: self.freeze.clone(),
        });
        table(self.table.push(stream))
    }

    fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        _offset: u64,
        _length: u64,
        _advice: Advice,
    ) -> FsResult<()> {
        self.file(&fd)?;
        Ok(())
    }

    fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.sync(fd)
    }

    fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        Ok(match self.descriptor(&fd)? {
            Descriptor::File(f) => {
                let mut flags = DescriptorFlags::empty();
                if f.read {
                    flags |= DescriptorFlags::READ;
                }
                if f.write {
                    flags |= DescriptorFlags::WRITE;
                }
                flags
            }
            Descriptor::Dir { preopen: true, .. } => {
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY
            }
            Descriptor::Dir { preopen: false, .. } => DescriptorFlags::READ,
        })
    }

    fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        Ok(match self.descriptor(&fd)? {
            Descriptor::File(f) => kind_type(fs(f.stat())?.kind),
            Descriptor::Dir { .. } => DescriptorType::Directory,
        })
    }

    fn set_size(&mut self, fd: Resource<Descriptor>, size: u64) -> FsResult<()> {
        let file = self.file(&fd)?;
        let _pass = self.pass();
        fs(file.set_len(size))
    }

    fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> FsResult<()> {
        let (atime, mtime) = (set_time(atime)?, set_time(mtime)?);
        let _pass = self.pass();
        match self.descriptor(&fd)? {
            Descriptor::File(f) => fs(f.set_times(atime, mtime)),
            Descriptor::Dir { dir, .. } => fs(self.core.set_dir_times(dir, atime, mtime)),
        }
    }

    fn read(
        &mut self,
        fd: Resource<Descriptor>,
        length: u64,
        offset: u64,
    ) -> FsResult<(Vec<u8>, bool)> {
        let file = self.file(&fd)?;
        let len = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(crate::wasi::p1::abi::MAX_IO);
        let mut buf = vec![0u8; len];
        let n = fs(file.read_at(&mut buf, offset))?;
        buf.truncate(n);
        Ok((buf, n == 0))
    }

    fn write(&mut self, fd: Resource<Descriptor>, buffer: Vec<u8>, offset: u64) -> FsResult<u64> {
        let file = self.file(&fd)?;
        let _pass = self.pass();
        let (n, _) = fs(file.write_at(&buffer, offset, false))?;
        Ok(n as u64)
    }

    fn read_directory(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<DirStream>> {
        let dir = self.dir(&fd)?;
        let mut entries = fs(self.core.list(&dir))?;
        entries.retain(|e| e.name != "." && e.name != "..");
        table(self.table.push(DirStream {
            entries: entries.into_iter(),
        }))
    }

    fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        match self.descriptor(&fd)? {
            Descriptor::File(f) => fs(f.sync()),
            Descriptor::Dir { .. } => Ok(()),
        }
    }

    fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        self.change_at(&fd, |core, dir| core.mkdir(dir, &path))
    }

    fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        let stat = match self.descriptor(&fd)? {
            Descriptor::File(f) => fs(f.stat())?,
            Descriptor::Dir { dir, .. } => fs(self.core.stat_dir(dir))?,
        };
        Ok(descriptor_stat(&stat))
    }

    fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        let dir = self.dir(&fd)?;
        let follow = flags.contains(PathFlags::SYMLINK_FOLLOW);
        let (_, stat) = fs(self.core.stat_at(&dir, &path, follow))?;
        Ok(descriptor_stat(&stat))
    }

    fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> FsResult<()> {
        let dir = self.dir(&fd)?;
        let (atime, mtime) = (set_time(atime)?, set_time(mtime)?);
        let follow = flags.contains(PathFlags::SYMLINK_FOLLOW);
        let _pass = self.pass();
        fs(self.core.set_times_at(&dir, &path, follow, atime, mtime))
    }

    fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let old_dir = self.dir(&fd)?;
        let new_dir = self.dir(&new_fd)?;
        let follow = old_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let _pass = self.pass();
        fs(self
            .core
            .link(&old_dir, &old_path, follow, &new_dir, &new_path))
    }

    fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let dir = self.dir(&fd)?;
        if flags.intersects(
            DescriptorFlags::FILE_INTEGRITY_SYNC
                | DescriptorFlags::DATA_INTEGRITY_SYNC
                | DescriptorFlags::REQUESTED_WRITE_SYNC,
        ) {
            return Err(ErrorCode::Unsupported.into());
        }
        let create = open_flags.contains(OpenFlags::CREATE);
        let truncate = open_flags.contains(OpenFlags::TRUNCATE);
        let how = Open {
            follow: path_flags.contains(PathFlags::SYMLINK_FOLLOW),
            create,
            exclusive: open_flags.contains(OpenFlags::EXCLUSIVE),
            truncate,
            directory: open_flags.contains(OpenFlags::DIRECTORY),
            // As wasmtime: a descriptor that does not ask to write reads.
            read: flags.contains(DescriptorFlags::READ) || !flags.contains(DescriptorFlags::WRITE),
            write: flags.contains(DescriptorFlags::WRITE) || create || truncate,
        };
        fs(self.core.check_open(&how))?;
        if self.core.open_count() >= self.max_fds {
            return Err(ErrorCode::InsufficientMemory.into());
        }
        let opened = {
            let _pass = (create || truncate).then(|| self.pass()).flatten();
            fs(self.core.open(&dir, &path, how))?
        };
        let desc = match opened {
            Opened::File(file) => Descriptor::File(file),
            Opened::Dir(dir) => Descriptor::Dir {
                dir,
                preopen: false,
            },
        };
        self.push(desc)
    }

    fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let dir = self.dir(&fd)?;
        fs(self.core.readlink(&dir, &path))
    }

    fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        self.change_at(&fd, |core, dir| core.rmdir(dir, &path))
    }

    fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let old_dir = self.dir(&fd)?;
        let new_dir = self.dir(&new_fd)?;
        let _pass = self.pass();
        fs(self.core.rename(&old_dir, &old_path, &new_dir, &new_path))
    }

    fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_path: String,
    ) -> FsResult<()> {
        self.change_at(&fd, |core, dir| core.symlink(&old_path, dir, &new_path))
    }

    fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        self.change_at(&fd, |core, dir| core.unlink(dir, &path))
    }

    fn is_same_object(
        &mut self,
        fd: Resource<Descriptor>,
        other: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        let a = self.metadata_hash(fd);
        let b = self.metadata_hash(other);
        Ok(match (a, b) {
            (Ok(a), Ok(b)) => a.lower == b.lower && a.upper == b.upper,
            _ => false,
        })
    }

    fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        Ok(match self.descriptor(&fd)? {
            Descriptor::File(f) => hash(f.dev, fs(f.stat())?.ino),
            Descriptor::Dir { dir, .. } => hash(dir.dev(), fs(self.core.stat_dir(dir))?.ino),
        })
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        let dir = self.dir(&fd)?;
        let follow = flags.contains(PathFlags::SYMLINK_FOLLOW);
        let (dev, stat) = fs(self.core.stat_at(&dir, &path, follow))?;
        Ok(hash(dev, stat.ino))
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.table.delete(fd)?;
        self.core.closed();
        Ok(())
    }
}

impl types::HostDirectoryEntryStream for WasiP2 {
    fn read_directory_entry(
        &mut self,
        stream: Resource<DirStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        let stream = table(self.table.get_mut(&stream))?;
        Ok(stream.entries.next().map(|e| DirectoryEntry {
            type_: kind_type(e.kind),
            name: e.name,
        }))
    }

    fn drop(&mut self, stream: Resource<DirStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl bindings::wasi::filesystem::preopens::Host for WasiP2 {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut out = Vec::with_capacity(self.preopens.len());
        for (dir, name) in self.preopens.clone() {
            let fd = self.table.push(Descriptor::Dir { dir, preopen: true })?;
            self.core.opened();
            out.push((fd, name));
        }
        Ok(out)
    }
}

/// `read-via-stream`: reads from a position that moves with each read.
#[derive(Debug)]
struct FileInput {
    file: File,
    pos: u64,
}

#[wasmtime_wasi::async_trait]
impl Pollable for FileInput {
    async fn ready(&mut self) {}
}

impl InputStream for FileInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut buf = vec![0u8; size.min(crate::wasi::p1::abi::MAX_IO)];
        let n = self
            .file
            .read_at(&mut buf, self.pos)
            .map_err(stream_error)?;
        if n == 0 && size > 0 {
            return Err(StreamError::Closed);
        }
        buf.truncate(n);
        self.pos += n as u64;
        Ok(Bytes::from(buf))
    }
}

/// `write-via-stream` and `append-via-stream`: each write lands before `write`
/// returns, so a stream is always ready and `flush` has nothing to do.
#[derive(Debug)]
struct FileOutput {
    file: File,
    pos: u64,
    append: bool,
    freeze: Option<Arc<Freeze>>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for FileOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for FileOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let _pass = self.freeze.as_deref().map(Freeze::enter);
        let mut done = 0;
        while done < bytes.len() {
            let (n, after) = self
                .file
                .write_at(&bytes[done..], self.pos, self.append)
                .map_err(stream_error)?;
            if n == 0 {
                return Err(stream_error(Errno::Nospc));
            }
            done += n;
            self.pos = after;
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}
