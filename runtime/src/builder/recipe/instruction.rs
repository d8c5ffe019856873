//! The instruction types a recipe parses into: what each instruction says.

use super::Pos;
use super::run_mount::RunMount;
use super::words::Word;

/// One instruction of a recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The position of the instruction keyword.
    pub pos: Pos,
    /// The keyword in upper case, e.g. `COPY`.
    pub keyword: String,
    /// The instruction as written, with continuations joined, comment lines inside it
    /// dropped and runs of whitespace outside quotes collapsed to one space, e.g.
    /// `COPY --chmod=644 a.txt /app/`.
    pub text: String,
    /// What the instruction says.
    pub kind: Kind,
}

/// A command of `RUN`, `CMD` or `ENTRYPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// JSON array form: `["prog", "arg"]` — no variable expansion (as Docker).
    Exec(Vec<String>),
    /// Shell form: the rest of the line as written (continuations joined).
    Shell(String),
}

/// What an instruction says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `FROM [--platform=P] IMAGE [AS name]`; the stage name is lower-cased.
    From {
        /// The base image or stage.
        image: Word,
        /// The stage name after `AS`, lower-cased.
        alias: Option<String>,
        /// `--platform`.
        platform: Option<Word>,
    },
    /// `COPY` and `ADD`.
    Copy(Copy),
    /// `RUN [--mount=...] command`.
    Run(Command, Vec<RunMount>),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL ["prog", "arg"]`: always JSON form.
    Shell(Vec<String>),
    /// `ENV a=b c="d e"`, or the legacy `ENV a b c` (one variable, the value is the rest).
    Env(Vec<(String, Word)>),
    /// `ARG name[=default] ...`.
    Arg(Vec<(String, Option<Word>)>),
    /// `WORKDIR path`: the rest of the line is one word.
    Workdir(Word),
    /// `LABEL k=v ...` (or the legacy `LABEL k v`).
    Label(Vec<(Word, Word)>),
    /// `EXPOSE 8000 8000/tcp 53/udp`: validated after expansion, by the executor.
    Expose(Vec<Word>),
    /// `VOLUME /data` or `VOLUME ["/a", "/b"]`.
    Volume(Vec<Word>),
    /// `USER name[:group]`: the rest of the line is one word.
    User(Word),
    /// `STOPSIGNAL signal`: the rest of the line is one word.
    StopSignal(Word),
    /// `HEALTHCHECK [--interval=D ...] CMD ...` (exec form `["CMD", prog, args...]`,
    /// shell form `["CMD-SHELL", line]`) or `HEALTHCHECK NONE` (`["NONE"]`), checked
    /// when parsed: its flags and command are literal, as in Docker.
    Healthcheck(crate::container::health::Healthcheck),
}

/// A `COPY` or `ADD` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Whether this is `ADD`.
    pub is_add: bool,
    /// The sources: at least one.
    pub sources: Vec<Word>,
    /// The destination.
    pub dest: Word,
    /// `--from=stage-or-image`: a literal name (variables are refused).
    pub from: Option<String>,
    /// `--chmod=644`: octal digits, at most `7777`.
    pub chmod: Option<u32>,
    /// `--chown=...`, with quotes resolved and variables shown as `${NAME}` (see the
    /// [`Word`] display). It has no effect under WASI.
    pub chown: Option<String>,
    /// `--link` (or `--link=true`).
    pub link: bool,
}
