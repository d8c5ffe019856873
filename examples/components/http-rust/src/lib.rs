//! The library API of `examples/library-api` as a `wasi:http/proxy` component: the same
//! routes, answers and data file, served by whatever host calls its
//! `wasi:http/incoming-handler` export (`capsule run -p`, `wasmtime serve`).
//!
//! The routes, the validation and the store are library-api's own files, compiled in here
//! (`#[path]` below), so the two cannot drift apart. This file only turns a wasi:http
//! request into library-api's `Request` and its `Reply` into a response.
//!
//! A host makes a fresh instance for each request, as `wasmtime serve` does: nothing in
//! memory outlives a request. So each request opens the store in `$LIBRARY_DATA` (default
//! `/data`) and a change is written there before the answer goes out (library-api's
//! atomic write: a temporary file, fsync, rename). Requests run concurrently, each in its
//! own instance; the ones that change the library take a lock file first (see [`Lock`]),
//! so two changes never interleave.

#![allow(
    clippy::disallowed_methods,
    reason = "a guest program: the paths and environment it reaches are the sandbox's, which the host grants"
)]

#[allow(
    dead_code,
    reason = "library-api's file: `fixture` serves its loaddata command, not this component"
)]
#[path = "../../../library-api/src/api.rs"]
mod api;
#[path = "../../../library-api/src/html.rs"]
mod html;
#[allow(
    dead_code,
    reason = "library-api's file: `load` and `dir` serve its loaddata command"
)]
#[path = "../../../library-api/src/store.rs"]
mod store;

use api::{Library, MAX_BODY, Reply};
use http_body_util::{BodyExt, Limited};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use store::Store;
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// The lock file that changes take, in the data directory.
const LOCK_NAME: &str = ".library.lock";
/// A lock older than this was left by an instance that died holding it: it is removed.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// How long a change waits for the lock before it answers 503.
const LOCK_WAIT: Duration = Duration::from_secs(15);

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (accept, content_type) = (header("accept"), header("content-type"));

    let body = match Limited::new(body.into_boxed_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let reply = Reply::error(
                413,
                format!("the request body is larger than {MAX_BODY} bytes"),
            );
            return respond(reply, &method);
        }
    };

    // Two routes of this component's own, for probes and tests.
    let trimmed = path.strip_suffix('/').unwrap_or(&path);
    match (method.as_str(), trimmed) {
        ("GET" | "HEAD", "/health") => {
            let body = if method == "HEAD" {
                ""
            } else {
                "{\"status\":\"ok\"}\n"
            };
            return Ok(Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(body))?);
        }
        ("GET", "/fetch") => return fetch(parts.uri.query().unwrap_or("")).await,
        ("POST", "/echo") => {
            let mut response = Response::builder().status(200);
            if let Some(ct) = &content_type {
                response = response.header("content-type", ct);
            }
            return Ok(response.body(Body::from(body.to_vec()))?);
        }
        _ => {}
    }

    let request = api::Request {
        method: &method,
        path: &path,
        accept: accept.as_deref(),
        content_type: content_type.as_deref(),
        body: &body,
    };
    let changes = !matches!(method.as_str(), "GET" | "HEAD");
    let reply = match serve(&request, changes).await {
        Ok(reply) => reply,
        Err(message) => Reply::error(if changes { 503 } else { 500 }, message),
    };
    respond(reply, &method)
}

/// `GET /fetch?url=URL`: an outgoing request to URL (wstd's client, `wasi:http`'s
/// outgoing handler), answered 200 with `upstream STATUS` and the upstream body, or 502
/// with `fetch failed: ` and the error (a host that refuses the request says
/// `HttpRequestDenied` there).
async fn fetch(query: &str) -> Result<Response<Body>, Error> {
    let text = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(body))
    };
    let Some(url) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("url="))
        .and_then(percent_decode)
        .filter(|url| !url.is_empty())
    else {
        return Ok(text(
            400,
            "fetch: give the URL to fetch: /fetch?url=URL\n".to_owned(),
        )?);
    };
    Ok(match get(&url).await {
        Ok((status, body)) => text(200, format!("upstream {status}\n{body}"))?,
        Err(e) => text(502, format!("fetch failed: {e:#}\n"))?,
    })
}

/// GET `url`: its status and body (as text, lossily).
async fn get(url: &str) -> Result<(u16, String), Error> {
    let request = Request::get(url).body(Body::empty())?;
    let response = wstd::http::Client::new().send(request).await?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body().into_boxed_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| wstd::http::Error::msg(format!("reading the upstream body: {e}")))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A query value with its `%XX` escapes (and `+` for a space) decoded; `None` when an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Opens the store, under the lock when the request may change it, and answers.
async fn serve(request: &api::Request<'_>, changes: bool) -> Result<Reply, String> {
    let dir = data_dir();
    let _lock = if changes {
        Some(Lock::take(&dir).await?)
    } else {
        None
    };
    let store = Store::open(&dir)?;
    Ok(Library::new(store).handle(request))
}

fn data_dir() -> PathBuf {
    std::env::var_os("LIBRARY_DATA").map_or_else(|| PathBuf::from("/data"), PathBuf::from)
}

/// library-api's reply as a response; HEAD gets the headers without the body.
fn respond(reply: Reply, method: &str) -> Result<Response<Body>, Error> {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(reply.status)?)
        .header("content-type", reply.content_type);
    if let Some(location) = &reply.location {
        response = response.header("location", location);
    }
    if let Some(allow) = reply.allow {
        response = response.header("allow", allow);
    }
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        reply.body
    };
    Ok(response.body(Body::from(body))?)
}

/// The data directory's lock, held while one request changes the library.
///
/// WASI has no file locks: the lock is a file created with `create_new` (the host's
/// `O_EXCL`), which only one instance can do; dropping the guard removes it. An instance
/// that traps or is killed while holding it leaves the file behind, so a lock older than
/// [`STALE_LOCK`] is taken to be such a leftover and removed.
struct Lock {
    path: PathBuf,
}

impl Lock {
    async fn take(dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_NAME);
        let start = SystemTime::now();
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot take the lock {}: {e}", path.display())),
            }
            let age = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a > STALE_LOCK) {
                let _ = fs::remove_file(&path);
                continue;
            }
            if start.elapsed().unwrap_or_default() > LOCK_WAIT {
                return Err(format!(
                    "the library is busy: {} has been held for {}s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                ));
            }
            wstd::task::sleep(wstd::time::Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
