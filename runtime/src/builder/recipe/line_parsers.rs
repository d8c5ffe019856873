//! One parser per instruction: the arguments of a logical line become a [`Kind`].

use super::flags::{Flag, parse_mode};
use super::hints::unknown_instruction;
use super::instruction::{Command, Copy, Instruction, Kind};
use super::json::{JsonError, json_array};
use super::keyword::Keyword;
use super::lines::{Ch, after, collapse, end_pos, start, starts_with, string_of, trim};
use super::words::Word;
use super::{Parser, Pos, RecipeError, START};

/// Docker's stage names: `^[a-z][a-z0-9-_.]*$`.
fn is_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl Parser<'_> {
    pub(super) fn instruction(
        &self,
        line: &[Ch],
        seen_from: bool,
    ) -> Result<Instruction, RecipeError> {
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
                Kind::Run(command, self.run_mounts(&flags)?)
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
            Keyword::Healthcheck => Kind::Healthcheck(self.healthcheck(&flags, args, end)?),
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

    pub(super) fn from(&self, flags: &[Flag], args: &[Ch], end: Pos) -> Result<Kind, RecipeError> {
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

    pub(super) fn copy(
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

    pub(super) fn command(
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

    pub(super) fn shell(&self, args: &[Ch], end: Pos) -> Result<Vec<String>, RecipeError> {
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

    pub(super) fn env(&self, args: &[Ch], end: Pos) -> Result<Vec<(String, Word)>, RecipeError> {
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

    pub(super) fn arg(
        &self,
        args: &[Ch],
        end: Pos,
    ) -> Result<Vec<(String, Option<Word>)>, RecipeError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::recipe::Word;
    use crate::builder::recipe::test_support::{
        copy, err, expand, kind, lit, lits, ok, one, one_err, pos,
    };
    use crate::builder::recipe::{Command, Kind};

    #[test]
    fn exec_form() {
        assert_eq!(
            kind("ENTRYPOINT [\"/bin/app\"]"),
            Kind::Entrypoint(Command::Exec(vec!["/bin/app".to_owned()]))
        );
        assert_eq!(
            kind("RUN [\"echo\", \"$HOME\"]"),
            Kind::Run(
                Command::Exec(vec!["echo".to_owned(), "$HOME".to_owned()]),
                vec![]
            )
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
    fn stage_names() {
        assert!(is_stage_name("a"));
        assert!(!is_stage_name(""));
        assert!(!is_stage_name("-a"));
        assert!(!is_stage_name("a b"));
    }
}
