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
