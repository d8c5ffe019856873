//! A generated differential test of WASI preview1: from a seed, a sequence of raw
//! preview1 calls (no libc or std in between, so zero rights, odd flags and bad
//! descriptors reach the host as they are) over a scratch directory, with one line per
//! call: what was called and everything it returned. The same program runs under
//! Capsule and under wasmtime-wasi; the two transcripts and trees must agree.
//!
//! Usage: `wasi_fuzz SCRATCH SEED STEPS [KEEP]`
//! - `SCRATCH` is the guest path of the preopened scratch directory (`/work`).
//! - The calls are drawn from `SEED`; `STEPS` of them are drawn. Each call's arguments
//!   depend only on the seed, never on earlier results, so any subset of the steps
//!   still means the same calls: `KEEP` (comma-separated step numbers) runs only those,
//!   which is how a divergence is shrunk to a minimal reproducer.
//!
//! What the generator knows (the deliberate differences, see the harness's table):
//! - A path that climbs lexically above the directory descriptor it starts from is
//!   tagged `[escape]`: the reference refuses it (each of its directory descriptors is
//!   a sandbox of its own), Capsule resolves it in the container's tree. Such paths are generated only for calls that change
//!   nothing, and a descriptor opened through one is closed at once.
//! - Symlink targets are relative, never contain `..` and never are just `.`, so
//!   following a link never climbs higher than the path that named it: the `[escape]`
//!   tag is exact.
//! - Absolute paths (`/a`, given to a call relative to a directory descriptor) and
//!   absolute symlink targets (`/`, `/a`) are generated: both are refused with `EPERM`.
//!   (Until 2026-12-06 neither was generated, as absolute targets were a deliberate
//!   difference, and so an outside suite found both answers different first.)
//!
//! Output never shows descriptor numbers, inode numbers or times that the program did
//! not set itself, and directory listings are compared as sorted sets.

use std::fmt::Write as _;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_prestat_get(fd: u32, out: *mut u8) -> i32;
    fn fd_prestat_dir_name(fd: u32, buf: *mut u8, len: usize) -> i32;
    fn path_open(
        fd: u32,
        dirflags: u32,
        path: *const u8,
        path_len: usize,
        oflags: u32,
        rights_base: u64,
        rights_inheriting: u64,
        fdflags: u32,
        out: *mut u32,
    ) -> i32;
    fn fd_close(fd: u32) -> i32;
    fn fd_renumber(from: u32, to: u32) -> i32;
    fn fd_read(fd: u32, iovs: *const Iovec, n: usize, out: *mut usize) -> i32;
    fn fd_write(fd: u32, iovs: *const Iovec, n: usize, out: *mut usize) -> i32;
    fn fd_pread(fd: u32, iovs: *const Iovec, n: usize, offset: u64, out: *mut usize) -> i32;
    fn fd_pwrite(fd: u32, iovs: *const Iovec, n: usize, offset: u64, out: *mut usize) -> i32;
    fn fd_seek(fd: u32, offset: i64, whence: u32, out: *mut u64) -> i32;
    fn fd_tell(fd: u32, out: *mut u64) -> i32;
    fn fd_fdstat_get(fd: u32, out: *mut u8) -> i32;
    fn fd_fdstat_set_flags(fd: u32, flags: u32) -> i32;
    fn fd_filestat_get(fd: u32, out: *mut u8) -> i32;
    fn fd_filestat_set_size(fd: u32, size: u64) -> i32;
    fn fd_filestat_set_times(fd: u32, atim: u64, mtim: u64, flags: u32) -> i32;
    fn fd_readdir(fd: u32, buf: *mut u8, len: usize, cookie: u64, out: *mut usize) -> i32;
    fn fd_advise(fd: u32, offset: u64, len: u64, advice: u32) -> i32;
    fn fd_sync(fd: u32) -> i32;
    fn fd_datasync(fd: u32) -> i32;
    fn path_filestat_get(fd: u32, flags: u32, path: *const u8, len: usize, out: *mut u8) -> i32;
    fn path_filestat_set_times(
        fd: u32,
        flags: u32,
        path: *const u8,
        len: usize,
        atim: u64,
        mtim: u64,
        fst: u32,
    ) -> i32;
    fn path_create_directory(fd: u32, path: *const u8, len: usize) -> i32;
    fn path_remove_directory(fd: u32, path: *const u8, len: usize) -> i32;
    fn path_unlink_file(fd: u32, path: *const u8, len: usize) -> i32;
    fn path_rename(
        fd: u32,
        old: *const u8,
        old_len: usize,
        new_fd: u32,
        new: *const u8,
        new_len: usize,
    ) -> i32;
    fn path_link(
        fd: u32,
        flags: u32,
        old: *const u8,
        old_len: usize,
        new_fd: u32,
        new: *const u8,
        new_len: usize,
    ) -> i32;
    fn path_symlink(
        target: *const u8,
        target_len: usize,
        fd: u32,
        path: *const u8,
        len: usize,
    ) -> i32;
    fn path_readlink(
        fd: u32,
        path: *const u8,
        len: usize,
        buf: *mut u8,
        buf_len: usize,
        out: *mut usize,
    ) -> i32;
}

#[repr(C)]
struct Iovec {
    buf: *const u8,
    len: usize,
}

const ERRNO: [&str; 77] = [
    "ok", "E2BIG", "EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EAFNOSUPPORT", "EAGAIN",
    "EALREADY", "EBADF", "EBADMSG", "EBUSY", "ECANCELED", "ECHILD", "ECONNABORTED",
    "ECONNREFUSED", "ECONNRESET", "EDEADLK", "EDESTADDRREQ", "EDOM", "EDQUOT", "EEXIST",
    "EFAULT", "EFBIG", "EHOSTUNREACH", "EIDRM", "EILSEQ", "EINPROGRESS", "EINTR", "EINVAL",
    "EIO", "EISCONN", "EISDIR", "ELOOP", "EMFILE", "EMLINK", "EMSGSIZE", "EMULTIHOP",
    "ENAMETOOLONG", "ENETDOWN", "ENETRESET", "ENETUNREACH", "ENFILE", "ENOBUFS", "ENODEV",
    "ENOENT", "ENOEXEC", "ENOLCK", "ENOLINK", "ENOMEM", "ENOMSG", "ENOPROTOOPT", "ENOSPC",
    "ENOSYS", "ENOTCONN", "ENOTDIR", "ENOTEMPTY", "ENOTRECOVERABLE", "ENOTSOCK", "ENOTSUP",
    "ENOTTY", "ENXIO", "EOVERFLOW", "EOWNERDEAD", "EPERM", "EPIPE", "EPROTO",
    "EPROTONOSUPPORT", "EPROTOTYPE", "ERANGE", "EROFS", "ESPIPE", "ESRCH", "ESTALE",
    "ETIMEDOUT", "ETXTBSY", "EXDEV", "ENOTCAPABLE",
];

fn errno(e: i32) -> String {
    usize::try_from(e)
        .ok()
        .and_then(|i| ERRNO.get(i))
        .map_or_else(|| format!("errno={e}"), |s| (*s).to_owned())
}

const FILETYPE: [&str; 8] = [
    "unknown", "blockdev", "chardev", "dir", "file", "dgram", "stream", "symlink",
];

fn filetype(t: u8) -> &'static str {
    FILETYPE.get(usize::from(t)).copied().unwrap_or("badtype")
}

/// splitmix64: small, good enough, and the same on every host.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Where a call starts from: the scratch directory or one of the opened descriptors.
#[derive(Clone, Copy, Debug)]
enum Base {
    Scratch,
    Slot(usize),
}

const SLOTS: usize = 6;
/// A descriptor number no runtime hands out in these runs.
const BAD_FD: u32 = 900;

const NAMES: [&str; 9] = ["a", "b", "c", "d", "e", "l1", "l2", ".", ".."];
/// Every target names something at least one level below the link's directory (a
/// target of `.` or `..` would make a path climb higher than it reads), or nothing, or
/// is absolute (refused).
const TARGETS: [&str; 14] = [
    "a", "b", "d", "d/e", "l1", "l2", "e/a", "d/.", "d/", "a/", "missing", "", "/", "/a",
];
const RIGHTS: [u64; 9] = [
    0,
    1 << 1,                    // FD_READ
    1 << 6,                    // FD_WRITE
    (1 << 1) | (1 << 6),       // both
    (1 << 30) - 1,             // all
    (1 << 1) | (1 << 2),       // read + seek
    (1 << 14) | (1 << 13),     // readdir + path_open
    0x1fff_ffff & !(1 << 6),   // all but write
    (1 << 1) | (1 << 6) | (1 << 2) | (1 << 5), // read, write, seek, tell
];
const FDFLAGS: [u32; 7] = [0, 0, 0, 1, 4, 5, 1];
const TIMES: [u64; 3] = [1_000_000_000, 2_000_000_123, 0];

struct World {
    scratch: u32,
    /// Opened descriptors (files or directories).
    slots: [Option<u32>; SLOTS],
    out: String,
}

/// A generated path and whether it climbs above the descriptor it starts from.
struct GenPath {
    text: String,
    escapes: bool,
}

impl World {
    fn fd(&self, base: Base) -> u32 {
        match base {
            Base::Scratch => self.scratch,
            Base::Slot(i) => self.slots[i].unwrap_or(BAD_FD),
        }
    }

    fn line(&mut self, step: usize, call: &str, result: &str) {
        let _ = writeln!(self.out, "#{step} {call} = {result}");
    }
}

fn gen_base(rng: &mut Rng) -> Base {
    if rng.chance(65) {
        Base::Scratch
    } else {
        Base::Slot(rng.below(SLOTS as u64) as usize)
    }
}

fn gen_path(rng: &mut Rng) -> GenPath {
    if rng.chance(2) {
        return GenPath {
            text: String::new(),
            escapes: false,
        };
    }
    if rng.chance(1) {
        return GenPath {
            text: "n".repeat(256),
            escapes: false,
        };
    }
    let parts = 1 + rng.below(3);
    let mut text = String::new();
    let mut depth = 0;
    let mut escapes = false;
    for i in 0..parts {
        if i > 0 {
            text.push_str(if rng.chance(8) { "//" } else { "/" });
        }
        // ".." and "." are rarer than names.
        let name = if rng.chance(80) {
            *rng.pick(&NAMES[..7])
        } else {
            *rng.pick(&NAMES[7..])
        };
        match name {
            ".." => depth -= 1,
            "." => {}
            _ => depth += 1,
        }
        escapes |= depth < 0;
        text.push_str(name);
    }
    if rng.chance(12) {
        text.push('/');
    }
    // Now and then absolute: no file below any descriptor (EPERM).
    if rng.chance(3) {
        text.insert(0, '/');
    }
    GenPath { text, escapes }
}

fn q(s: &str) -> String {
    if s.len() > 40 {
        format!("\"{}…({} bytes)\"", &s[..8], s.len())
    } else {
        format!("{s:?}")
    }
}

fn base_name(b: Base) -> String {
    match b {
        Base::Scratch => "scratch".to_owned(),
        Base::Slot(i) => format!("s{i}"),
    }
}

fn show_bytes(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fdstat(fd: u32) -> String {
    let mut b = [0u8; 24];
    let e = unsafe { fd_fdstat_get(fd, b.as_mut_ptr()) };
    if e != 0 {
        return errno(e);
    }
    let flags = u16::from_le_bytes([b[2], b[3]]);
    let base = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
    let inh = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default());
    format!(
        "ok {} flags={flags:#x} base={base:#x} inh={inh:#x}",
        filetype(b[0])
    )
}

fn filestat(b: &[u8; 64]) -> String {
    let kind = filetype(b[16]);
    let nlink = u64::from_le_bytes(b[24..32].try_into().unwrap_or_default());
    let size = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default());
    let time = |at: usize| {
        let t = u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
        if TIMES.contains(&t) {
            t.to_string()
        } else {
            "other".to_owned()
        }
    };
    // Sizes and link counts of directories depend on the host filesystem.
    if kind == "dir" {
        format!("ok dir mtim={}", time(48))
    } else {
        format!(
            "ok {kind} nlink={nlink} size={size} atim={} mtim={}",
            time(40),
            time(48)
        )
    }
}

/// Reads a directory with one buffer from one cookie and describes the result without
/// depending on the host's listing order.
fn readdir(fd: u32, len: usize, cookie: u64) -> String {
    let mut buf = vec![0u8; len];
    let mut used = 0usize;
    let e = unsafe { fd_readdir(fd, buf.as_mut_ptr(), len, cookie, &mut used) };
    if e != 0 {
        return errno(e);
    }
    if used > len {
        return format!("ok used={used} > buffer {len}");
    }
    let complete = used < len;
    if cookie > 2 {
        // Which entries remain past an index depends on the listing order.
        return format!("ok {}", if used == 0 { "empty" } else { "some" });
    }
    if !complete {
        return format!("ok full used={used}");
    }
    let mut names = Vec::new();
    let mut nexts = Vec::new();
    let mut at = 0usize;
    while at + 24 <= used {
        let next = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or_default());
        let namlen = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap_or_default());
        let kind = filetype(buf[at + 20]);
        let start = at + 24;
        let end = start + namlen as usize;
        if end > used {
            return format!("ok truncated entry in a complete read (used={used})");
        }
        names.push(format!("{}:{kind}", show_bytes(&buf[start..end])));
        nexts.push(next);
        at = end;
    }
    names.sort();
    nexts.sort_unstable();
    format!("ok {} next={nexts:?}", names.join(" "))
}

#[allow(clippy::too_many_lines, reason = "one arm per call")]
fn step(world: &mut World, rng: &mut Rng, n: usize, run: bool) {
    // Draw everything first, so that a step means the same call whether or not the
    // steps before it ran.
    let op = rng.below(100);
    let base = gen_base(rng);
    let base2 = gen_base(rng);
    let slot = rng.below(SLOTS as u64) as usize;
    let slot2 = rng.below(SLOTS as u64) as usize;
    // The reference's sandbox is each directory descriptor itself (a cap-std `Dir`):
    // `..` above the descriptor a call starts from escapes, even inside the scratch
    // directory. So depth counts from the call's own descriptor.
    let p1 = gen_path(rng);
    let p2 = gen_path(rng);
    let follow = u32::from(rng.chance(60));
    let oflags = if rng.chance(50) {
        *rng.pick(&[0u32, 1, 1, 5, 8, 9, 2])
    } else {
        rng.below(16) as u32
    };
    let rights_base = *rng.pick(&RIGHTS);
    let rights_inh = *rng.pick(&RIGHTS);
    let fdflags = *rng.pick(&FDFLAGS);
    let len = *rng.pick(&[0u64, 1, 3, 7, 20]) as usize;
    let offset = *rng.pick(&[0u64, 0, 1, 5, 30, 100]);
    let seek = rng.below(40) as i64 - 8;
    let whence = rng.below(3) as u32;
    let data_at = rng.below(10) as usize;
    let buflen = *rng.pick(&[0usize, 10, 24, 30, 64, 4096, 4096]);
    let cookie = *rng.pick(&[0u64, 0, 0, 1, 2, 3, 5, 100]);
    let times = (*rng.pick(&TIMES), *rng.pick(&TIMES));
    let fst = rng.below(16) as u32;
    let target = *rng.pick(&TARGETS);
    let iov_split = rng.below(4) as usize;
    if !run {
        return;
    }
    const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let data = &DATA[data_at..data_at + len];
    let fd = world.fd(Base::Slot(slot));
    let dirfd = world.fd(base);
    let dirfd2 = world.fd(base2);
    let (b1, b2) = (base_name(base), base_name(base2));
    let (t1, t2) = (q(&p1.text), q(&p2.text));
    let tag = if p1.escapes { " [escape]" } else { "" };

    // Calls that change something never take a path that escapes.
    let mutating_escape = p1.escapes;
    let mutating_escape2 = p1.escapes || p2.escapes;
    match op {
        // path_open: the most common call, with every combination of flags and rights.
        0..=21 => {
            let mut out = 0u32;
            let e = unsafe {
                path_open(
                    dirfd,
                    follow,
                    p1.text.as_ptr(),
                    p1.text.len(),
                    if p1.escapes { oflags & !(1 | 8) } else { oflags },
                    rights_base,
                    rights_inh,
                    fdflags,
                    &mut out,
                )
            };
            let call = format!(
                "path_open({b1}, follow={follow}, {t1}, oflags={oflags:#x}, base={rights_base:#x}, inh={rights_inh:#x}, fdflags={fdflags:#x}) -> s{slot}{tag}"
            );
            if e != 0 {
                world.line(n, &call, &errno(e));
                return;
            }
            let stat = fdstat(out);
            world.line(n, &call, &stat);
            if p1.escapes {
                unsafe { fd_close(out) };
                return;
            }
            if let Some(old) = world.slots[slot].replace(out) {
                unsafe { fd_close(old) };
            }
        }
        22..=27 => {
            let iovs = split_iovs(data, iov_split);
            let mut written = 0usize;
            let e = unsafe { fd_write(fd, iovs.as_ptr(), iovs.len(), &mut written) };
            let r = if e == 0 { format!("ok {written}") } else { errno(e) };
            world.line(n, &format!("fd_write(s{slot}, {:?}, iovs={})", show_bytes(data), iovs.len()), &r);
        }
        28..=32 => {
            let mut buf = vec![0u8; len];
            let iovs = split_iovs_mut(&mut buf, iov_split);
            let mut read = 0usize;
            let e = unsafe { fd_read(fd, iovs.as_ptr(), iovs.len(), &mut read) };
            let r = if e == 0 {
                format!("ok {read} {:?}", show_bytes(&buf[..read.min(len)]))
            } else {
                errno(e)
            };
            world.line(n, &format!("fd_read(s{slot}, {len}, iovs={})", iovs.len()), &r);
        }
        33..=35 => {
            let mut buf = vec![0u8; len];
            let iov = [Iovec { buf: buf.as_mut_ptr(), len }];
            let mut read = 0usize;
            let e = unsafe { fd_pread(fd, iov.as_ptr(), 1, offset, &mut read) };
            let r = if e == 0 {
                format!("ok {read} {:?}", show_bytes(&buf[..read.min(len)]))
            } else {
                errno(e)
            };
            world.line(n, &format!("fd_pread(s{slot}, {len}, at {offset})"), &r);
        }
        36..=39 => {
            let iov = [Iovec { buf: data.as_ptr(), len: data.len() }];
            let mut written = 0usize;
            let e = unsafe { fd_pwrite(fd, iov.as_ptr(), 1, offset, &mut written) };
            let r = if e == 0 { format!("ok {written}") } else { errno(e) };
            world.line(n, &format!("fd_pwrite(s{slot}, {:?}, at {offset})", show_bytes(data)), &r);
        }
        40..=43 => {
            let mut pos = 0u64;
            let e = unsafe { fd_seek(fd, seek, whence, &mut pos) };
            let r = if e == 0 { format!("ok {pos}") } else { errno(e) };
            world.line(n, &format!("fd_seek(s{slot}, {seek}, whence={whence})"), &r);
            let mut tell = 0u64;
            let e = unsafe { fd_tell(fd, &mut tell) };
            let r = if e == 0 { format!("ok {tell}") } else { errno(e) };
            world.line(n, &format!("fd_tell(s{slot})"), &r);
        }
        44..=46 => {
            let target_fd = if rng_free_choice(slot) { world.scratch } else { fd };
            let name = if target_fd == world.scratch { "scratch".to_owned() } else { format!("s{slot}") };
            let r = fdstat(target_fd);
            world.line(n, &format!("fd_fdstat_get({name})"), &r);
        }
        47..=48 => {
            let e = unsafe { fd_fdstat_set_flags(fd, fdflags) };
            world.line(n, &format!("fd_fdstat_set_flags(s{slot}, {fdflags:#x})"), &errno(e));
            let r = fdstat(fd);
            world.line(n, &format!("fd_fdstat_get(s{slot})"), &r);
        }
        49..=51 => {
            let target_fd = if rng_free_choice(slot) { world.scratch } else { fd };
            let name = if target_fd == world.scratch { "scratch".to_owned() } else { format!("s{slot}") };
            let mut b = [0u8; 64];
            let e = unsafe { fd_filestat_get(target_fd, b.as_mut_ptr()) };
            let r = if e == 0 { filestat(&b) } else { errno(e) };
            world.line(n, &format!("fd_filestat_get({name})"), &r);
        }
        52..=54 => {
            let size = offset.min(40);
            let e = unsafe { fd_filestat_set_size(fd, size) };
            world.line(n, &format!("fd_filestat_set_size(s{slot}, {size})"), &errno(e));
        }
        55..=56 => {
            let e = unsafe { fd_filestat_set_times(fd, times.0, times.1, fst) };
            world.line(
                n,
                &format!("fd_filestat_set_times(s{slot}, {}, {}, fst={fst:#x})", times.0, times.1),
                &errno(e),
            );
        }
        57..=62 => {
            let mut b = [0u8; 64];
            let e = unsafe {
                path_filestat_get(dirfd, follow, p1.text.as_ptr(), p1.text.len(), b.as_mut_ptr())
            };
            let r = if e == 0 { filestat(&b) } else { errno(e) };
            world.line(n, &format!("path_filestat_get({b1}, follow={follow}, {t1}){tag}"), &r);
        }
        63..=64 => {
            if mutating_escape {
                return;
            }
            let e = unsafe {
                path_filestat_set_times(
                    dirfd,
                    follow,
                    p1.text.as_ptr(),
                    p1.text.len(),
                    times.0,
                    times.1,
                    fst,
                )
            };
            world.line(
                n,
                &format!("path_filestat_set_times({b1}, follow={follow}, {t1}, {}, {}, fst={fst:#x})", times.0, times.1),
                &errno(e),
            );
        }
        65..=68 => {
            let which = if rng_free_choice(slot2) { Base::Scratch } else { Base::Slot(slot) };
            let r = readdir(world.fd(which), buflen, cookie);
            world.line(
                n,
                &format!("fd_readdir({}, buf={buflen}, cookie={cookie})", base_name(which)),
                &r,
            );
        }
        69..=72 => {
            if mutating_escape {
                return;
            }
            let e = unsafe { path_create_directory(dirfd, p1.text.as_ptr(), p1.text.len()) };
            world.line(n, &format!("path_create_directory({b1}, {t1})"), &errno(e));
        }
        73..=75 => {
            if mutating_escape {
                return;
            }
            let e = unsafe { path_remove_directory(dirfd, p1.text.as_ptr(), p1.text.len()) };
            world.line(n, &format!("path_remove_directory({b1}, {t1})"), &errno(e));
        }
        76..=79 => {
            if mutating_escape {
                return;
            }
            let e = unsafe { path_unlink_file(dirfd, p1.text.as_ptr(), p1.text.len()) };
            world.line(n, &format!("path_unlink_file({b1}, {t1})"), &errno(e));
        }
        80..=83 => {
            if mutating_escape2 {
                return;
            }
            let e = unsafe {
                path_rename(dirfd, p1.text.as_ptr(), p1.text.len(), dirfd2, p2.text.as_ptr(), p2.text.len())
            };
            world.line(n, &format!("path_rename({b1}, {t1}, {b2}, {t2})"), &errno(e));
        }
        84..=85 => {
            if mutating_escape2 {
                return;
            }
            let e = unsafe {
                path_link(dirfd, follow, p1.text.as_ptr(), p1.text.len(), dirfd2, p2.text.as_ptr(), p2.text.len())
            };
            world.line(n, &format!("path_link({b1}, follow={follow}, {t1}, {b2}, {t2})"), &errno(e));
        }
        86..=89 => {
            if mutating_escape {
                return;
            }
            let e = unsafe { path_symlink(target.as_ptr(), target.len(), dirfd, p1.text.as_ptr(), p1.text.len()) };
            world.line(n, &format!("path_symlink({target:?}, {b1}, {t1})"), &errno(e));
        }
        90..=92 => {
            let mut buf = vec![0u8; len.max(1) * 3];
            let blen = buf.len().min(buflen);
            let mut used = 0usize;
            let e = unsafe {
                path_readlink(dirfd, p1.text.as_ptr(), p1.text.len(), buf.as_mut_ptr(), blen, &mut used)
            };
            let r = if e == 0 {
                format!("ok {used} {:?}", show_bytes(&buf[..used.min(blen)]))
            } else {
                errno(e)
            };
            world.line(n, &format!("path_readlink({b1}, {t1}, buf={blen}){tag}"), &r);
        }
        93..=94 => {
            let e = unsafe { fd_close(fd) };
            world.line(n, &format!("fd_close(s{slot})"), &errno(e));
            world.slots[slot] = None;
        }
        95 => {
            // Renumber one opened descriptor over another (never the scratch one).
            let to = world.fd(Base::Slot(slot2));
            let e = unsafe { fd_renumber(fd, to) };
            world.line(n, &format!("fd_renumber(s{slot}, s{slot2})"), &errno(e));
            // The descriptor now lives at the number of the second slot.
            if e == 0 && slot != slot2 {
                world.slots[slot] = None;
            }
        }
        96 => {
            let advice = (offset % 7) as u32;
            let e = unsafe { fd_advise(fd, offset, len as u64, advice) };
            world.line(n, &format!("fd_advise(s{slot}, {offset}, {len}, {advice})"), &errno(e));
        }
        97 => {
            let e = unsafe { fd_sync(fd) };
            world.line(n, &format!("fd_sync(s{slot})"), &errno(e));
        }
        98 => {
            let e = unsafe { fd_datasync(fd) };
            world.line(n, &format!("fd_datasync(s{slot})"), &errno(e));
        }
        _ => {
            let mut b = [0u8; 64];
            let e = unsafe { fd_filestat_get(fd, b.as_mut_ptr()) };
            let r = if e == 0 { filestat(&b) } else { errno(e) };
            world.line(n, &format!("fd_filestat_get(s{slot})"), &r);
        }
    }
}

/// Whether a call aimed at "a descriptor" takes the scratch directory instead: a
/// function of the drawn slot only, so it never depends on earlier results.
fn rng_free_choice(slot: usize) -> bool {
    slot == 0
}

/// The iovec list of a read or write: the data in one buffer, with empty buffers
/// around it. (Several non-empty buffers are a deliberate difference: the reference
/// moves only the first non-empty one, a short transfer POSIX allows; Capsule moves them
/// all, as readv/writev do. The conformance programs cover that case.)
fn split_iovs(data: &[u8], shape: usize) -> Vec<Iovec> {
    iovs(data.as_ptr(), data.len(), shape)
}

/// As [`split_iovs`], for a buffer the host writes into: the pointers come from the
/// mutable borrow, so the host's writes through them are writes Rust knows about.
fn split_iovs_mut(data: &mut [u8], shape: usize) -> Vec<Iovec> {
    iovs(data.as_mut_ptr().cast_const(), data.len(), shape)
}

fn iovs(buf: *const u8, len: usize, shape: usize) -> Vec<Iovec> {
    let empty = || Iovec { buf, len: 0 };
    let full = || Iovec { buf, len };
    match shape {
        1 => vec![empty(), full()],
        2 => vec![full(), empty()],
        3 => vec![empty(), empty(), full()],
        _ => vec![full()],
    }
}

fn find_preopen(name: &str) -> Option<u32> {
    for fd in 3..64u32 {
        let mut pre = [0u8; 8];
        if unsafe { fd_prestat_get(fd, pre.as_mut_ptr()) } != 0 {
            continue;
        }
        let len = u32::from_le_bytes(pre[4..8].try_into().ok()?) as usize;
        let mut buf = vec![0u8; len];
        if unsafe { fd_prestat_dir_name(fd, buf.as_mut_ptr(), len) } != 0 {
            continue;
        }
        if buf == name.as_bytes() {
            return Some(fd);
        }
    }
    None
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: wasi_fuzz SCRATCH SEED STEPS [KEEP]");
        std::process::exit(2);
    }
    let Some(scratch) = find_preopen(&args[1]) else {
        eprintln!("wasi_fuzz: no preopen named {}", args[1]);
        std::process::exit(2);
    };
    let seed: u64 = args[2].parse().unwrap_or(0);
    let steps: usize = args[3].parse().unwrap_or(0);
    let keep: Option<Vec<usize>> = args
        .get(4)
        .map(|k| k.split(',').filter_map(|s| s.parse().ok()).collect());
    let mut world = World {
        scratch,
        slots: [None; SLOTS],
        out: String::new(),
    };
    let mut rng = Rng(seed);
    for n in 0..steps {
        let run = keep.as_ref().is_none_or(|k| k.contains(&n));
        step(&mut world, &mut rng, n, run);
        if world.out.len() > 1 << 14 {
            print!("{}", world.out);
            world.out.clear();
        }
    }
    print!("{}", world.out);
    // The tree left behind, as the guest sees it: the same listing from every backend
    // (host directory, tmpfs, layers), so trees compare without reading the host.
    println!("== tree");
    let mut lines = Vec::new();
    dump(scratch, "", &mut lines, 0);
    lines.sort();
    for line in lines {
        println!("{line}");
    }
}

/// Lists the tree below `dir` (which `prefix` names): one line per entry with its kind
/// and content (files' bytes, symlinks' targets).
fn dump(dir: u32, prefix: &str, lines: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        lines.push(format!("{prefix} (too deep)"));
        return;
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut used = 0usize;
    if unsafe { fd_readdir(dir, buf.as_mut_ptr(), buf.len(), 0, &mut used) } != 0 {
        lines.push(format!("{prefix} (unreadable)"));
        return;
    }
    let mut names = Vec::new();
    let mut at = 0usize;
    while at + 24 <= used {
        let namlen = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap_or_default());
        let start = at + 24;
        let end = (start + namlen as usize).min(used);
        let name = show_bytes(&buf[start..end]);
        if name != "." && name != ".." {
            names.push(name);
        }
        at = end;
    }
    for name in names {
        let path = format!("{prefix}{name}");
        let mut st = [0u8; 64];
        let e = unsafe { path_filestat_get(dir, 0, name.as_ptr(), name.len(), st.as_mut_ptr()) };
        if e != 0 {
            lines.push(format!("{path}: {}", errno(e)));
            continue;
        }
        match filetype(st[16]) {
            "dir" => {
                lines.push(format!("{path}/"));
                let mut fd = 0u32;
                let e = unsafe {
                    path_open(dir, 0, name.as_ptr(), name.len(), 2, 1 << 14 | 1 << 13, u64::MAX >> 34, 0, &mut fd)
                };
                if e == 0 {
                    dump(fd, &format!("{path}/"), lines, depth + 1);
                    unsafe { fd_close(fd) };
                } else {
                    lines.push(format!("{path}/ (cannot open: {})", errno(e)));
                }
            }
            "symlink" => {
                let mut target = [0u8; 256];
                let mut n = 0usize;
                let e = unsafe {
                    path_readlink(dir, name.as_ptr(), name.len(), target.as_mut_ptr(), target.len(), &mut n)
                };
                lines.push(if e == 0 {
                    format!("{path} -> {:?}", show_bytes(&target[..n.min(256)]))
                } else {
                    format!("{path} -> ({})", errno(e))
                });
            }
            kind => {
                let mut fd = 0u32;
                let e = unsafe {
                    path_open(dir, 0, name.as_ptr(), name.len(), 0, 1 << 1, 0, 0, &mut fd)
                };
                if e != 0 {
                    lines.push(format!("{path} {kind} (cannot open: {})", errno(e)));
                    continue;
                }
                let mut data = vec![0u8; 4096];
                let iov = [Iovec { buf: data.as_mut_ptr(), len: data.len() }];
                let mut n = 0usize;
                let e = unsafe { fd_pread(fd, iov.as_ptr(), 1, 0, &mut n) };
                unsafe { fd_close(fd) };
                let nlink = u64::from_le_bytes(st[24..32].try_into().unwrap_or_default());
                lines.push(if e == 0 {
                    format!("{path} {kind} nlink={nlink} {:?}", show_bytes(&data[..n.min(4096)]))
                } else {
                    format!("{path} {kind} (cannot read: {})", errno(e))
                });
            }
        }
    }
}
