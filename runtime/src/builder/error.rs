//! Why a build failed, and the helpers that place an error at its instruction.

use super::{context, recipe};
use crate::image::ImageError;
use recipe::Pos;
use std::path::PathBuf;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The recipe file could not be read.
    #[error("cannot read the recipe {}", path.display())]
    ReadRecipe {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The recipe file is not UTF-8 text.
    #[error("{}: the recipe is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    /// The context holds no recipe and none was named.
    #[error(
        "no recipe in {}: write a Capsulefile (or Dockerfile) there, or name one with -f",
        context.display()
    )]
    NoRecipe { context: PathBuf },
    /// The recipe has only global `ARG`s.
    #[error("{file}: the recipe has no FROM: start it with FROM scratch or FROM IMAGE")]
    NoFrom { file: String },
    /// `--target` names no stage of the recipe.
    #[error("--target {target}: the recipe has no stage named {target} (FROM ... AS {target})")]
    NoTarget { target: String },
    /// The build ended without a stage (a recipe always has one once parsed).
    #[error("no stage was built")]
    NoStage,
    /// The build cache could not be opened, read or written (`what` says which).
    #[error("{what}")]
    Cache {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `builder prune` could not remove the build cache.
    #[error("cannot remove {}", path.display())]
    Prune {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The layers built so far could not be opened for a `RUN` step.
    #[error("cannot open the layers built so far")]
    Layers {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// oci-spec refused the image config Capsule made.
    #[error("cannot make the image config")]
    Config {
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An instruction that cannot be carried out, at its place in the recipe.
    #[error("{file}:{}:{}: {message}", pos.line, pos.col)]
    Instruction {
        file: String,
        pos: Pos,
        message: String,
    },
    /// An instruction that failed on an error underneath, at its place in the recipe;
    /// `what` (when given) says what it was doing.
    #[error("{file}:{}:{}{}", pos.line, pos.col, then_colon(what.as_deref()))]
    Failed {
        file: String,
        pos: Pos,
        what: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An instruction that cannot be carried out, at `pos` in `file`.
pub(super) fn at(file: &str, pos: Pos, message: impl std::fmt::Display) -> BuildError {
    BuildError::Instruction {
        file: file.to_owned(),
        pos,
        message: message.to_string(),
    }
}

/// `": what"`, or nothing.
fn then_colon(what: Option<&str>) -> String {
    what.map(|w| format!(": {w}")).unwrap_or_default()
}

/// The instruction at `pos` failed on `source`, while doing `what` if given.
pub(super) fn failed(
    file: &str,
    pos: Pos,
    what: Option<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> BuildError {
    BuildError::Failed {
        file: file.to_owned(),
        pos,
        what,
        source: source.into(),
    }
}
