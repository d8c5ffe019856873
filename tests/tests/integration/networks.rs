//! User-defined networks (`capsule network ...`, `run --network NAME`, compose's
//! default network): containers on one network reach each other by name and alias on
//! the ports they listen on, with no `-p`; a container not on it reaches neither its
//! names nor its addresses; nothing reaches the host's own addresses. Every listener
//! here is on loopback.

use capsule_tests::{Containers, guests};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn images() -> Containers {
    Containers::new(&[
        (guests::components::HELLO, "hello"),
        (guests::components::HTTP_RUST, "api"),
    ])
}

/// The container's address on `network` (`network inspect`).
#[track_caller]
fn address(c: &Containers, network: &str, container: &str) -> Ipv4Addr {
    let out = c.ok(&["network", "inspect", network]);
    let value: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
    let cidr = value[0]["Containers"][container]["IPv4Address"]
        .as_str()
        .unwrap_or_else(|| panic!("{container} is not on {network}: {out}"));
    cidr.trim_end_matches("/24")
        .parse()
        .unwrap_or_else(|_| panic!("{cidr:?} is not an address"))
}

/// `GET path` on `ip:port` from the host, once it answers (60 s: the first start
/// compiles the component): the status line and the body.
#[track_caller]
fn get(c: &Containers, name: &str, ip: Ipv4Addr, port: u16, path: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect((ip, port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut text = String::new();
                if stream.read_to_string(&mut text).is_ok() && !text.is_empty() {
                    return text;
                }
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            let logs = c.env.run(&["logs", name]);
            panic!("{name} never answered on {ip}:{port}: {logs:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `run --rm FLAGS hello --connect ADDR`.
fn connect(c: &Containers, flags: &[&str], addr: &str) -> capsule_tests::Run {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["hello", "--connect", addr]);
    c.env.run(&args)
}

#[track_caller]
fn reached(run: &capsule_tests::Run, addr: &str) {
    run.assert_code(0);
    assert!(run.stdout.contains(&format!("connected {addr}")), "{run:?}");
}

#[track_caller]
fn not_reached(run: &capsule_tests::Run, addr: &str, log_line: &str) {
    assert_eq!(run.code, Some(1), "{addr}: {run:?}");
    assert!(
        run.stderr
            .contains(&format!("hello: cannot connect to {addr}")),
        "{run:?}"
    );
    assert!(run.stderr.contains(log_line), "{log_line:?} in {run:?}");
}

#[test]
fn containers_on_a_network_talk_by_name_and_others_reach_neither_names_nor_addresses() {
    let c = images();
    let id = c.ok(&["network", "create", "app"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    c.ok(&["network", "create", "other"]);
    // A service on `app` with an alias, no published port: it listens on its own
    // address of the network, on the port it serves (8080).
    c.ok(&[
        "run",
        "-d",
        "--name",
        "books",
        "--network",
        "app",
        "--network-alias",
        "library",
        "api",
    ]);
    let ip = address(&c, "app", "books");
    // `inspect` says so, as Docker's does.
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "books"])).expect("JSON");
    assert_eq!(inspect[0]["HostConfig"]["NetworkMode"], "app");
    let on_app = &inspect[0]["NetworkSettings"]["Networks"]["app"];
    assert_eq!(on_app["IPAddress"], ip.to_string());
    assert_eq!(on_app["Aliases"][0], "library");
    let subnet: Vec<u8> = ip.octets()[..3].to_vec();
    assert_eq!(subnet[0], 127, "a loopback address: {ip}");
    assert_ne!(ip, Ipv4Addr::LOCALHOST);
    let answer = get(&c, "books", ip, 8080, "/health");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The same image on another network, on the same port: each has its own address.
    c.ok(&["run", "-d", "--name", "books2", "--network", "other", "api"]);
    let ip2 = address(&c, "other", "books2");
    assert_ne!(ip.octets()[..3], ip2.octets()[..3], "{ip} {ip2}");
    assert!(get(&c, "books2", ip2, 8080, "/health").starts_with("HTTP/1.1 200"));

    // On the network: by name, by alias, by address.
    reached(
        &connect(&c, &["--network", "app"], "books:8080"),
        "books:8080",
    );
    reached(
        &connect(&c, &["--network", "app"], "library:8080"),
        "library:8080",
    );
    let by_ip = format!("{ip}:8080");
    reached(&connect(&c, &["--network", "app"], &by_ip), &by_ip);
    // On another network: the name does not resolve, the address is refused.
    not_reached(
        &connect(&c, &["--network", "other"], "books:8080"),
        "books:8080",
        "capsule: cannot resolve books: no container of that name or alias on network other",
    );
    not_reached(
        &connect(&c, &["--network", "other"], &by_ip),
        &by_ip,
        &format!(
            "capsule: refused to connect to {by_ip}: allow it with --allow-outbound tcp://{by_ip}"
        ),
    );
    // On no network: the lookup itself is refused.
    not_reached(
        &connect(&c, &[], "books:8080"),
        "books:8080",
        "capsule: refused to look up books: allow it with --allow-outbound tcp://books:PORT",
    );
    // A host address outside the network gets nothing: a listener of this test on
    // 127.0.0.1 sees no connection.
    let host = TcpListener::bind("127.0.0.1:0").expect("a host listener");
    host.set_nonblocking(true).expect("nonblocking");
    let host_addr = host.local_addr().expect("address").to_string();
    not_reached(
        &connect(&c, &["--network", "app"], &host_addr),
        &host_addr,
        &format!("capsule: refused to connect to {host_addr}"),
    );
    assert!(host.accept().is_err(), "the host listener was reached");

    // A network in use is not removed; the container is named.
    c.env.run(&["network", "rm", "app"]).assert_error(
        1,
        &[
            "network app is in use by container books",
            "capsule rm -f books",
        ],
    );
    c.ok(&["rm", "-f", "books", "books2"]);
    assert_eq!(c.ok(&["network", "rm", "app", "other"]), "app\nother\n");
}

#[test]
fn network_verbs_follow_docker_and_bad_input_leaves_nothing() {
    let c = images();
    c.ok(&["network", "create", "--label", "team=a", "front"]);
    c.env
        .run(&["network", "create", "front"])
        .assert_error(1, &["network front already exists"]);
    c.env
        .run(&["network", "create", "../x"])
        .assert_error(125, &["invalid network name \"../x\""]);
    c.env
        .run(&["network", "create", "host"])
        .assert_error(125, &["host is a pre-defined network"]);
    c.env
        .run(&["network", "create", "-d", "overlay", "x"])
        .assert_error(125, &["unknown network driver 'overlay'"]);
    let ls = c.ok(&["network", "ls"]);
    for (name, driver) in [("none", "null"), ("host", "host"), ("front", "loopback")] {
        assert!(
            ls.lines().any(|l| l.contains(name) && l.contains(driver)),
            "{name} {driver} in {ls}"
        );
    }
    assert_eq!(
        c.ok(&[
            "network",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "json"
        ])
        .lines()
        .count(),
        1
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["network", "inspect", "front"])).expect("JSON");
    let subnet = inspect[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .expect("subnet");
    assert!(
        subnet.starts_with("127.") && subnet.ends_with(".0/24"),
        "{subnet}"
    );
    c.env
        .run(&["network", "inspect", "nope"])
        .assert_error(1, &["no such network: nope"]);

    // Bad flags: one line, nothing made.
    c.env
        .run(&["run", "--rm", "--network", "nope", "hello"])
        .assert_error(
            125,
            &["no such network: nope", "capsule network create nope"],
        );
    c.env
        .run(&["run", "--rm", "--network-alias", "x", "hello"])
        .assert_error(125, &["--network-alias needs a user-defined network"]);
    c.env
        .run(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--network",
            "front",
            "hello",
        ])
        .assert_error(
            125,
            &["--network host cannot be combined with other networks"],
        );
    c.env
        .run(&[
            "run",
            "--rm",
            "--network",
            "front",
            guests::components::HELLO,
        ])
        .assert_error(
            125,
            &["a module file runs without one", "capsule image import"],
        );
    assert_eq!(c.ok(&["ps", "-aq"]), "", "no container left behind");

    // Addresses are given once each, and freed by rm.
    c.ok(&["create", "--name", "a", "--network", "front", "hello"]);
    c.ok(&["create", "--name", "b", "--network", "front", "hello"]);
    let (a, b) = (address(&c, "front", "a"), address(&c, "front", "b"));
    assert_ne!(a, b);
    // prune keeps networks with containers, removes the others.
    c.ok(&["network", "create", "spare"]);
    let pruned = c.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("spare") && !pruned.contains("front"),
        "{pruned}"
    );
    c.ok(&["rm", "a", "b"]);
    c.ok(&["network", "rm", "front"]);
    c.ok(&["network", "rm", "-f", "front"]);
}

#[test]
fn a_compose_project_talks_by_service_name_and_down_removes_its_network() {
    let c = images();
    let dir = c.env.work().join("shop");
    std::fs::create_dir_all(&dir).expect("project dir");
    std::fs::write(
        dir.join("compose.toml"),
        r#"name = "shop"
[services.api]
image = "api"
[services.client]
image = "hello"
command = ["--connect", "api:8080"]
depends_on = ["api"]
[services.alone]
image = "hello"
command = ["--connect", "api:8080"]
network_mode = "none"
"#,
    )
    .expect("compose file");
    let file = dir.join("compose.toml");
    let file = file.to_str().expect("utf-8 path");
    let up = c.env.run(&["compose", "-f", file, "up", "-d"]);
    up.assert_code(0);
    assert!(
        up.stderr.contains("Network shop_default  Created"),
        "{up:?}"
    );
    // The client's one connect waits for nothing: retry it until the API listens.
    let ip = address(&c, "shop_default", "shop-api-1");
    get(&c, "shop-api-1", ip, 8080, "/health");
    let start = Instant::now();
    loop {
        c.wait_for("shop-client-1", "exited", |s| s["Status"] == "exited");
        let logs = c.ok(&["logs", "shop-client-1"]);
        if logs.contains("connected api:8080") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{logs}");
        c.ok(&["start", "shop-client-1"]);
    }
    c.wait_for("shop-alone-1", "exited", |s| s["Status"] == "exited");
    let alone = c.env.run(&["logs", "shop-alone-1"]);
    assert!(
        alone.stderr.contains("capsule: refused to look up api"),
        "network_mode none: {alone:?}"
    );
    let down = c.env.run(&["compose", "-f", file, "down"]);
    down.assert_code(0);
    assert!(
        down.stderr.contains("Network shop_default  Removed"),
        "{down:?}"
    );
    assert!(!c.ok(&["network", "ls"]).contains("shop_default"));
}

#[test]
fn an_image_declares_its_outbound_needs_in_a_label_and_the_flags_win() {
    let c = images();
    let host = TcpListener::bind("127.0.0.1:0").expect("a host listener");
    let addr = host.local_addr().expect("address").to_string();
    let context = c.env.work().join("ctx");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::copy(guests::components::HELLO, context.join("hello.wasm")).expect("copy");
    std::fs::write(
        context.join("Capsulefile"),
        format!(
            "FROM scratch\nCOPY hello.wasm /hello.wasm\nLABEL io.capsule.allow-outbound=\"tcp://{addr}\"\nENTRYPOINT [\"/hello.wasm\"]\n"
        ),
    )
    .expect("recipe");
    c.ok(&[
        "build",
        "-q",
        "-t",
        "needs",
        context.to_str().expect("utf-8"),
    ]);
    let run = c.env.run(&["run", "--rm", "needs", "--connect", &addr]);
    reached(&run, &addr);
    assert!(
        run.stderr.contains(&format!(
            "the image allows outbound connections to tcp://{addr} (its label io.capsule.allow-outbound)"
        )),
        "{run:?}"
    );
    not_reached(
        &c.env.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "needs",
            "--connect",
            &addr,
        ]),
        &addr,
        "capsule: refused to connect to",
    );
    not_reached(
        &c.env.run(&[
            "run",
            "--rm",
            "--allow-outbound",
            "tcp://127.0.0.1:1",
            "needs",
            "--connect",
            &addr,
        ]),
        &addr,
        "capsule: refused to connect to",
    );
    // A label that is not a rule stops the build, naming it (a pulled image's label is
    // checked again when a container is made).
    std::fs::write(
        context.join("Capsulefile"),
        "FROM scratch\nCOPY hello.wasm /hello.wasm\nLABEL io.capsule.allow-outbound=\"db:5432\"\nENTRYPOINT [\"/hello.wasm\"]\n",
    )
    .expect("recipe");
    c.env
        .run(&["build", "-q", "-t", "bad", context.to_str().expect("utf-8")])
        .assert_error(
            1,
            &["label io.capsule.allow-outbound=\"db:5432\"", "no scheme"],
        );
}

/// An answer of the notes API on the host port, waiting up to 60 s for `want` (the
/// services start, the database restarts); the last answer fails the test.
#[track_caller]
fn notes_until(
    c: &Containers,
    port: u16,
    (method, path, body): (&str, &str, Option<&str>),
    want: impl Fn(&capsule_tests::http::Resp) -> bool,
) -> capsule_tests::http::Resp {
    let start = Instant::now();
    loop {
        let answer = capsule_tests::http::try_http(port, method, path, &[], body);
        if let Ok(resp) = &answer
            && want(resp)
        {
            return answer.expect("an answer");
        }
        if start.elapsed() > Duration::from_secs(60) {
            let logs = c.env.run(&["logs", "notes-api-1"]);
            panic!("{method} {path}: last answer {answer:?}; api logs: {logs:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_notes_example_keeps_its_data_in_a_database_beside_it_and_survives_its_restart() {
    // The example as a user has it: its compose file, its Capsulefiles, the components
    // scripts/build-components.sh wrote (here, the tests' build of them).
    let c = Containers::new(&[]);
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/components");
    let root = c.env.work().join("components");
    for dir in ["notes", "kv", "notes-api", "out"] {
        std::fs::create_dir_all(root.join(dir)).expect("dir");
    }
    std::fs::copy(
        examples.join("notes/compose.toml"),
        root.join("notes/compose.toml"),
    )
    .expect("compose file");
    for image in ["kv", "notes-api"] {
        std::fs::copy(
            examples.join(image).join("Capsulefile"),
            root.join(image).join("Capsulefile"),
        )
        .expect("Capsulefile");
    }
    std::fs::copy(guests::components::KV, root.join("out/kv.wasm")).expect("kv");
    std::fs::copy(
        guests::components::NOTES_API,
        root.join("out/notes-api.wasm"),
    )
    .expect("api");
    let port = capsule_tests::free_port();
    let compose = |args: &[&str]| {
        let mut cmd = c.env.capsule();
        cmd.current_dir(root.join("notes"))
            .env("NOTES_PORT", port.to_string())
            .arg("compose")
            .args(args);
        capsule_tests::Run::of(&mut cmd, None)
    };
    compose(&["up", "-d"]).assert_code(0);
    let put = ("PUT", "/notes/first", Some("kept in kv"));
    notes_until(&c, port, put, |r| r.status == 201);
    let get = ("GET", "/notes/first", None);
    let got = notes_until(&c, port, get, |r| r.status == 200);
    assert_eq!(got.body, "kept in kv");
    // The database stops: the API says so, and answers again once it is back, with the
    // data it keeps on its volume.
    c.ok(&["stop", "-t", "1", "notes-db-1"]);
    let down = notes_until(&c, port, get, |r| r.status == 503);
    assert!(down.body.contains("database unavailable"), "{down:?}");
    c.ok(&["start", "notes-db-1"]);
    let back = notes_until(&c, port, get, |r| r.status == 200);
    assert_eq!(back.body, "kept in kv");
    c.ok(&["restart", "-t", "1", "notes-db-1"]);
    notes_until(&c, port, ("PUT", "/notes/second", Some("after")), |r| {
        r.status == 201
    });
    // A one-off client on the project's network reads the database by name.
    let keys = compose(&["run", "--rm", "db", "keys", "db:6379"]);
    keys.assert_code(0);
    assert!(
        keys.stdout.contains("first") && keys.stdout.contains("second"),
        "{keys:?}"
    );
    let down = compose(&["down", "-v"]);
    down.assert_code(0);
    assert!(
        down.stderr.contains("Network notes_default  Removed"),
        "{down:?}"
    );
}

#[test]
fn a_command_component_that_listens_is_published_through_a_proxy_to_its_network_address() {
    let c = Containers::new(&[(guests::components::KV, "kv")]);
    c.ok(&["network", "create", "data"]);
    c.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "data",
        "-p",
        "127.0.0.1::6379",
        "-v",
        "kv:/data",
        "kv",
        "serve",
    ]);
    let port = c.host_port("db", 6379);
    // The server binds once it has started: until then the proxy closes connections.
    let start = Instant::now();
    let answer = loop {
        let mut text = String::new();
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let _ = stream.write_all(b"SET colour blue\nGET colour\nPING\n");
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.read_to_string(&mut text);
        }
        if !text.is_empty() {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "db never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer, "OK\nVALUE blue\nPONG\n");
    let logs = c.ok(&["logs", "db"]);
    let ip = address(&c, "data", "db");
    assert!(
        logs.contains(&format!("kv: listening on {ip}:6379")),
        "{logs}"
    );
    // Without a network a command component has nowhere to listen: -p is refused.
    c.env
        .run(&["run", "--rm", "-p", "127.0.0.1::6379", "kv", "serve"])
        .assert_error(126, &["join a network to publish its ports"]);
    c.ok(&["rm", "-f", "db"]);
}
