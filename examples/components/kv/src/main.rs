//! `kv`: a tiny key-value database server and its client, one WASI 0.2 command component
//! (Rust std only: `std::net` over wasi-libc's sockets, which call `wasi:sockets`).
//!
//! ```text
//! kv serve [--port P] [--data FILE]   serves on 0.0.0.0:P (default $PORT, else 6379), data in FILE (default /data/kv.log)
//! kv ping ADDR                        PONG
//! kv set ADDR KEY VALUE...            OK (the words of VALUE joined by spaces)
//! kv get ADDR KEY                     VALUE value, or NONE
//! kv del ADDR KEY                     OK, or NONE
//! kv keys ADDR                        KEYS k1 k2 ... (sorted)
//! kv bench ADDR N                     N PING round trips on one connection, and their rate
//! ```
//!
//! ADDR is `HOST:PORT`; HOST may be a name, which std resolves through
//! `wasi:sockets/ip-name-lookup` (wasi-libc's `getaddrinfo`).
//!
//! **The server** binds `0.0.0.0:P`, prints `kv: listening on ADDR` (the socket's real
//! local address) and serves one connection after another (a component has no threads): a
//! client is served until it closes its connection. The protocol is one line per request
//! and one line per answer:
//!
//! ```text
//! PING            -> PONG
//! SET KEY VALUE   -> OK             (VALUE: the rest of the line, may hold spaces or be empty)
//! GET KEY         -> VALUE value | NONE
//! DEL KEY         -> OK | NONE
//! KEYS            -> KEYS k1 k2 ...
//! anything else   -> ERR ...
//! ```
//!
//! Commands are case-insensitive, a key is one word, a line may end in `\r\n`, and a line
//! longer than 1 MiB is refused (`ERR`). Each `SET` and `DEL` is appended to the data file
//! before it is answered (it reaches the host's file at once; there is no fsync), and the
//! file is replayed at start, so the data outlives the server when the file is on a
//! volume. The data file's directory must exist.
//!
//! **Errors** are one line on stderr and exit status 1: a client that cannot connect
//! prints `kv: cannot connect to ADDR: <error>`, a server that cannot open its data file
//! or bind its port says which and why. Bad input from a client is answered with `ERR` and
//! never stops the server.

#![allow(
    clippy::disallowed_methods,
    reason = "a guest program: the paths, sockets and environment it reaches are the sandbox's, which the host grants"
)]

use std::collections::BTreeMap;
use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The port when neither `--port` nor `$PORT` gives one.
const DEFAULT_PORT: u16 = 6379;
/// The data file when `--data` gives none.
const DEFAULT_DATA: &str = "/data/kv.log";
/// The longest request line the server reads.
const MAX_LINE: usize = 1 << 20;
/// The server gives up after this many accept errors in a row (a broken listener).
const MAX_ACCEPT_ERRORS: u32 = 100;

const USAGE: &str = "usage: kv serve [--port P] [--data FILE] | kv ping|keys ADDR | kv get|del ADDR KEY | kv set ADDR KEY VALUE... | kv bench ADDR N";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some(command @ ("ping" | "get" | "set" | "del" | "keys")) => client(command, &args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}; {USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    let _ = io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kv: {message}");
            ExitCode::FAILURE
        }
    }
}

// --- the server ---------------------------------------------------------------------------

fn serve(args: &[String]) -> Result<(), String> {
    let mut port = match env::var("PORT") {
        Ok(p) => parse_port(&p).map_err(|e| format!("$PORT: {e}"))?,
        Err(_) => DEFAULT_PORT,
    };
    let mut data = PathBuf::from(DEFAULT_DATA);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--port" => {
                let p = rest.next().ok_or("--port needs a port number")?;
                port = parse_port(p).map_err(|e| format!("--port: {e}"))?;
            }
            "--data" => data = PathBuf::from(rest.next().ok_or("--data needs a file")?),
            other => return Err(format!("serve: unknown option {other:?}; {USAGE}")),
        }
    }

    let mut store = Store::open(&data)?;
    eprintln!(
        "kv: {}: {} keys from {} changes",
        data.display(),
        store.map.len(),
        store.replayed
    );
    let listener = TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| format!("cannot listen on 0.0.0.0:{port}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("kv: listening on {local}");
    io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))?;

    let mut errors = 0;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                errors = 0;
                if let Err(e) = store.serve_client(&stream) {
                    eprintln!("kv: client {peer}: {e}");
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("kv: accept: {e}");
                if errors >= MAX_ACCEPT_ERRORS {
                    return Err(format!("{errors} accept errors in a row, the last: {e}"));
                }
            }
        }
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("a port is a number from 0 to 65535, not {text:?}"))
}

/// The keys and values, and the append-only file of their changes.
struct Store {
    map: BTreeMap<String, String>,
    log: File,
    path: PathBuf,
    /// How many changes were replayed from the file at start.
    replayed: usize,
}

impl Store {
    /// Opens (or creates) the data file and replays it.
    fn open(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "cannot open the data file {shown}: there is no directory {} (mount a volume there, or give --data FILE)",
                dir.display()
            ));
        }
        // Opened to append, and read on its own: opened to read and append at once, the
        // file read nothing under wasmtime 48 (its read stream starts at the end).
        let mut log = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("cannot open the data file {shown}: {e}"))?;
        let bytes =
            fs::read(path).map_err(|e| format!("cannot read the data file {shown}: {e}"))?;

        let mut map = BTreeMap::new();
        let mut replayed = 0;
        let complete = bytes.ends_with(b"\n");
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        // The piece after the last newline: empty, or a change whose write was cut short.
        let torn = lines.pop().filter(|l| !l.is_empty());
        for (i, line) in lines.iter().enumerate() {
            let change = std::str::from_utf8(line)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(parse);
            match change {
                Ok(Command::Set(key, value)) => {
                    map.insert(key.to_owned(), value.to_owned());
                    replayed += 1;
                }
                Ok(Command::Del(key)) => {
                    map.remove(key);
                    replayed += 1;
                }
                Ok(_) => eprintln!("kv: {shown}:{}: not a change, skipped", i + 1),
                Err(e) => eprintln!("kv: {shown}:{}: skipped: {e}", i + 1),
            }
        }
        if let Some(torn) = torn {
            eprintln!(
                "kv: {shown}:{}: the last change was cut short ({} bytes, no newline), skipped",
                lines.len() + 1,
                torn.len()
            );
        }
        if !bytes.is_empty() && !complete {
            // The next change starts on a line of its own.
            log.write_all(b"\n")
                .map_err(|e| format!("cannot write the data file {shown}: {e}"))?;
        }
        Ok(Self {
            map,
            log,
            path: path.to_owned(),
            replayed,
        })
    }

    /// Serves one client until it closes its connection.
    fn serve_client(&mut self, stream: &TcpStream) -> io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut writer = BufWriter::new(stream);
        let mut line = Vec::new();
        loop {
            let answer = match read_line(&mut reader, &mut line)? {
                Line::End => return writer.flush(),
                Line::TooLong => format!("ERR a line is at most {MAX_LINE} bytes"),
                Line::Read => {
                    let text = line.strip_suffix(b"\r").unwrap_or(&line);
                    match std::str::from_utf8(text) {
                        Ok(text) => self.answer(text),
                        Err(_) => "ERR the line is not UTF-8".to_owned(),
                    }
                }
            };
            writer.write_all(answer.as_bytes())?;
            writer.write_all(b"\n")?;
            // Answers to pipelined requests go out together; the last one at once.
            if reader.buffer().is_empty() {
                writer.flush()?;
            }
        }
    }

    /// The answer to one request line.
    fn answer(&mut self, line: &str) -> String {
        let command = match parse(line) {
            Ok(c) => c,
            Err(e) => return format!("ERR {e}"),
        };
        match command {
            Command::Ping => "PONG".to_owned(),
            Command::Get(key) => match self.map.get(key) {
                Some(value) => format!("VALUE {value}"),
                None => "NONE".to_owned(),
            },
            Command::Keys => {
                let mut answer = String::from("KEYS");
                for key in self.map.keys() {
                    answer.push(' ');
                    answer.push_str(key);
                }
                answer
            }
            Command::Set(key, value) => {
                if let Err(e) = self.append(&format!("SET {key} {value}\n")) {
                    return e;
                }
                self.map.insert(key.to_owned(), value.to_owned());
                "OK".to_owned()
            }
            Command::Del(key) => {
                if !self.map.contains_key(key) {
                    return "NONE".to_owned();
                }
                if let Err(e) = self.append(&format!("DEL {key}\n")) {
                    return e;
                }
                self.map.remove(key);
                "OK".to_owned()
            }
        }
    }

    /// Appends a change to the data file before it is applied.
    fn append(&mut self, change: &str) -> Result<(), String> {
        self.log
            .write_all(change.as_bytes())
            .and_then(|()| self.log.flush())
            .map_err(|e| {
                eprintln!(
                    "kv: cannot write the data file {}: {e}",
                    self.path.display()
                );
                format!("ERR cannot write the data file: {e}")
            })
    }
}

enum Line {
    /// A line is in the buffer (without its newline).
    Read,
    /// A line longer than [`MAX_LINE`] was read and dropped.
    TooLong,
    /// The client closed its connection.
    End,
}

/// Reads one line into `line`, at most [`MAX_LINE`] bytes of it.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    let mut too_long = false;
    let mut started = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            // A last line without its newline still counts.
            return Ok(match (started, too_long) {
                (false, _) => Line::End,
                (true, false) => Line::Read,
                (true, true) => Line::TooLong,
            });
        }
        started = true;
        let (piece, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if line.len() + piece.len() > MAX_LINE {
            too_long = true;
            line.clear();
        } else if !too_long {
            line.extend_from_slice(piece);
        }
        reader.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Read });
        }
    }
}

/// A request, or a line of the data file.
enum Command<'a> {
    Ping,
    Set(&'a str, &'a str),
    Get(&'a str),
    Del(&'a str),
    Keys,
}

fn parse(line: &str) -> Result<Command<'_>, String> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let is = |name: &str| word.eq_ignore_ascii_case(name);
    let key = |usage: &str| -> Result<&str, String> {
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            Err(format!("usage: {usage} (a key is one word)"))
        } else {
            Ok(rest)
        }
    };
    if word.is_empty() {
        Err("empty command".to_owned())
    } else if is("PING") {
        if rest.is_empty() {
            Ok(Command::Ping)
        } else {
            Err("usage: PING".to_owned())
        }
    } else if is("KEYS") {
        if rest.is_empty() {
            Ok(Command::Keys)
        } else {
            Err("usage: KEYS".to_owned())
        }
    } else if is("GET") {
        key("GET KEY").map(Command::Get)
    } else if is("DEL") {
        key("DEL KEY").map(Command::Del)
    } else if is("SET") {
        let (k, value) = rest.split_once(' ').unwrap_or((rest, ""));
        if k.is_empty() || k.chars().any(char::is_whitespace) {
            Err("usage: SET KEY VALUE (a key is one word)".to_owned())
        } else {
            Ok(Command::Set(k, value))
        }
    } else {
        let shown: String = word.chars().take(64).collect();
        Err(format!("unknown command {shown:?}"))
    }
}

// --- the client ---------------------------------------------------------------------------

/// A connection to a server, one request and answer at a time.
struct Client {
    addr: String,
    /// The connection: read through the buffer, written through `get_ref`.
    stream: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: &str) -> Result<Self, String> {
        let stream =
            TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        Ok(Self {
            addr: addr.to_owned(),
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request line and reads the answer line.
    fn call(&mut self, request: &str) -> Result<String, String> {
        let addr = &self.addr;
        let mut writer: &TcpStream = self.stream.get_ref();
        writer
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| format!("cannot send to {addr}: {e}"))?;
        let mut answer = String::new();
        let n = self
            .stream
            .read_line(&mut answer)
            .map_err(|e| format!("cannot read the answer of {addr}: {e}"))?;
        if n == 0 {
            return Err(format!("{addr} closed the connection without an answer"));
        }
        let answer = answer.strip_suffix('\n').unwrap_or(&answer);
        Ok(answer.strip_suffix('\r').unwrap_or(answer).to_owned())
    }
}

fn client(command: &str, args: &[String]) -> Result<(), String> {
    let usage = || match command {
        "ping" | "keys" => format!("usage: kv {command} ADDR"),
        "set" => "usage: kv set ADDR KEY VALUE...".to_owned(),
        _ => format!("usage: kv {command} ADDR KEY"),
    };
    let (addr, rest) = args.split_first().ok_or_else(usage)?;
    let one_word = |key: &str| {
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            Err(format!("a key is one word, not {key:?}"))
        } else {
            Ok(())
        }
    };
    let request = match (command, rest) {
        ("ping", []) => "PING".to_owned(),
        ("keys", []) => "KEYS".to_owned(),
        ("get", [key]) => {
            one_word(key)?;
            format!("GET {key}")
        }
        ("del", [key]) => {
            one_word(key)?;
            format!("DEL {key}")
        }
        ("set", [key, value @ ..]) if !value.is_empty() => {
            one_word(key)?;
            let value = value.join(" ");
            if value.contains(['\n', '\r']) {
                return Err("a value is one line: it cannot hold a newline".to_owned());
            }
            format!("SET {key} {value}")
        }
        _ => return Err(usage()),
    };
    let answer = Client::connect(addr)?.call(&request)?;
    if answer.starts_with("ERR") {
        return Err(format!("{addr} answered: {answer}"));
    }
    println!("{answer}");
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let [addr, n] = args else {
        return Err("usage: kv bench ADDR N".to_owned());
    };
    let n: u64 = match n.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("N is a number of round trips above 0, not {n:?}")),
    };
    let mut client = Client::connect(addr)?;
    let start = Instant::now();
    for i in 0..n {
        let answer = client.call("PING")?;
        if answer != "PONG" {
            return Err(format!(
                "round trip {}: {addr} answered {answer:?}, not PONG",
                i + 1
            ));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = n as f64 / seconds;
    println!("round trips: {n} in {seconds:.3} s, {rate:.0}/s");
    println!("rps {rate:.0}");
    Ok(())
}
