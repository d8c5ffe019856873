//! The end of `build`, `load` and `pull`: the image's program compiled for this machine
//! (see [`capsule_runtime::container::warm`]), with a spinner on a terminal and a line
//! before and after otherwise; nothing when the module cache has it already, or for a
//! module small enough to compile in a blink.

use super::progress::{self, Step};
use capsule_runtime::home::Home;
use capsule_runtime::image::{Image, Images};
use std::io::Write;

/// Modules from this size on are announced (a megabyte compiles in about 0.3 s on one
/// core; hello-world's 1.4 kB in a millisecond).
const ANNOUNCED: u64 = 1_000_000;

/// Compiles `image`'s program ahead of its first run. A failure is a warning, never an
/// error: the image is stored, and its `run` says the same thing.
pub fn compile_ahead(home: &Home, images: &Images, image: &Image, name: &str, quiet: bool) {
    let mut step = None;
    let outcome =
        capsule_runtime::container::warm::warm(home, images, image, name, &mut |path, size| {
            if !quiet && size >= ANNOUNCED {
                let line = format!(
                    "Compiling {path} ({}) for this machine",
                    progress::human_size(size)
                );
                if !progress::interactive() {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                step = Some(Step::start(&line));
            }
        });
    match outcome {
        Ok(Some(warmed)) => {
            if let (Some(step), Some(took)) = (step, warmed.compiled) {
                step.finish(&format!(
                    "Compiled {} in {:.1}s",
                    warmed.program,
                    took.as_secs_f64()
                ));
            }
        }
        Ok(None) => {}
        Err(e) => {
            if let Some(step) = step {
                step.clear();
            }
            let _ = writeln!(
                std::io::stderr(),
                "warning: {name}: its program was not compiled ahead of its first run: {e}"
            );
        }
    }
}
