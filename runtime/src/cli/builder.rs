//! The builder commands: `builder prune`.

use super::Failure;
use super::images::{fail, open};
use super::output::confirmed;
use super::progress::human_size;

#[derive(Debug, clap::Args)]
pub struct BuilderPruneArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    force: bool,
}

/// `builder prune`: forget every build step (the next build rebuilds them) and free the
/// layers only the build cache used.
pub fn builder_prune(args: &BuilderPruneArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    if !confirmed(args.force, "builder prune", "all build cache")? {
        return Ok(0);
    }
    let freed = capsule_runtime::builder::cache::prune(&home, &images).map_err(fail)?;
    println!("Total reclaimed space: {}", human_size(freed));
    Ok(0)
}
