//! Outbound connections of WASI 0.2 components (`--allow-outbound`, `--network`):
//! denied by default, allowed by the list, each refusal one line in the guest's stderr
//! (the container's log) naming the flag that would allow it. Traffic goes to a
//! listener of this test on loopback only.

use capsule_tests::{Containers, TestEnv, guests};
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A loopback listener that records what each connection sent, until dropped.
struct Listener {
    port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    fn start() -> Self {
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
        socket.set_nonblocking(true).expect("nonblocking");
        let port = socket.local_addr().expect("its address").port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (got, done) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match socket.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                        let mut text = String::new();
                        let _ = conn.read_to_string(&mut text);
                        got.lock().expect("lock").push(text);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            received,
            stop,
        }
    }

    /// What arrived, waiting up to 10 s for `count` connections.
    fn received(&self, count: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let got = self.received.lock().expect("lock").clone();
            if got.len() >= count || start.elapsed() > Duration::from_secs(10) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn outbound_connections_are_refused_unless_the_allow_list_grants_them() {
    let env = TestEnv::new();
    let server = Listener::start();
    let addr = format!("127.0.0.1:{}", server.port);
    let hello = guests::components::HELLO;
    let connect = |flags: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[hello, "--connect", &addr]);
        env.run(&args)
    };
    let refused = |run: &capsule_tests::Run, why: &str| {
        assert_eq!(run.code, Some(1), "{why}: {run:?}");
        assert!(run.stderr.contains("Permission denied"), "{why}: {run:?}");
        assert!(
            run.stderr.contains(&format!(
                "capsule: refused to connect to {addr}: allow it with --allow-outbound tcp://{addr}"
            )),
            "{why}: {run:?}"
        );
    };
    let allowed = |run: &capsule_tests::Run, why: &str| {
        run.assert_code(0);
        assert!(
            run.stdout.contains(&format!("connected {addr}")),
            "{why}: {run:?}"
        );
    };
    refused(&connect(&[]), "the default");
    allowed(
        &connect(&["--allow-outbound", &format!("tcp://{addr}")]),
        "the exact address",
    );
    allowed(
        &connect(&["--allow-outbound", "tcp://127.0.0.1:*"]),
        "any port",
    );
    allowed(&connect(&["--allow-outbound", "*://*:*"]), "anything");
    let around = format!(
        "tcp://127.0.0.0/8:{}..{}",
        server.port.saturating_sub(1),
        server.port.saturating_add(1)
    );
    allowed(
        &connect(&["--allow-outbound", &around]),
        "a CIDR and a port range",
    );
    refused(
        &connect(&["--allow-outbound", "tcp://127.0.0.2:*"]),
        "another host",
    );
    refused(
        &connect(&["--allow-outbound", "udp://127.0.0.1:*"]),
        "another scheme",
    );
    let elsewhere = format!("tcp://127.0.0.1:{}", server.port.wrapping_add(1).max(1));
    refused(&connect(&["--allow-outbound", &elsewhere]), "another port");
    allowed(&connect(&["--network", "host"]), "--network host");
    // Each allowed connection arrived, and said hello.
    let got = server.received(5);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|text| text == "hello\n"), "{got:?}");
}

#[test]
fn a_refused_connect_of_a_detached_container_is_in_its_log() {
    let c = Containers::new(&[(guests::components::HELLO, "hello")]);
    let server = Listener::start();
    let addr = format!("127.0.0.1:{}", server.port);
    c.ok(&["run", "-d", "--name", "d", "hello", "--connect", &addr]);
    c.wait_for("d", "exited", |s| s["Status"] == "exited");
    let logs = c.env.run(&["logs", "d"]);
    assert!(
        logs.stderr.contains(&format!(
            "refused to connect to {addr}: allow it with --allow-outbound"
        )),
        "{logs:?}"
    );
    assert!(server.received(0).is_empty());
}

#[test]
fn bad_rules_and_preview1_programs_get_one_clear_line() {
    let env = TestEnv::new();
    env.run(&[
        "run",
        "--allow-outbound",
        "tcp://db",
        guests::components::HELLO,
    ])
    .assert_error(
        125,
        &[
            "--allow-outbound \"tcp://db\"",
            "no port",
            "SCHEME://HOST:PORT",
        ],
    );
    env.run(&["run", "--network", "bridge", guests::components::HELLO])
        .assert_error(125, &["--network bridge", "capsule image import"]);
    env.run(&["run", "--allow-outbound", "tcp://*:*", "hello-world"])
        .assert_error(126, &["WASI 0.2 components", "preview1"]);
}

#[test]
fn the_sdk_runs_a_component_with_an_allow_list() {
    use capsule_sdk::{Capsule, ErrorKind, RunOptions};
    let capsule = Capsule::in_memory().expect("an in-memory Capsule");
    let hello = capsule
        .module_from_file(guests::components::HELLO)
        .expect("the hello component compiles");
    let server = Listener::start();
    let addr = format!("127.0.0.1:{}", server.port);
    let run = |options: RunOptions| {
        capsule
            .run(&hello, options.arg("--connect").arg(&addr))
            .expect("the component runs")
    };
    let denied = run(RunOptions::new());
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    let allowed = run(RunOptions::new()
        .allow_outbound(&format!("tcp://{addr}"))
        .expect("a good rule"));
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    assert_eq!(server.received(1), vec!["hello\n".to_owned()]);
    let bad = RunOptions::new().allow_outbound("tcp://db").map(drop);
    assert_eq!(bad.map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
}

/// A loopback HTTP server answering every request with one fixed body (and closing the
/// connection), keeping each request's head, until dropped.
struct Upstream {
    port: u16,
    body: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    fn start() -> Self {
        use std::io::Write;
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
        socket.set_nonblocking(true).expect("nonblocking");
        let port = socket.local_addr().expect("its address").port();
        let body = format!("hello from the upstream on port {port}\n");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (got, done, answer) = (requests.clone(), stop.clone(), body.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut conn, _)) = socket.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).ok();
                conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                got.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Self {
            port,
            body,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `run -d --name NAME FLAGS -p 127.0.0.1::8080 http-rust`, answering /health: its
/// host port.
#[track_caller]
fn serve_http_rust(c: &Containers, name: &str, flags: &[&str]) -> u16 {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-p", "127.0.0.1::8080", "http-rust"]);
    c.ok(&args);
    let port = c.host_port(name, 8080);
    let health = c.wait_http(name, port, "/health");
    assert_eq!(health.status, 200, "{health:?}");
    port
}

/// The container's log (stdout and stderr) once it holds `line`, or what it holds
/// after 10 s.
fn log_with(c: &Containers, name: &str, line: &str) -> String {
    let start = Instant::now();
    loop {
        let logs = c.env.run(&["logs", name]);
        let text = format!("{}{}", logs.stdout, logs.stderr);
        if text.contains(line) || start.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn outgoing_http_requests_of_a_service_pass_the_allow_list() {
    use capsule_tests::http::try_http;
    let c = Containers::new(&[(guests::components::HTTP_RUST, "http-rust")]);
    let upstream = Upstream::start();
    let target = format!("http://127.0.0.1:{}", upstream.port);
    let fetch = |port: u16| {
        try_http(
            port,
            "GET",
            &format!("/fetch?url={target}/hello"),
            &[],
            None,
        )
        .expect("GET /fetch")
    };
    let refusal = format!(
        "capsule: refused the request to {target}: allow it with --allow-outbound {target}"
    );

    // The default: denied in the guest, one line in the log, nothing reaches the server.
    let port = serve_http_rust(&c, "denied", &[]);
    let denied = fetch(port);
    assert_eq!(denied.status, 502, "{denied:?}");
    assert!(
        denied.body.starts_with("fetch failed: ") && denied.body.contains("HttpRequestDenied"),
        "{denied:?}"
    );
    let logs = log_with(&c, "denied", &refusal);
    assert!(logs.contains(&refusal), "{logs}");
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    // Granted: the request goes out and the upstream's answer comes back.
    let port = serve_http_rust(&c, "allowed", &["--allow-outbound", &target]);
    let allowed = fetch(port);
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(
        allowed.body,
        format!("upstream 200\n{}", upstream.body),
        "{allowed:?}"
    );
    let got = upstream.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("GET /hello HTTP/1.1\r\n"), "{got:?}");
    assert!(
        got[0]
            .to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{}\r\n", upstream.port)),
        "{got:?}"
    );
    let logs = log_with(&c, "allowed", "GET /fetch 200");
    assert!(!logs.contains("refused"), "{logs}");

    // A rule for another port, or for another scheme, is no grant.
    let other_port = format!("http://127.0.0.1:{}", upstream.port.wrapping_add(1).max(1));
    let other_scheme = format!("https://127.0.0.1:{}", upstream.port);
    for (name, rule) in [("port", &other_port), ("scheme", &other_scheme)] {
        let port = serve_http_rust(&c, name, &["--allow-outbound", rule]);
        let refused = fetch(port);
        assert_eq!(refused.status, 502, "{name}: {refused:?}");
        assert!(
            refused.body.contains("HttpRequestDenied"),
            "{name}: {refused:?}"
        );
        let logs = log_with(&c, name, &refusal);
        assert!(logs.contains(&refusal), "{name}: {logs}");
    }
    // Only the granted request arrived.
    assert_eq!(upstream.requests().len(), 1, "{:?}", upstream.requests());
}

#[test]
fn a_service_fetches_from_a_peer_on_its_network_by_name() {
    use capsule_tests::http::try_http;
    let c = Containers::new(&[(guests::components::HTTP_RUST, "http-rust")]);
    c.ok(&["network", "create", "apps"]);
    // The peer serves on its network address only (port 8080, no -p).
    c.ok(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "apps",
        "http-rust",
    ]);
    let port = serve_http_rust(&c, "front", &["--network", "apps"]);
    let fetch = |url: &str| {
        try_http(port, "GET", &format!("/fetch?url={url}"), &[], None).expect("GET /fetch")
    };
    // The peer answers by its name (it may still be compiling: retry for a while).
    let start = Instant::now();
    let reached = loop {
        let resp = fetch("http://api:8080/health");
        if resp.status == 200 || start.elapsed() > Duration::from_secs(60) {
            break resp;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(reached.status, 200, "{reached:?}");
    assert_eq!(
        reached.body, "upstream 200\n{\"status\":\"ok\"}\n",
        "{reached:?}"
    );
    let logs = log_with(&c, "api", "GET /health 200");
    assert!(logs.contains("GET /health 200"), "{logs}");
    // A name that is on no network, and the host's loopback, are not peers.
    for (url, rule) in [
        ("http://nosuch:8080/health", "http://nosuch:8080"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9"),
    ] {
        let refused = fetch(url);
        assert_eq!(refused.status, 502, "{url}: {refused:?}");
        assert!(
            refused.body.contains("HttpRequestDenied"),
            "{url}: {refused:?}"
        );
        let line = format!("refused the request to {rule}: allow it with --allow-outbound {rule}");
        let logs = log_with(&c, "front", &line);
        assert!(logs.contains(&line), "{url}: {logs}");
    }
}

#[test]
fn a_command_component_fetches_only_where_allowed_and_stops_at_its_timeout() {
    let env = TestEnv::new();
    let hello = guests::components::HELLO;
    let upstream = Upstream::start();
    let target = format!("http://127.0.0.1:{}", upstream.port);
    let url = format!("{target}/file");
    let denied = env.run(&["run", "--rm", hello, "--fetch", &url]);
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(
        denied
            .stderr
            .contains(&format!("cannot fetch {url}: ErrorCode::HttpRequestDenied")),
        "{denied:?}"
    );
    assert!(
        denied.stderr.contains(&format!(
            "capsule: refused the request to {target}: allow it with --allow-outbound {target}"
        )),
        "{denied:?}"
    );
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    let allowed = env.run(&[
        "run",
        "--rm",
        "--allow-outbound",
        &target,
        hello,
        "--fetch",
        &url,
    ]);
    allowed.assert_code(0);
    assert!(
        allowed
            .stdout
            .contains(&format!("fetched {url}: 200\n{}", upstream.body)),
        "{allowed:?}"
    );
    let got = upstream.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("GET /file HTTP/1.1\r\n"), "{got:?}");
    // A server that never answers (this listener closes after 5 s): the run's --timeout
    // ends the wait, and the run, well before.
    let silent = Listener::start();
    let hang = format!("http://127.0.0.1:{}", silent.port);
    let began = Instant::now();
    let stopped = env.run(&[
        "run",
        "--rm",
        "--timeout",
        "1s",
        "--allow-outbound",
        &hang,
        hello,
        "--fetch",
        &format!("{hang}/"),
    ]);
    assert_eq!(stopped.code, Some(124), "{stopped:?}");
    assert!(stopped.stderr.contains("--timeout"), "{stopped:?}");
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}: {stopped:?}",
        began.elapsed()
    );
}
