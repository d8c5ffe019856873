//! library-api: the library of Django REST framework's tutorial as a JSON REST API.
//!
//! ```text
//! library-api [--bind ADDR]
//! library-api loaddata FILE...
//! ```
//!
//! Books live in `$LIBRARY_DATA` (default `/data`). Without `--bind`, it serves on the
//! listening socket the host handed over (WASI preview1: `capsule run -p`); with it, it
//! binds ADDR itself (natively, or under WASI preview2).

mod api;
mod html;
mod listener;
mod server;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: library-api [--bind ADDR]
       library-api loaddata FILE...

Serves the books of $LIBRARY_DATA (default /data) as a JSON REST API:
  GET /books, POST /books, GET|PUT|PATCH|DELETE /books/{id}, GET / (routes; HTML for browsers)

Without --bind it serves on the listening socket the host opened for it (systemd socket
activation: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_FDS_START), as `capsule run -p 8000:8000`
hands one over. With --bind ADDR it binds ADDR itself (natively, or under WASI preview2).

loaddata adds the books of each FILE (a JSON array of books as POST /books takes them)
whose ISBN the library does not have yet, then exits: run it again and nothing doubles.";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("library-api: {e}");
            ExitCode::from(2)
        }
    }
}

fn data_dir() -> PathBuf {
    std::env::var_os("LIBRARY_DATA").map_or_else(|| PathBuf::from("/data"), PathBuf::from)
}

/// `loaddata FILE...`: every file is read and checked before the library changes.
fn loaddata(files: &[String]) -> Result<(), String> {
    if files.is_empty() {
        return Err("loaddata needs a FILE: a JSON array of books".to_owned());
    }
    let mut books = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        books.extend(api::fixture(&bytes).map_err(|e| format!("{file}: {e}"))?);
    }
    let mut store = store::Store::open(&data_dir())?;
    let given = books.len();
    let added = store.load(books)?;
    println!(
        "library-api: loaded {added} of {given} book(s) into {} ({} already there); {} book(s) now",
        store.dir().display(),
        given - added,
        store.books().len()
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let mut bind = None;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("loaddata") {
        return loaddata(&argv[1..]);
    }
    let mut args = argv.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => {
                bind = Some(
                    args.next()
                        .ok_or("--bind needs an address, such as 127.0.0.1:8000")?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let store = store::Store::open(&data_dir())?;
    let (listener, how) = match &bind {
        Some(addr) => listener::bind(addr)?,
        None => listener::inherited()?,
    };
    eprintln!(
        "library-api: {} book(s) in {}; {how}",
        store.books().len(),
        store.dir().display()
    );
    server::serve(&listener, api::Library::new(store))
}
