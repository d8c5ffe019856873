//! The `capsule` binary: glue between the command line and `capsule_runtime`.

// Test code may reach the host directly (see clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod cli;

fn main() -> std::process::ExitCode {
    quiet_on_closed_stdout();
    cli::main()
}

/// `capsule ps | head`: when the reader of stdout goes away, Rust's `println!` panics
/// (Rust ignores `SIGPIPE`, which would otherwise end the process). Capsule ends as a
/// program killed by `SIGPIPE` does instead: no message, status 141. `SIGPIPE` itself
/// stays ignored, so a guest's socket to a client that left never kills Capsule.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
