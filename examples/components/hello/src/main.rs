//! `hello`: a WASI 0.2 command component (std, plus `wasip2` for its exit status), with small
//! deterministic output.
//!
//! ```text
//! hello [ARGS...]                 prints "hello from a component" and each argument
//! hello --ls DIR                  lists DIR: one "name/" (directory) or "name SIZE" line, sorted
//! hello --write PATH TEXT         writes TEXT to PATH, reads it back, prints "wrote PATH: TEXT"
//! hello --cat PATH               prints the file at PATH after a "cat PATH: N bytes" line
//! hello --exit N                  exits with status N (after the lines above)
//! hello --trap                    traps (wasm `unreachable`), as a crashing program does
//! hello --connect ADDR            connects to ADDR (IP:PORT) over TCP, sends "hello\n", prints "connected ADDR"
//! hello --fetch URL               GETs URL (`wasi:http/outgoing-handler`), prints "fetched URL: STATUS" and the body
//! ```
//!
//! With `GREETING` set, it prints `GREETING=...` after the hello line. Options may be
//! combined and run in order; every other argument is only echoed. An error (a missing
//! directory, a read-only filesystem, bad usage) is one line on stderr and exit status 1.
//!
//! Rust's std exits through WASI 0.2's `wasi:cli/exit.exit`, which takes only ok or err
//! (hosts report 0 or 1). `--exit N` calls `exit-with-code`, stable since WASI 0.2.12
//! (wasmtime 48 and later link it), so the host sees N itself. A host whose
//! `wasi:cli/exit` lacks it cannot link this component at all.

#![allow(
    clippy::disallowed_methods,
    reason = "a guest program: the paths and environment it reaches are the sandbox's, which the host grants"
)]

use std::env;
use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match run(&args, &mut out) {
        Ok(0) => {
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Ok(code) => {
            let _ = out.flush();
            wasip2::cli::exit::exit_with_code(code);
            unreachable!("exit-with-code returned")
        }
        Err(Failure { code, message }) => {
            let _ = out.flush();
            eprintln!("hello: {message}");
            ExitCode::from(code)
        }
    }
}

struct Failure {
    code: u8,
    message: String,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn run(args: &[String], out: &mut impl Write) -> Result<u8, Failure> {
    let io_err = |e: io::Error| failed(format!("cannot write to stdout: {e}"));
    writeln!(out, "hello from a component").map_err(io_err)?;
    for (i, arg) in args.iter().enumerate() {
        writeln!(out, "arg {i}: {arg}").map_err(io_err)?;
    }
    if let Ok(greeting) = env::var("GREETING") {
        writeln!(out, "GREETING={greeting}").map_err(io_err)?;
    }

    let mut exit = 0u8;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--ls" => {
                let dir = rest
                    .next()
                    .ok_or_else(|| failed("--ls needs a directory"))?;
                list(dir, out)?;
            }
            "--write" => {
                let path = rest
                    .next()
                    .ok_or_else(|| failed("--write needs PATH TEXT"))?;
                let text = rest
                    .next()
                    .ok_or_else(|| failed("--write needs PATH TEXT"))?;
                write_and_read(path, text, out)?;
            }
            "--cat" => {
                let path = rest.next().ok_or_else(|| failed("--cat needs a path"))?;
                cat(path, out)?;
            }
            "--trap" => {
                out.flush()
                    .map_err(|e| failed(format!("cannot write to stdout: {e}")))?;
                // `abort` is the `unreachable` instruction on wasm: the instance traps.
                std::process::abort();
            }
            "--connect" => {
                let addr = rest.next().ok_or_else(|| failed("--connect needs IP:PORT"))?;
                let mut stream = std::net::TcpStream::connect(addr.as_str())
                    .map_err(|e| failed(format!("cannot connect to {addr}: {e}")))?;
                stream
                    .write_all(b"hello\n")
                    .map_err(|e| failed(format!("cannot send to {addr}: {e}")))?;
                writeln!(out, "connected {addr}")
                    .map_err(|e| failed(format!("cannot write to stdout: {e}")))?;
            }
            "--fetch" => {
                let url = rest.next().ok_or_else(|| failed("--fetch needs a URL"))?;
                let (status, body) =
                    fetch(url).map_err(|e| failed(format!("cannot fetch {url}: {e}")))?;
                writeln!(out, "fetched {url}: {status}")
                    .and_then(|()| out.write_all(&body))
                    .map_err(|e| failed(format!("cannot write to stdout: {e}")))?;
            }
            "--exit" => {
                let n = rest.next().ok_or_else(|| failed("--exit needs a number"))?;
                exit = n
                    .parse()
                    .map_err(|_| failed(format!("--exit takes 0 to 255, not {n:?}")))?;
            }
            _ => {}
        }
    }
    Ok(exit)
}

/// One line per entry, sorted by name: `name/` for a directory, `name SIZE` otherwise.
fn list(dir: &str, out: &mut impl Write) -> Result<(), Failure> {
    let entries = fs::read_dir(dir).map_err(|e| failed(format!("cannot list {dir}: {e}")))?;
    let mut lines = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| failed(format!("cannot list {dir}: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry
            .metadata()
            .map_err(|e| failed(format!("cannot stat {dir}/{name}: {e}")))?;
        lines.push(if meta.is_dir() {
            format!("{name}/")
        } else {
            format!("{name} {}", meta.len())
        });
    }
    lines.sort();
    writeln!(out, "ls {dir}: {} entries", lines.len())
        .and_then(|()| lines.iter().try_for_each(|l| writeln!(out, "  {l}")))
        .map_err(|e| failed(format!("cannot write to stdout: {e}")))
}

/// A `cat PATH: N bytes` line, then the file's bytes as they are.
fn cat(path: &str, out: &mut impl Write) -> Result<(), Failure> {
    let bytes = fs::read(path).map_err(|e| failed(format!("cannot read {path}: {e}")))?;
    writeln!(out, "cat {path}: {} bytes", bytes.len())
        .and_then(|()| out.write_all(&bytes))
        .map_err(|e| failed(format!("cannot write to stdout: {e}")))
}

/// Writes `text` to `path` (replacing it), reads it back and says what it read.
fn write_and_read(path: &str, text: &str, out: &mut impl Write) -> Result<(), Failure> {
    fs::write(path, text).map_err(|e| failed(format!("cannot write {path}: {e}")))?;
    let back = fs::read_to_string(path).map_err(|e| failed(format!("cannot read {path}: {e}")))?;
    if back != text {
        return Err(failed(format!("{path} reads back {back:?}, not {text:?}")));
    }
    writeln!(out, "wrote {path}: {back}")
        .map_err(|e| failed(format!("cannot write to stdout: {e}")))
}

/// GETs `url` (`http://` or `https://`) through `wasi:http/outgoing-handler`, without a
/// body: the status and the body's bytes, or the host's error code.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, IncomingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "not a URL (SCHEME://HOST/PATH)".to_owned())?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&scheme))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(path)))
        .map_err(|()| "the host refused the URL's parts".to_owned())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| "no response after the wait".to_owned())?
        .map_err(|()| "the response was taken twice".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "the body was taken twice".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "the body's stream was taken twice".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading the body: {}", e.to_debug_string()));
            }
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok((status, bytes))
}
