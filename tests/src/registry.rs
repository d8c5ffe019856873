//! A real OCI registry on loopback for the registry tests: Debian's `docker-registry`
//! (the CNCF distribution registry) on a free port with its storage in a temporary
//! directory, optionally with htpasswd authentication over TLS (a certificate
//! authority and a server certificate made with `openssl`). Stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tool;

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The certificate authority that signed its certificate (TLS registries).
    pub ca: Option<PathBuf>,
    /// Directories that must live as long as the registry.
    keep: Vec<tempfile::TempDir>,
}

impl Registry {
    /// A registry in plain HTTP without authentication.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// A registry over TLS that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Self {
        Self::launch_with(auth, "")
    }

    /// Starts the registry; `auth` adds htpasswd over TLS, `extra` more configuration.
    fn launch_with(auth: Option<(&str, &str)>, extra: &str) -> Self {
        let registry = tool("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("capsule-registry-")
            .tempdir()
            .expect("registry temp dir");
        // The registry listens on a port the kernel picks, and logs which; the test
        // reads it back (no port is chosen here and let go for another to take).
        let listen = "127.0.0.1:0";
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("storage dir");
        let mut extra = extra.to_owned();
        let mut ca = None;
        if let Some((user, password)) = auth {
            let (cert, key, ca_cert) = make_certificates(dir.path());
            let htpasswd = dir.path().join("htpasswd");
            let out = crate::output(Command::new(tool("htpasswd")).args(["-Bbn", user, password]));
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
            extra = format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: capsule-test\n    path: {}\n",
                cert.display(),
                key.display(),
                htpasswd.display()
            );
            ca = Some(ca_cert);
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {listen}\n  secret: capsule-test-secret\n{extra}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(registry)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut me = Self {
            child,
            dir,
            addr: String::new(),
            ca,
            keep: Vec::new(),
        };
        me.addr = me.wait_ready();
        me
    }

    /// Waits until the registry says where it listens (`listening on 127.0.0.1:PORT`)
    /// and answers there; returns that address.
    fn wait_ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            let log = self.log();
            let listening = log.split("listening on ").nth(1).and_then(|rest| {
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                rest[..end]
                    .parse::<std::net::SocketAddr>()
                    .ok()
                    .filter(|a| a.port() != 0)
            });
            if let Some(addr) = listening
                && TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok()
            {
                return addr.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen within 20 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the registry logged so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many blob uploads were started (not counting mount requests).
    pub fn uploads_started(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"POST /v2/") && l.contains("/blobs/uploads/"))
            .filter(|l| !l.contains("mount="))
            .count()
    }

    /// Where the registry keeps a blob's bytes.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (cert, key, ca).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = tool("openssl");
    let run = |args: &[&str]| {
        let out = crate::output(Command::new(&openssl).args(args).current_dir(dir));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=capsule test CA",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("ca.crt"),
    )
}

/// A token service for a registry with `auth: token` (Docker's bearer flow): it
/// answers `GET /token?service=..&scope=..` with a JWT (RS256, its certificate in
/// `x5c`) granting the scopes asked for, when the basic credentials are right.
#[derive(Debug)]
pub struct TokenService {
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// How many tokens it issued.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8], url: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    if url {
        out.replace('+', "-").replace('/', "_")
    } else {
        out
    }
}

fn unbase64(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let Some(v) = B64.iter().position(|&b| b == c) else {
            return Vec::new();
        };
        bits = (bits << 6) | v as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

impl Registry {
    /// A registry in plain HTTP whose clients need a bearer token from a token service
    /// that accepts `user`/`password`.
    pub fn start_with_token_auth(user: &str, password: &str) -> (Self, TokenService) {
        let dir = tempfile::Builder::new()
            .prefix("capsule-token-")
            .tempdir()
            .expect("token dir");
        let openssl = tool("openssl");
        let out = crate::output(
            Command::new(&openssl)
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "token.key",
                    "-out",
                    "token.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=capsule test token issuer",
                ])
                .current_dir(dir.path()),
        );
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = crate::output(
            Command::new(&openssl)
                .args(["x509", "-in", "token.crt", "-outform", "DER"])
                .current_dir(dir.path()),
        );
        assert!(der.status.success());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let expected = format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes(), false)
        );
        let x5c = base64(&der.stdout, false);
        let thread = {
            let stop = stop.clone();
            let issued = issued.clone();
            let key_dir = dir.path().to_owned();
            let openssl = openssl.clone();
            std::thread::spawn(move || {
                let _keep = dir;
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    serve_token(stream, &expected, &x5c, &key_dir, &openssl, &issued);
                }
            })
        };
        let service = TokenService {
            addr: addr.clone(),
            stop,
            thread: Some(thread),
            issued,
        };
        let token_dir = tempfile::Builder::new()
            .prefix("capsule-token-cert-")
            .tempdir()
            .expect("dir");
        // The registry needs the issuer's certificate in a file of its own.
        let cert = token_dir.path().join("token.crt");
        let pem = crate::Proc::spawn_with_stdin(
            Command::new(&openssl).args(["x509", "-inform", "DER"]),
            &der.stdout,
        )
        .wait();
        assert!(
            pem.status.success(),
            "openssl x509 -inform DER: {}",
            String::from_utf8_lossy(&pem.stderr)
        );
        std::fs::write(&cert, &pem.stdout).expect("cert");
        let extra = format!(
            "auth:\n  token:\n    realm: http://{addr}/token\n    service: capsule-registry\n    issuer: capsule-token-issuer\n    rootcertbundle: {}\n",
            cert.display()
        );
        let mut registry = Self::launch_with(None, &extra);
        registry.keep.push(token_dir);
        (registry, service)
    }
}

fn serve_token(
    mut stream: TcpStream,
    expected: &str,
    x5c: &str,
    key_dir: &Path,
    openssl: &Path,
    issued: &std::sync::atomic::AtomicUsize,
) {
    use std::io::{BufRead, BufReader, Write};
    // A client that sends half a request (or never reads) cannot hold the service.
    let limit = Some(Duration::from_secs(30));
    if stream.set_read_timeout(limit).is_err() || stream.set_write_timeout(limit).is_err() {
        return;
    }
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut authorization = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = value.trim().to_owned();
        }
    }
    let target = request
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut access = Vec::new();
    let mut account = String::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        if key == "scope" {
            let parts: Vec<&str> = value.splitn(3, ':').collect();
            if let [kind, name, actions] = parts.as_slice() {
                access.push(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        } else if key == "account" {
            account = value;
        }
    }
    let user =
        String::from_utf8(unbase64(authorization.trim_start_matches("Basic "))).unwrap_or_default();
    if authorization != expected {
        let body = r#"{"details":"unauthorized"}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let user = user.split(':').next().unwrap_or_default().to_owned();
    let _ = account;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "capsule-token-issuer", "sub": user, "aud": "capsule-registry",
        "exp": now + 600, "nbf": now - 10, "iat": now, "jti": format!("t{n}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64(header.to_string().as_bytes(), true),
        base64(claims.to_string().as_bytes(), true)
    );
    let input = key_dir.join(format!("input-{n}"));
    std::fs::write(&input, &signing_input).expect("write input");
    let signature = crate::output(
        Command::new(openssl)
            .args(["dgst", "-sha256", "-binary", "-sign"])
            .arg(key_dir.join("token.key"))
            .arg(&input),
    );
    let token = format!("{signing_input}.{}", base64(&signature.stdout, true));
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600});
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
