//! The library API example (`examples/library-api`) in a container, through the real
//! binary, over loopback: the image is built from the example's own `Capsulefile` with the
//! module `build.rs` built from its source, run detached with a published port and a named
//! volume as `examples/library-api/README.md` tells, and spoken to over TCP.

use capsule_tests::http::{Resp, connect, try_http};
use capsule_tests::{Containers, guests};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

/// A home with the `library-api` image; every container is removed when the test ends,
/// pass or fail.
struct Api(Containers);

impl std::ops::Deref for Api {
    type Target = Containers;
    fn deref(&self) -> &Containers {
        &self.0
    }
}

/// The example's directory as a user has it after `build.sh`: its recipe, compose file
/// and fixtures, with the module `build.rs` built where `build.sh` puts it.
fn example_context(env: &capsule_tests::TestEnv) -> std::path::PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/library-api");
    let context = env.work().join("library-api");
    fs::create_dir_all(context.join("fixtures")).expect("create the build context");
    for file in [
        "Capsulefile",
        ".capsuleignore",
        "compose.toml",
        "fixtures/books.json",
    ] {
        fs::copy(example.join(file), context.join(file))
            .unwrap_or_else(|e| panic!("copy examples/library-api/{file}: {e}"));
    }
    fs::copy(
        guests::examples::LIBRARY_API,
        context.join("library-api.wasm"),
    )
    .expect("copy the module");
    context
}

impl Api {
    fn new() -> Self {
        let containers = Containers::new(&[]);
        let context = example_context(&containers.env);
        let context = context.to_str().expect("UTF-8 path");
        containers
            .env
            .run(&["build", "-t", "library-api", context])
            .assert_code(0);
        Self(containers)
    }

    /// `run -d -p 127.0.0.1::8000 -v VOLUME:/data --name NAME library-api`, then waits
    /// until it answers; returns the host port Capsule picked.
    fn start(&self, name: &str, volume: &str) -> u16 {
        let mount = format!("{volume}:/data");
        self.ok(&[
            "run",
            "-d",
            "-p",
            "127.0.0.1::8000",
            "-v",
            &mount,
            "--name",
            name,
            "library-api",
        ]);
        let port = self.host_port(name, 8000);
        self.wait_serving(name, port);
        port
    }

    /// Waits (at most 60 s: the first start compiles the module) until `GET /` answers,
    /// and checks that it answers 200.
    #[track_caller]
    fn wait_serving(&self, name: &str, port: u16) {
        let resp = self.wait_http(name, port, "/");
        assert_eq!(resp.status, 200, "GET /: {resp:?}");
    }
}

#[track_caller]
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Resp {
    let json = [("Content-Type", "application/json")];
    let headers: &[(&str, &str)] = if body.is_some() { &json } else { &[] };
    try_http(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

const DUNE: &str =
    r#"{"title":"Dune","subtitle":"Book one","author":"Frank Herbert","isbn":"9780441013593"}"#;

#[test]
fn every_route_with_its_status_codes_and_json_errors() {
    let api = Api::new();
    let port = api.start("library", "library-data");

    // The index: JSON for programs.
    let index = http(port, "GET", "/", None);
    assert_eq!(index.status, 200);
    assert_eq!(index.json()["books"], 0);
    assert_eq!(
        http(port, "GET", "/books", None).json(),
        serde_json::json!([])
    );

    // Create: 201, Location, the book with its id.
    let created = http(port, "POST", "/books", Some(DUNE));
    assert_eq!(created.status, 201, "{created:?}");
    let book = created.json();
    let id = book["id"].as_u64().expect("an id");
    assert_eq!(
        created.header("location"),
        Some(format!("/books/{id}").as_str())
    );
    assert_eq!(book["title"], "Dune");
    assert_eq!(book["subtitle"], "Book one");
    // Retrieve and list.
    let path = format!("/books/{id}");
    assert_eq!(http(port, "GET", &path, None).json(), book);
    assert_eq!(
        http(port, "GET", "/books", None).json(),
        serde_json::json!([book])
    );
    // Replace: every field; a subtitle left out is empty.
    let put = http(
        port,
        "PUT",
        &path,
        Some(r#"{"title":"Dune Messiah","author":"Frank Herbert","isbn":"9780593098233"}"#),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(put.json()["title"], "Dune Messiah");
    assert_eq!(put.json()["subtitle"], "");
    // Partial update: the others are kept.
    let patch = http(port, "PATCH", &path, Some(r#"{"subtitle":"Book two"}"#));
    assert_eq!(patch.status, 200, "{patch:?}");
    assert_eq!(patch.json()["subtitle"], "Book two");
    assert_eq!(patch.json()["title"], "Dune Messiah");
    assert_eq!(http(port, "GET", &path, None).json(), patch.json());

    // Bad bodies are 400 with a JSON error that says what was wrong.
    let malformed = http(port, "POST", "/books", Some(r#"{"title": "Dune","#));
    assert!(
        malformed.error(400).contains("malformed JSON"),
        "{malformed:?}"
    );
    let unknown = http(
        port,
        "POST",
        "/books",
        Some(r#"{"title":"x","author":"y","isbn":"1","pages":412}"#),
    );
    assert!(
        unknown.error(400).contains("unknown field `pages`"),
        "{unknown:?}"
    );
    let missing = http(port, "POST", "/books", Some(r#"{"title":"x","isbn":"1"}"#));
    assert!(
        missing.error(400).contains("missing field `author`"),
        "{missing:?}"
    );
    let blank = http(port, "PATCH", &path, Some(r#"{"title":"  "}"#));
    assert!(
        blank.error(400).contains("title may not be blank"),
        "{blank:?}"
    );
    let null = http(port, "PATCH", &path, Some(r#"{"title":null}"#));
    null.error(400);
    let form = try_http(
        port,
        "POST",
        "/books",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some("title=x"),
    )
    .expect("POST a form");
    form.error(415);
    // Nothing of that changed the book.
    assert_eq!(http(port, "GET", &path, None).json(), patch.json());

    // Missing books, unknown routes, wrong methods.
    assert!(
        http(port, "GET", "/books/999", None)
            .error(404)
            .contains("999")
    );
    http(port, "PUT", "/books/999", Some(DUNE)).error(404);
    http(port, "PATCH", "/books/999", Some("{}")).error(404);
    http(port, "DELETE", "/books/999", None).error(404);
    http(port, "GET", "/authors", None).error(404);
    http(port, "GET", "/books/abc", None).error(404);
    let wrong = http(port, "DELETE", "/books", None);
    wrong.error(405);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD, POST"));
    http(port, "POST", &path, Some(DUNE)).error(405);
    // A request that is not HTTP gets a 400 and the server goes on.
    let mut junk = connect(port).expect("connect");
    junk.write_all(b"\x00\x01 nonsense\r\n\r\n").expect("write");
    let mut answer = String::new();
    let _ = junk.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");

    // Delete: 204 without a body, then the book is gone.
    let deleted = http(port, "DELETE", &path, None);
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(deleted.body, "");
    http(port, "GET", &path, None).error(404);
    assert_eq!(
        http(port, "GET", "/books", None).json(),
        serde_json::json!([])
    );
}

#[test]
fn the_html_page_lists_the_books_escaped() {
    let api = Api::new();
    let port = api.start("library", "library-data");
    let created = http(
        port,
        "POST",
        "/books",
        Some(
            r#"{"title":"<script>alert(1)</script>","subtitle":"Tom & Jerry","author":"O'Brien","isbn":"1"}"#,
        ),
    );
    assert_eq!(created.status, 201, "{created:?}");
    http(port, "POST", "/books", Some(DUNE));
    let page = try_http(
        port,
        "GET",
        "/",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
        None,
    )
    .expect("GET / as a browser");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<table>"), "{}", page.body);
    assert!(page.body.contains("Dune") && page.body.contains("Frank Herbert"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.body.contains("Tom &amp; Jerry") && page.body.contains("O&#x27;Brien"));
    assert!(!page.body.contains("<script>"), "{}", page.body);
    // Anything else gets JSON.
    assert_eq!(http(port, "GET", "/", None).json()["books"], 2);
}

#[test]
fn data_survives_stop_start_and_a_new_container_on_the_volume() {
    let api = Api::new();
    let port = api.start("library", "library-data");
    let book = http(port, "POST", "/books", Some(DUNE)).json();
    let path = format!("/books/{}", book["id"]);

    api.ok(&["stop", "-t", "1", "library"]);
    assert!(
        try_http(port, "GET", "/", &[], None).is_err(),
        "still served after stop"
    );
    api.ok(&["start", "library"]);
    assert_eq!(
        api.host_port("library", 8000),
        port,
        "start binds the same port"
    );
    api.wait_serving("library", port);
    assert_eq!(http(port, "GET", &path, None).json(), book);

    api.ok(&["rm", "-f", "library"]);
    assert!(api.ok(&["volume", "ls"]).contains("library-data"));
    let port2 = api.start("library2", "library-data");
    assert_eq!(http(port2, "GET", &path, None).json(), book);
    assert_eq!(
        http(port2, "GET", "/books", None).json(),
        serde_json::json!([book])
    );
    // The data is one JSON file on the volume, written whole (temp file + rename).
    let inspect: serde_json::Value =
        serde_json::from_str(&api.ok(&["volume", "inspect", "library-data"])).expect("JSON");
    let dir = Path::new(inspect[0]["Mountpoint"].as_str().expect("a mountpoint"));
    let names: Vec<String> = fs::read_dir(dir)
        .expect("list the volume")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["library.json"], "no temporary file is left behind");
    let file: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("library.json")).expect("read the data"))
            .expect("the data file is JSON");
    assert_eq!(file["books"], serde_json::json!([book]));
}

#[test]
fn a_hundred_concurrent_clients_all_get_their_answers() {
    let api = Api::new();
    let port = api.start("library", "library-data");
    let clients: Vec<_> = (0..100)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!(r#"{{"title":"Book {i}","author":"Author {i}","isbn":"{i}"}}"#);
                let created = http(port, "POST", "/books", Some(&body));
                assert_eq!(created.status, 201, "client {i}: {created:?}");
                let book = created.json();
                assert_eq!(book["title"], format!("Book {i}"));
                let fetched = http(port, "GET", &format!("/books/{}", book["id"]), None);
                assert_eq!(fetched.json(), book, "client {i}");
                book["id"].as_u64().expect("an id")
            })
        })
        .collect();
    let mut ids: Vec<u64> = clients
        .into_iter()
        .map(|c| c.join().expect("a client failed"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every client got its own book");
    let list = http(port, "GET", "/books", None).json();
    assert_eq!(list.as_array().map(Vec::len), Some(100));
}

#[test]
fn publish_all_and_port_and_a_port_in_use() {
    let api = Api::new();
    api.ok(&[
        "run",
        "-d",
        "-P",
        "-v",
        "library-data:/data",
        "--name",
        "library",
        "library-api",
    ]);
    // `capsule port library`: `8000/tcp -> 127.0.0.1:PORT`, as Docker prints it.
    let out = api.ok(&["port", "library"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("8000/tcp -> "))
        .unwrap_or_else(|| panic!("no 8000/tcp line in `capsule port`: {out:?}"));
    let addr = line.trim_start_matches("8000/tcp -> ");
    assert!(
        addr.starts_with("127.0.0.1:"),
        "-P binds loopback by default: {line}"
    );
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_eq!(api.ok(&["port", "library", "8000"]).trim(), addr);
    api.wait_serving("library", port);
    assert_eq!(http(port, "GET", "/books", None).status, 200);

    // A host port someone else holds: one clear line, and no container left running.
    let holder = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let held = holder.local_addr().expect("address").port();
    let run = api.env.run(&[
        "run",
        "-d",
        "-p",
        &format!("{held}:8000"),
        "--name",
        "blocked",
        "library-api",
    ]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains(&held.to_string()), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    let running = api.ok(&["ps"]);
    assert!(!running.contains("blocked"), "{running}");
}

/// `examples/library-api/compose.toml`: the loader fills the shared volume with the
/// fixture's books and completes before the API starts; `up` again loads nothing twice;
/// `down -v` removes the volume.
#[test]
fn the_compose_example_loads_books_before_the_api_starts() {
    let api = Api(Containers::new(&[]));
    let context = example_context(&api.env);
    let compose = |args: &[&str]| {
        let mut cmd = api.env.capsule();
        // The file publishes `${LIBRARY_PORT:-8000}:8000`: `127.0.0.1:` makes it
        // `127.0.0.1::8000`, a port Capsule picks (read back below).
        cmd.current_dir(&context)
            .env("LIBRARY_PORT", "127.0.0.1:")
            .args(["compose", "-p", "library"])
            .args(args);
        capsule_tests::Run::of(&mut cmd, None)
    };
    let up = compose(&["up", "-d"]);
    up.assert_code(0);
    // Both services share the image: it is built once.
    assert_eq!(up.stderr.matches("Building").count(), 1, "{}", up.stderr);
    let loader = up.stderr.find("library-loader-1  Started").expect("loader");
    let started = up.stderr.find("library-api-1  Created").expect("api");
    assert!(loader < started, "{}", up.stderr);
    let port = api.host_port("library-api-1", 8000);
    api.wait_serving("library-api-1", port);
    let books = http(port, "GET", "/books", None).json();
    let fixture: serde_json::Value = serde_json::from_slice(
        &fs::read(context.join("fixtures/books.json")).expect("the fixture"),
    )
    .expect("JSON");
    let titles = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|b| b["title"].as_str().expect("a title").to_owned())
            .collect()
    };
    assert_eq!(titles(&books), titles(&fixture));
    assert_eq!(books[0]["id"], 1);
    // A book added through the API; then `up` again runs the loader again, which adds
    // nothing twice, and leaves the unchanged API running.
    assert_eq!(
        http(
            port,
            "POST",
            "/books",
            Some(DUNE.replace("9780441013593", "1").as_str())
        )
        .status,
        201
    );
    compose(&["up", "-d"]).assert_code(0);
    assert_eq!(
        api.host_port("library-api-1", 8000),
        port,
        "the unchanged API keeps running on its port"
    );
    let logs = compose(&["logs", "loader"]);
    assert!(
        logs.stdout.contains("loaded 5 of 5") && logs.stdout.contains("loaded 0 of 5"),
        "{}",
        logs.stdout
    );
    assert_eq!(
        http(port, "GET", "/books", None)
            .json()
            .as_array()
            .map(Vec::len),
        Some(6)
    );
    compose(&["down", "-t", "0"]).assert_code(0);
    assert!(api.ok(&["volume", "ls"]).contains("library_library-data"));
    compose(&["down", "-v"]).assert_code(0);
    assert!(!api.ok(&["volume", "ls"]).contains("library_library-data"));
}
