//! Unit tests of layer indexing and merging, over tars built here byte by byte (so that
//! hostile entries a well-behaved tar writer would refuse can be made too).

use super::index::Buffer;
use super::layer::{Content, Entry, Kind, Layer, LayerError};
use super::lower::LowerStack;
use std::io::Write;
use std::sync::Arc;

/// One tar entry to write: (path, type flag, mode, body or link target).
enum E<'a> {
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

fn header(name: &[u8], flag: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
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

fn tar(entries: &[E]) -> std::fs::File {
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
    out.extend_from_slice(&[0u8; 1024]);
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(&out).expect("write tar");
    file
}

fn layer(name: &str, entries: &[E]) -> Arc<Layer> {
    Arc::new(Layer::from_tar(name, tar(entries)).unwrap_or_else(|e| panic!("{e}")))
}

fn refused(entries: &[E]) -> String {
    match Layer::from_tar("hostile", tar(entries)) {
        Err(e @ LayerError::BadEntry { .. }) => e.to_string(),
        Err(other) => panic!("expected a refused entry, got {other}"),
        Ok(_) => panic!("hostile layer was accepted"),
    }
}

fn read_all(stack: &LowerStack, path: &str) -> Vec<u8> {
    let entry = stack.get(path).unwrap_or_else(|| panic!("{path} missing"));
    let mut out = vec![0u8; usize::try_from(entry.node.size).expect("small")];
    let n = stack.read_at(&entry, 0, &mut out).expect("read");
    out.truncate(n);
    out
}

#[test]
fn files_from_lower_layers_are_visible_and_higher_layers_override() {
    let base = layer(
        "base",
        &[
            E::Dir("etc/"),
            E::File("etc/conf", b"base"),
            E::File("bin/tool", b"tool"),
        ],
    );
    let app = layer(
        "app",
        &[
            E::File("etc/conf", b"app wins"),
            E::File("app/data", b"data"),
        ],
    );
    let stack = LowerStack::new(vec![base, app]);
    assert_eq!(read_all(&stack, "etc/conf"), b"app wins");
    assert_eq!(read_all(&stack, "bin/tool"), b"tool");
    assert_eq!(read_all(&stack, "app/data"), b"data");
    assert_eq!(
        stack.get("bin").map(|e| e.node.kind),
        Some(Kind::Dir),
        "implicit parents exist"
    );
    assert_eq!(
        stack.children("").collect::<Vec<_>>(),
        ["app", "bin", "etc"]
    );
}

#[test]
fn a_directory_the_layers_lack_is_remembered_and_changes_no_answer() {
    let base = layer("base", &[E::File("a/b/c", b"c"), E::File("a/d", b"d")]);
    let stack = LowerStack::new(vec![base]);
    // Twice each: the second answers come from what the first lookups learned.
    for _ in 0..2 {
        assert!(stack.get("work/new0001").is_none());
        assert!(stack.get("work/deeper/x").is_none());
        assert!(stack.get("a/missing/x").is_none());
        assert!(stack.get("a/missing").is_none());
        assert_eq!(stack.get("a/b/c").map(|e| e.node.kind), Some(Kind::File));
        assert_eq!(stack.get("a/b").map(|e| e.node.kind), Some(Kind::Dir));
        assert_eq!(stack.get("a/d").map(|e| e.node.kind), Some(Kind::File));
        assert!(stack.get("a/d/under-a-file").is_none());
        assert_eq!(stack.get("").map(|e| e.node.kind), Some(Kind::Dir));
    }
}

#[test]
fn whiteouts_hide_entries_and_subtrees() {
    let base = layer(
        "base",
        &[
            E::File("a/keep", b"k"),
            E::File("a/gone", b"g"),
            E::File("d/x/y", b"y"),
        ],
    );
    let top = layer("top", &[E::File("a/.wh.gone", b""), E::File(".wh.d", b"")]);
    let stack = LowerStack::new(vec![base, top]);
    assert!(stack.get("a/gone").is_none());
    assert!(stack.get("d").is_none() && stack.get("d/x/y").is_none());
    assert_eq!(stack.children("a").collect::<Vec<_>>(), ["keep"]);
    assert_eq!(
        stack.children("").collect::<Vec<_>>(),
        ["a"],
        "whiteout markers never show"
    );
}

#[test]
fn opaque_directories_hide_everything_below() {
    let base = layer(
        "base",
        &[
            E::File("dir/old1", b"1"),
            E::File("dir/sub/old2", b"2"),
            E::File("other", b"o"),
        ],
    );
    let top = layer(
        "top",
        &[E::File("dir/.wh..wh..opq", b""), E::File("dir/new", b"n")],
    );
    let stack = LowerStack::new(vec![base, top]);
    assert_eq!(stack.children("dir").collect::<Vec<_>>(), ["new"]);
    assert!(stack.get("dir/sub/old2").is_none());
    assert!(stack.get("other").is_some());
}

#[test]
fn delete_then_recreate_and_type_changes() {
    let l1 = layer(
        "l1",
        &[
            E::File("x/f", b"first"),
            E::Dir("swap/"),
            E::File("swap/inner", b"i"),
        ],
    );
    let l2 = layer(
        "l2",
        &[E::File(".wh.x", b""), E::File("swap", b"now a file")],
    );
    let l3 = layer("l3", &[E::File("x/g", b"recreated")]);
    let stack = LowerStack::new(vec![l1, l2, l3]);
    assert!(
        stack.get("x/f").is_none(),
        "the deleted directory does not come back with its old content"
    );
    assert_eq!(read_all(&stack, "x/g"), b"recreated");
    assert_eq!(stack.get("swap").map(|e| e.node.kind), Some(Kind::File));
    assert!(
        stack.get("swap/inner").is_none(),
        "a file replacing a directory hides its subtree"
    );
}

#[test]
fn merged_directories_list_each_name_once() {
    let l1 = layer("l1", &[E::File("d/a", b"1"), E::File("d/b", b"1")]);
    let l2 = layer("l2", &[E::File("d/b", b"2"), E::File("d/c", b"2")]);
    let l3 = layer("l3", &[E::File("d/a", b"3"), E::File("d/d", b"3")]);
    let stack = LowerStack::new(vec![l1, l2, l3]);
    assert_eq!(
        stack.children("d").collect::<Vec<_>>(),
        ["a", "b", "c", "d"]
    );
    assert_eq!(read_all(&stack, "d/a"), b"3");
    assert_eq!(read_all(&stack, "d/b"), b"2");
}

#[test]
fn hardlinks_inside_a_layer_share_content_and_inode() {
    let l = layer(
        "l",
        &[
            E::File("orig", b"shared bytes"),
            E::Hardlink("link", "orig"),
            E::File("other", b"x"),
        ],
    );
    let stack = LowerStack::new(vec![l]);
    let (orig, link) = (
        stack.get("orig").expect("orig"),
        stack.get("link").expect("link"),
    );
    assert_eq!(orig.ino, link.ino);
    assert_ne!(orig.ino, stack.get("other").expect("other").ino);
    assert_eq!(read_all(&stack, "link"), b"shared bytes");
}

#[test]
fn symlinks_are_kept_as_text_whatever_they_point_at() {
    let l = layer(
        "l",
        &[
            E::Symlink("abs", "/etc/passwd"),
            E::Symlink("rel", "../../../../etc/shadow"),
        ],
    );
    let stack = LowerStack::new(vec![l]);
    assert_eq!(
        stack
            .get("abs")
            .and_then(|e| e.node.link_target.clone())
            .as_deref(),
        Some("/etc/passwd")
    );
    assert_eq!(stack.get("rel").map(|e| e.node.kind), Some(Kind::Symlink));
    assert!(matches!(
        stack.get("rel").map(|e| e.node.content),
        Some(Content::Empty)
    ));
}

#[test]
fn hostile_layers_are_refused_naming_the_entry() {
    let raw = |name: &'static [u8], flag: u8, mode: u32| E::Raw {
        name,
        flag,
        mode,
        size: 0,
        body: b"",
        link: b"",
    };
    let msg = refused(&[raw(b"/etc/passwd", b'0', 0o644)]);
    assert!(
        msg.contains("'/etc/passwd'") && msg.contains("absolute"),
        "{msg}"
    );
    let msg = refused(&[raw(b"a/../../escape", b'0', 0o644)]);
    assert!(
        msg.contains("'a/../../escape'") && msg.contains(".."),
        "{msg}"
    );
    let msg = refused(&[raw(b"dev/sda", b'4', 0o600)]);
    assert!(msg.contains("'dev/sda'") && msg.contains("device"), "{msg}");
    let msg = refused(&[raw(b"tty", b'3', 0o600)]);
    assert!(msg.contains("device"), "{msg}");
    let msg = refused(&[raw(b"pipe", b'6', 0o600)]);
    assert!(msg.contains("FIFO"), "{msg}");
    let msg = refused(&[raw(b"bin/su", b'0', 0o4755)]);
    assert!(msg.contains("'bin/su'") && msg.contains("setuid"), "{msg}");
    let msg = refused(&[E::Hardlink("stolen", "/etc/shadow")]);
    assert!(
        msg.contains("'stolen'") && msg.contains("hardlink"),
        "{msg}"
    );
    let msg = refused(&[E::Hardlink("stolen", "../outside")]);
    assert!(msg.contains("hardlink"), "{msg}");
    let msg = refused(&[E::Hardlink("forward", "later"), E::File("later", b"x")]);
    assert!(msg.contains("'forward'"), "{msg}");
    let msg = refused(&[raw(b"\xff\xfe", b'0', 0o644)]);
    assert!(msg.contains("UTF-8"), "{msg}");
}

#[test]
fn sizes_that_lie_are_refused() {
    // The header claims 1 MiB but the tar ends after 512 bytes of body.
    let lying = tar(&[E::Raw {
        name: b"big",
        flag: b'0',
        mode: 0o644,
        size: 1 << 20,
        body: &[7u8; 512],
        link: b"",
    }]);
    let len = lying.metadata().expect("meta").len();
    lying
        .set_len(len - 1024)
        .expect("drop the end-of-archive blocks");
    match Layer::from_tar("liar", lying) {
        Err(e) => assert!(
            e.to_string().contains("big") || e.to_string().contains("liar"),
            "{e}"
        ),
        Ok(_) => panic!("a size past the end of the tar was accepted"),
    }
}

#[test]
fn directory_layers_record_symlinks_without_following_them() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("sub/file"), "content").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc", dir.path().join("host-etc")).expect("symlink");
    let handle = crate::ambient::open_dir(dir.path()).expect("open");
    let layer = Arc::new(Layer::from_dir("dir", handle).expect("index"));
    let stack = LowerStack::new(vec![layer]);
    assert_eq!(read_all(&stack, "sub/file"), b"content");
    #[cfg(unix)]
    {
        let link = stack.get("host-etc").expect("symlink recorded");
        assert_eq!(link.node.kind, Kind::Symlink);
        assert!(
            stack.get("host-etc/passwd").is_none(),
            "the host's /etc was not walked"
        );
    }
    assert!(matches!(
        stack.get("sub").map(|e| e.node.kind),
        Some(Kind::Dir)
    ));
    let entries: Vec<_> = stack.children("").collect();
    assert!(entries.contains(&"sub"));
    let _ = Entry::Whiteout;
}

// ---- overlay, tmpfs, host directories and the namespace -------------------------------

use super::errno::Errno;
use super::hostdir::HostDir;
use super::node::{Backend, OpenOptions, SetTime};
use super::overlay::Overlay;
use super::tmpfs::TmpFs;
use super::vfs::Vfs;

struct World {
    _dirs: Vec<tempfile::TempDir>,
    upper: std::path::PathBuf,
    vfs: Vfs,
}

fn overlay_over(layers: Vec<Arc<Layer>>) -> (Overlay, tempfile::TempDir, tempfile::TempDir) {
    let upper = tempfile::tempdir().expect("upper");
    let work = tempfile::tempdir().expect("work");
    let overlay = Overlay::new(
        Arc::new(LowerStack::new(layers)),
        crate::ambient::open_dir(upper.path()).expect("open upper"),
        crate::ambient::open_dir(work.path()).expect("open work"),
        1,
    )
    .expect("overlay");
    (overlay, upper, work)
}

fn world(layers: Vec<Arc<Layer>>) -> World {
    let (overlay, upper, work) = overlay_over(layers);
    let upper_path = upper.path().to_owned();
    World {
        _dirs: vec![upper, work],
        upper: upper_path,
        vfs: Vfs::new(Arc::new(overlay), false),
    }
}

impl World {
    fn read(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let loc = self.vfs.resolve("", path, true).map_err(|e| e.errno())?;
        let file = self
            .vfs
            .open(
                &loc,
                OpenOptions {
                    read: true,
                    ..Default::default()
                },
                0,
            )
            .map_err(|e| e.errno())?;
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = file
                .read_at(&mut buf, out.len() as u64)
                .map_err(|e| e.errno())?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<(), Errno> {
        let loc = self.vfs.resolve("", path, true).map_err(|e| e.errno())?;
        let options = OpenOptions {
            read: true,
            write: true,
            create: true,
            truncate: true,
            exclusive: false,
        };
        let file = self.vfs.open(&loc, options, 0o644).map_err(|e| e.errno())?;
        file.write_at(data, 0).map_err(|e| e.errno())?;
        Ok(())
    }

    fn ls(&self, path: &str) -> Vec<String> {
        let loc = self.vfs.resolve("", path, true).expect("resolve");
        self.vfs
            .list(&loc)
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    fn at(&self, path: &str) -> super::vfs::Loc {
        self.vfs.resolve("", path, false).expect("resolve")
    }

    fn upper_names(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.upper.join(dir))
            .map(|rd| {
                rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[test]
fn copy_up_keeps_content_and_mode_and_the_upper_is_the_diff() {
    let base = layer(
        "base",
        &[
            E::Raw {
                name: b"bin/tool",
                flag: b'0',
                mode: 0o755,
                size: 4,
                body: b"TOOL",
                link: b"",
            },
            E::File("etc/conf", b"v1"),
        ],
    );
    let w = world(vec![base]);
    assert!(
        w.upper_names("").is_empty(),
        "nothing is copied per container"
    );
    let loc = w.at("/bin/tool");
    let file = w
        .vfs
        .open(
            &loc,
            OpenOptions {
                read: true,
                write: true,
                ..Default::default()
            },
            0,
        )
        .expect("open rw");
    assert_eq!(
        w.upper_names(""),
        ["bin"],
        "the first write copies up, parents first"
    );
    let mut buf = [0u8; 4];
    file.read_at(&mut buf, 0).expect("read");
    assert_eq!(&buf, b"TOOL", "copy-up keeps the content");
    file.write_at(b"X", 0).expect("write");
    assert_eq!(w.read("/bin/tool").expect("read"), b"XOOL");
    let stat = w.vfs.stat(&w.at("/bin/tool")).expect("stat");
    assert_eq!(stat.mode & 0o777, 0o755, "copy-up keeps the mode");
    assert_eq!(w.upper_names("bin"), ["tool"]);
    assert!(
        w.upper_names("etc").is_empty(),
        "untouched files stay below"
    );
}

#[test]
fn delete_records_whiteouts_and_recreate_clears_them() {
    let base = layer(
        "base",
        &[
            E::File("d/a", b"a"),
            E::File("d/b", b"b"),
            E::File("d/sub/c", b"c"),
        ],
    );
    let w = world(vec![base]);
    w.vfs.unlink(&w.at("/d/a")).expect("unlink lower file");
    assert_eq!(w.read("/d/a"), Err(Errno::Noent));
    assert_eq!(
        w.upper_names("d"),
        [".wh.a"],
        "a deletion is a whiteout in the upper"
    );
    assert_eq!(w.ls("/d"), ["b", "sub"]);
    w.write("/d/a", b"new a").expect("recreate");
    assert_eq!(w.read("/d/a").expect("read"), b"new a");
    assert_eq!(w.upper_names("d"), ["a"], "recreating drops the whiteout");

    // A deleted directory recreated empty does not bring back its old entries.
    w.vfs.unlink(&w.at("/d/sub/c")).expect("unlink");
    w.vfs.rmdir(&w.at("/d/sub")).expect("rmdir");
    w.vfs.mkdir(&w.at("/d/sub"), 0o755).expect("mkdir again");
    assert!(w.ls("/d/sub").is_empty());
    assert_eq!(
        w.upper_names("d/sub"),
        [".wh..wh..opq"],
        "the new directory is opaque"
    );
    assert_eq!(
        w.vfs.rmdir(&w.at("/d")).map_err(|e| e.errno()),
        Err(Errno::Notempty)
    );
}

#[test]
fn rename_across_layers_moves_files_and_whole_directories() {
    let base = layer(
        "base",
        &[
            E::File("src/f", b"file"),
            E::File("tree/x/y", b"deep"),
            E::File("tree/z", b"z"),
            E::File("dst", b"old"),
        ],
    );
    let w = world(vec![base]);
    w.vfs
        .rename(&w.at("/src/f"), &w.at("/moved"))
        .expect("rename lower file");
    assert_eq!(w.read("/moved").expect("read"), b"file");
    assert_eq!(w.read("/src/f"), Err(Errno::Noent));
    w.vfs
        .rename(&w.at("/moved"), &w.at("/dst"))
        .expect("rename over a lower file");
    assert_eq!(w.read("/dst").expect("read"), b"file");
    // A lower directory renames as a unit (overlayfs would answer EXDEV).
    w.vfs
        .rename(&w.at("/tree"), &w.at("/forest"))
        .expect("rename lower dir");
    assert_eq!(w.read("/forest/x/y").expect("read"), b"deep");
    assert_eq!(w.ls("/forest"), ["x", "z"]);
    assert_eq!(w.read("/tree/z"), Err(Errno::Noent));
    assert_eq!(w.ls("/"), ["dst", "forest", "src"]);
    assert_eq!(
        w.vfs
            .rename(&w.at("/forest"), &w.at("/forest/x/inside"))
            .map_err(|e| e.errno()),
        Err(Errno::Inval)
    );
}

#[test]
fn open_descriptors_name_nodes_not_paths() {
    let w = world(vec![]);
    w.write("/f", b"before").expect("write");
    let file = w
        .vfs
        .open(
            &w.at("/f"),
            OpenOptions {
                read: true,
                write: true,
                ..Default::default()
            },
            0,
        )
        .expect("open");
    w.vfs.rename(&w.at("/f"), &w.at("/g")).expect("rename");
    file.write_at(b"AFTER!", 0).expect("write after rename");
    assert_eq!(w.read("/g").expect("read"), b"AFTER!");
    w.vfs.unlink(&w.at("/g")).expect("unlink");
    let mut buf = [0u8; 6];
    assert_eq!(file.read_at(&mut buf, 0).expect("read after unlink"), 6);
}

#[test]
fn the_upper_is_reloaded_as_it_was() {
    let base = layer(
        "base",
        &[
            E::File("keep", b"k"),
            E::File("drop", b"d"),
            E::File("dir/in", b"i"),
        ],
    );
    let (overlay, upper, work) = overlay_over(vec![base.clone()]);
    let vfs = Vfs::new(Arc::new(overlay), false);
    vfs.unlink(&vfs.resolve("", "/drop", false).expect("loc"))
        .expect("unlink");
    vfs.unlink(&vfs.resolve("", "/dir/in", false).expect("loc"))
        .expect("unlink");
    vfs.rmdir(&vfs.resolve("", "/dir", false).expect("loc"))
        .expect("rmdir");
    vfs.mkdir(&vfs.resolve("", "/dir", false).expect("loc"), 0o755)
        .expect("mkdir");
    drop(vfs);
    let again = Overlay::new(
        Arc::new(LowerStack::new(vec![base])),
        crate::ambient::open_dir(upper.path()).expect("upper"),
        crate::ambient::open_dir(work.path()).expect("work"),
        1,
    )
    .expect("reload");
    assert_eq!(
        again
            .list("")
            .expect("ls")
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>(),
        ["dir", "keep"]
    );
    assert!(
        again.list("dir").expect("ls").is_empty(),
        "opaque marker reloaded"
    );
}

#[test]
fn guest_names_that_look_like_whiteouts_are_refused() {
    let w = world(vec![]);
    assert_eq!(w.write("/.wh.sneaky", b"x"), Err(Errno::Inval));
    assert_eq!(
        w.vfs
            .mkdir(&w.at("/.wh..wh..opq"), 0o755)
            .map_err(|e| e.errno()),
        Err(Errno::Inval)
    );
}

#[test]
fn dotdot_never_climbs_above_root_and_symlinks_resolve_inside() {
    let base = layer(
        "base",
        &[
            E::File("etc/passwd", b"container passwd"),
            E::Symlink("abs", "/etc/passwd"),
            E::Symlink("rel", "../../../../../etc/passwd"),
            E::Symlink("dir/up", ".."),
            E::Symlink("loop1", "loop2"),
            E::Symlink("loop2", "loop1"),
            E::Symlink("dangling", "/nowhere"),
        ],
    );
    let w = world(vec![base]);
    assert_eq!(
        w.read("/../../../etc/passwd").expect("read"),
        b"container passwd"
    );
    assert_eq!(
        w.read("/abs").expect("absolute symlink stays inside"),
        b"container passwd"
    );
    assert_eq!(
        w.read("/rel").expect("relative symlink clamps at /"),
        b"container passwd"
    );
    assert_eq!(
        w.read("/dir/up/etc/passwd").expect("read"),
        b"container passwd"
    );
    assert_eq!(w.read("/loop1"), Err(Errno::Loop));
    assert_eq!(w.read("/dangling"), Err(Errno::Noent));
    assert_eq!(w.read("/etc/passwd/"), Err(Errno::Notdir));
    assert_eq!(w.read("/etc/passwd/x"), Err(Errno::Notdir));
    let long = "a/".repeat(3000);
    assert_eq!(w.read(&long), Err(Errno::Nametoolong));
    // Not following the last symlink names the link itself.
    let loc = w.vfs.resolve("", "/abs", false).expect("resolve");
    assert_eq!(w.vfs.readlink(&loc).expect("readlink"), "/etc/passwd");
}

#[test]
fn mounts_shadow_and_are_crossed_both_ways() {
    let base = layer(
        "base",
        &[
            E::File("data/hidden", b"from the image"),
            E::File("top", b"top"),
        ],
    );
    let mut w = world(vec![base]);
    let host = tempfile::tempdir().expect("host");
    std::fs::write(host.path().join("vol.txt"), "on the host").expect("write");
    w.vfs.mount(
        "/data",
        Arc::new(HostDir::new(
            crate::ambient::open_dir(host.path()).expect("open"),
            2,
        )),
        false,
    );
    assert_eq!(w.read("/data/vol.txt").expect("read"), b"on the host");
    assert_eq!(
        w.read("/data/hidden"),
        Err(Errno::Noent),
        "the mount shadows the image's /data"
    );
    assert_eq!(
        w.read("/data/../top").expect("`..` leaves the mount"),
        b"top"
    );
    assert_eq!(
        w.read("/data/../../../data/vol.txt").expect("read"),
        b"on the host"
    );
    let at = |p: &str| w.vfs.resolve("", p, false).expect("resolve");
    assert_eq!(
        w.vfs
            .rename(&at("/data/vol.txt"), &at("/moved"))
            .map_err(|e| e.errno()),
        Err(Errno::Xdev)
    );
    assert_eq!(
        w.vfs.rmdir(&at("/data")).map_err(|e| e.errno()),
        Err(Errno::Busy)
    );
    assert!(w.ls("/").contains(&"data".to_owned()));
    let _ = &mut w;
}

#[cfg(unix)]
#[test]
fn host_symlinks_in_mounts_resolve_in_the_container_not_on_the_host() {
    let host = tempfile::tempdir().expect("host");
    std::os::unix::fs::symlink("/etc/passwd", host.path().join("to-host-passwd")).expect("symlink");
    std::os::unix::fs::symlink("../../../../../../etc/hostname", host.path().join("climb"))
        .expect("symlink");
    let mut w = world(vec![layer("base", &[E::File("etc/passwd", b"container")])]);
    w.vfs.mount(
        "/mnt",
        Arc::new(HostDir::new(
            crate::ambient::open_dir(host.path()).expect("open"),
            2,
        )),
        true,
    );
    assert_eq!(
        w.read("/mnt/to-host-passwd").expect("read"),
        b"container",
        "the container's /etc/passwd, not the host's"
    );
    assert_eq!(
        w.read("/mnt/climb"),
        Err(Errno::Noent),
        "clamped at the container's /, where /etc/hostname does not exist"
    );
}

#[test]
fn read_only_mounts_refuse_every_mutation_with_erofs() {
    let host = tempfile::tempdir().expect("host");
    std::fs::write(host.path().join("f"), "keep").expect("write");
    std::fs::create_dir(host.path().join("d")).expect("mkdir");
    let mut w = world(vec![]);
    w.vfs.mount(
        "/ro",
        Arc::new(HostDir::new(
            crate::ambient::open_dir(host.path()).expect("open"),
            2,
        )),
        true,
    );
    let at = |p: &str| w.vfs.resolve("", p, false).expect("resolve");
    let rofs = Err(Errno::Rofs);
    assert_eq!(w.write("/ro/f", b"x"), rofs);
    assert_eq!(w.write("/ro/new", b"x"), rofs);
    assert_eq!(
        w.vfs.mkdir(&at("/ro/nd"), 0o755).map_err(|e| e.errno()),
        rofs
    );
    assert_eq!(w.vfs.unlink(&at("/ro/f")).map_err(|e| e.errno()), rofs);
    assert_eq!(w.vfs.rmdir(&at("/ro/d")).map_err(|e| e.errno()), rofs);
    assert_eq!(
        w.vfs
            .rename(&at("/ro/f"), &at("/ro/g"))
            .map_err(|e| e.errno()),
        rofs
    );
    assert_eq!(
        w.vfs.symlink("x", &at("/ro/l")).map_err(|e| e.errno()),
        rofs
    );
    assert_eq!(
        w.vfs
            .set_times(&at("/ro/f"), SetTime::Now, SetTime::Now)
            .map_err(|e| e.errno()),
        rofs
    );
    assert_eq!(w.read("/ro/f").expect("reads still work"), b"keep");
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).expect("host"),
        "keep"
    );
    let _ = &mut w;
}

#[test]
fn tmpfs_enforces_its_size_cap_with_enospc() {
    let tmp = TmpFs::new(1000, 3);
    let file = tmp
        .open(
            "big",
            OpenOptions {
                read: true,
                write: true,
                create: true,
                ..Default::default()
            },
            0o644,
        )
        .expect("create");
    assert_eq!(file.write_at(&[1u8; 600], 0).expect("fits"), 600);
    assert_eq!(
        file.write_at(&[2u8; 600], 600).map_err(|e| e.errno()),
        Err(Errno::Nospc)
    );
    assert_eq!(tmp.used(), 600);
    drop(file);
    tmp.unlink("big").expect("unlink");
    assert_eq!(
        tmp.used(),
        0,
        "space comes back when the last link and handle go"
    );
    tmp.mkdir("d", 0o755).expect("mkdir");
    tmp.symlink("../x", "d/l").expect("symlink");
    assert_eq!(tmp.readlink("d/l").expect("readlink"), "../x");
    assert_eq!(tmp.rmdir("d").map_err(|e| e.errno()), Err(Errno::Notempty));
}

#[test]
fn a_saved_index_loads_without_rebuilding_and_damage_never_reads_outside_it() {
    let base = layer(
        "base",
        &[
            E::File("etc/conf", b"base"),
            E::File("d/a", b"a"),
            E::File("d/b", b"b"),
        ],
    );
    let top = layer(
        "top",
        &[
            E::File("d/.wh.a", b""),
            E::File("d/c", b"c"),
            E::Symlink("l", "/etc/conf"),
        ],
    );
    let built = LowerStack::new(vec![base.clone(), top.clone()]);
    let bytes = built.index().as_bytes().to_vec();
    let sources = vec![base.source().clone(), top.source().clone()];
    let loaded =
        LowerStack::from_saved(Buffer::Owned(bytes.clone()), sources.clone()).expect("load");
    assert_eq!(loaded.children("d").collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(loaded.children("").collect::<Vec<_>>(), ["d", "etc", "l"]);
    assert_eq!(read_all(&loaded, "etc/conf"), b"base");
    assert_eq!(
        loaded.get("l").and_then(|e| e.node.link_target),
        Some("/etc/conf".to_owned())
    );
    assert!(loaded.get("d/a").is_none());
    assert_eq!(loaded.get("").map(|e| e.node.kind), Some(Kind::Dir));
    // Every truncation and many single-byte flips are refused or still consistent;
    // none panics or reads out of bounds.
    for cut in [0, 7, 31, 40, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            LowerStack::from_saved(Buffer::Owned(bytes[..cut].to_vec()), sources.clone()).is_err(),
            "cut at {cut}"
        );
    }
    for at in (0..bytes.len()).step_by(3) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5a;
        if let Ok(stack) = LowerStack::from_saved(Buffer::Owned(damaged), sources.clone()) {
            for path in ["", "d", "d/b", "etc/conf", "l", "zzz"] {
                let _ = stack.get(path);
                let _ = stack.children(path).count();
            }
        }
    }
    assert!(
        LowerStack::from_saved(Buffer::Owned(bytes), vec![sources[0].clone()]).is_err(),
        "a missing layer is refused"
    );
}

#[test]
fn a_container_directory_gets_its_writable_layer_on_the_first_write_and_keeps_it() {
    let base = layer("base", &[E::File("etc/conf", b"base")]);
    let dir = tempfile::tempdir().expect("container dir");
    let open = || {
        Overlay::in_dir(
            Arc::new(LowerStack::new(vec![base.clone()])),
            crate::ambient::open_dir(dir.path()).expect("open"),
            1,
        )
        .expect("overlay")
    };
    let vfs = Vfs::new(Arc::new(open()), false);
    // Reads need no writable layer: stat and list the root, read a file.
    let conf = vfs.resolve("", "/etc/conf", true).expect("loc");
    assert_eq!(vfs.stat(&conf).expect("stat").size, 4);
    let root = vfs.resolve("", "/", true).expect("root");
    assert_eq!(vfs.stat(&root).expect("stat root").kind, Kind::Dir);
    assert_eq!(vfs.list(&root).expect("ls").len(), 1);
    assert!(
        !dir.path().join("upper").exists(),
        "created before any write"
    );
    // The first write creates it.
    vfs.mkdir(&vfs.resolve("", "/new", false).expect("loc"), 0o755)
        .expect("mkdir");
    assert!(dir.path().join("upper/new").is_dir());
    drop(vfs);
    // Opened again (a restarted container), the change is there.
    let again = open();
    let names: Vec<String> = again
        .list("")
        .expect("ls")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["etc", "new"]);
}

#[test]
fn kept_directory_handles_follow_renames_and_removals_and_stay_bounded() {
    let (overlay, upper, work) = overlay_over(vec![]);
    let overlay = Arc::new(overlay);
    let w = World {
        upper: upper.path().to_owned(),
        _dirs: vec![upper, work],
        vfs: Vfs::new(overlay.clone(), false),
    };
    let on_disk = |rel: &str| std::fs::read(w.upper.join(rel)).ok();
    let mkdir = |path: &str| w.vfs.mkdir(&w.at(path), 0o755).expect("mkdir");
    // Handles of a, a/b and a/b/c are kept by these writes.
    mkdir("/a");
    mkdir("/a/b");
    mkdir("/a/b/c");
    w.write("/a/b/c/f", b"one").expect("write");
    // Renaming an ancestor: the same paths now name new directories.
    w.vfs.rename(&w.at("/a"), &w.at("/moved")).expect("rename");
    mkdir("/a");
    mkdir("/a/b");
    mkdir("/a/b/c");
    w.write("/a/b/c/f", b"two").expect("write");
    assert_eq!(on_disk("moved/b/c/f").as_deref(), Some(&b"one"[..]));
    assert_eq!(on_disk("a/b/c/f").as_deref(), Some(&b"two"[..]));
    assert_eq!(w.read("/moved/b/c/f").expect("read"), b"one");
    // Removing a directory and making another of the same name.
    w.vfs.unlink(&w.at("/a/b/c/f")).expect("unlink");
    w.vfs.rmdir(&w.at("/a/b/c")).expect("rmdir");
    mkdir("/a/b/c");
    w.write("/a/b/c/g", b"three").expect("write");
    assert_eq!(on_disk("a/b/c/g").as_deref(), Some(&b"three"[..]));
    assert_eq!(w.ls("/a/b/c"), ["g"]);
    // A directory renamed onto an empty one replaces it.
    mkdir("/x");
    mkdir("/y");
    w.write("/y/old", b"y").expect("write");
    w.vfs.unlink(&w.at("/y/old")).expect("unlink");
    w.write("/x/f", b"x").expect("write");
    w.vfs
        .rename(&w.at("/x"), &w.at("/y"))
        .expect("rename onto empty dir");
    w.write("/y/g", b"g").expect("write");
    assert_eq!(w.ls("/y"), ["f", "g"]);
    assert_eq!(on_disk("y/f").as_deref(), Some(&b"x"[..]));
    assert_eq!(on_disk("y/g").as_deref(), Some(&b"g"[..]));
    assert!(!w.upper.join("x").exists());
    // Stat, lstat-style kind and unlink go through the handles and see the same files.
    let stat = w.vfs.stat(&w.at("/y/g")).expect("stat");
    assert_eq!(stat.size, 1);
    assert_eq!(w.vfs.kind(&w.at("/y/g")).expect("kind"), Kind::File);
    // More directories than handles are kept: the oldest are closed, all stay usable.
    mkdir("/many");
    for i in 0..300 {
        mkdir(&format!("/many/d{i}"));
        w.write(&format!("/many/d{i}/f"), format!("{i}").as_bytes())
            .expect("write");
    }
    assert!(
        overlay.kept_dir_handles() <= 256,
        "{}",
        overlay.kept_dir_handles()
    );
    for i in (0..300).rev() {
        assert_eq!(
            w.read(&format!("/many/d{i}/f")).expect("read"),
            format!("{i}").as_bytes()
        );
        assert_eq!(
            on_disk(&format!("many/d{i}/f")),
            Some(format!("{i}").into_bytes())
        );
    }
}
