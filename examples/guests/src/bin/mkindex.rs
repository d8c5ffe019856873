//! `mkindex`: the build-time tool of the multi-stage example.
//!
//! `mkindex SRC_DIR OUT_FILE` walks `SRC_DIR` and writes `OUT_FILE` (creating its parent
//! directories) with one line per file, sorted by path:
//! `<path relative to SRC_DIR>\t<bytes>\t<words>`. A Capsulefile runs it with `RUN` in a
//! builder stage; only its output reaches the final image.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
Usage: mkindex SRC_DIR OUT_FILE

Writes OUT_FILE (creating its parent directories) with one line per file under SRC_DIR,
sorted by path: <relative path>\\t<bytes>\\t<word count>.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let [src, out] = args.as_slice() else {
        eprintln!("mkindex: expected SRC_DIR and OUT_FILE, got {args:?}\n\n{USAGE}");
        return ExitCode::from(2);
    };
    match index(Path::new(src), Path::new(out)) {
        Ok(count) => {
            let files = if count == 1 { "file" } else { "files" };
            println!("indexed {count} {files} into {out}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("mkindex: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Writes the index of `src` to `out` and returns how many files it lists.
fn index(src: &Path, out: &Path) -> Result<usize, String> {
    let mut files = Vec::new();
    walk(src, src, &mut files)?;
    files.sort();
    let mut text = String::new();
    for (rel, path) in &files {
        let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let words = bytes
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
            .count();
        let size = bytes.len();
        writeln!(text, "{rel}\t{size}\t{words}").expect("a String accepts every write");
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    fs::write(out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(files.len())
}

/// Collects `(path relative to root, path)` for every file under `dir`. Symbolic links
/// to directories are not followed.
fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let listing = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for item in listing {
        let item = item.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = item.path();
        let kind = item
            .file_type()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| format!("{} is outside {}", path.display(), root.display()))?
                .iter()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((rel, path));
        }
    }
    Ok(())
}
