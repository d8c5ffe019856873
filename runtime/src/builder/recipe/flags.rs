//! The `--name[=value]` flags at the start of an instruction's arguments.

use super::keyword::Keyword;
use super::lines::{Ch, start, starts_with, string_of, trim};
use super::run_mount::RunMount;
use super::words::Word;
use super::{Parser, Pos, RecipeError, START};

/// A `--name[=value]` flag at the start of an instruction's arguments.
pub(super) struct Flag<'a> {
    name: String,
    value: Option<&'a [Ch]>,
    /// The whole flag as written.
    text: &'a [Ch],
}

impl Flag<'_> {
    pub(super) fn pos(&self) -> Pos {
        start(self.text, START)
    }
}

/// Parses a `--chmod` mode: octal digits only, at most `0o7777`.
pub(super) fn parse_mode(mode: &str) -> Option<u32> {
    if mode.is_empty() {
        return None;
    }
    mode.chars().try_fold(0u32, |acc, c| {
        let value = acc * 8 + c.to_digit(8)?;
        (value <= 0o7777).then_some(value)
    })
}

impl Parser<'_> {
    /// Splits off the leading `--name[=value]` words. A lone `--` ends them.
    pub(super) fn flags<'s>(
        &self,
        mut rest: &'s [Ch],
    ) -> Result<(Vec<Flag<'s>>, &'s [Ch]), RecipeError> {
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

    pub(super) fn check_flags(
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
            if name != "mount" && flags[..i].iter().any(|f| f.name == flag.name) {
                return Err(self.err(flag.pos(), format!("duplicate flag '--{name}'")));
            }
        }
        Ok(())
    }

    /// The mounts of a RUN: each `--mount=...` in order, their values literal.
    pub(super) fn run_mounts(&self, flags: &[Flag]) -> Result<Vec<RunMount>, RecipeError> {
        let mut mounts = Vec::new();
        for flag in flags.iter().filter(|f| f.name == "mount") {
            let word = match flag.value {
                Some(value) if !value.is_empty() => self.word(value, flag.pos())?,
                _ => {
                    return Err(self.err(
                        flag.pos(),
                        "flag '--mount' needs a value: --mount=type=bind,source=dir,target=/path",
                    ));
                }
            };
            let Some(value) = word.literal() else {
                return Err(self.err(
                    word.pos,
                    "flag '--mount' cannot use variables in Capsule: write the value literally",
                ));
            };
            let mount = super::run_mount::parse(&value)
                .map_err(|message| self.err(flag.pos(), format!("RUN {message}")))?;
            if mounts.iter().any(|m: &RunMount| m.target == mount.target) {
                return Err(self.err(
                    flag.pos(),
                    format!(
                        "RUN mounts {} twice: give each --mount its own target",
                        mount.target
                    ),
                ));
            }
            mounts.push(mount);
        }
        Ok(mounts)
    }

    /// The value of a flag that needs one, as a word.
    pub(super) fn flag_word(
        &self,
        flags: &[Flag],
        name: &str,
    ) -> Result<Option<Word>, RecipeError> {
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
    pub(super) fn flag_literal(
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

    pub(super) fn flag_bool(&self, flags: &[Flag], name: &str) -> Result<bool, RecipeError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::recipe::test_support::{kind, one_err};
    use crate::builder::recipe::{Command, Kind};

    #[test]
    fn run_flags_are_refused() {
        assert_eq!(
            one_err("RUN --network=none make"),
            "Capsulefile:2:5: RUN --network is not supported by Capsule"
        );
        assert_eq!(
            one_err("RUN --foo make"),
            "Capsulefile:2:5: unknown flag '--foo' for RUN: expected one of --mount"
        );
        assert_eq!(
            one_err("CMD --help"),
            "Capsulefile:2:5: unknown flag '--help': CMD takes no flags"
        );
        // A flag-like word after the command is the command's.
        assert_eq!(
            kind("RUN make --jobs=4"),
            Kind::Run(Command::Shell("make --jobs=4".to_owned()), vec![])
        );
        assert_eq!(
            kind("RUN -- --version"),
            Kind::Run(Command::Shell("--version".to_owned()), vec![])
        );
    }

    #[test]
    fn run_mounts_are_read_in_order_and_checked() {
        let Kind::Run(command, mounts) = kind(
            "RUN --mount=type=bind,source=.wheels,target=/wheels --mount=type=cache,target=/root/.cache/pip [\"pip\", \"install\"]",
        ) else {
            panic!("not a RUN")
        };
        assert_eq!(
            command,
            Command::Exec(vec!["pip".to_owned(), "install".to_owned()])
        );
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].target, "/wheels");
        assert_eq!(mounts[1].text, "type=cache,target=/root/.cache/pip");
        assert_eq!(
            one_err("RUN --mount=type=bind,target=/a --mount=type=tmpfs,target=/a x"),
            "Capsulefile:2:33: RUN mounts /a twice: give each --mount its own target"
        );
        assert_eq!(
            one_err("RUN --mount=type=bind x"),
            "Capsulefile:2:5: RUN --mount type=bind needs a target: --mount=type=bind,target=/path"
        );
        assert_eq!(
            one_err("RUN --mount x"),
            "Capsulefile:2:5: flag '--mount' needs a value: --mount=type=bind,source=dir,target=/path"
        );
        assert_eq!(
            one_err("RUN --mount=target=$DIR x"),
            "Capsulefile:2:13: flag '--mount' cannot use variables in Capsule: write the value literally"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0000644"), Some(0o644));
        assert_eq!(parse_mode("7777"), Some(0o7777));
        assert_eq!(parse_mode("10000"), None);
        assert_eq!(parse_mode("99999999999999999999999"), None);
        assert_eq!(parse_mode(""), None);
    }
}
