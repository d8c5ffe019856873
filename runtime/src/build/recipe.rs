//! Recipes: the Dockerfile syntax read by `capsule build`.
//!
//! [`parse`] reads a recipe the way Docker's BuildKit frontend does: parser directives at
//! the top, comments, line continuations, case-insensitive keywords, JSON (exec) and shell
//! forms, quoting and escapes. Each instruction becomes a [`Kind`]. Variables are not
//! expanded here: words keep them as [`Part::Var`], for the executor to expand in scope
//! with [`Word::expand`]. Errors carry the line and column of their cause in the file,
//! inside continued instructions too.

use std::fmt;

/// 1-based line and column in the recipe file. Columns count chars, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in chars.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// An error in a recipe, at a position in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {message}", pos.line, pos.col)]
pub struct RecipeError {
    /// The file name given to [`parse`].
    pub file: String,
    /// Where the problem is.
    pub pos: Pos,
    /// What the problem is.
    pub message: String,
}

/// A parsed recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The name used in errors, as given to [`parse`].
    pub file: String,
    /// The escape character: `\` or `` ` `` from the `# escape=` directive.
    pub escape: char,
    /// The `# syntax=` directive, recorded but unused.
    pub syntax: Option<String>,
    /// The instructions, in file order.
    pub instructions: Vec<Instruction>,
}

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

/// A word whose quotes are resolved; variables are expanded later, in scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Where the word starts.
    pub pos: Pos,
    /// Literal text and variable references, in order.
    pub parts: Vec<Part>,
}

/// A piece of a [`Word`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Lit(String),
    /// `$name` / `${name}` / `${name:-word}` / `${name:+word}` / `${name-word}` /
    /// `${name+word}` / `${name:?msg}` / `${name?msg}`
    Var {
        /// The variable name.
        name: String,
        /// What to do with its value.
        op: VarOp,
    },
}

/// How a variable reference uses the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarOp {
    /// `$name` or `${name}`: the value, or nothing if unset.
    Plain,
    /// `${name:-word}` (`if_empty`) or `${name-word}`: `word` if unset (or empty).
    Default {
        /// The replacement.
        word: Word,
        /// Whether an empty value counts as unset (the `:` forms).
        if_empty: bool,
    },
    /// `${name:+word}` (`if_empty`) or `${name+word}`: `word` if set (and not empty),
    /// else nothing.
    Alternate {
        /// The replacement.
        word: Word,
        /// Whether an empty value counts as unset (the `:` forms).
        if_empty: bool,
    },
    /// `${name:?message}` (`if_empty`) or `${name?message}`: an error if unset (or empty).
    Required {
        /// The error message.
        message: Word,
        /// Whether an empty value counts as unset (the `:` forms).
        if_empty: bool,
    },
}

impl Word {
    /// Expands variables with `lookup`; unset plain variables expand to "" (as Docker does).
    /// Errors (e.g. `${X:?must be set}` with X unset) name the word's position.
    ///
    /// # Errors
    /// A [`VarOp::Required`] variable that is unset (or empty, for `:?`).
    pub fn expand(
        &self,
        file: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, RecipeError> {
        let mut out = String::new();
        for part in &self.parts {
            let (name, op) = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var { name, op } => (name, op),
            };
            let value = lookup(name);
            let is_set =
                |if_empty: bool| value.as_ref().is_some_and(|v| !(if_empty && v.is_empty()));
            match op {
                VarOp::Plain => out.push_str(value.as_deref().unwrap_or("")),
                VarOp::Default { word, if_empty } => {
                    if is_set(*if_empty) {
                        out.push_str(value.as_deref().unwrap_or(""));
                    } else {
                        out.push_str(&word.expand(file, lookup)?);
                    }
                }
                VarOp::Alternate { word, if_empty } => {
                    if is_set(*if_empty) {
                        out.push_str(&word.expand(file, lookup)?);
                    }
                }
                VarOp::Required { message, if_empty } => {
                    if is_set(*if_empty) {
                        out.push_str(value.as_deref().unwrap_or(""));
                    } else {
                        let message = message.expand(file, lookup)?;
                        let message = match (message.is_empty(), if_empty) {
                            (false, _) => format!("{name}: {message}"),
                            (true, true) => format!("{name}: variable is not set or empty"),
                            (true, false) => format!("{name}: variable is not set"),
                        };
                        return Err(RecipeError {
                            file: file.to_owned(),
                            pos: self.pos,
                            message,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The literal text when the word has no variables.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var { .. } => return None,
            }
        }
        Some(out)
    }
}

/// Shows the word with quotes resolved and variables as `${...}`, for messages.
impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(s) => f.write_str(s)?,
                Part::Var { name, op } => match op {
                    VarOp::Plain => write!(f, "${{{name}}}")?,
                    VarOp::Default { word, if_empty } => {
                        write!(f, "${{{name}{}-{word}}}", colon(*if_empty))?;
                    }
                    VarOp::Alternate { word, if_empty } => {
                        write!(f, "${{{name}{}+{word}}}", colon(*if_empty))?;
                    }
                    VarOp::Required { message, if_empty } => {
                        write!(f, "${{{name}{}?{message}}}", colon(*if_empty))?;
                    }
                },
            }
        }
        Ok(())
    }
}

fn colon(if_empty: bool) -> &'static str {
    if if_empty { ":" } else { "" }
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
    /// `RUN`.
    Run(Command),
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

/// Parses a recipe. `file` is the name used in errors.
///
/// # Errors
/// The first syntax error, with its position.
pub fn parse(file: &str, text: &str) -> Result<Recipe, RecipeError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<Vec<char>> = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line).chars().collect())
        .collect();
    let directives = directives(file, &lines)?;
    let parser = Parser {
        file,
        escape: directives.escape,
    };
    let mut instructions: Vec<Instruction> = Vec::new();
    let mut seen_from = false;
    let mut end = START;
    let mut stage_names: Vec<(String, usize)> = Vec::new();
    for line in parser.logical_lines(&lines)? {
        let instruction = parser.instruction(&line, seen_from)?;
        seen_from |= matches!(instruction.kind, Kind::From { .. });
        if let Kind::From {
            alias: Some(alias), ..
        } = &instruction.kind
        {
            // As Docker: a stage name names one stage.
            if let Some((_, line)) = stage_names.iter().find(|(name, _)| name == alias) {
                return Err(parser.err(
                    instruction.pos,
                    format!(
                        "duplicate stage name '{alias}': line {line} already names a stage '{alias}'"
                    ),
                ));
            }
            stage_names.push((alias.clone(), instruction.pos.line));
        }
        end = end_pos(&line, end);
        instructions.push(instruction);
    }
    if instructions.is_empty() {
        return Err(parser.err(
            end,
            "the recipe has no instructions: it needs at least a FROM",
        ));
    }
    if !seen_from {
        return Err(parser.err(end, "expected a FROM after the ARG instructions"));
    }
    Ok(Recipe {
        file: file.to_owned(),
        escape: directives.escape,
        syntax: directives.syntax,
        instructions,
    })
}

/// The instructions Capsule runs, in the order they are listed in messages.
const SUPPORTED: [&str; 15] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The first position of a file: where errors without a better place go.
const START: Pos = Pos { line: 1, col: 1 };

/// Nesting limit for `${a:-${b:-...}}` and JSON values, so no input exhausts the stack.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Label,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    fn parse(upper: &str) -> Option<Self> {
        Some(match upper {
            "ADD" => Self::Add,
            "ARG" => Self::Arg,
            "CMD" => Self::Cmd,
            "COPY" => Self::Copy,
            "ENTRYPOINT" => Self::Entrypoint,
            "ENV" => Self::Env,
            "EXPOSE" => Self::Expose,
            "FROM" => Self::From,
            "LABEL" => Self::Label,
            "RUN" => Self::Run,
            "SHELL" => Self::Shell,
            "STOPSIGNAL" => Self::StopSignal,
            "USER" => Self::User,
            "VOLUME" => Self::Volume,
            "WORKDIR" => Self::Workdir,
            _ => return None,
        })
    }

    /// The flags Capsule accepts, and those Docker knows but Capsule does not support.
    fn flags(self) -> (&'static [&'static str], &'static [&'static str]) {
        const COPY: &[&str] = &["from", "chmod", "chown", "link"];
        match self {
            Self::From => (&["platform"], &[]),
            Self::Copy => (COPY, &["parents", "exclude"]),
            Self::Add => (
                COPY,
                &["checksum", "keep-git-dir", "parents", "exclude", "unpack"],
            ),
            Self::Run => (&[], &["mount", "network", "security", "device"]),
            _ => (&[], &[]),
        }
    }
}

/// The parser directives at the top of a recipe.
struct Directives {
    escape: char,
    syntax: Option<String>,
}

/// Reads the parser directives: `# name=value` lines before anything else. An unknown
/// directive, like any other line, ends them.
fn directives(file: &str, lines: &[Vec<char>]) -> Result<Directives, RecipeError> {
    let err = |pos, message: String| RecipeError {
        file: file.to_owned(),
        pos,
        message,
    };
    let mut escape = None;
    let mut syntax = None;
    let mut check = false;
    for (index, line) in lines.iter().enumerate() {
        // A shebang on the first line is allowed before the directives.
        if index == 0 && line.starts_with(&['#', '!']) {
            continue;
        }
        let Some((name, value, value_col)) = directive(line) else {
            break;
        };
        let at = |col| Pos {
            line: index + 1,
            col,
        };
        let duplicate = match name.as_str() {
            "escape" => escape.is_some(),
            "syntax" => syntax.is_some(),
            "check" => check,
            _ => break,
        };
        if duplicate {
            let hash = line.iter().position(|&c| c == '#').unwrap_or(0);
            return Err(err(
                at(hash + 1),
                format!("only one '{name}' parser directive is allowed"),
            ));
        }
        match name.as_str() {
            "escape" => match value.as_str() {
                "\\" => escape = Some('\\'),
                "`" => escape = Some('`'),
                _ => {
                    return Err(err(
                        at(value_col),
                        format!("invalid escape character '{value}': expected '\\' or '`'"),
                    ));
                }
            },
            "syntax" => syntax = Some(value),
            _ => check = true,
        }
    }
    Ok(Directives {
        escape: escape.unwrap_or('\\'),
        syntax,
    })
}

/// Matches `^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, giving the lower-cased name,
/// the value and the value's 1-based column.
fn directive(line: &[char]) -> Option<(String, String, usize)> {
    let skip_ws = |mut i: usize| {
        while line.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if line.get(i) != Some(&'#') {
        return None;
    }
    i = skip_ws(i + 1);
    let start = i;
    if !line.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while line.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
        i += 1;
    }
    let name: String = line[start..i].iter().collect();
    i = skip_ws(i);
    if line.get(i) != Some(&'=') {
        return None;
    }
    i = skip_ws(i + 1);
    let end = line.iter().rposition(|c| !c.is_whitespace())? + 1;
    if end <= i {
        return None;
    }
    let value = line[i..end].iter().collect();
    Some((name.to_ascii_lowercase(), value, i + 1))
}

/// A char of a logical line, with its position in the file.
#[derive(Debug, Clone, Copy)]
struct Ch {
    c: char,
    pos: Pos,
}

/// A `--name[=value]` flag at the start of an instruction's arguments.
struct Flag<'a> {
    name: String,
    value: Option<&'a [Ch]>,
    /// The whole flag as written.
    text: &'a [Ch],
}

impl Flag<'_> {
    fn pos(&self) -> Pos {
        start(self.text, START)
    }
}

/// How JSON arguments failed to parse.
enum JsonError {
    /// Not a JSON array: shell form, for the instructions that allow it.
    Invalid,
    /// A JSON array with something other than strings, at this position.
    NotStrings(Pos),
}

struct Parser<'a> {
    file: &'a str,
    escape: char,
}

impl Parser<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>) -> RecipeError {
        RecipeError {
            file: self.file.to_owned(),
            pos,
            message: message.into(),
        }
    }

    /// Joins continuation lines and drops comments and blank lines: one entry per
    /// instruction, trimmed and non-empty.
    fn logical_lines(&self, lines: &[Vec<char>]) -> Result<Vec<Vec<Ch>>, RecipeError> {
        let mut out = Vec::new();
        let mut rest = lines.iter().enumerate();
        while let Some((index, line)) = rest.next() {
            if is_blank(line) || is_comment(line) {
                continue;
            }
            let mut joined = Vec::new();
            let mut continued = self.push_line(&mut joined, line, index + 1);
            while let Some(escape_pos) = continued {
                let Some((index, line)) = rest.next() else {
                    return Err(self.err(
                        escape_pos,
                        "unexpected end of file after a line continuation",
                    ));
                };
                if is_blank(line) || is_comment(line) {
                    continue;
                }
                continued = self.push_line(&mut joined, line, index + 1);
            }
            let joined = trim(&joined);
            if !joined.is_empty() {
                out.push(joined.to_vec());
            }
        }
        Ok(out)
    }

    /// Appends a physical line without its continuation escape; returns the escape's
    /// position if the line continues. As in BuildKit, the escape character must be the last
    /// one other than spaces and tabs, and not itself escaped.
    fn push_line(&self, joined: &mut Vec<Ch>, line: &[char], number: usize) -> Option<Pos> {
        let last = line.iter().rposition(|&c| c != ' ' && c != '\t');
        let continued =
            last.filter(|&k| line[k] == self.escape && (k == 0 || line[k - 1] != self.escape));
        let len = continued.unwrap_or(line.len());
        joined.extend(line[..len].iter().enumerate().map(|(k, &c)| Ch {
            c,
            pos: Pos {
                line: number,
                col: k + 1,
            },
        }));
        continued.map(|k| Pos {
            line: number,
            col: k + 1,
        })
    }

    fn instruction(&self, line: &[Ch], seen_from: bool) -> Result<Instruction, RecipeError> {
        let pos = start(line, START);
        let end = end_pos(line, pos);
        let kw_len = line
            .iter()
            .position(|c| c.c.is_whitespace())
            .unwrap_or(line.len());
        let written = string_of(&line[..kw_len]);
        let upper = written.to_ascii_uppercase();
        let rest = trim(&line[kw_len..]);
        let Some(keyword) = Keyword::parse(&upper) else {
            return Err(self.err(pos, unknown_instruction(&written, &upper, rest)));
        };
        if !seen_from && !matches!(keyword, Keyword::From | Keyword::Arg) {
            return Err(self.err(pos, format!("expected FROM (or ARG) before {upper}")));
        }
        let (flags, args) = self.flags(rest)?;
        self.check_flags(keyword, &upper, &flags)?;
        let kind = match keyword {
            Keyword::From => self.from(&flags, args, end)?,
            Keyword::Copy | Keyword::Add => Kind::Copy(self.copy(&upper, &flags, args, end)?),
            Keyword::Run => {
                let command = self.command(&upper, args, end, false)?;
                if matches!(command, Command::Shell(_)) {
                    self.no_heredoc(args)?;
                }
                Kind::Run(command)
            }
            Keyword::Cmd => Kind::Cmd(self.command(&upper, args, end, true)?),
            Keyword::Entrypoint => Kind::Entrypoint(self.command(&upper, args, end, true)?),
            Keyword::Shell => Kind::Shell(self.shell(args, end)?),
            Keyword::Env => Kind::Env(self.env(args, end)?),
            Keyword::Arg => Kind::Arg(self.arg(args, end)?),
            Keyword::Label => Kind::Label(self.name_values("LABEL", args, end)?),
            Keyword::Workdir => Kind::Workdir(self.rest_word("WORKDIR", args, end, "a path")?),
            Keyword::User => Kind::User(self.rest_word("USER", args, end, "a user name or ID")?),
            Keyword::StopSignal => {
                Kind::StopSignal(self.rest_word("STOPSIGNAL", args, end, "a signal")?)
            }
            Keyword::Expose => {
                let ports = self.words(args)?;
                if ports.is_empty() {
                    return Err(self.err(end, "EXPOSE needs at least one port, e.g. EXPOSE 8080"));
                }
                Kind::Expose(ports)
            }
            Keyword::Volume => Kind::Volume(self.volume(args, end)?),
        };
        let mut text = upper.clone();
        if !rest.is_empty() {
            text.push(' ');
            text.push_str(&collapse(rest, self.escape));
        }
        Ok(Instruction {
            pos,
            keyword: upper,
            text,
            kind,
        })
    }

    /// Splits off the leading `--name[=value]` words. A lone `--` ends them.
    fn flags<'s>(&self, mut rest: &'s [Ch]) -> Result<(Vec<Flag<'s>>, &'s [Ch]), RecipeError> {
        let mut flags = Vec::new();
        loop {
            rest = trim(rest);
            if !starts_with(rest, "--") {
                return Ok((flags, rest));
            }
            let len = self.word_len(rest)?;
            let (word, tail) = rest.split_at(len);
            rest = tail;
            if word.len() == 2 {
                return Ok((flags, trim(rest)));
            }
            let body = &word[2..];
            let (name, value) = match body.iter().position(|c| c.c == '=') {
                Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
                None => (body, None),
            };
            flags.push(Flag {
                name: string_of(name),
                value,
                text: word,
            });
        }
    }

    fn check_flags(
        &self,
        keyword: Keyword,
        upper: &str,
        flags: &[Flag],
    ) -> Result<(), RecipeError> {
        let (allowed, unsupported) = keyword.flags();
        for (i, flag) in flags.iter().enumerate() {
            let name = flag.name.as_str();
            if unsupported.contains(&name) {
                return Err(self.err(
                    flag.pos(),
                    format!("{upper} --{name} is not supported by Capsule"),
                ));
            }
            if !allowed.contains(&name) {
                let message = if allowed.is_empty() {
                    format!("unknown flag '--{name}': {upper} takes no flags")
                } else {
                    let list: Vec<String> = allowed.iter().map(|f| format!("--{f}")).collect();
                    format!(
                        "unknown flag '--{name}' for {upper}: expected one of {}",
                        list.join(", ")
                    )
                };
                return Err(self.err(flag.pos(), message));
            }
            if flags[..i].iter().any(|f| f.name == flag.name) {
                return Err(self.err(flag.pos(), format!("duplicate flag '--{name}'")));
            }
        }
        Ok(())
    }

    /// The value of a flag that needs one, as a word.
    fn flag_word(&self, flags: &[Flag], name: &str) -> Result<Option<Word>, RecipeError> {
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            return Ok(None);
        };
        match flag.value {
            Some(value) if !value.is_empty() => Ok(Some(self.word(value, flag.pos())?)),
            _ => Err(self.err(
                flag.pos(),
                format!("flag '--{name}' needs a value: --{name}=..."),
            )),
        }
    }

    /// The value of a flag that needs a literal one.
    fn flag_literal(
        &self,
        flags: &[Flag],
        name: &str,
    ) -> Result<Option<(String, Pos)>, RecipeError> {
        let Some(word) = self.flag_word(flags, name)? else {
            return Ok(None);
        };
        match word.literal() {
            Some(value) => Ok(Some((value, word.pos))),
            None => Err(self.err(
                word.pos,
                format!(
                    "flag '--{name}' cannot use variables in Capsule: write the value literally"
                ),
            )),
        }
    }

    fn flag_bool(&self, flags: &[Flag], name: &str) -> Result<bool, RecipeError> {
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            return Ok(false);
        };
        let Some(value) = flag.value else {
            return Ok(true);
        };
        let word = self.word(value, flag.pos())?;
        match word.literal().map(|v| v.to_ascii_lowercase()).as_deref() {
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            _ => Err(self.err(
                word.pos,
                format!("invalid value for '--{name}': expected true or false"),
            )),
        }
    }

    fn from(&self, flags: &[Flag], args: &[Ch], end: Pos) -> Result<Kind, RecipeError> {
        let platform = self.flag_word(flags, "platform")?;
        let words = self.split_words(args)?;
        let Some(image) = words.first() else {
            return Err(self.err(end, "FROM needs an image, e.g. FROM scratch"));
        };
        let image = self.word(image, end)?;
        let mut alias = None;
        if let Some(as_word) = words.get(1) {
            if !string_of(as_word).eq_ignore_ascii_case("as") {
                return Err(self.err(
                    start(as_word, end),
                    format!(
                        "expected AS NAME after the image, found '{}'",
                        string_of(as_word)
                    ),
                ));
            }
            let Some(name) = words.get(2) else {
                return Err(self.err(end, "FROM ... AS needs a stage name"));
            };
            if let Some(extra) = words.get(3) {
                return Err(self.err(
                    start(extra, end),
                    format!("unexpected '{}' after the stage name", string_of(extra)),
                ));
            }
            let written = string_of(name);
            let lower = written.to_lowercase();
            if !is_stage_name(&lower) {
                return Err(self.err(
                    start(name, end),
                    format!(
                        "invalid stage name '{written}': it must start with a letter and \
                         contain only letters, digits, '-', '_' and '.'"
                    ),
                ));
            }
            alias = Some(lower);
        }
        Ok(Kind::From {
            image,
            alias,
            platform,
        })
    }

    fn copy(
        &self,
        upper: &str,
        flags: &[Flag],
        args: &[Ch],
        end: Pos,
    ) -> Result<Copy, RecipeError> {
        let from = self.flag_literal(flags, "from")?.map(|(v, _)| v);
        let chmod = match self.flag_literal(flags, "chmod")? {
            Some((mode, pos)) => Some(parse_mode(&mode).ok_or_else(|| {
                self.err(
                    pos,
                    format!(
                        "invalid --chmod '{mode}': expected octal digits, at most 7777, e.g. 644"
                    ),
                )
            })?),
            None => None,
        };
        let chown = self.flag_word(flags, "chown")?.map(|w| w.to_string());
        let link = self.flag_bool(flags, "link")?;
        let mut words = match self.json_words(upper, args)? {
            Some(words) => words,
            None => {
                self.no_heredoc(args)?;
                self.words(args)?
            }
        };
        let dest = match words.pop() {
            Some(dest) if !words.is_empty() => dest,
            _ => {
                return Err(self.err(
                    end,
                    format!("{upper} needs at least one source and a destination"),
                ));
            }
        };
        Ok(Copy {
            is_add: upper == "ADD",
            sources: words,
            dest,
            from,
            chmod,
            chown,
            link,
        })
    }

    fn command(
        &self,
        upper: &str,
        args: &[Ch],
        end: Pos,
        empty_exec: bool,
    ) -> Result<Command, RecipeError> {
        if starts_with(args, "[") {
            match json_array(args) {
                Ok(items) => {
                    if items.is_empty() && !empty_exec {
                        return Err(self.err(start(args, end), format!("{upper} needs a command")));
                    }
                    return Ok(Command::Exec(items.into_iter().map(|(_, s)| s).collect()));
                }
                Err(JsonError::NotStrings(pos)) => return Err(self.not_strings(upper, pos)),
                Err(JsonError::Invalid) => {}
            }
        }
        if args.is_empty() {
            return Err(self.err(end, format!("{upper} needs a command")));
        }
        Ok(Command::Shell(string_of(args)))
    }

    fn shell(&self, args: &[Ch], end: Pos) -> Result<Vec<String>, RecipeError> {
        let at = start(args, end);
        match json_array(args) {
            Ok(items) if items.is_empty() => Err(self.err(
                at,
                "SHELL needs at least a program, e.g. SHELL [\"/bin/sh\", \"-c\"]",
            )),
            Ok(items) => Ok(items.into_iter().map(|(_, s)| s).collect()),
            Err(JsonError::NotStrings(pos)) => Err(self.not_strings("SHELL", pos)),
            Err(JsonError::Invalid) => Err(self.err(
                at,
                "SHELL must be written as a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"]",
            )),
        }
    }

    fn not_strings(&self, upper: &str, pos: Pos) -> RecipeError {
        self.err(
            pos,
            format!("{upper}: a JSON array must contain only strings"),
        )
    }

    /// The arguments as JSON words, if they are a JSON array; `None` for shell form.
    fn json_words(&self, upper: &str, args: &[Ch]) -> Result<Option<Vec<Word>>, RecipeError> {
        if !starts_with(args, "[") {
            return Ok(None);
        }
        match json_array(args) {
            Ok(items) => items
                .iter()
                .map(|(pos, s)| self.json_word(s, *pos))
                .collect::<Result<_, _>>()
                .map(Some),
            Err(JsonError::NotStrings(pos)) => Err(self.not_strings(upper, pos)),
            Err(JsonError::Invalid) => Ok(None),
        }
    }

    fn env(&self, args: &[Ch], end: Pos) -> Result<Vec<(String, Word)>, RecipeError> {
        self.name_values("ENV", args, end)?
            .into_iter()
            .map(|(key, value)| match key.literal() {
                Some(name) if name.is_empty() => {
                    Err(self.err(key.pos, "ENV needs a name before '='"))
                }
                Some(name) => Ok((name, value)),
                None => Err(self.err(key.pos, "ENV variable names cannot contain variables")),
            })
            .collect()
    }

    /// `KEY=VALUE ...`, or the legacy `KEY VALUE` where the value is the rest of the line.
    fn name_values(
        &self,
        upper: &str,
        args: &[Ch],
        end: Pos,
    ) -> Result<Vec<(Word, Word)>, RecipeError> {
        let words = self.split_words(args)?;
        let Some(first) = words.first() else {
            return Err(self.err(end, format!("{upper} needs at least one KEY=VALUE pair")));
        };
        if self.find_top(first, '=')?.is_none() {
            // `args` is trimmed, so the first word starts it.
            let value = trim(args.get(first.len()..).unwrap_or_default());
            if value.is_empty() {
                return Err(self.err(
                    end,
                    format!(
                        "{upper} {0} needs a value: {upper} {0}=VALUE",
                        string_of(first)
                    ),
                ));
            }
            return Ok(vec![(self.word(first, end)?, self.word(value, end)?)]);
        }
        let mut pairs = Vec::new();
        for word in words {
            let at = start(word, end);
            let Some(eq) = self.find_top(word, '=')? else {
                return Err(self.err(
                    at,
                    format!("expected KEY=VALUE, found '{}'", string_of(word)),
                ));
            };
            let (key, value) = (&word[..eq], &word[eq + 1..]);
            if key.is_empty() {
                return Err(self.err(at, format!("{upper} needs a name before '='")));
            }
            pairs.push((self.word(key, at)?, self.word(value, after(&word[eq]))?));
        }
        Ok(pairs)
    }

    fn arg(&self, args: &[Ch], end: Pos) -> Result<Vec<(String, Option<Word>)>, RecipeError> {
        let words = self.split_words(args)?;
        if words.is_empty() {
            return Err(self.err(end, "ARG needs a name, e.g. ARG NAME or ARG NAME=DEFAULT"));
        }
        let mut out = Vec::new();
        for word in words {
            let at = start(word, end);
            let (name, default) = match self.find_top(word, '=')? {
                Some(eq) => (
                    &word[..eq],
                    Some(self.word(&word[eq + 1..], after(&word[eq]))?),
                ),
                None => (word, None),
            };
            let name = match self.word(name, at)?.literal() {
                Some(name) if name.is_empty() => {
                    return Err(self.err(at, "ARG needs a name before '='"));
                }
                Some(name) => name,
                None => return Err(self.err(at, "ARG names cannot contain variables")),
            };
            out.push((name, default));
        }
        Ok(out)
    }

    fn volume(&self, args: &[Ch], end: Pos) -> Result<Vec<Word>, RecipeError> {
        let paths = match self.json_words("VOLUME", args)? {
            Some(words) => words,
            None => self.words(args)?,
        };
        if paths.is_empty() {
            return Err(self.err(end, "VOLUME needs at least one path"));
        }
        if let Some(empty) = paths
            .iter()
            .find(|w| w.literal().is_some_and(|p| p.is_empty()))
        {
            return Err(self.err(empty.pos, "VOLUME paths cannot be empty"));
        }
        Ok(paths)
    }

    /// The rest of the line as one word (spaces included), as Docker reads `WORKDIR`.
    fn rest_word(
        &self,
        upper: &str,
        args: &[Ch],
        end: Pos,
        what: &str,
    ) -> Result<Word, RecipeError> {
        if args.is_empty() {
            return Err(self.err(end, format!("{upper} needs {what}")));
        }
        self.word(args, end)
    }

    /// Refuses heredocs (`<<EOF`, `<<-EOF`, `3<<"EOF"`) in shell-form `RUN`, `COPY` and `ADD`.
    fn no_heredoc(&self, args: &[Ch]) -> Result<(), RecipeError> {
        for word in args.split(|c| c.c.is_whitespace()) {
            let digits = word.iter().take_while(|c| c.c.is_ascii_digit()).count();
            let after = &word[digits..];
            if !starts_with(after, "<<") {
                continue;
            }
            let name = &after[2..];
            let name = if starts_with(name, "-") {
                &name[1..]
            } else {
                name
            };
            if !name.is_empty() && !name.iter().any(|c| c.c == '<') {
                return Err(self.err(
                    start(word, START),
                    "heredocs (<<EOF) are not supported by Capsule: put the content in a file \
                     of the build context and COPY it",
                ));
            }
        }
        Ok(())
    }

    /// Splits arguments into words and resolves each.
    fn words(&self, args: &[Ch]) -> Result<Vec<Word>, RecipeError> {
        self.split_words(args)?
            .into_iter()
            .map(|w| self.word(w, START))
            .collect()
    }

    /// Splits at whitespace outside quotes and `${...}` and not escaped.
    fn split_words<'s>(&self, mut src: &'s [Ch]) -> Result<Vec<&'s [Ch]>, RecipeError> {
        let mut words = Vec::new();
        loop {
            src = trim(src);
            if src.is_empty() {
                return Ok(words);
            }
            let len = self.word_len(src)?;
            let (word, tail) = src.split_at(len);
            words.push(word);
            src = tail;
        }
    }

    /// The length of the first word of `src`.
    fn word_len(&self, src: &[Ch]) -> Result<usize, RecipeError> {
        Ok(self.find_top(src, ' ')?.unwrap_or(src.len()))
    }

    /// The index of the first `target` outside quotes and `${...}` and not escaped. A
    /// `target` of `' '` finds any whitespace.
    fn find_top(&self, src: &[Ch], target: char) -> Result<Option<usize>, RecipeError> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Single,
            Double,
            Brace,
        }
        let hit = |c: char| {
            if target == ' ' {
                c.is_whitespace()
            } else {
                c == target
            }
        };
        let mut stack: Vec<(State, Pos)> = Vec::new();
        let mut i = 0;
        while let Some(&Ch { c, pos }) = src.get(i) {
            let brace_next = src.get(i + 1).is_some_and(|n| n.c == '{');
            match stack.last().map(|s| s.0) {
                Some(State::Single) => {
                    if c == '\'' {
                        stack.pop();
                    }
                }
                Some(State::Double) => {
                    if c == self.escape {
                        i += 1;
                    } else if c == '"' {
                        stack.pop();
                    } else if c == '$' && brace_next {
                        stack.push((State::Brace, pos));
                        i += 1;
                    }
                }
                state => {
                    if state.is_none() && hit(c) {
                        return Ok(Some(i));
                    }
                    if c == self.escape {
                        i += 1;
                    } else if c == '\'' {
                        stack.push((State::Single, pos));
                    } else if c == '"' {
                        stack.push((State::Double, pos));
                    } else if c == '$' && brace_next {
                        stack.push((State::Brace, pos));
                        i += 1;
                    } else if c == '}' && state.is_some() {
                        stack.pop();
                    }
                }
            }
            i += 1;
        }
        match stack.last() {
            None => Ok(None),
            Some((State::Single, pos)) => Err(self.err(*pos, "unterminated single quote")),
            Some((State::Double, pos)) => Err(self.err(*pos, "unterminated double quote")),
            Some((State::Brace, pos)) => Err(self.err(*pos, "unterminated '${': expected '}'")),
        }
    }

    /// Resolves a word written in a recipe: quotes, escapes and variables. Whitespace in
    /// it is literal. `fallback` is the position of an empty word.
    fn word(&self, src: &[Ch], fallback: Pos) -> Result<Word, RecipeError> {
        let mut parser = WordParser {
            parser: self,
            src,
            i: 0,
            quotes: true,
            depth: 0,
        };
        Ok(Word {
            pos: start(src, fallback),
            parts: parser.parts(None)?,
        })
    }

    /// Resolves an element of a JSON array: variables only, no quotes; the escape character
    /// only escapes `$` (and `}` inside `${...}`).
    fn json_word(&self, s: &str, pos: Pos) -> Result<Word, RecipeError> {
        let src: Vec<Ch> = s.chars().map(|c| Ch { c, pos }).collect();
        let mut parser = WordParser {
            parser: self,
            src: &src,
            i: 0,
            quotes: false,
            depth: 0,
        };
        Ok(Word {
            pos,
            parts: parser.parts(None)?,
        })
    }
}

/// The builder of a [`Word`]'s parts, merging adjacent literals.
#[derive(Default)]
struct Parts(Vec<Part>);

impl Parts {
    fn lit(&mut self, c: char) {
        if let Some(Part::Lit(s)) = self.0.last_mut() {
            s.push(c);
        } else {
            self.0.push(Part::Lit(c.to_string()));
        }
    }
}

struct WordParser<'a> {
    parser: &'a Parser<'a>,
    src: &'a [Ch],
    i: usize,
    /// Whether quotes are syntax (recipe words) or literal (JSON elements).
    quotes: bool,
    depth: usize,
}

impl WordParser<'_> {
    fn bump(&mut self) -> Option<Ch> {
        let ch = self.src.get(self.i).copied();
        self.i += usize::from(ch.is_some());
        ch
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.i).map(|c| c.c)
    }

    /// Parses up to the end, or when `open` (the position of a `${`) is given, up to the
    /// `}` closing it.
    fn parts(&mut self, open: Option<Pos>) -> Result<Vec<Part>, RecipeError> {
        let escape = self.parser.escape;
        let mut parts = Parts::default();
        while let Some(ch) = self.bump() {
            match ch.c {
                '}' if open.is_some() => return Ok(parts.0),
                c if c == escape => {
                    if self.quotes {
                        // An escape at the very end escapes nothing and is dropped.
                        if let Some(next) = self.bump() {
                            parts.lit(next.c);
                        }
                    } else {
                        match self.peek() {
                            Some(next) if next == '$' || (next == '}' && open.is_some()) => {
                                self.i += 1;
                                parts.lit(next);
                            }
                            _ => parts.lit(c),
                        }
                    }
                }
                '\'' if self.quotes => loop {
                    match self.bump() {
                        None => return Err(self.parser.err(ch.pos, "unterminated single quote")),
                        Some(Ch { c: '\'', .. }) => break,
                        Some(next) => parts.lit(next.c),
                    }
                },
                '"' if self.quotes => self.double(ch.pos, &mut parts)?,
                '$' => self.dollar(ch.pos, &mut parts)?,
                c => parts.lit(c),
            }
        }
        match open {
            Some(pos) => Err(self.parser.err(pos, "unterminated '${': expected '}'")),
            None => Ok(parts.0),
        }
    }

    /// The rest of a double-quoted string: the escape character escapes only `"`, `$` and
    /// itself; variables are expanded.
    fn double(&mut self, open: Pos, parts: &mut Parts) -> Result<(), RecipeError> {
        let escape = self.parser.escape;
        loop {
            let Some(ch) = self.bump() else {
                return Err(self.parser.err(open, "unterminated double quote"));
            };
            match ch.c {
                '"' => return Ok(()),
                '$' => self.dollar(ch.pos, parts)?,
                c if c == escape => match self.peek() {
                    Some(next) if next == '"' || next == '$' || next == escape => {
                        self.i += 1;
                        parts.lit(next);
                    }
                    _ => parts.lit(c),
                },
                c => parts.lit(c),
            }
        }
    }

    /// After a `$` at `open`.
    fn dollar(&mut self, open: Pos, parts: &mut Parts) -> Result<(), RecipeError> {
        match self.peek() {
            Some('{') => {
                self.i += 1;
                self.braced(open, parts)
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name = self.name();
                parts.0.push(Part::Var {
                    name,
                    op: VarOp::Plain,
                });
                Ok(())
            }
            _ => {
                parts.lit('$');
                Ok(())
            }
        }
    }

    /// After a `${` at `open`.
    fn braced(&mut self, open: Pos, parts: &mut Parts) -> Result<(), RecipeError> {
        let err = |pos, message: &str| self.parser.err(pos, message);
        const UNTERMINATED: &str = "unterminated '${': expected '}'";
        let name = self.name();
        if name.is_empty() {
            return Err(match self.bump() {
                None => err(open, UNTERMINATED),
                Some(ch) => err(
                    ch.pos,
                    &format!("invalid variable name in '${{': unexpected '{}'", ch.c),
                ),
            });
        }
        let unsupported = |ch: Ch, op: &str| {
            err(
                ch.pos,
                &format!(
                    "unsupported '{op}' in '${{{name}...}}': expected '}}' or one of :-, -, :+, +, \
                     :?, ? (as in ${{{name}:-default}})"
                ),
            )
        };
        let (op, if_empty) = match self.bump() {
            None => return Err(err(open, UNTERMINATED)),
            Some(Ch { c: '}', .. }) => {
                parts.0.push(Part::Var {
                    name,
                    op: VarOp::Plain,
                });
                return Ok(());
            }
            Some(colon @ Ch { c: ':', .. }) => match self.bump() {
                Some(Ch {
                    c: op @ ('-' | '+' | '?'),
                    ..
                }) => (op, true),
                Some(other) => return Err(unsupported(other, &format!(":{}", other.c))),
                None => return Err(unsupported(colon, ":")),
            },
            Some(Ch {
                c: op @ ('-' | '+' | '?'),
                ..
            }) => (op, false),
            Some(other) => return Err(unsupported(other, &other.c.to_string())),
        };
        if self.depth >= MAX_DEPTH {
            return Err(err(open, "variable substitutions are nested too deeply"));
        }
        let pos = self.src.get(self.i).map_or(open, |c| c.pos);
        self.depth += 1;
        let inner = self.parts(Some(open))?;
        self.depth -= 1;
        let word = Word { pos, parts: inner };
        let op = match op {
            '-' => VarOp::Default { word, if_empty },
            '+' => VarOp::Alternate { word, if_empty },
            _ => VarOp::Required {
                message: word,
                if_empty,
            },
        };
        parts.0.push(Part::Var { name, op });
        Ok(())
    }

    /// Reads `[A-Za-z_][A-Za-z0-9_]*`, possibly empty.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            let ok =
                c == '_' || c.is_ascii_alphabetic() || (!name.is_empty() && c.is_ascii_digit());
            if !ok {
                break;
            }
            name.push(c);
            self.i += 1;
        }
        name
    }
}

/// Parses a JSON array of strings, giving each string with its position.
fn json_array(src: &[Ch]) -> Result<Vec<(Pos, String)>, JsonError> {
    let mut json = Json { src, i: 0 };
    json.ws();
    if !json.eat('[') {
        return Err(JsonError::Invalid);
    }
    let mut items = Vec::new();
    let mut not_string = None;
    json.ws();
    if !json.eat(']') {
        loop {
            json.ws();
            let pos = json.src.get(json.i).map(|c| c.pos);
            if json.peek() == Some('"') {
                items.push((pos.unwrap_or(START), json.string()?));
            } else {
                json.value(0)?;
                not_string = not_string.or(pos);
            }
            json.ws();
            if json.eat(']') {
                break;
            }
            if !json.eat(',') {
                return Err(JsonError::Invalid);
            }
        }
    }
    json.ws();
    if json.i < src.len() {
        return Err(JsonError::Invalid);
    }
    match not_string {
        Some(pos) => Err(JsonError::NotStrings(pos)),
        None => Ok(items),
    }
}

/// A strict JSON reader over a logical line.
struct Json<'a> {
    src: &'a [Ch],
    i: usize,
}

impl Json<'_> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.i).map(|c| c.c)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        self.i += usize::from(c.is_some());
        c
    }

    fn eat(&mut self, c: char) -> bool {
        let ok = self.peek() == Some(c);
        self.i += usize::from(ok);
        ok
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.i += 1;
        }
    }

    /// Checks any JSON value without keeping it.
    fn value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::Invalid);
        }
        match self.peek() {
            Some('"') => self.string().map(drop),
            Some('[') => self.sequence(']', depth, |json, depth| json.value(depth)),
            Some('{') => self.sequence('}', depth, |json, depth| {
                json.string()?;
                json.ws();
                if !json.eat(':') {
                    return Err(JsonError::Invalid);
                }
                json.ws();
                json.value(depth)
            }),
            Some('t') => self.keyword("true"),
            Some('f') => self.keyword("false"),
            Some('n') => self.keyword("null"),
            Some('-' | '0'..='9') => self.number(),
            _ => Err(JsonError::Invalid),
        }
    }

    /// `[...]` or `{...}` after its opening bracket, with `item` for each element.
    fn sequence(
        &mut self,
        close: char,
        depth: usize,
        item: impl Fn(&mut Self, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.i += 1;
        self.ws();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.ws();
            item(self, depth + 1)?;
            self.ws();
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(',') {
                return Err(JsonError::Invalid);
            }
        }
    }

    fn keyword(&mut self, word: &str) -> Result<(), JsonError> {
        for c in word.chars() {
            if !self.eat(c) {
                return Err(JsonError::Invalid);
            }
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let digits = |json: &mut Self| {
            let start = json.i;
            while json.peek().is_some_and(|c| c.is_ascii_digit()) {
                json.i += 1;
            }
            if json.i == start {
                Err(JsonError::Invalid)
            } else {
                Ok(())
            }
        };
        self.eat('-');
        if !self.eat('0') {
            digits(self)?;
        }
        if self.eat('.') {
            digits(self)?;
        }
        if self.eat('e') || self.eat('E') {
            if !self.eat('+') {
                self.eat('-');
            }
            digits(self)?;
        }
        Ok(())
    }

    /// A string, with its escapes resolved. Invalid surrogates become U+FFFD, as in Go.
    fn string(&mut self) -> Result<String, JsonError> {
        if !self.eat('"') {
            return Err(JsonError::Invalid);
        }
        let mut out = String::new();
        loop {
            match self.bump().ok_or(JsonError::Invalid)? {
                '"' => return Ok(out),
                '\\' => match self.bump().ok_or(JsonError::Invalid)? {
                    c @ ('"' | '\\' | '/') => out.push(c),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let unit = self.hex4()?;
                        out.push(self.code_point(unit));
                    }
                    _ => return Err(JsonError::Invalid),
                },
                c if c < ' ' => return Err(JsonError::Invalid),
                c => out.push(c),
            }
        }
    }

    /// Completes a `\uXXXX` escape, reading the low half of a surrogate pair if it follows.
    fn code_point(&mut self, unit: u32) -> char {
        if (0xD800..0xDC00).contains(&unit) {
            let save = self.i;
            if self.eat('\\')
                && self.eat('u')
                && let Ok(low @ 0xDC00..0xE000) = self.hex4()
            {
                let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(c).unwrap_or('\u{fffd}');
            }
            self.i = save;
        }
        char::from_u32(unit).unwrap_or('\u{fffd}')
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = self
                .bump()
                .and_then(|c| c.to_digit(16))
                .ok_or(JsonError::Invalid)?;
            value = value * 16 + digit;
        }
        Ok(value)
    }
}

fn is_blank(line: &[char]) -> bool {
    line.iter().all(|c| c.is_whitespace())
}

fn is_comment(line: &[char]) -> bool {
    line.iter().find(|c| !c.is_whitespace()) == Some(&'#')
}

fn trim(src: &[Ch]) -> &[Ch] {
    let start = src
        .iter()
        .position(|c| !c.c.is_whitespace())
        .unwrap_or(src.len());
    let end = src
        .iter()
        .rposition(|c| !c.c.is_whitespace())
        .map_or(start, |k| k + 1);
    src.get(start..end).unwrap_or_default()
}

fn starts_with(src: &[Ch], prefix: &str) -> bool {
    let mut src = src.iter();
    prefix.chars().all(|p| src.next().is_some_and(|c| c.c == p))
}

fn string_of(src: &[Ch]) -> String {
    src.iter().map(|c| c.c).collect()
}

/// The position of the first char of `src`, or `fallback` when it is empty.
fn start(src: &[Ch], fallback: Pos) -> Pos {
    src.first().map_or(fallback, |c| c.pos)
}

/// The position just after the last char of `line`: where a missing argument would be.
fn end_pos(line: &[Ch], fallback: Pos) -> Pos {
    line.last().map_or(fallback, after)
}

/// The position just after `ch`.
fn after(ch: &Ch) -> Pos {
    Pos {
        line: ch.pos.line,
        col: ch.pos.col + 1,
    }
}

/// The text of arguments with runs of whitespace outside quotes collapsed to one space.
fn collapse(src: &[Ch], escape: char) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut escaped = false;
    let mut space = false;
    for &Ch { c, .. } in src {
        if quote.is_none() && !escaped && c.is_whitespace() {
            space = true;
            continue;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
        }
        out.push(c);
        if escaped {
            escaped = false;
        } else if c == escape && quote != Some('\'') {
            escaped = true;
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        }
    }
    out
}

/// Docker's stage names: `^[a-z][a-z0-9-_.]*$`.
fn is_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Parses a `--chmod` mode: octal digits only, at most `0o7777`.
fn parse_mode(mode: &str) -> Option<u32> {
    if mode.is_empty() {
        return None;
    }
    mode.chars().try_fold(0u32, |acc, c| {
        let value = acc * 8 + c.to_digit(8)?;
        (value <= 0o7777).then_some(value)
    })
}

/// The message for an unknown keyword, with a suggestion when one is close.
fn unknown_instruction(written: &str, upper: &str, rest: &[Ch]) -> String {
    match upper {
        "HEALTHCHECK" => {
            return "HEALTHCHECK is not supported by Capsule: Capsule has no health checks"
                .to_owned();
        }
        "ONBUILD" => {
            return "ONBUILD is not supported by Capsule: Capsule has no build triggers".to_owned();
        }
        "MAINTAINER" => {
            let who = string_of(rest);
            let who = if who.is_empty() { "..." } else { who.as_str() };
            return format!(
                "MAINTAINER is deprecated and not supported by Capsule: use LABEL maintainer=\"{who}\""
            );
        }
        _ => {}
    }
    let mut message = format!(
        "unknown instruction '{written}': expected one of {}",
        SUPPORTED.join(", ")
    );
    let best = SUPPORTED
        .iter()
        .map(|k| (edit_distance(upper, k), k))
        .min_by_key(|&(d, _)| d);
    if let Some((_, keyword)) = best.filter(|&(d, _)| d <= 2) {
        message.push_str(&format!(" (did you mean {keyword}?)"));
    }
    message
}

/// Levenshtein distance, in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "Capsulefile";

    fn ok(text: &str) -> Recipe {
        parse(FILE, text).expect("valid recipe")
    }

    /// The error for `text`, as displayed.
    fn err(text: &str) -> String {
        parse(FILE, text).expect_err("invalid recipe").to_string()
    }

    /// The instruction after a `FROM scratch` line (so it starts on line 2).
    fn one(text: &str) -> Instruction {
        let mut recipe = ok(&format!("FROM scratch\n{text}"));
        assert_eq!(recipe.instructions.len(), 2, "{text:?}");
        recipe.instructions.remove(1)
    }

    /// The error for `text` after a `FROM scratch` line.
    fn one_err(text: &str) -> String {
        err(&format!("FROM scratch\n{text}"))
    }

    fn kind(text: &str) -> Kind {
        one(text).kind
    }

    fn pos(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }

    fn lit(word: &Word) -> String {
        word.literal().expect("literal word")
    }

    fn lits(words: &[Word]) -> Vec<String> {
        words.iter().map(lit).collect()
    }

    fn lit_word(line: usize, col: usize, s: &str) -> Word {
        Word {
            pos: pos(line, col),
            parts: vec![Part::Lit(s.to_owned())],
        }
    }

    fn expand(word: &Word, vars: &[(&str, &str)]) -> Result<String, RecipeError> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        word.expand(FILE, &lookup)
    }

    /// The single word of `ENV X=<word>`.
    fn env_word(word: &str) -> Word {
        match kind(&format!("ENV X={word}")) {
            Kind::Env(mut pairs) => pairs.remove(0).1,
            other => panic!("{other:?}"),
        }
    }

    fn env_err(word: &str) -> String {
        one_err(&format!("ENV X={word}"))
    }

    fn copy(text: &str) -> Copy {
        match kind(text) {
            Kind::Copy(copy) => copy,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_whole_recipe() {
        let recipe = ok("\
# syntax=docker/dockerfile:1
FROM alpine:3.20 AS build
WORKDIR /src
COPY --chmod=644 a.txt /app/
RUN make all
CMD [\"/app/run\", \"--port\", \"80\"]
");
        assert_eq!(recipe.file, FILE);
        assert_eq!(recipe.escape, '\\');
        assert_eq!(recipe.syntax.as_deref(), Some("docker/dockerfile:1"));
        let keywords: Vec<&str> = recipe
            .instructions
            .iter()
            .map(|i| i.keyword.as_str())
            .collect();
        assert_eq!(keywords, ["FROM", "WORKDIR", "COPY", "RUN", "CMD"]);
        let copy = &recipe.instructions[2];
        assert_eq!(copy.pos, pos(4, 1));
        assert_eq!(copy.text, "COPY --chmod=644 a.txt /app/");
        assert_eq!(
            copy.kind,
            Kind::Copy(Copy {
                is_add: false,
                sources: vec![lit_word(4, 18, "a.txt")],
                dest: lit_word(4, 24, "/app/"),
                from: None,
                chmod: Some(0o644),
                chown: None,
                link: false,
            })
        );
        assert_eq!(
            recipe.instructions[0].kind,
            Kind::From {
                image: lit_word(2, 6, "alpine:3.20"),
                alias: Some("build".to_owned()),
                platform: None,
            }
        );
        assert_eq!(
            recipe.instructions[3].kind,
            Kind::Run(Command::Shell("make all".to_owned()))
        );
        assert_eq!(
            recipe.instructions[4].kind,
            Kind::Cmd(Command::Exec(vec![
                "/app/run".to_owned(),
                "--port".to_owned(),
                "80".to_owned()
            ]))
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let recipe = ok("from scratch\nrUn echo hi\nCopy a b\n");
        let i = &recipe.instructions[1];
        assert_eq!(i.keyword, "RUN");
        assert_eq!(i.text, "RUN echo hi");
        assert_eq!(recipe.instructions[2].keyword, "COPY");
    }

    #[test]
    fn indentation_and_text() {
        let i = one("   RUN   echo   \"a   b\"  'c   d'   e\\   f   ");
        assert_eq!(i.pos, pos(2, 4));
        assert_eq!(i.text, "RUN echo \"a   b\" 'c   d' e\\  f");
        // The shell form keeps the command as written.
        assert_eq!(
            i.kind,
            Kind::Run(Command::Shell(
                "echo   \"a   b\"  'c   d'   e\\   f".to_owned()
            ))
        );
        assert_eq!(one("EXPOSE\t80\t\t443").text, "EXPOSE 80 443");
        assert_eq!(one("cmd [ \"a\" ,  \"b\" ]").text, "CMD [ \"a\" , \"b\" ]");
    }

    #[test]
    fn directives() {
        let r = ok("# escape=`\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        let r = ok("#ESCAPE = `\n#  Syntax=x/y:1  \n# check=skip=all\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        assert_eq!(r.syntax.as_deref(), Some("x/y:1"));
        let r = ok("   # escape=`\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        let r = ok("#!/usr/bin/env capsule\n# escape=`\nFROM scratch\n");
        assert_eq!(r.escape, '`');
        // After a comment, a blank line or an instruction, directives are comments.
        for text in [
            "# a comment\n# escape=`\nFROM scratch\n",
            "\n# escape=`\nFROM scratch\n",
            "FROM scratch\n# escape=`\n",
            "# unknown=x\n# escape=`\nFROM scratch\n",
            "#\n# escape=`\nFROM scratch\n",
        ] {
            let r = ok(text);
            assert_eq!(r.escape, '\\', "{text:?}");
        }
        // A directive inside an instruction is a comment too.
        let r = ok("FROM scratch\nRUN a \\\n# escape=`\n b\n");
        assert_eq!(r.escape, '\\');
        assert_eq!(r.instructions[1].text, "RUN a b");
        // An unknown directive is a comment and ends the directives.
        let r = ok("# foo=bar\n# syntax=x\nFROM scratch\n");
        assert_eq!(r.syntax, None);
        // A directive without value is a comment.
        let r = ok("# escape=\nFROM scratch\n");
        assert_eq!(r.escape, '\\');
    }

    #[test]
    fn directive_errors() {
        assert_eq!(
            err("# escape=x\nFROM scratch\n"),
            "Capsulefile:1:10: invalid escape character 'x': expected '\\' or '`'"
        );
        assert_eq!(
            err("#  escape =  ab \nFROM scratch\n"),
            "Capsulefile:1:14: invalid escape character 'ab': expected '\\' or '`'"
        );
        assert_eq!(
            err("# escape=`\n  # Escape=\\\nFROM scratch\n"),
            "Capsulefile:2:3: only one 'escape' parser directive is allowed"
        );
        assert_eq!(
            err("# syntax=a\n# syntax=b\nFROM scratch\n"),
            "Capsulefile:2:1: only one 'syntax' parser directive is allowed"
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let r = ok("\n# c1\n  # c2\nFROM scratch\n\n\t\n# c3\nRUN x # not a comment\n");
        assert_eq!(r.instructions.len(), 2);
        assert_eq!(r.instructions[1].pos, pos(8, 1));
        assert_eq!(
            r.instructions[1].kind,
            Kind::Run(Command::Shell("x # not a comment".to_owned()))
        );
    }

    #[test]
    fn continuations() {
        let r =
            ok("FROM scratch\nRUN apt-get update && \\\n    apt-get install -y \\\n      curl\n");
        let i = &r.instructions[1];
        assert_eq!(i.pos, pos(2, 1));
        assert_eq!(
            i.kind,
            Kind::Run(Command::Shell(
                "apt-get update &&     apt-get install -y       curl".to_owned()
            ))
        );
        assert_eq!(i.text, "RUN apt-get update && apt-get install -y curl");
        // The escape joins directly, and may be followed by spaces and tabs.
        assert_eq!(
            kind("RUN ab\\ \t\ncd"),
            Kind::Run(Command::Shell("abcd".to_owned()))
        );
        // Comment and blank lines inside an instruction are dropped.
        let i = one("RUN a \\\n# comment\n   # indented comment\n\n   \\\n b");
        assert_eq!(i.kind, Kind::Run(Command::Shell("a     b".to_owned())));
        assert_eq!(i.text, "RUN a b");
        // An escaped escape at the end does not continue the line.
        let r = ok("FROM scratch\nRUN echo \\\\\nRUN two\n");
        assert_eq!(r.instructions.len(), 3);
        assert_eq!(
            r.instructions[1].kind,
            Kind::Run(Command::Shell("echo \\\\".to_owned()))
        );
        // A line of only the escape joins too.
        let r = ok("FROM scratch\n\\\nRUN x\n");
        assert_eq!(r.instructions[1].text, "RUN x");
        // The next instruction starts after the joined lines.
        let r = ok("FROM scratch\nENV A=1 \\\n  B=2\nRUN x\n");
        assert_eq!(r.instructions[2].pos, pos(4, 1));
    }

    #[test]
    fn positions_through_continuations() {
        // The error is reported where the bad flag is, on the third line.
        assert_eq!(
            one_err("COPY \\\n  --chmod=644 \\\n    --frm=x a b"),
            "Capsulefile:4:5: unknown flag '--frm' for COPY: expected one of --from, \
             --chmod, --chown, --link"
        );
        match kind("COPY a \\\n\n# c\n     b") {
            Kind::Copy(c) => {
                assert_eq!(c.sources[0].pos, pos(2, 6));
                assert_eq!(c.dest.pos, pos(5, 6));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            one_err("ENV A=\"x \\\n  y"),
            "Capsulefile:2:7: unterminated double quote"
        );
    }

    #[test]
    fn continuation_at_end_of_file() {
        let message = "unexpected end of file after a line continuation";
        assert_eq!(
            err("FROM scratch\nRUN a \\"),
            format!("Capsulefile:2:7: {message}")
        );
        assert_eq!(
            err("FROM scratch\nRUN a \\\n\n# comment\n   \n"),
            format!("Capsulefile:2:7: {message}")
        );
        assert_eq!(
            err("FROM scratch\nRUN a \\\n  b \\  \n"),
            format!("Capsulefile:3:5: {message}")
        );
    }

    #[test]
    fn backtick_escape_and_windows_paths() {
        let r = ok("\
# escape=`

FROM mcr.microsoft.com/windows/servercore
COPY testfile.txt c:\\
RUN dir c:\\ `
    && echo `\"done`\"
ENV P=C:\\Program` Files\\app
");
        assert_eq!(r.escape, '`');
        let copy = match &r.instructions[1].kind {
            Kind::Copy(c) => c.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(lits(&copy.sources), ["testfile.txt"]);
        assert_eq!(lit(&copy.dest), "c:\\");
        assert_eq!(r.instructions[2].pos, pos(5, 1));
        assert_eq!(
            r.instructions[2].kind,
            Kind::Run(Command::Shell("dir c:\\     && echo `\"done`\"".to_owned()))
        );
        assert_eq!(r.instructions[2].text, "RUN dir c:\\ && echo `\"done`\"");
        match &r.instructions[3].kind {
            Kind::Env(pairs) => {
                assert_eq!(pairs[0].0, "P");
                assert_eq!(lit(&pairs[0].1), "C:\\Program Files\\app");
            }
            other => panic!("{other:?}"),
        }
        // With the default escape, the same recipe continues lines by mistake, as in Docker.
        assert_eq!(
            err("FROM x\nCOPY testfile.txt c:\\\nRUN dir c:\\\n"),
            "Capsulefile:3:11: unexpected end of file after a line continuation"
        );
    }

    #[test]
    fn line_endings_and_bom() {
        let r = ok("\u{feff}# escape=`\r\nFROM scratch\r\nRUN a `\r\n  b\r\n");
        assert_eq!(r.escape, '`');
        assert_eq!(r.instructions[0].pos, pos(2, 1));
        assert_eq!(
            r.instructions[1].kind,
            Kind::Run(Command::Shell("a   b".to_owned()))
        );
        let r = ok("\u{feff}FROM scratch");
        assert_eq!(r.instructions[0].pos, pos(1, 1));
    }

    #[test]
    fn exec_form() {
        assert_eq!(
            kind("ENTRYPOINT [\"/bin/app\"]"),
            Kind::Entrypoint(Command::Exec(vec!["/bin/app".to_owned()]))
        );
        assert_eq!(
            kind("RUN [\"echo\", \"$HOME\"]"),
            Kind::Run(Command::Exec(vec!["echo".to_owned(), "$HOME".to_owned()]))
        );
        assert_eq!(kind("CMD []"), Kind::Cmd(Command::Exec(vec![])));
        assert_eq!(
            kind("ENTRYPOINT [ ]"),
            Kind::Entrypoint(Command::Exec(vec![]))
        );
        assert_eq!(
            kind(r#"CMD ["a\"b", "c\\d", "e\/f", "\b\f\n\r\t", "\u00e9\u20AC", "\ud83d\ude00"]"#),
            Kind::Cmd(Command::Exec(
                ["a\"b", "c\\d", "e/f", "\u{8}\u{c}\n\r\t", "é€", "😀"]
                    .map(str::to_owned)
                    .to_vec()
            ))
        );
        // Lone surrogates become U+FFFD, as in Go.
        assert_eq!(
            kind(r#"CMD ["\ud83dx", "\ude00", "\ud83d\u0041"]"#),
            Kind::Cmd(Command::Exec(
                ["\u{fffd}x", "\u{fffd}", "\u{fffd}A"]
                    .map(str::to_owned)
                    .to_vec()
            ))
        );
        // Continued over lines.
        assert_eq!(
            kind("CMD [\"a\", \\\n     \"b\"]"),
            Kind::Cmd(Command::Exec(vec!["a".to_owned(), "b".to_owned()]))
        );
    }

    #[test]
    fn a_stage_name_names_one_stage() {
        assert_eq!(
            err("FROM scratch AS a\nFROM scratch AS b\nFROM scratch AS A\n"),
            "Capsulefile:3:1: duplicate stage name 'a': line 1 already names a stage 'a'"
        );
        ok("FROM scratch AS a\nFROM a AS b\n");
    }

    #[test]
    fn malformed_json_is_shell_form() {
        for args in [
            "[ -f /x ] && echo yes",
            "[\"a\" \"b\"]",
            "[\"a\",]",
            "['a']",
            "[\"a\"] && more",
            "[\"\\x\"]",
            "[\"a\tb\"]",
            "[\"unterminated]",
            "[",
            "[1,",
            "[01]",
        ] {
            assert_eq!(
                kind(&format!("RUN {args}")),
                Kind::Run(Command::Shell(args.to_owned())),
                "{args}"
            );
            assert_eq!(
                kind(&format!("CMD {args}")),
                Kind::Cmd(Command::Shell(args.to_owned())),
                "{args}"
            );
        }
    }

    #[test]
    fn json_arrays_of_non_strings() {
        assert_eq!(
            one_err("CMD [\"a\", 1]"),
            "Capsulefile:2:11: CMD: a JSON array must contain only strings"
        );
        for value in [
            "1.5e3",
            "-0",
            "true",
            "false",
            "null",
            "[\"x\", []]",
            "{\"k\": [1]}",
            "{}",
        ] {
            assert!(
                one_err(&format!("RUN [{value}]"))
                    .ends_with("RUN: a JSON array must contain only strings"),
                "{value}"
            );
        }
        assert_eq!(
            one_err("COPY [\"a\", {}]"),
            "Capsulefile:2:12: COPY: a JSON array must contain only strings"
        );
        assert_eq!(
            one_err("VOLUME [null]"),
            "Capsulefile:2:9: VOLUME: a JSON array must contain only strings"
        );
        assert_eq!(
            one_err("SHELL [\"sh\", false]"),
            "Capsulefile:2:14: SHELL: a JSON array must contain only strings"
        );
        // Deep nesting is refused, not overflowed.
        let deep = format!("RUN [{}]", "[".repeat(10_000));
        assert_eq!(kind(&deep), Kind::Run(Command::Shell(deep[4..].to_owned())));
    }

    #[test]
    fn commands_need_arguments() {
        assert_eq!(one_err("RUN"), "Capsulefile:2:4: RUN needs a command");
        assert_eq!(one_err("RUN []"), "Capsulefile:2:5: RUN needs a command");
        assert_eq!(one_err("CMD   "), "Capsulefile:2:4: CMD needs a command");
        assert_eq!(
            one_err("ENTRYPOINT"),
            "Capsulefile:2:11: ENTRYPOINT needs a command"
        );
    }

    #[test]
    fn shell_instruction() {
        assert_eq!(
            kind("SHELL [\"/bin/sh\", \"-ec\"]"),
            Kind::Shell(vec!["/bin/sh".to_owned(), "-ec".to_owned()])
        );
        assert_eq!(
            one_err("SHELL /bin/sh -c"),
            "Capsulefile:2:7: SHELL must be written as a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"]"
        );
        assert_eq!(
            one_err("SHELL [\"sh\""),
            "Capsulefile:2:7: SHELL must be written as a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"]"
        );
        assert_eq!(
            one_err("SHELL"),
            "Capsulefile:2:6: SHELL must be written as a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"]"
        );
        assert_eq!(
            one_err("SHELL []"),
            "Capsulefile:2:7: SHELL needs at least a program, e.g. SHELL [\"/bin/sh\", \"-c\"]"
        );
    }

    #[test]
    fn quotes_and_escapes() {
        let cases = [
            ("plain", "plain"),
            ("\"a b\"", "a b"),
            ("'a b'", "a b"),
            ("'$HOME'", "$HOME"),
            ("\\$HOME", "$HOME"),
            ("a\\ b", "a b"),
            ("\\\"", "\""),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\\\b\"", "a\\b"),
            ("\"a\\$b\"", "a$b"),
            ("\"a\\nb\"", "a\\nb"),
            ("'a\\'", "a\\"),
            ("\"\"", ""),
            ("''", ""),
            ("a\"b c\"'d e'f", "ab cd ef"),
            ("\"it's\"", "it's"),
            ("'say \"hi\"'", "say \"hi\""),
            ("$", "$"),
            ("a$", "a$"),
            ("$1", "$1"),
            ("$-x", "$-x"),
            ("\"$\"", "$"),
            ("x=y", "x=y"),
            ("é\\€", "é€"),
        ];
        for (written, expected) in cases {
            let word = env_word(written);
            assert_eq!(word.literal().as_deref(), Some(expected), "{written}");
            assert_eq!(word.pos, pos(2, 7), "{written}");
        }
    }

    #[test]
    fn quote_errors() {
        assert_eq!(
            env_err("\"abc"),
            "Capsulefile:2:7: unterminated double quote"
        );
        assert_eq!(
            env_err("ab'c"),
            "Capsulefile:2:9: unterminated single quote"
        );
        assert_eq!(
            env_err("a${B"),
            "Capsulefile:2:8: unterminated '${': expected '}'"
        );
        assert_eq!(
            env_err("\"${B:-x\""),
            "Capsulefile:2:14: unterminated double quote"
        );
        assert_eq!(
            one_err("COPY \"a b /c"),
            "Capsulefile:2:6: unterminated double quote"
        );
        assert_eq!(
            one_err("WORKDIR '/a"),
            "Capsulefile:2:9: unterminated single quote"
        );
    }

    #[test]
    fn variables() {
        let var = |name: &str, op: VarOp| Part::Var {
            name: name.to_owned(),
            op,
        };
        let w = env_word("$A/${B}x$_c1-");
        assert_eq!(
            w.parts,
            vec![
                var("A", VarOp::Plain),
                Part::Lit("/".to_owned()),
                var("B", VarOp::Plain),
                Part::Lit("x".to_owned()),
                var("_c1", VarOp::Plain),
                Part::Lit("-".to_owned()),
            ]
        );
        assert_eq!(w.literal(), None);
        let w = env_word("${A:-d f}");
        assert_eq!(
            w.parts,
            vec![var(
                "A",
                VarOp::Default {
                    word: lit_word(2, 12, "d f"),
                    if_empty: true
                }
            )]
        );
        let ops = [
            ("${A-w}", "-", false),
            ("${A:+w}", "+", true),
            ("${A+w}", "+", false),
            ("${A:?w}", "?", true),
            ("${A?w}", "?", false),
        ];
        for (written, op, if_empty) in ops {
            let Part::Var { op: got, .. } = &env_word(written).parts[0] else {
                panic!("{written}");
            };
            let (word, got_empty) = match (op, got) {
                ("-", VarOp::Default { word, if_empty }) => (word, if_empty),
                ("+", VarOp::Alternate { word, if_empty }) => (word, if_empty),
                ("?", VarOp::Required { message, if_empty }) => (message, if_empty),
                _ => panic!("{written}: {got:?}"),
            };
            assert_eq!(lit(word), "w", "{written}");
            assert_eq!(*got_empty, if_empty, "{written}");
        }
        // Variables in double quotes are variables; in single quotes, text.
        assert_eq!(env_word("\"$A\"").literal(), None);
        assert_eq!(env_word("'${A}'").literal().as_deref(), Some("${A}"));
    }

    #[test]
    fn variable_expansion() {
        let vars = [("SET", "v"), ("EMPTY", ""), ("SP", "a b")];
        let cases = [
            ("$SET", "v"),
            ("${SET}x", "vx"),
            ("$UNSET", ""),
            ("a${UNSET}b", "ab"),
            ("${SET:-d}", "v"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "v"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:+a}", "a"),
            ("${EMPTY:+a}", ""),
            ("${UNSET:+a}", ""),
            ("${SET+a}", "a"),
            ("${EMPTY+a}", "a"),
            ("${UNSET+a}", ""),
            ("${SET:?m}", "v"),
            ("${EMPTY?m}", ""),
            ("${UNSET:-${SET}-x}", "v-x"),
            ("${UNSET:-${ALSO:-deep}}", "deep"),
            ("${UNSET:-\"q } \"}", "q } "),
            ("${UNSET:-a\\}b}", "a}b"),
            ("${UNSET:-'$SET'}", "$SET"),
            ("\"$SP\"", "a b"),
            ("$SET$SET", "vv"),
            ("$SET-1", "v-1"),
            ("${SET}1", "v1"),
            ("\\${SET}", "${SET}"),
        ];
        for (written, expected) in cases {
            let word = env_word(written);
            assert_eq!(
                expand(&word, &vars).expect("expands").as_str(),
                expected,
                "{written}"
            );
        }
        // A literal word expands to itself.
        assert_eq!(expand(&env_word("abc"), &[]).expect("expands"), "abc");
    }

    #[test]
    fn required_variables() {
        let vars = [("EMPTY", "")];
        let cases = [
            ("${X:?must be set}", "X: must be set"),
            ("${X?must be set}", "X: must be set"),
            ("${EMPTY:?\"needed\"}", "EMPTY: needed"),
            ("${X:?}", "X: variable is not set or empty"),
            ("${X?}", "X: variable is not set"),
            ("a${X:?set X to $EMPTY-something}", "X: set X to -something"),
        ];
        for (written, message) in cases {
            let word = env_word(written);
            let e = expand(&word, &vars).expect_err(written);
            assert_eq!(e.to_string(), format!("Capsulefile:2:7: {message}"));
            assert_eq!(e.pos, pos(2, 7));
            assert_eq!(e.file, FILE);
        }
    }

    #[test]
    fn variable_errors() {
        assert_eq!(
            env_err("${1}"),
            "Capsulefile:2:9: invalid variable name in '${': unexpected '1'"
        );
        assert_eq!(
            env_err("${}"),
            "Capsulefile:2:9: invalid variable name in '${': unexpected '}'"
        );
        assert_eq!(
            env_err("${A%.txt}"),
            "Capsulefile:2:10: unsupported '%' in '${A...}': expected '}' or one of :-, -, \
             :+, +, :?, ? (as in ${A:-default})"
        );
        assert!(env_err("${A:1}").starts_with("Capsulefile:2:11: unsupported ':1' in '${A...}'"));
        assert!(env_err("${A/x/y}").starts_with("Capsulefile:2:10: unsupported '/'"));
        assert!(env_err("${A#x}").starts_with("Capsulefile:2:10: unsupported '#'"));
        let deep = format!("{}x{}", "${A:-".repeat(40), "}".repeat(40));
        assert_eq!(
            env_err(&deep),
            "Capsulefile:2:167: variable substitutions are nested too deeply"
        );
    }

    #[test]
    fn word_display() {
        assert_eq!(
            env_word("a$B${C:-d}${E+f}${G?h}'$'").to_string(),
            "a${B}${C:-d}${E+f}${G?h}$"
        );
    }

    #[test]
    fn env() {
        let Kind::Env(pairs) = kind("ENV A=1 B=\"two words\" C= \"D\"=x 'E F'=g A.b-c=h") else {
            panic!()
        };
        let got: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.clone(), lit(v))).collect();
        let want = [
            ("A", "1"),
            ("B", "two words"),
            ("C", ""),
            ("D", "x"),
            ("E F", "g"),
            ("A.b-c", "h"),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(pairs[2].1.pos, pos(2, 25));
        // Legacy form: the value is the rest of the line, quotes resolved.
        let Kind::Env(pairs) = kind("ENV GREETING hello   \"big  world\"  $X") else {
            panic!()
        };
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].0, "GREETING");
        assert_eq!(
            expand(&pairs[0].1, &[("X", "!")]).expect("expands"),
            "hello   big  world  !"
        );
        assert_eq!(pairs[0].1.pos, pos(2, 14));
    }

    #[test]
    fn env_errors() {
        assert_eq!(
            one_err("ENV"),
            "Capsulefile:2:4: ENV needs at least one KEY=VALUE pair"
        );
        assert_eq!(
            one_err("ENV =x"),
            "Capsulefile:2:5: ENV needs a name before '='"
        );
        assert_eq!(
            one_err("ENV \"\"=x"),
            "Capsulefile:2:5: ENV needs a name before '='"
        );
        assert_eq!(
            one_err("ENV A=1 B"),
            "Capsulefile:2:9: expected KEY=VALUE, found 'B'"
        );
        assert_eq!(
            one_err("ENV ONLY"),
            "Capsulefile:2:9: ENV ONLY needs a value: ENV ONLY=VALUE"
        );
        assert_eq!(
            one_err("ENV $X=1"),
            "Capsulefile:2:5: ENV variable names cannot contain variables"
        );
        assert_eq!(
            one_err("ENV --x=1 A=b"),
            "Capsulefile:2:5: unknown flag '--x': ENV takes no flags"
        );
    }

    #[test]
    fn label() {
        let Kind::Label(pairs) = kind(
            "LABEL \"org.opencontainers.image.title\"=\"My app\" version=1.0 \\\n  \
             description='multi word'",
        ) else {
            panic!()
        };
        let got: Vec<(String, String)> = pairs.iter().map(|(k, v)| (lit(k), lit(v))).collect();
        assert_eq!(
            got,
            [
                ("org.opencontainers.image.title", "My app"),
                ("version", "1.0"),
                ("description", "multi word"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(pairs[0].0.pos, pos(2, 7));
        assert_eq!(pairs[2].0.pos, pos(3, 3));
        let Kind::Label(pairs) = kind("LABEL maintainer Jane Doe") else {
            panic!()
        };
        assert_eq!(lit(&pairs[0].0), "maintainer");
        assert_eq!(lit(&pairs[0].1), "Jane Doe");
        let Kind::Label(pairs) = kind("LABEL ${K}=$V") else {
            panic!()
        };
        assert_eq!(expand(&pairs[0].0, &[("K", "k")]).expect("expands"), "k");
        assert_eq!(
            one_err("LABEL"),
            "Capsulefile:2:6: LABEL needs at least one KEY=VALUE pair"
        );
        assert_eq!(
            one_err("LABEL =x"),
            "Capsulefile:2:7: LABEL needs a name before '='"
        );
        assert_eq!(
            one_err("LABEL a=b c"),
            "Capsulefile:2:11: expected KEY=VALUE, found 'c'"
        );
    }

    #[test]
    fn arg() {
        let r = ok("ARG BASE=alpine VERSION\nARG EMPTY= Q=\"a b\"\nFROM $BASE\n");
        let Kind::Arg(args) = &r.instructions[0].kind else {
            panic!()
        };
        assert_eq!(args[0].0, "BASE");
        assert_eq!(args[0].1.as_ref().map(lit).as_deref(), Some("alpine"));
        assert_eq!(args[1], ("VERSION".to_owned(), None));
        let Kind::Arg(args) = &r.instructions[1].kind else {
            panic!()
        };
        assert_eq!(args[0].0, "EMPTY");
        assert_eq!(
            args[0].1,
            Some(Word {
                pos: pos(2, 11),
                parts: vec![]
            })
        );
        assert_eq!(args[1].1.as_ref().map(lit).as_deref(), Some("a b"));
        let Kind::From { image, .. } = &r.instructions[2].kind else {
            panic!()
        };
        assert_eq!(
            expand(image, &[("BASE", "alpine")]).expect("expands"),
            "alpine"
        );
        assert_eq!(
            err("ARG\nFROM x"),
            "Capsulefile:1:4: ARG needs a name, e.g. ARG NAME or ARG NAME=DEFAULT"
        );
        assert_eq!(
            err("ARG =x\nFROM x"),
            "Capsulefile:1:5: ARG needs a name before '='"
        );
        assert_eq!(
            err("ARG $A\nFROM x"),
            "Capsulefile:1:5: ARG names cannot contain variables"
        );
        assert_eq!(
            err("ARG A=\"x\nFROM x"),
            "Capsulefile:1:7: unterminated double quote"
        );
    }

    #[test]
    fn from() {
        let Kind::From {
            image,
            alias,
            platform,
        } = ok("FROM --platform=$BUILDPLATFORM golang:1.22 as Builder_1.x").instructions[0]
            .kind
            .clone()
        else {
            panic!()
        };
        assert_eq!(lit(&image), "golang:1.22");
        assert_eq!(image.pos, pos(1, 32));
        assert_eq!(alias.as_deref(), Some("builder_1.x"));
        let platform = platform.expect("platform");
        assert_eq!(platform.pos, pos(1, 17));
        assert_eq!(
            expand(&platform, &[("BUILDPLATFORM", "wasi/wasm")]).expect("expands"),
            "wasi/wasm"
        );
        let Kind::From { alias, .. } = ok("FROM x AS a-b.c_d9").instructions[0].kind.clone() else {
            panic!()
        };
        assert_eq!(alias.as_deref(), Some("a-b.c_d9"));
        let Kind::From { image, alias, .. } = ok("FROM \"x y\"").instructions[0].kind.clone()
        else {
            panic!()
        };
        assert_eq!(lit(&image), "x y");
        assert_eq!(alias, None);
    }

    #[test]
    fn from_errors() {
        assert_eq!(
            err("FROM"),
            "Capsulefile:1:5: FROM needs an image, e.g. FROM scratch"
        );
        assert_eq!(
            err("FROM   \n"),
            "Capsulefile:1:5: FROM needs an image, e.g. FROM scratch"
        );
        assert_eq!(
            err("FROM img AS"),
            "Capsulefile:1:12: FROM ... AS needs a stage name"
        );
        assert_eq!(
            err("FROM img AS Bad!"),
            "Capsulefile:1:13: invalid stage name 'Bad!': it must start with a letter and \
             contain only letters, digits, '-', '_' and '.'"
        );
        assert!(err("FROM img AS 1st").starts_with("Capsulefile:1:13: invalid stage name '1st'"));
        assert!(err("FROM img AS $N").starts_with("Capsulefile:1:13: invalid stage name '$N'"));
        assert_eq!(
            err("FROM img AT name"),
            "Capsulefile:1:10: expected AS NAME after the image, found 'AT'"
        );
        assert_eq!(
            err("FROM img AS name extra"),
            "Capsulefile:1:18: unexpected 'extra' after the stage name"
        );
        assert_eq!(
            err("FROM --platform= img"),
            "Capsulefile:1:6: flag '--platform' needs a value: --platform=..."
        );
        assert_eq!(
            err("FROM --platform img"),
            "Capsulefile:1:6: flag '--platform' needs a value: --platform=..."
        );
        assert_eq!(
            err("FROM --plat=x img"),
            "Capsulefile:1:6: unknown flag '--plat' for FROM: expected one of --platform"
        );
        assert_eq!(
            err("FROM --platform=a --platform=b img"),
            "Capsulefile:1:19: duplicate flag '--platform'"
        );
    }

    #[test]
    fn copy_and_add() {
        let c = copy("COPY --from=Build --chown=\"app:app\" --link a.txt b/ /dest/");
        assert_eq!(lits(&c.sources), ["a.txt", "b/"]);
        assert_eq!(lit(&c.dest), "/dest/");
        assert_eq!(c.from.as_deref(), Some("Build"));
        assert_eq!(c.chown.as_deref(), Some("app:app"));
        assert!(c.link);
        assert!(!c.is_add);
        assert_eq!(c.chmod, None);
        let c = copy("ADD --chown=$UID:${GID} --link=false --chmod=0755 x /y");
        assert!(c.is_add);
        assert_eq!(c.chown.as_deref(), Some("${UID}:${GID}"));
        assert!(!c.link);
        assert_eq!(c.chmod, Some(0o755));
        assert!(copy("COPY --link=TRUE a b").link);
        assert_eq!(copy("COPY --chmod=7777 a b").chmod, Some(0o7777));
        assert_eq!(copy("COPY --chmod=0 a b").chmod, Some(0));
        // JSON form: no quote processing, variables kept.
        let c = copy("COPY [\"my file.txt\", \"it's\", \"$DIR/\"]");
        assert_eq!(lit(&c.sources[0]), "my file.txt");
        assert_eq!(c.sources[0].pos, pos(2, 7));
        assert_eq!(lit(&c.sources[1]), "it's");
        assert_eq!(c.sources[1].pos, pos(2, 22));
        assert_eq!(
            expand(&c.dest, &[("DIR", "/app")]).expect("expands"),
            "/app/"
        );
        let c = copy("COPY [\"C:\\\\x\", \"\\\\$HOME\"]");
        assert_eq!(lit(&c.sources[0]), "C:\\x");
        assert_eq!(lit(&c.dest), "$HOME");
        // Quotes group in shell form, and globs are kept for the executor.
        let c = copy("COPY \"a b\" [abc]*.txt /d");
        assert_eq!(lits(&c.sources), ["a b", "[abc]*.txt"]);
        // `--` ends the flags.
        let c = copy("COPY -- --weird /d");
        assert_eq!(lits(&c.sources), ["--weird"]);
    }

    #[test]
    fn copy_errors() {
        let needs = "needs at least one source and a destination";
        assert_eq!(one_err("COPY a"), format!("Capsulefile:2:7: COPY {needs}"));
        assert_eq!(one_err("ADD"), format!("Capsulefile:2:4: ADD {needs}"));
        assert_eq!(
            one_err("COPY [\"a\"]"),
            format!("Capsulefile:2:11: COPY {needs}")
        );
        assert_eq!(
            one_err("COPY --frm=x a b"),
            "Capsulefile:2:6: unknown flag '--frm' for COPY: expected one of --from, --chmod, \
             --chown, --link"
        );
        assert_eq!(
            one_err("ADD --checksum=sha256:abc https://x /y"),
            "Capsulefile:2:5: ADD --checksum is not supported by Capsule"
        );
        assert_eq!(
            one_err("ADD --keep-git-dir=true g /y"),
            "Capsulefile:2:5: ADD --keep-git-dir is not supported by Capsule"
        );
        assert_eq!(
            one_err("COPY --parents a b"),
            "Capsulefile:2:6: COPY --parents is not supported by Capsule"
        );
        assert_eq!(
            one_err("COPY --from=a --from=b x y"),
            "Capsulefile:2:15: duplicate flag '--from'"
        );
        assert_eq!(
            one_err("COPY --from a b"),
            "Capsulefile:2:6: flag '--from' needs a value: --from=..."
        );
        assert_eq!(
            one_err("COPY --from=$STAGE a b"),
            "Capsulefile:2:13: flag '--from' cannot use variables in Capsule: write the value literally"
        );
        assert_eq!(
            one_err("COPY --link=maybe a b"),
            "Capsulefile:2:13: invalid value for '--link': expected true or false"
        );
        for mode in [
            "8", "9", "abc", "10000", "77777", "-1", "+644", "0x1ff", "u+x", "\"\"",
        ] {
            let e = one_err(&format!("COPY --chmod={mode} a b"));
            assert!(
                e.starts_with("Capsulefile:2:14: invalid --chmod '")
                    || e.starts_with("Capsulefile:2:6: flag '--chmod' needs a value"),
                "{mode}: {e}"
            );
            assert!(
                e.contains("octal") || e.contains("needs a value"),
                "{mode}: {e}"
            );
        }
        assert_eq!(
            one_err("COPY --chmod=999 a b"),
            "Capsulefile:2:14: invalid --chmod '999': expected octal digits, at most 7777, e.g. 644"
        );
        assert_eq!(
            one_err("COPY --chmod= a b"),
            "Capsulefile:2:6: flag '--chmod' needs a value: --chmod=..."
        );
    }

    #[test]
    fn heredocs_are_refused() {
        let message = "heredocs (<<EOF) are not supported by Capsule: put the content in a file \
                       of the build context and COPY it";
        for (text, col) in [
            ("RUN <<EOF", 5),
            ("RUN cat <<-EOT > /x", 9),
            ("RUN python3 3<<\"PY\"", 13),
            ("COPY <<EOF /etc/x", 6),
            ("ADD --chmod=644 a <<'X' /y", 19),
        ] {
            assert_eq!(
                one_err(text),
                format!("Capsulefile:2:{col}: {message}"),
                "{text}"
            );
        }
        // Not heredocs: here-strings, shifts inside words, quoted, exec form.
        for text in [
            "RUN cat <<< word",
            "RUN echo a<<b",
            "RUN echo \"<<EOF\"",
            "RUN [\"<<EOF\"]",
            "RUN echo <<",
        ] {
            one(text);
        }
    }

    #[test]
    fn run_flags_are_refused() {
        assert_eq!(
            one_err("RUN --mount=type=cache,target=/root/.cache make"),
            "Capsulefile:2:5: RUN --mount is not supported by Capsule"
        );
        assert_eq!(
            one_err("RUN --network=none make"),
            "Capsulefile:2:5: RUN --network is not supported by Capsule"
        );
        assert_eq!(
            one_err("RUN --foo make"),
            "Capsulefile:2:5: unknown flag '--foo': RUN takes no flags"
        );
        assert_eq!(
            one_err("CMD --help"),
            "Capsulefile:2:5: unknown flag '--help': CMD takes no flags"
        );
        // A flag-like word after the command is the command's.
        assert_eq!(
            kind("RUN make --jobs=4"),
            Kind::Run(Command::Shell("make --jobs=4".to_owned()))
        );
        assert_eq!(
            kind("RUN -- --version"),
            Kind::Run(Command::Shell("--version".to_owned()))
        );
    }

    #[test]
    fn rest_of_line_words() {
        let Kind::Workdir(w) = kind("WORKDIR /my dir/$SUB") else {
            panic!()
        };
        assert_eq!(expand(&w, &[("SUB", "x")]).expect("expands"), "/my dir/x");
        assert_eq!(w.pos, pos(2, 9));
        let Kind::Workdir(w) = kind("WORKDIR \"/quoted path\"") else {
            panic!()
        };
        assert_eq!(lit(&w), "/quoted path");
        let Kind::User(w) = kind("USER app:app") else {
            panic!()
        };
        assert_eq!(lit(&w), "app:app");
        let Kind::StopSignal(w) = kind("stopsignal SIGTERM") else {
            panic!()
        };
        assert_eq!(lit(&w), "SIGTERM");
        assert_eq!(one_err("WORKDIR"), "Capsulefile:2:8: WORKDIR needs a path");
        assert_eq!(
            one_err("WORKDIR   "),
            "Capsulefile:2:8: WORKDIR needs a path"
        );
        assert_eq!(
            one_err("USER"),
            "Capsulefile:2:5: USER needs a user name or ID"
        );
        assert_eq!(
            one_err("STOPSIGNAL"),
            "Capsulefile:2:11: STOPSIGNAL needs a signal"
        );
    }

    #[test]
    fn expose_and_volume() {
        let Kind::Expose(ports) = kind("EXPOSE 80 443/tcp 53/udp $PORT") else {
            panic!()
        };
        assert_eq!(ports.len(), 4);
        assert_eq!(lits(&ports[..3]), ["80", "443/tcp", "53/udp"]);
        assert_eq!(ports[3].pos, pos(2, 26));
        assert_eq!(
            one_err("EXPOSE"),
            "Capsulefile:2:7: EXPOSE needs at least one port, e.g. EXPOSE 8080"
        );
        let Kind::Volume(paths) = kind("VOLUME /data /cache") else {
            panic!()
        };
        assert_eq!(lits(&paths), ["/data", "/cache"]);
        let Kind::Volume(paths) = kind("VOLUME [\"/a b\", \"/c\"]") else {
            panic!()
        };
        assert_eq!(lits(&paths), ["/a b", "/c"]);
        let Kind::Volume(paths) = kind("VOLUME [/not json]") else {
            panic!()
        };
        assert_eq!(lits(&paths), ["[/not", "json]"]);
        assert_eq!(
            one_err("VOLUME"),
            "Capsulefile:2:7: VOLUME needs at least one path"
        );
        assert_eq!(
            one_err("VOLUME []"),
            "Capsulefile:2:10: VOLUME needs at least one path"
        );
        assert_eq!(
            one_err("VOLUME [\"/a\", \"\"]"),
            "Capsulefile:2:15: VOLUME paths cannot be empty"
        );
    }

    #[test]
    fn unknown_and_unsupported_instructions() {
        let list = "expected one of ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, FROM, LABEL, \
                    RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR";
        assert_eq!(
            one_err("COPPY a b"),
            format!("Capsulefile:2:1: unknown instruction 'COPPY': {list} (did you mean COPY?)")
        );
        assert_eq!(
            one_err("  workdri /x"),
            format!(
                "Capsulefile:2:3: unknown instruction 'workdri': {list} (did you mean WORKDIR?)"
            )
        );
        assert_eq!(
            one_err("ENTRYPIONT x"),
            format!(
                "Capsulefile:2:1: unknown instruction 'ENTRYPIONT': {list} (did you mean ENTRYPOINT?)"
            )
        );
        assert_eq!(
            one_err("FROBNICATE x"),
            format!("Capsulefile:2:1: unknown instruction 'FROBNICATE': {list}")
        );
        assert_eq!(
            one_err("CMD[\"x\"]"),
            format!("Capsulefile:2:1: unknown instruction 'CMD[\"x\"]': {list}")
        );
        assert_eq!(
            err("RUNN x"),
            format!("Capsulefile:1:1: unknown instruction 'RUNN': {list} (did you mean RUN?)")
        );
        assert_eq!(
            one_err("HEALTHCHECK CMD curl -f http://localhost/"),
            "Capsulefile:2:1: HEALTHCHECK is not supported by Capsule: Capsule has no health checks"
        );
        assert_eq!(
            one_err("onbuild RUN x"),
            "Capsulefile:2:1: ONBUILD is not supported by Capsule: Capsule has no build triggers"
        );
        assert_eq!(
            one_err("MAINTAINER Jane <jane@example.com>"),
            "Capsulefile:2:1: MAINTAINER is deprecated and not supported by Capsule: use LABEL \
             maintainer=\"Jane <jane@example.com>\""
        );
        assert_eq!(
            one_err("MAINTAINER"),
            "Capsulefile:2:1: MAINTAINER is deprecated and not supported by Capsule: use LABEL \
             maintainer=\"...\""
        );
    }

    #[test]
    fn instruction_order() {
        assert_eq!(
            err("COPY a b\nFROM x\n"),
            "Capsulefile:1:1: expected FROM (or ARG) before COPY"
        );
        assert_eq!(
            err("# c\nARG V=1\n\nrun x\nFROM y\n"),
            "Capsulefile:4:1: expected FROM (or ARG) before RUN"
        );
        let r = ok("ARG A\nARG B=2\nFROM x:$B\nARG A\nRUN y\n");
        assert_eq!(r.instructions.len(), 5);
        assert_eq!(
            err(""),
            "Capsulefile:1:1: the recipe has no instructions: it needs at least a FROM"
        );
        assert_eq!(
            err("\u{feff}# escape=`\n\n# only comments\n"),
            "Capsulefile:1:1: the recipe has no instructions: it needs at least a FROM"
        );
        assert_eq!(
            err("ARG A\nARG B"),
            "Capsulefile:2:6: expected a FROM after the ARG instructions"
        );
    }

    #[test]
    fn error_display() {
        let e = parse("dir/Capsulefile", "FROM x\nCOPY a").expect_err("invalid");
        assert_eq!(e.file, "dir/Capsulefile");
        assert_eq!(e.pos, pos(2, 7));
        assert_eq!(
            e.to_string(),
            "dir/Capsulefile:2:7: COPY needs at least one source and a destination"
        );
        assert_eq!(pos(3, 4).to_string(), "3:4");
    }

    #[test]
    fn columns_count_chars() {
        let c = copy("COPY é€😀 /d");
        assert_eq!(c.dest.pos, pos(2, 10));
        assert_eq!(
            one_err("COPY é€😀"),
            "Capsulefile:2:9: COPY needs at least one source and a destination"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(edit_distance("COPPY", "COPY"), 1);
        assert_eq!(edit_distance("", "RUN"), 3);
        assert_eq!(edit_distance("ENV", "ENV"), 0);
        assert_eq!(edit_distance("ARG", "ADD"), 2);
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0000644"), Some(0o644));
        assert_eq!(parse_mode("7777"), Some(0o7777));
        assert_eq!(parse_mode("10000"), None);
        assert_eq!(parse_mode("99999999999999999999999"), None);
        assert_eq!(parse_mode(""), None);
        assert!(is_stage_name("a"));
        assert!(!is_stage_name(""));
        assert!(!is_stage_name("-a"));
        assert!(!is_stage_name("a b"));
    }

    /// A small xorshift generator, so the fuzz-ish tests are deterministic.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    const SAMPLE: &str = "\u{feff}# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine\n\
        FROM --platform=$P ${BASE:-x} AS build\nENV A=1 B=\"two $A\" \\\n  C='three' \n\
        # comment\nLABEL \"k\"=v k2=x\nCOPY --from=build --chmod=755 [\"a b\", \"/c/\"]\n\
        ADD --link x${Y:+z} /d/\nRUN [ -f x ] && echo \"${Q:?need Q}\" \\\n\n  # inner\n  done\n\
        CMD [\"a\", \"\\u00e9\", \"\\ud83d\\ude00\"]\nWORKDIR /w x\nUSER u:g\nEXPOSE 80/tcp\n\
        VOLUME [\"/v\"]\nSHELL [\"sh\", \"-c\"]\nSTOPSIGNAL SIGINT\nENTRYPOINT exec app\r\n";

    /// Every outcome is fine but a panic; expanding what parsed must not panic either.
    fn no_panic(text: &str) {
        if let Ok(recipe) = parse(FILE, text) {
            let lookup = |name: &str| name.len().is_multiple_of(2).then(|| name.to_owned());
            for i in &recipe.instructions {
                let words: Vec<&Word> = match &i.kind {
                    Kind::From {
                        image, platform, ..
                    } => std::iter::once(image).chain(platform).collect(),
                    Kind::Copy(c) => c.sources.iter().chain([&c.dest]).collect(),
                    Kind::Env(pairs) => pairs.iter().map(|(_, v)| v).collect(),
                    Kind::Label(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
                    Kind::Arg(args) => args.iter().filter_map(|(_, v)| v.as_ref()).collect(),
                    Kind::Expose(words) | Kind::Volume(words) => words.iter().collect(),
                    Kind::Workdir(w) | Kind::User(w) | Kind::StopSignal(w) => vec![w],
                    Kind::Run(_) | Kind::Cmd(_) | Kind::Entrypoint(_) | Kind::Shell(_) => vec![],
                };
                for w in words {
                    let _ = w.expand(FILE, &lookup);
                    let _ = w.to_string();
                }
            }
        }
    }

    #[test]
    fn sample_parses() {
        let r = ok(SAMPLE);
        assert_eq!(r.instructions.len(), 15);
        assert_eq!(r.syntax.as_deref(), Some("docker/dockerfile:1"));
    }

    #[test]
    fn truncations_do_not_panic() {
        let chars: Vec<char> = SAMPLE.chars().collect();
        for end in 0..=chars.len() {
            let text: String = chars[..end].iter().collect();
            no_panic(&text);
            let text: String = chars[end..].iter().collect();
            no_panic(&text);
        }
    }

    #[test]
    fn mutations_do_not_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet: Vec<char> = "\\`'\"$ {}[]:-+?=#\n\r\t,AZaz09_<é😀\u{0}/"
            .chars()
            .collect();
        let sample: Vec<char> = SAMPLE.chars().collect();
        for _ in 0..3000 {
            let mut text = sample.clone();
            for _ in 0..1 + rng.next(8) {
                let at = rng.next(text.len() + 1);
                match rng.next(3) {
                    0 => text.insert(at, alphabet[rng.next(alphabet.len())]),
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ if at < text.len() => text[at] = alphabet[rng.next(alphabet.len())],
                    _ => {}
                }
            }
            no_panic(&text.iter().collect::<String>());
        }
    }

    #[test]
    fn random_input_does_not_panic() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let alphabet: Vec<char> = "\\`'\"$ {}[]:-+?=#\n\t,ARGFROMCOPYRUNENVrun<0é"
            .chars()
            .collect();
        for _ in 0..3000 {
            let len = rng.next(80);
            let mut text = String::from("FROM x\n");
            text.extend((0..len).map(|_| alphabet[rng.next(alphabet.len())]));
            no_panic(&text);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next(256) as u8).collect();
            no_panic(&String::from_utf8_lossy(&bytes));
        }
        no_panic(&"${A:-".repeat(5000));
        no_panic(&format!("FROM x\nENV A={}", "${A:-".repeat(5000)));
        no_panic(&format!("FROM x\nCMD {}", "[".repeat(100_000)));
        no_panic(&format!("FROM x\nCMD [{}]", "{\"a\":[".repeat(1000)));
        no_panic(&"\\\n".repeat(1000));
    }
}
