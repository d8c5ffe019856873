//! A byte-level tar writer for tests: it writes what well-behaved writers refuse
//! (`..` and absolute names, device nodes, sizes past the end), to feed hostile layers
//! and archives to Capsule.

/// One tar entry to write: (path, type flag, mode, body or link target).
#[derive(Debug)]
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Raw {
        name: &'a [u8],
        flag: u8,
        mode: u32,
        size: u64,
        body: &'a [u8],
        link: &'a [u8],
    },
}

/// A ustar header, checksum included.
pub fn header(name: &[u8], flag: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    let octal = |buf: &mut [u8], v: u64| {
        let s = format!("{:0width$o}\0", v, width = buf.len() - 1);
        buf.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The bytes of a tar holding `entries`, without the end-of-archive blocks.
pub fn tar_body(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (h, body): ([u8; 512], &[u8]) = match e {
            E::File(p, b) => (header(p.as_bytes(), b'0', 0o644, b.len() as u64, b""), b),
            E::Dir(p) => (header(p.as_bytes(), b'5', 0o755, 0, b""), b""),
            E::Symlink(p, t) => (header(p.as_bytes(), b'2', 0o777, 0, t.as_bytes()), b""),
            E::Hardlink(p, t) => (header(p.as_bytes(), b'1', 0o644, 0, t.as_bytes()), b""),
            E::Raw {
                name,
                flag,
                mode,
                size,
                body,
                link,
            } => (header(name, *flag, *mode, *size, link), body),
        };
        out.extend_from_slice(&h);
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out
}

/// A complete tar holding `entries`.
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut out = tar_body(entries);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// An entry with no body.
pub fn raw(name: &[u8], flag: u8, mode: u32) -> E<'_> {
    E::Raw {
        name,
        flag,
        mode,
        size: 0,
        body: b"",
        link: b"",
    }
}
