//! The `capsule` binary: glue between the command line and `capsule_runtime`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
