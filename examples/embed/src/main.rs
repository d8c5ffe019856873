//! A host program that embeds Capsule: runs a WASI module (or the built-in hello-world)
//! in a sandbox, feeds it this process's stdin, and shows what it printed and how it
//! ended.
//!
//! ```text
//! cargo run -p capsule-example-embed -- [MODULE.wasm [ARGS...]]
//! ```

use capsule_sdk::{Capsule, ExitStatus, RunOptions};
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::from(125)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let capsule = Capsule::open_default()?;
    let module = match argv.next() {
        Some(path) => capsule.module_from_file(path)?,
        None => capsule.hello_world()?,
    };
    let mut stdin = Vec::new();
    if argv.len() > 0 || module.name() != "hello-world" {
        std::io::stdin().read_to_end(&mut stdin)?;
    }
    let options = argv.fold(RunOptions::new().stdin(stdin), RunOptions::arg);
    let out = capsule.run(&module, options)?;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    Ok(match out.status {
        ExitStatus::Exited(code) => ExitCode::from(code),
        other => {
            eprintln!("embed: guest {other}");
            ExitCode::from(u8::try_from(other.exit_code()).unwrap_or(1))
        }
    })
}
