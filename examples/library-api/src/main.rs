//! library-api: the library of Django REST framework's tutorial as a JSON REST API.
//!
//! ```text
//! library-api [--bind ADDR]
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

Serves the books of $LIBRARY_DATA (default /data) as a JSON REST API:
  GET /books, POST /books, GET|PUT|PATCH|DELETE /books/{id}, GET / (routes; HTML for browsers)

Without --bind it serves on the listening socket the host opened for it (systemd socket
activation: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_FDS_START), as `capsule run -p 8000:8000`
hands one over. With --bind ADDR it binds ADDR itself (natively, or under WASI preview2).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("library-api: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut bind = None;
    let mut args = std::env::args().skip(1);
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
    let data =
        std::env::var_os("LIBRARY_DATA").map_or_else(|| PathBuf::from("/data"), PathBuf::from);
    let store = store::Store::open(&data)?;
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
