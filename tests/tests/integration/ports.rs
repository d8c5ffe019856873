//! Published ports (`-p`, `-P`, `capsule port`): the host binds each listener before
//! the guest starts and hands it over as a socket (found through `LISTEN_FDS`); the
//! guest (`guests/c/echo_server.c`) accepts and echoes over real loopback connections.

use capsule_tests::{Containers, Proc, TestEnv, free_port, guests};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A home with the echo server as image `echo`; its containers are removed when the
/// test ends (the shared [`Containers`] fixture).
struct Env(Containers);

impl std::ops::Deref for Env {
    type Target = Containers;
    fn deref(&self) -> &Containers {
        &self.0
    }
}

impl Env {
    fn new() -> Self {
        Self(Containers::new(&[(guests::ECHO_SERVER, "echo")]))
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let value: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
        value[0].clone()
    }

    /// Waits until the container's log holds `needle` (at most 20 s).
    #[track_caller]
    fn wait_log(&self, name: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let logs = self.env.run(&["logs", name]);
            let text = format!("{}{}", logs.stdout, logs.stderr);
            if text.contains(needle) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{name}'s log never said {needle:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A connection to 127.0.0.1:PORT whose reads and writes fail after 20 s instead of
/// waiting for a guest that stopped answering.
fn connect(port: u16) -> TcpStream {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    for set in [TcpStream::set_read_timeout, TcpStream::set_write_timeout] {
        set(&stream, Some(Duration::from_secs(20))).expect("socket timeout");
    }
    stream
}

/// Sends a line and reads the echo back.
#[track_caller]
fn echo(stream: &mut TcpStream, line: &str) {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("send");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut got = String::new();
    reader.read_line(&mut got).expect("read the echo");
    assert_eq!(got, format!("{line}\n"), "the guest echoes the line");
}

/// `-p IP::CONTAINER` (Capsule picks the host port; `capsule port` tells it): a
/// client on 127.0.0.1 reaches the guest's blocking accept loop; one connection after
/// another, many lines each.
#[test]
pub fn echo_server() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "e", "-p", "127.0.0.1::8000", "echo"]);
    let port = env.host_port("e", 8000);
    for round in 0..3 {
        let mut stream = connect(port);
        for i in 0..5 {
            echo(&mut stream, &format!("round {round} line {i}"));
        }
    }
    // A large message crosses in pieces and comes back whole.
    let mut stream = connect(port);
    let big = "x".repeat(200_000);
    echo(&mut stream, &big);
    drop(stream);
    let log = env.wait_log("e", "listening on fd");
    assert!(
        log.contains("(8000)"),
        "LISTEN_FDNAMES names the port: {log}"
    );
    // "quit" ends the guest: exit 0.
    let mut stream = connect(port);
    stream.write_all(b"quit\n").expect("send quit");
    env.wait_log("e", "bye");
    env.ok(&["wait", "e"]);
}

/// What the guest sees: LISTEN_* and the listener's descriptor, right after the
/// preopens (which wasi-libc still finds), as wasi-common described sockets.
#[test]
fn listener_descriptor() {
    let env = Env::new();
    let (pa, pb) = ("127.0.0.1::8000", "127.0.0.1::9000");
    let run = env
        .env
        .run(&["run", "--rm", "-p", pa, "-p", pb, "echo", "probe"]);
    run.assert_code(0);
    let out = run.stdout;
    // The image's workdir is /: one preopen (fd 3), so the listeners are 4 and 5.
    assert!(
        out.contains("LISTEN_FDS=2 LISTEN_FDNAMES=8000:9000 LISTEN_FDS_START=4"),
        "{out}"
    );
    for fd in [4, 5] {
        assert!(
            out.contains(&format!(
                "fd {fd}: fdstat OK filetype 6 flags 0 rights 42/0; prestat EBADF; filestat OK type 6 size 0; S_ISSOCK 1"
            )),
            "{out}"
        );
        assert!(out.contains(&format!("fd {fd}: read ENOTCONN")), "{out}");
        assert!(
            out.contains(&format!("fd {fd}: fcntl(O_APPEND) EINVAL")),
            "{out}"
        );
    }
    assert!(out.contains("opendir /: OK"), "{out}");
    assert!(out.contains("fopen /tmp/probe.txt: OK"), "{out}");
    // Another workdir preopens every top-level directory and `.` first: the listener
    // moves up, and LISTEN_FDS_START says where.
    let run = env
        .env
        .run(&["run", "--rm", "-w", "/tmp", "-p", pa, "echo", "probe"]);
    run.assert_code(0);
    let out = run.stdout;
    let start: u32 = out
        .split("LISTEN_FDS_START=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("LISTEN_FDS_START is set: {out}"));
    assert!(start > 4, "the preopens come first: {out}");
    assert!(
        out.contains(&format!("fd {start}: fdstat OK filetype 6")),
        "{out}"
    );
    assert!(out.contains("opendir /: OK"), "{out}");
    // Without -p the guest has no listener and no LISTEN_FDS.
    let none = env.env.run(&["run", "--rm", "echo", "probe"]);
    none.assert_code(3);
    assert!(none.stderr.contains("no LISTEN_FDS"), "{}", none.stderr);
}

/// Non-blocking descriptors and poll_oneoff: EAGAIN from an accept with no client,
/// then many clients served at once by one poll loop.
#[test]
fn many_clients_with_poll() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "p",
        "-p",
        "127.0.0.1::8000",
        "echo",
        "poll",
    ]);
    let port = env.host_port("p", 8000);
    let log = env.wait_log("p", "polling on fd");
    assert!(
        log.contains("non-blocking accept with no client: EAGAIN"),
        "{log}"
    );
    // 50 clients connected at the same time, each sending before any reads.
    let mut streams: Vec<TcpStream> = (0..50).map(|_| connect(port)).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(format!("client {i}\n").as_bytes())
            .expect("send");
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut got = String::new();
        reader.read_line(&mut got).expect("echo");
        assert_eq!(got, format!("client {i}\n"));
    }
    // And from threads, in parallel.
    let handles: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = connect(port);
                for i in 0..20 {
                    echo(&mut s, &format!("thread {t} line {i}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    // A client that closes is dropped; the others go on.
    drop(streams.pop());
    echo(&mut streams[0], "still here");
}

/// A port already in use: one clear line, exit 125, no container left behind.
#[test]
fn port_in_use() {
    let env = Env::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let publish = format!("{port}:8000");
    for verb in [&["run", "-d"][..], &["run"][..], &["create"][..]] {
        let mut args = verb.to_vec();
        args.extend(["--name", "busy", "-p", &publish, "echo"]);
        env.env
            .run(&args)
            .assert_error(125, &[&format!("127.0.0.1:{port}"), "already in use", "-p"]);
        assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing is created ({verb:?})");
    }
    // A module file too.
    env.env
        .run(&["run", "-p", &publish, guests::ECHO_SERVER])
        .assert_error(125, &["already in use"]);
    // Bad specs are refused the same way.
    for bad in ["8000/udp", "70000:80", "1.2.3:80:80", "8000-8001:80"] {
        env.env
            .run(&["run", "-p", bad, "echo"])
            .assert_error(125, &[&format!("'{bad}'")]);
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// `-P` publishes the image's EXPOSEd ports on free ports; `capsule port`, `ps` and
/// `inspect` show them while the container runs.
#[test]
fn publish_all_port_ps_inspect() {
    let env = Env::new();
    std::fs::create_dir_all(env.env.work().join("ctx")).expect("ctx");
    std::fs::copy(
        guests::ECHO_SERVER,
        env.env.work().join("ctx/echo_server.wasm"),
    )
    .expect("copy the guest");
    env.env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY echo_server.wasm /echo_server.wasm\nEXPOSE 8000 53/udp\nENTRYPOINT [\"/echo_server.wasm\"]\n",
    );
    env.ok(&["build", "-t", "echo-exposed", "ctx"]);
    env.ok(&["run", "-d", "-P", "--name", "all", "echo-exposed"]);
    let port_out = env.ok(&["port", "all"]);
    let line = port_out.trim();
    let host = line
        .strip_prefix("8000/tcp -> 127.0.0.1:")
        .unwrap_or_else(|| panic!("capsule port prints Docker's line: {port_out}"));
    let host_port: u16 = host.parse().expect("a port number");
    assert_eq!(
        port_out.lines().count(),
        1,
        "udp is not published: {port_out}"
    );
    assert_eq!(
        env.ok(&["port", "all", "8000"]).trim(),
        format!("127.0.0.1:{host_port}")
    );
    env.env
        .run(&["port", "all", "9999"])
        .assert_error(1, &["9999/tcp"]);
    echo(&mut connect(host_port), "via -P");
    let ps = env.ok(&["ps"]);
    assert!(
        ps.contains(&format!("127.0.0.1:{host_port}->8000/tcp")),
        "{ps}"
    );
    assert!(ps.lines().next().unwrap_or("").contains("PORTS"), "{ps}");
    let json = env.ok(&["ps", "--format", "json"]);
    assert!(
        json.contains(&format!("\"Ports\":\"127.0.0.1:{host_port}->8000/tcp\"")),
        "{json}"
    );
    let inspect = env.inspect("all");
    assert_eq!(
        inspect["NetworkSettings"]["Ports"]["8000/tcp"][0],
        serde_json::json!({"HostIp": "127.0.0.1", "HostPort": host_port.to_string()})
    );
    assert_eq!(
        inspect["HostConfig"]["PortBindings"]["8000/tcp"][0],
        serde_json::json!({"HostIp": "127.0.0.1", "HostPort": ""})
    );
    // A fixed binding with an address: 0.0.0.0 must be asked for. The one test of a
    // host port named in advance (the rest let Capsule pick): that the port given is
    // the one bound and recorded, so it needs a port number before the run.
    let port = free_port();
    let publish = format!("0.0.0.0:{port}:8000");
    env.ok(&["run", "-d", "--name", "wide", "-p", &publish, "echo"]);
    echo(&mut connect(port), "on every address");
    assert_eq!(
        env.ok(&["port", "wide"]).trim(),
        format!("8000/tcp -> 0.0.0.0:{port}")
    );
    let inspect = env.inspect("wide");
    assert_eq!(
        inspect["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostPort"],
        port.to_string()
    );
}

/// The listener belongs to the container's run: gone after `stop`, bound again by
/// `start` (the same host port, the one Capsule picked at create, recorded in the
/// container's config).
#[test]
fn rebound_after_stop_start() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "r", "-p", "127.0.0.1::8000", "echo"]);
    let port = env.host_port("r", 8000);
    echo(&mut connect(port), "first run");
    env.ok(&["stop", "-t", "0", "r"]);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a stopped container holds no port"
    );
    assert_eq!(env.ok(&["port", "r"]), "", "no ports while stopped");
    let ps = env.ok(&["ps", "-a"]);
    assert!(!ps.contains("->8000/tcp"), "{ps}");
    env.ok(&["start", "r"]);
    assert_eq!(env.host_port("r", 8000), port, "start binds the same port");
    echo(&mut connect(port), "second run");
    // Someone else takes the port while it is stopped: start says so.
    env.ok(&["stop", "-t", "0", "r"]);
    let _taken = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let start = env.env.run(&["start", "r"]);
    assert_ne!(start.code, Some(0));
    assert!(start.stderr.contains("already in use"), "{}", start.stderr);
}

/// The guest has no network but its listeners: no call opens a socket (a module that
/// imports one does not run), and the socket calls on other descriptors answer as the
/// reference (wasmtime-wasi 48) does.
#[test]
fn no_other_network() {
    let env = Env::new();
    for import in ["sock_open", "sock_connect", "sock_bind", "sock_listen"] {
        let wat = env.env.wat(
            &format!("{import}.wat"),
            &format!(
                r#"(module (import "wasi_snapshot_preview1" "{import}" (func (param i32 i32 i32) (result i32)))
                   (memory (export "memory") 1) (func (export "_start")))"#
            ),
        );
        let path = wat.to_str().expect("utf-8 path");
        env.env.run(&["run", path]).assert_error(126, &[import]);
    }
    let ours = env.env.run(&["run", guests::ECHO_SERVER, "nosock"]);
    ours.assert_code(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = capsule_tests::reference::run(
        guests::ECHO_SERVER,
        &["echo_server", "nosock"],
        dir.path(),
        "/",
    );
    assert_eq!(reference.code, 0, "{}", reference.stderr);
    assert_eq!(
        ours.stdout, reference.stdout,
        "the same answers as wasmtime-wasi"
    );
    assert!(
        ours.stdout.contains("sock_accept(1): ENOTSOCK"),
        "{}",
        ours.stdout
    );
    assert!(
        ours.stdout.contains("sock_accept(99): EBADF"),
        "{}",
        ours.stdout
    );
    // A published port under the same guest: the socket calls work.
    env.ok(&["run", "-d", "--name", "n", "-p", "127.0.0.1::8000", "echo"]);
    let mut s = connect(env.host_port("n", 8000));
    echo(&mut s, "ok");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the guest closes too");
    assert!(rest.is_empty());
}

/// poll_oneoff waits on the host's stdin and a clock together: timeouts while no
/// input comes, then the line when it does.
#[test]
fn poll_stdin_and_clock() {
    let env = TestEnv::new();
    let mut child = Proc::spawn(
        env.capsule()
            .args(["run", guests::ECHO_SERVER, "pollstdin"])
            .stdin(std::process::Stdio::piped()),
    );
    let mut stdin = child.stdin().expect("stdin");
    child.wait_for_stdout("\n");
    assert!(
        child.stdout().starts_with("clock\n"),
        "no input yet: the clock fires: {:?}",
        child.stdout()
    );
    stdin.write_all(b"typed\n").expect("write stdin");
    let out = child.wait();
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{all}");
    // A timeout each 300 ms until the line came, then the line.
    let (clocks, last) = all
        .trim_end()
        .rsplit_once('\n')
        .expect("two lines at least");
    assert_eq!(last, "stdin: typed", "{all}");
    assert!(clocks.lines().all(|l| l == "clock"), "{all}");
}

/// Issue 31: `EXPOSE 80 8000-8001` is one key per port in the image (as Docker's),
/// and `-P` publishes each; a UDP port it cannot publish is said so, not dropped
/// silently. The same host port given twice is named as such.
#[test]
fn expose_ranges_publish_every_port_and_udp_is_reported() {
    let env = Env::new();
    std::fs::create_dir_all(env.env.work().join("ctx")).expect("ctx");
    std::fs::copy(
        guests::ECHO_SERVER,
        env.env.work().join("ctx/echo_server.wasm"),
    )
    .expect("copy the guest");
    env.env.write(
        "ctx/Capsulefile",
        "FROM scratch\nCOPY echo_server.wasm /echo_server.wasm\nEXPOSE 80 8000-8001 53/udp\nENTRYPOINT [\"/echo_server.wasm\"]\n",
    );
    env.ok(&["build", "-t", "ranged", "ctx"]);
    let image: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "ranged"])).expect("JSON");
    let mut keys: Vec<String> = image[0]["Config"]["ExposedPorts"]
        .as_object()
        .expect("ExposedPorts")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(keys, ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
    let run = env.env.run(&["run", "-d", "-P", "--name", "r", "ranged"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("warning") && run.stderr.contains("53/udp"),
        "-P says it cannot publish 53/udp: {}",
        run.stderr
    );
    let ports = env.ok(&["port", "r"]);
    let mut published: Vec<&str> = ports
        .lines()
        .filter_map(|l| l.split(" -> ").next())
        .collect();
    published.sort_unstable();
    assert_eq!(published, ["80/tcp", "8000/tcp", "8001/tcp"], "{ports}");
    // A bad range in a recipe is refused where it is written.
    env.env
        .write("bad/Capsulefile", "FROM scratch\nEXPOSE 8001-8000\n");
    let bad = env.env.run(&["build", "-t", "bad", "bad"]);
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("EXPOSE '8001-8000'"), "{}", bad.stderr);
    // The same host port twice is one flag given twice, not a port in use. A fixed
    // number: nothing is bound, the flags are refused before any port is looked at.
    let twice = "127.0.0.1:18000:8000";
    env.env
        .run(&["run", "-d", "-p", twice, "-p", twice, "echo"])
        .assert_error(125, &["published twice", "18000"]);
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1, "only r exists");
}
