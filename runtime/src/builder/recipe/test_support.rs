//! Helpers shared by the recipe tests.

use super::instruction::{Copy, Instruction, Kind};
use super::words::{Part, Word};
use super::{Pos, Recipe, RecipeError, parse};

pub(super) const FILE: &str = "Capsulefile";

pub(super) fn ok(text: &str) -> Recipe {
    parse(FILE, text).expect("valid recipe")
}

/// The error for `text`, as displayed.
pub(super) fn err(text: &str) -> String {
    parse(FILE, text).expect_err("invalid recipe").to_string()
}

/// The instruction after a `FROM scratch` line (so it starts on line 2).
pub(super) fn one(text: &str) -> Instruction {
    let mut recipe = ok(&format!("FROM scratch\n{text}"));
    assert_eq!(recipe.instructions.len(), 2, "{text:?}");
    recipe.instructions.remove(1)
}

/// The error for `text` after a `FROM scratch` line.
pub(super) fn one_err(text: &str) -> String {
    err(&format!("FROM scratch\n{text}"))
}

pub(super) fn kind(text: &str) -> Kind {
    one(text).kind
}

pub(super) fn pos(line: usize, col: usize) -> Pos {
    Pos { line, col }
}

pub(super) fn lit(word: &Word) -> String {
    word.literal().expect("literal word")
}

pub(super) fn lits(words: &[Word]) -> Vec<String> {
    words.iter().map(lit).collect()
}

pub(super) fn lit_word(line: usize, col: usize, s: &str) -> Word {
    Word {
        pos: pos(line, col),
        parts: vec![Part::Lit(s.to_owned())],
    }
}

pub(super) fn expand(word: &Word, vars: &[(&str, &str)]) -> Result<String, RecipeError> {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    word.expand(FILE, &lookup)
}

/// The single word of `ENV X=<word>`.
pub(super) fn env_word(word: &str) -> Word {
    match kind(&format!("ENV X={word}")) {
        Kind::Env(mut pairs) => pairs.remove(0).1,
        other => panic!("{other:?}"),
    }
}

pub(super) fn env_err(word: &str) -> String {
    one_err(&format!("ENV X={word}"))
}

pub(super) fn copy(text: &str) -> Copy {
    match kind(text) {
        Kind::Copy(copy) => copy,
        other => panic!("{other:?}"),
    }
}
