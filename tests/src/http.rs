//! A small HTTP/1.1 client for tests that talk to a published port over loopback: one
//! request per connection, every step bounded (a server that stops answering fails the
//! test instead of hanging it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:?}"))
    }

    /// Asserts the status and returns the JSON body (`Null` for a 204, whose body must
    /// be empty).
    #[track_caller]
    pub fn expect(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{self:?}");
        if status == 204 {
            assert_eq!(self.body, "", "{self:?}");
            return serde_json::Value::Null;
        }
        self.json()
    }

    /// A JSON error with this status: `{"error": "..."}`.
    #[track_caller]
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        let v = self.json();
        v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"error\" string: {v}"))
            .to_owned()
    }
}

/// A connection to 127.0.0.1:PORT whose connect, reads and writes each fail after 30 s
/// instead of waiting for a server that stopped answering.
pub fn connect(port: u16) -> std::io::Result<TcpStream> {
    let limit = Duration::from_secs(30);
    let stream =
        TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    Ok(stream)
}

/// One request on a fresh connection; the server answers and closes (HTTP/1.1 with
/// `Connection: close`), so the response is what arrives until the end of the stream
/// (a chunked body is decoded).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Resp> {
    let mut stream = connect(port)?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(raw)
}

/// A whole HTTP/1.1 response as it arrived (the server closed the connection after
/// it): its status, headers and body (a chunked body decoded); a `Content-Length` that
/// does not match the body fails the test.
///
/// # Errors
/// A response that is not UTF-8 or not HTTP/1.1.
pub fn parse_response(raw: Vec<u8>) -> std::io::Result<Resp> {
    let text = String::from_utf8(raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of head in {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: body.to_owned(),
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        resp.body = dechunk(&resp.body)?;
    }
    if let Some(len) = resp.header("content-length") {
        assert_eq!(
            len.parse::<usize>().ok(),
            Some(resp.body.len()),
            "Content-Length does not match the body: {resp:?}"
        );
    }
    Ok(resp)
}

/// A chunked body, decoded.
fn dechunk(mut raw: &str) -> std::io::Result<String> {
    let mut body = String::new();
    loop {
        let (size, rest) = raw
            .split_once("\r\n")
            .ok_or_else(|| std::io::Error::other(format!("no chunk size in {raw:?}")))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| std::io::Error::other(format!("bad chunk size {size:?}: {e}")))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| std::io::Error::other(format!("short chunk in {rest:?}")))?;
        body.push_str(chunk);
        raw = rest[size..]
            .strip_prefix("\r\n")
            .ok_or_else(|| std::io::Error::other("no CRLF after a chunk"))?;
    }
}
