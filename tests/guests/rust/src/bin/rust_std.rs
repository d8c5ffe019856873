//! Conformance guest in Rust: what Rust std does over WASI preview1 (it goes through
//! wasi-libc). Takes the scratch directory as its first argument and prints one line
//! per operation; with `relative` as the second argument it works with paths relative
//! to the current directory instead (for `-w`). The conformance harness's modes as the
//! second argument (`seed`, `seeded`; see `guests/conformance/check.h`) are taken out
//! of the arguments first (this program has no starting files), and at the end it
//! prints the tree left in the scratch directory as `TREE` lines, as `check.h` does.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn show<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) {
    match result {
        Ok(v) => println!("{what}: ok {v:?}"),
        Err(e) => println!("{what}: error {:?}", e.kind()),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    match args.get(2).map(String::as_str) {
        Some("seed") => return,
        Some("seeded") => {
            args.remove(2);
        }
        _ => {}
    }
    let Some(scratch) = args.get(1) else {
        println!("FATAL usage: rust_std SCRATCH [relative]");
        std::process::exit(1);
    };
    let base: PathBuf = if args.get(2).map(String::as_str) == Some("relative") {
        PathBuf::from(".")
    } else {
        PathBuf::from(scratch)
    };
    let p = |name: &str| base.join(name);

    show("write", fs::write(p("hello.txt"), b"hello from rust\n"));
    show("read_to_string", fs::read_to_string(p("hello.txt")));
    show("create_dir_all", fs::create_dir_all(p("a/b/c")));
    show("create_dir existing", fs::create_dir(p("a")));
    show("write nested", fs::write(p("a/b/c/deep.txt"), b"deep"));
    let mut names: Vec<String> = match fs::read_dir(p("a/b")) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(e) => vec![format!("error {:?}", e.kind())],
    };
    names.sort();
    println!("read_dir a/b: {names:?}");
    show("metadata len", fs::metadata(p("hello.txt")).map(|m| m.len()));
    show("metadata is_dir", fs::metadata(p("a")).map(|m| m.is_dir()));
    show("rename", fs::rename(p("hello.txt"), p("renamed.txt")));
    show("read old name", fs::read(p("hello.txt")).map(|b| b.len()));
    show("copy", fs::copy(p("renamed.txt"), p("copy.txt")));

    let mut file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(p("seek.bin")).expect("open seek.bin");
    show("write_all", file.write_all(b"0123456789"));
    show("seek", file.seek(SeekFrom::Start(4)));
    let mut four = [0u8; 4];
    show("read_exact", file.read_exact(&mut four).map(|()| String::from_utf8_lossy(&four).into_owned()));
    show("set_len", file.set_len(3));
    show("metadata after set_len", file.metadata().map(|m| m.len()));
    drop(file);

    show("append open", fs::OpenOptions::new().append(true).open(p("renamed.txt")).and_then(|mut f| f.write_all(b"more\n")));
    show("read appended", fs::read_to_string(p("renamed.txt")));
    show("create_new existing", fs::OpenOptions::new().write(true).create_new(true).open(p("copy.txt")).map(|_| ()));
    // std::os::wasi::fs::symlink_path is unstable; soft_link is the stable spelling.
    #[allow(deprecated, reason = "the stable way to make a symlink on WASI")]
    show("symlink", fs::soft_link("renamed.txt", p("link.txt")));
    show("read_link", fs::read_link(p("link.txt")));
    show("read through link", fs::read_to_string(p("link.txt")).map(|s| s.len()));
    show("symlink_metadata is_symlink", fs::symlink_metadata(p("link.txt")).map(|m| m.file_type().is_symlink()));
    show("hard_link", fs::hard_link(p("copy.txt"), p("hard.txt")));
    show("remove_file", fs::remove_file(p("copy.txt")));
    show("read hard link", fs::read_to_string(p("hard.txt")).map(|s| s.len()));
    show("remove_dir non-empty", fs::remove_dir(p("a")));
    show("remove_dir_all", fs::remove_dir_all(p("a")));
    show("exists after remove_dir_all", Ok::<bool, std::io::Error>(Path::new(&p("a")).exists()));
    show("read missing", fs::read(p("missing")).map(|b| b.len()));
    show("open dir as file for write", fs::OpenOptions::new().write(true).open(p(".")).map(|_| ()));
    println!("env CAPSULE_TEST: {:?}", std::env::var("CAPSULE_TEST").ok());
    println!("args: {}", args.len());
    let mut tree = Vec::new();
    dump_tree(Path::new(scratch), "", &mut tree);
    tree.sort();
    for line in tree {
        println!("{line}");
    }
}

/// The `TREE` lines of `check.h`'s `dump_tree`: one per entry below `dir`, with its kind
/// and whole contents (or, past 256 bytes, its size and FNV-1a hash).
fn dump_tree(root: &Path, rel: &str, out: &mut Vec<String>) {
    let dir = if rel.is_empty() { root.to_owned() } else { root.join(rel) };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            out.push(format!("TREE\t{rel}\tunreadable dir: {:?}", e.kind()));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let path = root.join(&child);
        let desc = match fs::symlink_metadata(&path) {
            Err(e) => format!("{:?}", e.kind()),
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&path) {
                Ok(target) => format!("symlink -> {}", target.display()),
                Err(e) => format!("{:?}", e.kind()),
            },
            Ok(m) if m.is_dir() => "dir".to_owned(),
            Ok(_) => match fs::read(&path) {
                Ok(bytes) => describe_file(&bytes),
                Err(e) => format!("{:?}", e.kind()),
            },
        };
        let is_dir = desc == "dir";
        out.push(format!("TREE\t{child}\t{desc}"));
        if is_dir {
            dump_tree(root, &child, out);
        }
    }
}

fn describe_file(bytes: &[u8]) -> String {
    if bytes.len() > 256 {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        return format!("file {} bytes fnv1a64={hash:016x}", bytes.len());
    }
    let mut text = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    format!("file {} bytes: \"{text}\"", bytes.len())
}
