//! Recipes: the Dockerfile syntax read by `capsule build`.
//!
//! [`parse`] reads a recipe the way Docker's BuildKit frontend does: parser directives at
//! the top, comments, line continuations, case-insensitive keywords, JSON (exec) and shell
//! forms, quoting and escapes. Each instruction becomes a [`Kind`]. Variables are not
//! expanded here: words keep them as [`Part::Var`], for the executor to expand in scope
//! with [`Word::expand`]. Errors carry the line and column of their cause in the file,
//! inside continued instructions too.
//!
//! The parser is cut as BuildKit cuts its Dockerfile front end: [`directives`](mod@directives) reads the
//! `# escape=` and `# syntax=` lines, [`lines`] joins continuations into logical lines,
//! [`line_parsers`] turns each line into an [`Instruction`] (one parser per instruction),
//! with [`flags`] for the `--name=value` flags, [`words`] for quotes, escapes and variables,
//! [`json`] for the exec form and [`hints`] for the messages about unknown keywords.

mod directives;
mod flags;
mod healthcheck;
mod hints;
mod instruction;
mod json;
mod keyword;
mod line_parsers;
mod lines;
mod run_mount;
#[cfg(test)]
mod test_support;
mod words;

pub use instruction::{Command, Copy, Instruction, Kind};
pub use run_mount::{MountKind, RunMount};
pub use words::{Part, VarOp, Word};

use directives::directives;
use lines::end_pos;
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
const SUPPORTED: [&str; 16] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::recipe::Word;
    use crate::builder::recipe::test_support::{FILE, copy, err, lit_word, ok, one, one_err, pos};
    use crate::builder::recipe::{Command, Copy, Kind};

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
            Kind::Run(Command::Shell("make all".to_owned()), vec![])
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
            Kind::Run(
                Command::Shell("echo   \"a   b\"  'c   d'   e\\   f".to_owned()),
                vec![]
            )
        );
        assert_eq!(one("EXPOSE\t80\t\t443").text, "EXPOSE 80 443");
        assert_eq!(one("cmd [ \"a\" ,  \"b\" ]").text, "CMD [ \"a\" , \"b\" ]");
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
        VOLUME [\"/v\"]\nSHELL [\"sh\", \"-c\"]\nSTOPSIGNAL SIGINT\n\
        HEALTHCHECK --interval=1s --retries=2 CMD [\"/c.wasm\", \"-q\"]\nENTRYPOINT exec app\r\n";

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
                    Kind::Run(_, _)
                    | Kind::Cmd(_)
                    | Kind::Entrypoint(_)
                    | Kind::Shell(_)
                    | Kind::Healthcheck(_) => vec![],
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
        assert_eq!(r.instructions.len(), 16);
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
