//! A notes API as a `wasi:http/proxy` component that keeps all its data in the `kv`
//! server (`examples/components/kv`), reached over TCP by name: `$KV_ADDR`, default
//! `db:6379` (the `db` service of `examples/components/notes/compose.toml`).
//!
//! ```text
//! GET    /health      200 ok (the API alone: it does not ask the database)
//! GET    /notes       200 the keys of the notes, a JSON list of strings, sorted
//! PUT    /notes/KEY   201 the body (UTF-8 text, at most 64 KiB) stored as note KEY
//! GET    /notes/KEY   200 the note's text, or 404
//! DELETE /notes/KEY   204, or 404
//! ```
//!
//! A KEY is 1 to 128 of `A-Z a-z 0-9 . _ -`. A host makes a fresh instance for each
//! request and this component keeps nothing between them: each request opens its own
//! connection to kv, sends one line, reads one line and closes it. So the API outlives a
//! restart of the database: a request while it is down is answered 503 `database
//! unavailable: <error>`, and the next one after it is back succeeds.
//!
//! In kv a note is the key `note:KEY`; its value is the text with `\`, newline and
//! carriage return escaped (`\\`, `\n`, `\r`), as kv's values are one line.

#![allow(
    clippy::disallowed_methods,
    reason = "a guest program: the environment and sockets it reaches are the sandbox's, which the host grants"
)]

use http_body_util::{BodyExt, Limited};
use wstd::future::FutureExt as _;
use wstd::http::{Body, Error, Request, Response, StatusCode};
use wstd::io::{AsyncRead as _, AsyncWrite as _};
use wstd::net::TcpStream;
use wstd::time::Duration;

/// The kv server when `$KV_ADDR` does not name one.
const DEFAULT_KV_ADDR: &str = "db:6379";
/// The prefix of the notes' keys in kv.
const PREFIX: &str = "note:";
/// The largest note.
const MAX_NOTE: usize = 64 * 1024;
/// The longest key.
const MAX_KEY: usize = 128;
/// How long one exchange with kv may take (connect, send, answer), past the name lookup.
const KV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest answer line read from kv (kv's own limit on a line).
const MAX_ANSWER: usize = 1 << 20;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let trimmed = path.strip_suffix('/').unwrap_or(path);

    if trimmed == "/health" {
        return match method {
            "GET" | "HEAD" => text(200, "ok\n"),
            _ => not_allowed("GET, HEAD"),
        };
    }
    if trimmed == "/notes" {
        return match method {
            "GET" => list().await,
            _ => not_allowed("GET"),
        };
    }
    let Some(key) = trimmed.strip_prefix("/notes/") else {
        return text(404, format!("no route {method} {path}\n"));
    };
    if !valid_key(key) {
        return text(
            400,
            format!("a note's key is 1 to {MAX_KEY} of A-Z a-z 0-9 . _ -, not {key:?}\n"),
        );
    }
    match method {
        "GET" => match kv(&format!("GET {PREFIX}{key}")).await {
            Ok(answer) => match answer.strip_prefix("VALUE ") {
                Some(value) => text(200, unescape(value)),
                None if answer == "NONE" => text(404, format!("no note {key}\n")),
                None => unexpected(&answer),
            },
            Err(e) => unavailable(e),
        },
        "PUT" => {
            let body = match Limited::new(body.into_boxed_body(), MAX_NOTE)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return text(413, format!("a note is at most {MAX_NOTE} bytes\n")),
            };
            let Ok(note) = std::str::from_utf8(&body) else {
                return text(400, "a note is UTF-8 text\n");
            };
            match kv(&format!("SET {PREFIX}{key} {}", escape(note))).await {
                Ok(answer) if answer == "OK" => Ok(Response::builder()
                    .status(201)
                    .header("content-type", "text/plain; charset=utf-8")
                    .header("location", format!("/notes/{key}"))
                    .body(Body::from(format!("stored {key}\n")))?),
                Ok(answer) => unexpected(&answer),
                Err(e) => unavailable(e),
            }
        }
        "DELETE" => match kv(&format!("DEL {PREFIX}{key}")).await {
            Ok(answer) if answer == "OK" => {
                Ok(Response::builder().status(204).body(Body::empty())?)
            }
            Ok(answer) if answer == "NONE" => text(404, format!("no note {key}\n")),
            Ok(answer) => unexpected(&answer),
            Err(e) => unavailable(e),
        },
        _ => not_allowed("GET, PUT, DELETE"),
    }
}

/// `GET /notes`: the keys of the notes as a JSON list.
async fn list() -> Result<Response<Body>, Error> {
    let answer = match kv("KEYS").await {
        Ok(answer) => answer,
        Err(e) => return unavailable(e),
    };
    let Some(keys) = answer.strip_prefix("KEYS") else {
        return unexpected(&answer);
    };
    // The keys of notes need no JSON escapes: `valid_key` allows none of `"`, `\`, controls.
    let notes: Vec<String> = keys
        .split_whitespace()
        .filter_map(|k| k.strip_prefix(PREFIX))
        .filter(|k| valid_key(k))
        .map(|k| format!("\"{k}\""))
        .collect();
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(format!("[{}]\n", notes.join(","))))?)
}

/// One request line to kv and its answer line, on a connection of its own.
async fn kv(request: &str) -> Result<String, String> {
    let addr = std::env::var("KV_ADDR").unwrap_or_else(|_| DEFAULT_KV_ADDR.to_owned());
    let exchange = async {
        let mut stream = TcpStream::connect(addr.as_str())
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(|e| format!("cannot send to {addr}: {e}"))?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read the answer of {addr}: {e}"))?;
            if n == 0 {
                return Err(format!("{addr} closed the connection without an answer"));
            }
            if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
                answer.extend_from_slice(&buf[..end]);
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.len() > MAX_ANSWER {
                return Err(format!(
                    "{addr} answered a line longer than {MAX_ANSWER} bytes"
                ));
            }
        }
        String::from_utf8(answer).map_err(|_| format!("{addr} answered a line that is not UTF-8"))
    };
    match exchange.timeout(Duration::from(KV_TIMEOUT)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer from {addr} within {} s",
            KV_TIMEOUT.as_secs()
        )),
    }
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A note as one line: `\`, newline and carriage return escaped.
fn escape(note: &str) -> String {
    let mut line = String::with_capacity(note.len());
    for c in note.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    line
}

/// The note of an [`escape`]d line.
fn unescape(line: &str) -> String {
    let mut note = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            note.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => note.push('\n'),
            Some('r') => note.push('\r'),
            Some(other) => note.push(other),
            None => note.push('\\'),
        }
    }
    note
}

fn text(status: u16, body: impl Into<String>) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(StatusCode::from_u16(status)?)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body.into()))?)
}

fn not_allowed(allow: &str) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(405)
        .header("content-type", "text/plain; charset=utf-8")
        .header("allow", allow)
        .body(Body::from(format!("allowed: {allow}\n")))?)
}

/// The database could not be reached: 503 with the reason.
fn unavailable(error: String) -> Result<Response<Body>, Error> {
    text(503, format!("database unavailable: {error}\n"))
}

/// kv answered something this API never asks for (an `ERR`, or another server).
fn unexpected(answer: &str) -> Result<Response<Body>, Error> {
    let shown: String = answer.chars().take(200).collect();
    text(502, format!("database error: {shown}\n"))
}
