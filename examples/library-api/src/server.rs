//! HTTP/1.1 over the listener, on one thread with blocking sockets.
//!
//! `httparse` (hyper's own parser) reads the request head and the sizes of chunked bodies;
//! this file only frames: it reads until the head is complete, then the body its
//! `Content-Length` or chunked coding says, and writes one response with
//! `Connection: close`. A WASI preview1 program has one thread and blocking sockets, so
//! the loop serves one connection at a time: clients that come meanwhile wait in the
//! listener's backlog, and none can hold the server with an idle keep-alive connection.
//! README.md says why not hyper's server or tiny_http.

use crate::api::{Library, MAX_BODY, Reply, Request};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

/// The most the request line and headers may take.
const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may have.
const MAX_HEADERS: usize = 64;
/// How long a client may be silent before its connection is dropped, where the platform
/// has socket timeouts (natively; WASI preview1 has none, see README.md).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves requests until accepting fails for good.
pub fn serve(listener: &TcpListener, mut library: Library) -> Result<(), String> {
    let mut failures = 0u32;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // A client gone before it was accepted is one failure; a dead listener
                // fails every time.
                failures += 1;
                if failures >= 100 {
                    return Err(format!("cannot accept connections: {e}"));
                }
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        // A client that goes away mid-request is gone; it does not concern the next one.
        let _ = serve_connection(stream, &mut library);
    }
}

/// Reads one request, answers it and closes the connection.
fn serve_connection(mut stream: TcpStream, library: &mut Library) -> io::Result<()> {
    let (reply, head) = match read_request(&mut stream) {
        Ok(req) => {
            let reply = library.handle(&Request {
                method: &req.method,
                path: &req.path,
                accept: req.accept.as_deref(),
                content_type: req.content_type.as_deref(),
                body: &req.body,
            });
            (reply, req.method == "HEAD")
        }
        Err(Failure::Reply(reply)) => (reply, false),
        Err(Failure::Io(e)) => return Err(e),
    };
    stream.write_all(&encode(&reply, head))?;
    stream.shutdown(Shutdown::Write)
}

/// The request, owned.
struct Incoming {
    method: String,
    path: String,
    accept: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

enum Failure {
    /// The request is bad: answer this.
    Reply(Reply),
    /// The connection failed: nobody to answer.
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn bad(status: u16, message: impl Into<String>) -> Failure {
    Failure::Reply(Reply::error(status, message))
}

/// What the head says about the body.
enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn read_request(stream: &mut TcpStream) -> Result<Incoming, Failure> {
    let mut buf = Vec::with_capacity(4096);
    let (head_len, mut req, framing, expect_continue) = loop {
        if fill(stream, &mut buf)? == 0 {
            return Err(if buf.is_empty() {
                Failure::Io(io::ErrorKind::UnexpectedEof.into())
            } else {
                bad(400, "the request ended inside its head")
            });
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let (req, framing, expect) = interpret(&parsed)?;
                break (len, req, framing, expect);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(bad(
                    431,
                    format!("the request head is larger than {MAX_HEAD} bytes"),
                ));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(bad(
                    431,
                    format!("the request has more than {MAX_HEADERS} headers"),
                ));
            }
            Err(e) => return Err(bad(400, format!("malformed request: {e}"))),
        }
    };
    let has_body = !matches!(framing, Framing::None | Framing::Length(0));
    if expect_continue && has_body && buf.len() == head_len {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    req.body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(len) => {
            while buf.len() < head_len + len {
                if fill(stream, &mut buf)? == 0 {
                    return Err(bad(400, "the request ended inside its body"));
                }
            }
            buf[head_len..head_len + len].to_vec()
        }
        Framing::Chunked => read_chunked(stream, &mut buf, head_len)?,
    };
    Ok(req)
}

/// The parts of a parsed head the API needs, and how the body is framed.
fn interpret(parsed: &httparse::Request<'_, '_>) -> Result<(Incoming, Framing, bool), Failure> {
    let method = parsed.method.unwrap_or("GET").to_owned();
    let target = parsed.path.unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/").to_owned();
    let header = |name: &'static str| {
        parsed
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let mut framing = Framing::None;
    let mut lengths = header("content-length");
    if let Some(first) = lengths.next() {
        if lengths.any(|other| other.trim() != first.trim()) {
            return Err(bad(
                400,
                "the request has conflicting Content-Length headers",
            ));
        }
        let first = first.trim();
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                400,
                format!("Content-Length {first:?} is not a number"),
            ));
        }
        let len: usize = first.parse().unwrap_or(usize::MAX);
        if len > MAX_BODY {
            return Err(bad(
                413,
                format!("the request body is larger than {MAX_BODY} bytes"),
            ));
        }
        framing = Framing::Length(len);
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112, 6.3).
    let codings: Vec<String> = header("transfer-encoding")
        .flat_map(|v| {
            v.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    if !codings.is_empty() {
        if codings.iter().map(String::as_str).ne(["chunked"]) {
            return Err(bad(
                501,
                format!(
                    "transfer coding {codings:?} is not supported: send the body with Content-Length or chunked"
                ),
            ));
        }
        framing = Framing::Chunked;
    }
    let expect = header("expect").any(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let req = Incoming {
        method,
        path,
        accept: header("accept").next(),
        content_type: header("content-type").next(),
        body: Vec::new(),
    };
    Ok((req, framing, expect))
}

/// Decodes a chunked body that starts at `buf[start..]`, reading more as needed.
fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let mut pos = start;
    loop {
        match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete((used, size))) => {
                pos += used;
                if size == 0 {
                    // The end: optional trailers, then an empty line.
                    loop {
                        let rest = &buf[pos..];
                        if rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n") {
                            return Ok(body);
                        }
                        if rest.len() > MAX_HEAD {
                            return Err(bad(431, "the request's trailers are too large"));
                        }
                        more(stream, buf)?;
                    }
                }
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > MAX_BODY - body.len() {
                    return Err(bad(
                        413,
                        format!("the request body is larger than {MAX_BODY} bytes"),
                    ));
                }
                while buf.len() < pos + size + 2 {
                    more(stream, buf)?;
                }
                if &buf[pos + size..pos + size + 2] != b"\r\n" {
                    return Err(bad(
                        400,
                        "malformed chunked body: a chunk does not end with CRLF",
                    ));
                }
                body.extend_from_slice(&buf[pos..pos + size]);
                pos += size + 2;
            }
            Ok(httparse::Status::Partial) if buf.len() - pos > 1024 => {
                return Err(bad(400, "malformed chunked body: chunk size line too long"));
            }
            Ok(httparse::Status::Partial) => more(stream, buf)?,
            Err(_) => return Err(bad(400, "malformed chunked body: bad chunk size")),
        }
    }
}

/// Reads more of the body; the end of the stream here is a request cut short.
fn more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Failure> {
    if fill(stream, buf)? == 0 {
        return Err(bad(400, "the request ended inside its body"));
    }
    Ok(())
}

/// Appends what the socket has to `buf`; 0 at the end of the stream.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The whole response, head and body, to be written in one call.
fn encode(reply: &Reply, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + reply.body.len());
    let date = httpdate::fmt_http_date(SystemTime::now());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nDate: {date}\r\nServer: library-api\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status)
    );
    if reply.status != 204 {
        let _ = write!(
            out,
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            reply.content_type,
            reply.body.len()
        );
    }
    if let Some(location) = &reply.location {
        let _ = write!(out, "Location: {location}\r\n");
    }
    if let Some(allow) = reply.allow {
        let _ = write!(out, "Allow: {allow}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && reply.status != 204 {
        out.extend_from_slice(&reply.body);
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "",
    }
}
