//! The routes of the API: a request (method, path, headers that matter, body) in, a
//! [`Reply`] out. No HTTP machinery here, so the rules are plain to read and to test.

use crate::html;
use crate::store::{Fields, Store};
use serde::{Deserialize, Deserializer};
use serde_json::json;

/// The most a request body may hold.
pub const MAX_BODY: usize = 64 * 1024;

/// The longest each field may be, in characters (the tutorial's model: `CharField`s
/// of these `max_length`s).
const MAX_TITLE: usize = 250;
const MAX_SUBTITLE: usize = 250;
const MAX_AUTHOR: usize = 100;
const MAX_ISBN: usize = 13;

/// A response, before HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Location` of a created book.
    pub location: Option<String>,
    /// `Allow` of a 405.
    pub allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Self {
            status,
            content_type: "application/json",
            body,
            location: None,
            allow: None,
        }
    }

    /// `{"error": message}` with this status.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &json!({ "error": message.into() }))
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: Vec::new(),
            location: None,
            allow: None,
        }
    }
}

/// The parts of a request the routes look at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// A create or a replace: every field of a book but its id. `subtitle` may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBook {
    title: String,
    #[serde(default)]
    subtitle: String,
    author: String,
    isbn: String,
}

/// A partial update: the fields given are changed, the others kept. `null` is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookPatch {
    #[serde(default, deserialize_with = "given")]
    title: Option<String>,
    #[serde(default, deserialize_with = "given")]
    subtitle: Option<String>,
    #[serde(default, deserialize_with = "given")]
    author: Option<String>,
    #[serde(default, deserialize_with = "given")]
    isbn: Option<String>,
}

/// A field that is present must be a string (not `null`).
fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

enum Route {
    Index,
    Books,
    Book(u64),
}

fn route(path: &str) -> Option<Route> {
    // `/books` and `/books/` alike, as Django's trailing-slash URLs.
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    match trimmed {
        "" => Some(Route::Index),
        "/books" => Some(Route::Books),
        _ => {
            let id = trimmed.strip_prefix("/books/")?;
            // Digits only: `+1`, `01x` or `1/x` are no book's path.
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            id.parse().ok().map(Route::Book)
        }
    }
}

/// The API over one store of books.
#[derive(Debug)]
pub struct Library {
    store: Store,
}

impl Library {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: &Request<'_>) -> Reply {
        let Some(route) = route(req.path) else {
            return Reply::error(
                404,
                format!("no route {}: see GET / for the routes", req.path),
            );
        };
        // HEAD is GET without the body (the HTTP layer drops it).
        let method = if req.method == "HEAD" {
            "GET"
        } else {
            req.method
        };
        match (route, method) {
            (Route::Index, "GET") => self.index(req.accept),
            (Route::Index, _) => not_allowed(req, "GET, HEAD"),
            (Route::Books, "GET") => Reply::json(200, &self.store.books()),
            (Route::Books, "POST") => self.create(req),
            (Route::Books, _) => not_allowed(req, "GET, HEAD, POST"),
            (Route::Book(id), "GET") => match self.store.get(id) {
                Some(book) => Reply::json(200, book),
                None => no_book(id),
            },
            (Route::Book(id), "PUT") => self.replace(id, req),
            (Route::Book(id), "PATCH") => self.patch(id, req),
            (Route::Book(id), "DELETE") => match self.store.delete(id) {
                Ok(true) => Reply::empty(204),
                Ok(false) => no_book(id),
                Err(e) => Reply::error(500, e),
            },
            (Route::Book(_), _) => not_allowed(req, "GET, HEAD, PUT, PATCH, DELETE"),
        }
    }

    fn index(&self, accept: Option<&str>) -> Reply {
        if accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html")) {
            return Reply {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: html::page(self.store.books()).into_bytes(),
                location: None,
                allow: None,
            };
        }
        Reply::json(
            200,
            &json!({
                "name": "library-api",
                "books": self.store.books().len(),
                "routes": [
                    {"method": "GET", "path": "/books", "does": "list the books"},
                    {"method": "POST", "path": "/books", "does": "create a book (201, Location)"},
                    {"method": "GET", "path": "/books/{id}", "does": "show a book"},
                    {"method": "PUT", "path": "/books/{id}", "does": "replace a book"},
                    {"method": "PATCH", "path": "/books/{id}", "does": "change some fields of a book"},
                    {"method": "DELETE", "path": "/books/{id}", "does": "delete a book (204)"},
                ],
                "fields": {
                    "title": "required, at most 250 characters",
                    "subtitle": "optional, at most 250 characters",
                    "author": "required, at most 100 characters",
                    "isbn": "required, at most 13 characters",
                },
            }),
        )
    }

    fn create(&mut self, req: &Request<'_>) -> Reply {
        let fields = match parse_new(req) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        match self.store.create(fields) {
            Ok(book) => {
                let mut reply = Reply::json(201, &book);
                reply.location = Some(format!("/books/{}", book.id));
                reply
            }
            Err(e) => Reply::error(500, e),
        }
    }

    fn replace(&mut self, id: u64, req: &Request<'_>) -> Reply {
        if self.store.get(id).is_none() {
            return no_book(id);
        }
        let fields = match parse_new(req) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        self.save(id, fields)
    }

    fn patch(&mut self, id: u64, req: &Request<'_>) -> Reply {
        let Some(book) = self.store.get(id) else {
            return no_book(id);
        };
        let mut fields = Fields::from(book);
        let patch: BookPatch = match parse_json(req) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        if let Some(v) = patch.title {
            fields.title = v;
        }
        if let Some(v) = patch.subtitle {
            fields.subtitle = v;
        }
        if let Some(v) = patch.author {
            fields.author = v;
        }
        if let Some(v) = patch.isbn {
            fields.isbn = v;
        }
        if let Err(message) = validate(&fields) {
            return Reply::error(400, message);
        }
        self.save(id, fields)
    }

    fn save(&mut self, id: u64, fields: Fields) -> Reply {
        match self.store.replace(id, fields) {
            Ok(Some(book)) => Reply::json(200, &book),
            Ok(None) => no_book(id),
            Err(e) => Reply::error(500, e),
        }
    }
}

fn no_book(id: u64) -> Reply {
    Reply::error(404, format!("no book with id {id}"))
}

fn not_allowed(req: &Request<'_>, allow: &'static str) -> Reply {
    let mut reply = Reply::error(
        405,
        format!(
            "method {} is not allowed on {}; allowed: {allow}",
            req.method, req.path
        ),
    );
    reply.allow = Some(allow);
    reply
}

fn parse_new(req: &Request<'_>) -> Result<Fields, Reply> {
    let new: NewBook = parse_json(req)?;
    let fields = Fields {
        title: new.title,
        subtitle: new.subtitle,
        author: new.author,
        isbn: new.isbn,
    };
    validate(&fields).map_err(|message| Reply::error(400, message))?;
    Ok(fields)
}

/// The books of a fixture file (`library-api loaddata`): a JSON array of books as a
/// create takes them, each checked as a create checks it.
///
/// # Errors
/// What is wrong with the file, naming the book (from 1) that is wrong.
pub fn fixture(bytes: &[u8]) -> Result<Vec<Fields>, String> {
    let books: Vec<NewBook> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a list of books: {e}"))?;
    books
        .into_iter()
        .enumerate()
        .map(|(i, new)| {
            let fields = Fields {
                title: new.title,
                subtitle: new.subtitle,
                author: new.author,
                isbn: new.isbn,
            };
            validate(&fields).map_err(|e| format!("book {}: {e}", i + 1))?;
            Ok(fields)
        })
        .collect()
}

/// The body as JSON of type `T`; a 415 or a 400 with the reason otherwise.
fn parse_json<T: for<'de> Deserialize<'de>>(req: &Request<'_>) -> Result<T, Reply> {
    if let Some(ct) = req.content_type {
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Reply::error(
                415,
                format!(
                    "unsupported content type {media:?}: send JSON with Content-Type: application/json"
                ),
            ));
        }
    }
    serde_json::from_slice(req.body).map_err(|e| {
        use serde_json::error::Category;
        let message = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                format!("malformed JSON: {e}")
            }
            Category::Data => format!("invalid book: {e}"),
        };
        Reply::error(400, message)
    })
}

fn validate(f: &Fields) -> Result<(), String> {
    for (name, value, max, required) in [
        ("title", &f.title, MAX_TITLE, true),
        ("subtitle", &f.subtitle, MAX_SUBTITLE, false),
        ("author", &f.author, MAX_AUTHOR, true),
        ("isbn", &f.isbn, MAX_ISBN, true),
    ] {
        if required && value.trim().is_empty() {
            return Err(format!("invalid book: {name} may not be blank"));
        }
        let len = value.chars().count();
        if len > max {
            return Err(format!(
                "invalid book: {name} has {len} characters, at most {max} are allowed"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Book;

    fn parse_book(reply: &Reply) -> Book {
        serde_json::from_slice(&reply.body).expect("a book")
    }

    fn library() -> (Library, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("library-api-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Library::new(Store::open(&dir).expect("open")), dir)
    }

    fn req<'a>(method: &'a str, path: &'a str, body: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            accept: None,
            content_type: Some("application/json"),
            body: body.as_bytes(),
        }
    }

    const DUNE: &str = r#"{"title":"Dune","author":"Frank Herbert","isbn":"9780441013593"}"#;

    #[test]
    fn crud_round_trip() {
        let (mut lib, dir) = library();
        let created = lib.handle(&req("POST", "/books", DUNE));
        assert_eq!(created.status, 201);
        assert_eq!(created.location.as_deref(), Some("/books/1"));
        assert_eq!(parse_book(&created).subtitle, "");
        let patched = lib.handle(&req("PATCH", "/books/1", r#"{"subtitle":"Book 1"}"#));
        assert_eq!(patched.status, 200);
        assert_eq!(parse_book(&patched).subtitle, "Book 1");
        assert_eq!(parse_book(&patched).title, "Dune");
        let put = lib.handle(&req("PUT", "/books/1/", DUNE));
        assert_eq!(parse_book(&put).subtitle, "");
        assert_eq!(lib.handle(&req("DELETE", "/books/1", "")).status, 204);
        assert_eq!(lib.handle(&req("GET", "/books/1", "")).status, 404);
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn bad_requests_are_json_errors() {
        let (mut lib, dir) = library();
        for (method, path, body, status) in [
            ("POST", "/books", "{", 400),
            (
                "POST",
                "/books",
                r#"{"title":"x","author":"y","isbn":"1","pages":3}"#,
                400,
            ),
            ("POST", "/books", r#"{"title":"x","isbn":"1"}"#, 400),
            (
                "POST",
                "/books",
                r#"{"title":" ","author":"y","isbn":"1"}"#,
                400,
            ),
            (
                "POST",
                "/books",
                r#"{"title":"x","author":"y","isbn":"12345678901234"}"#,
                400,
            ),
            ("GET", "/nope", "", 404),
            ("GET", "/books/x", "", 404),
            ("GET", "/books/+1", "", 404),
            ("DELETE", "/books", "", 405),
            ("PATCH", "/books/9", "{}", 404),
        ] {
            let reply = lib.handle(&req(method, path, body));
            assert_eq!(reply.status, status, "{method} {path} {body}");
            let v: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
            assert!(v["error"].is_string(), "{v}");
        }
        lib.handle(&req("POST", "/books", DUNE));
        let null = lib.handle(&req("PATCH", "/books/1", r#"{"title":null}"#));
        assert_eq!(null.status, 400);
        let mut form = req("POST", "/books", DUNE);
        form.content_type = Some("application/x-www-form-urlencoded");
        assert_eq!(lib.handle(&form).status, 415);
        assert_eq!(lib.handle(&req("DELETE", "/", "")).allow, Some("GET, HEAD"));
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
