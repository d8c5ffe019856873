//! WASI 0.2 components through the real binary: the example components of
//! `examples/components` (built from their registries by `scripts/build-components.sh`),
//! as `wasi:cli/command` programs on a layered image with a volume and a read-only
//! root, and as `wasi:http/proxy` services on published ports; in compose and through
//! the SDK.

use capsule_tests::http::{Resp, try_http};
use capsule_tests::{Containers, guests};
use std::path::Path;
use std::time::{Duration, Instant};

/// A home with the images `hello` and `http-rust` built from the examples' own
/// Capsulefiles (the build context is the directory holding the built components).
fn images() -> Containers {
    let containers = Containers::new(&[]);
    let context = Path::new(guests::components::HELLO)
        .parent()
        .expect("the components' directory");
    let context = context.to_str().expect("UTF-8 path");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/components");
    for name in ["hello", "http-rust"] {
        let recipe = examples.join(name).join("Capsulefile");
        containers.ok(&[
            "build",
            "-t",
            name,
            "-f",
            recipe.to_str().expect("UTF-8 path"),
            context,
        ]);
    }
    containers
}

#[test]
fn a_command_component_runs_on_a_layered_image_with_a_volume_and_a_read_only_root() {
    let c = images();
    let run = c
        .env
        .run(&["run", "--rm", "-e", "GREETING=hi", "hello", "a", "b c"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("hello from a component")
            && run.stdout.contains("arg 0: a")
            && run.stdout.contains("arg 1: b c")
            && run.stdout.contains("GREETING=hi"),
        "{}",
        run.stdout
    );
    // The image's own files, read from its layer.
    let ls = c.ok(&["run", "--rm", "hello", "--ls", "/"]);
    assert!(ls.contains("hello.wasm"), "{ls}");
    // Compiled once: the component is in the compiled-module cache, and runs after the
    // first add nothing to it.
    let cached = || {
        let info: serde_json::Value =
            serde_json::from_str(&c.ok(&["info", "--format", "json"])).expect("info is JSON");
        info["module_cache"]["entries"].as_u64().expect("a count")
    };
    let before = cached();
    assert!(before >= 1, "the component's compiled form is cached");
    c.ok(&["run", "--rm", "hello", "--ls", "/"]);
    assert_eq!(cached(), before, "a second run compiles nothing");
    // A file written on a named volume is there for the next container.
    c.ok(&["volume", "create", "notes"]);
    let wrote = c.ok(&[
        "run",
        "--rm",
        "-v",
        "notes:/data",
        "hello",
        "--write",
        "/data/n.txt",
        "kept",
    ]);
    assert!(wrote.contains("wrote /data/n.txt: kept"), "{wrote}");
    let cat = c.ok(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        "notes:/data",
        "hello",
        "--cat",
        "/data/n.txt",
    ]);
    assert!(cat.contains("kept"), "{cat}");
    // The read-only root refuses a write; the volume beside it took one above.
    let refused = c.env.run(&[
        "run",
        "--rm",
        "--read-only",
        "hello",
        "--write",
        "/etc.txt",
        "x",
    ]);
    assert_ne!(refused.code, Some(0), "{refused:?}");
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("Read-only file system"),
        "{refused:?}"
    );
    // The writable layer keeps what a container wrote: `diff` shows it.
    c.ok(&["run", "--name", "w", "hello", "--write", "/made.txt", "x"]);
    let diff = c.ok(&["diff", "w"]);
    assert!(diff.contains("A /made.txt"), "{diff}");
}

#[test]
fn exit_codes_traps_and_limits_of_a_command_component() {
    let c = images();
    c.env
        .run(&["run", "--rm", "hello", "--exit", "3"])
        .assert_code(3);
    let trap = c.env.run(&["run", "--rm", "hello", "--trap"]);
    trap.assert_code(134);
    assert!(trap.stderr.contains("unreachable"), "{}", trap.stderr);
    let memory = c.env.run(&["run", "--rm", "--memory", "1m", "hello"]);
    memory.assert_code(137);
    assert!(memory.stderr.contains("out of memory"), "{}", memory.stderr);
    let fuel = c.env.run(&["run", "--rm", "--fuel", "1000", "hello"]);
    assert_ne!(fuel.code, Some(0));
    assert!(fuel.stderr.contains("ran out of fuel"), "{}", fuel.stderr);
    // `--storage-opt size`: the writable layer holds no more. (The guest's libc reports
    // a failed write through a file stream as EIO: wasi-libc's preview2 build does not
    // ask `filesystem-error-code` for writes.)
    let big = "x".repeat(8192);
    let full = c.env.run(&[
        "run",
        "--rm",
        "--storage-opt",
        "size=4k",
        "hello",
        "--write",
        "/big.txt",
        &big,
    ]);
    assert_eq!(full.code, Some(1), "{full:?}");
    assert!(full.stderr.contains("cannot write /big.txt"), "{full:?}");
    // `--ulimit nofile`: stdio and the preopens count; one more open is refused.
    let nofile = c.env.run(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1",
        "hello",
        "--cat",
        "/hello.wasm",
    ]);
    assert_ne!(nofile.code, Some(0), "{nofile:?}");
    // Run detached, its output is in the log.
    c.ok(&["run", "-d", "--name", "d", "hello", "detached"]);
    c.wait_for("d", "exited", |s| s["Status"] == "exited");
    let logs = c.ok(&["logs", "d"]);
    assert!(logs.contains("arg 0: detached"), "{logs}");
}

/// `run -d --name NAME FLAGS -p 127.0.0.1::8080 IMAGE`, then the first answer to
/// `GET path` (the first start compiles the component): the host port and that answer.
#[track_caller]
fn serve(c: &Containers, name: &str, flags: &[&str], image: &str, path: &str) -> (u16, Resp) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-p", "127.0.0.1::8080", image]);
    c.ok(&args);
    let port = c.host_port(name, 8080);
    (port, c.wait_http(name, port, path))
}

#[test]
fn an_http_component_serves_concurrent_clients_keeps_data_and_stops_cleanly() {
    let c = images();
    let (port, health) = serve(&c, "api", &["-v", "books:/data"], "http-rust", "/health");
    assert_eq!(health.status, 200, "{health:?}");
    // Eight clients at once, each adding five books: a fresh instance serves every
    // request, the data is in the volume.
    let clients: Vec<_> = (0..8)
        .map(|client| {
            std::thread::spawn(move || {
                for n in 0..5 {
                    let body = format!(
                        r#"{{"title":"Book {client}-{n}","author":"A","isbn":"97804410135{client}{n}"}}"#
                    );
                    let resp = try_http(
                        port,
                        "POST",
                        "/books",
                        &[("Content-Type", "application/json")],
                        Some(&body),
                    )
                    .expect("POST /books");
                    assert_eq!(resp.status, 201, "{resp:?}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread");
    }
    let books = try_http(port, "GET", "/books", &[], None).expect("GET /books");
    assert_eq!(books.status, 200, "{books:?}");
    let listed = books.json();
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(40),
        "every book of every client: {listed}"
    );
    // Each request is one line of the log.
    let logs = c.ok(&["logs", "api"]);
    assert_eq!(logs.matches("POST /books 201").count(), 40, "{logs}");
    // A stop: no new requests, none in flight, exit 0 well inside the grace period.
    let began = Instant::now();
    c.ok(&["stop", "api"]);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        began.elapsed()
    );
    let state = c.state("api");
    assert_eq!(state["ExitCode"], 0, "{state}");
    // The data outlives the container.
    let (port, _) = serve(&c, "api2", &["-v", "books:/data"], "http-rust", "/health");
    let again = try_http(port, "GET", "/books", &[], None).expect("GET /books");
    assert_eq!(again.json().as_array().map(Vec::len), Some(40));
}

#[test]
fn limits_apply_to_each_request_of_an_http_component() {
    let c = images();
    // Too little fuel for any request: each fails alone with a 500 and says why in the
    // log; the service goes on answering.
    let (port, first) = serve(&c, "starved", &["--fuel", "1000"], "http-rust", "/health");
    let second = c.wait_http("starved", port, "/health");
    for resp in [first, second] {
        assert_eq!(resp.status, 500, "{resp:?}");
    }
    let logs = c.ok(&["logs", "starved"]);
    assert!(logs.contains("ran out of fuel"), "{logs}");
    assert_eq!(logs.matches("GET /health 500").count(), 2, "{logs}");
    // Too little memory for an instance: the same, with the reason.
    let (_, resp) = serve(&c, "small", &["--memory", "1m"], "http-rust", "/health");
    assert_eq!(resp.status, 500, "{resp:?}");
    let logs = c.ok(&["logs", "small"]);
    assert!(logs.contains("exceeds memory limits"), "{logs}");
}

#[test]
fn python_and_javascript_http_components_answer_their_routes() {
    let c = Containers::new(&[
        (guests::components::HTTP_PYTHON, "http-python"),
        (guests::components::HTTP_JS, "http-js"),
    ]);
    for (image, language) in [("http-python", "python"), ("http-js", "javascript")] {
        let (port, hello) = serve(&c, image, &[], image, "/");
        assert_eq!(hello.status, 200, "{hello:?}");
        assert_eq!(hello.json()["language"], language, "{hello:?}");
        let books = try_http(port, "GET", "/books", &[], None).expect("GET /books");
        assert_eq!(books.json().as_array().map(Vec::len), Some(3), "{books:?}");
        let echo = try_http(port, "POST", "/echo", &[], Some("round trip")).expect("POST /echo");
        assert_eq!(
            (echo.status, echo.body.as_str()),
            (200, "round trip"),
            "{echo:?}"
        );
        c.ok(&["stop", image]);
    }
}

#[test]
fn a_compose_project_runs_a_component_service() {
    let c = images();
    c.env.write(
        "project/compose.toml",
        r#"
[services.api]
image = "http-rust"
ports = ["127.0.0.1::8080"]
volumes = ["data:/data"]

[volumes.data]
"#,
    );
    let compose = |args: &[&str]| {
        let mut cmd = c.env.capsule();
        cmd.current_dir(c.env.work().join("project"))
            .arg("compose")
            .args(args);
        let run = capsule_tests::Run::of(&mut cmd, None);
        run.assert_code(0);
        run.stdout
    };
    compose(&["up", "-d"]);
    let ps = compose(&["ps", "-q"]);
    let id = ps
        .lines()
        .next()
        .expect("the api container")
        .trim()
        .to_owned();
    let port = c.host_port(&id, 8080);
    let health = c.wait_http(&id, port, "/health");
    assert_eq!(health.status, 200, "{health:?}");
    compose(&["down"]);
    assert_eq!(compose(&["ps", "-a", "-q"]), "", "down removed the service");
}

#[test]
fn the_sdk_runs_a_component() {
    let capsule = capsule_sdk::Capsule::in_memory().expect("an in-memory Capsule");
    let hello = capsule
        .module_from_file(guests::components::HELLO)
        .expect("the hello component compiles");
    let out = capsule
        .run(
            &hello,
            capsule_sdk::RunOptions::new()
                .arg("from the sdk")
                .env("GREETING", "sdk"),
        )
        .expect("the component runs");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("arg 0: from the sdk") && stdout.contains("GREETING=sdk"),
        "{stdout}"
    );
    let exit = capsule
        .run(
            &hello,
            capsule_sdk::RunOptions::new().arg("--exit").arg("5"),
        )
        .expect("the component runs");
    assert_eq!(exit.status.code(), Some(5), "{exit:?}");
}

#[test]
fn exec_runs_a_component_beside_a_running_service_in_its_files() {
    let c = images();
    let recipe = c.env.write(
        "both/Capsulefile",
        "FROM http-rust\nCOPY hello.wasm /bin/hello.wasm\n",
    );
    let context = Path::new(guests::components::HELLO)
        .parent()
        .expect("the components' directory");
    c.ok(&[
        "build",
        "-t",
        "both",
        "-f",
        recipe.to_str().expect("UTF-8"),
        context.to_str().expect("UTF-8"),
    ]);
    let (port, _) = serve(&c, "svc", &[], "both", "/health");
    let created = try_http(
        port,
        "POST",
        "/books",
        &[("Content-Type", "application/json")],
        Some(r#"{"title":"Seen from exec","author":"A","isbn":"1"}"#),
    )
    .expect("POST /books");
    assert_eq!(created.status, 201, "{created:?}");
    // The exec'd command component sees the service's own files: what a request wrote.
    let ls = c.ok(&["exec", "svc", "/bin/hello.wasm", "--ls", "/data"]);
    assert!(ls.contains("library.json"), "{ls}");
    let cat = c.ok(&[
        "exec",
        "svc",
        "/bin/hello.wasm",
        "--cat",
        "/data/library.json",
    ]);
    assert!(cat.contains("Seen from exec"), "{cat}");
    // And what it writes, a request reads.
    c.ok(&[
        "exec",
        "svc",
        "hello.wasm",
        "--write",
        "/data/note.txt",
        "from exec",
    ]);
    let note = c.ok(&["exec", "svc", "/bin/hello.wasm", "--cat", "/data/note.txt"]);
    assert!(note.contains("from exec"), "{note}");
    c.ok(&["stop", "svc"]);
}

#[test]
fn a_recipe_runs_a_component_in_a_build_step() {
    let c = images();
    let recipe = c.env.write(
        "step/Capsulefile",
        "FROM hello\nRUN [\"/hello.wasm\", \"--write\", \"/made-at-build.txt\", \"by RUN\"]\n",
    );
    let context = recipe.parent().expect("context").to_str().expect("UTF-8");
    c.ok(&["build", "-t", "stepped", context]);
    let cat = c.ok(&["run", "--rm", "stepped", "--cat", "/made-at-build.txt"]);
    assert!(cat.contains("by RUN"), "{cat}");
}
