//! WASI 0.2 components: what a component imports checked before it starts, and a
//! `wasi:cli/command`'s `run` called.

use crate::engine::Engine;
use crate::exec::{ExitStatus, RunError};
use crate::spec::UnknownImports;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// The WASI versions whose interfaces Capsule provides to components.
pub const WASI_VERSIONS: &str = "0.2.0 to 0.2.12";

/// The names of the instances (interfaces) a component imports.
fn imported_interfaces(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine.wasmtime())
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Refuses a component that needs what Capsule does not provide, naming it: a WASI 0.3
/// (async) interface, or any interface the linker lacks (unless the spec says to stub
/// unknown imports with traps).
///
/// # Errors
/// [`RunError::UnknownImports`], [`RunError::Unsupported`] for WASI 0.3.
pub fn check_imports<T: 'static>(
    engine: &Engine,
    linker: &mut Linker<T>,
    component: &Component,
    policy: UnknownImports,
) -> Result<(), RunError> {
    let imports = imported_interfaces(engine, component);
    let preview3: Vec<&String> = imports
        .iter()
        .filter(|name| name.starts_with("wasi:") && name.contains("@0.3."))
        .collect();
    if !preview3.is_empty() {
        return Err(RunError::Unsupported(format!(
            "the component imports WASI 0.3 (async) interfaces, which Capsule does not support \
             yet: {}; build it for WASI 0.2 (for Rust: --target wasm32-wasip2)",
            preview3
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let missing = match linker.instantiate_pre(component) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    match policy {
        UnknownImports::Trap => linker
            .define_unknown_imports_as_traps(component)
            .map_err(|e| RunError::Link(format!("{e:#}"))),
        UnknownImports::Refuse => {
            // wasmtime names the first import it cannot satisfy between backquotes.
            let message = format!("{missing:#}");
            let names: Vec<String> = imports
                .iter()
                .filter(|name| message.contains(&format!("`{name}`")))
                .cloned()
                .collect();
            if names.is_empty() {
                return Err(RunError::Link(crate::ending::first_line(&message)));
            }
            Err(RunError::UnknownImports { names })
        }
    }
}

/// Refuses a component that is not a `wasi:cli/command` (it exports no `wasi:cli/run`),
/// saying what it is instead.
///
/// # Errors
/// [`RunError::Unsupported`] naming what the component exports.
pub fn check_command(engine: &Engine, component: &Component) -> Result<(), RunError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine.wasmtime())
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports
        .iter()
        .any(|name| name.starts_with("wasi:cli/run@0.2"))
    {
        return Ok(());
    }
    if exports
        .iter()
        .any(|name| name.starts_with("wasi:http/incoming-handler@"))
    {
        return Err(RunError::Unsupported(
            "the component is a wasi:http/proxy service (it exports wasi:http/incoming-handler, \
             not wasi:cli/run); Capsule runs wasi:cli/command components, and serving HTTP \
             components is not supported yet"
                .to_owned(),
        ));
    }
    Err(RunError::Unsupported(format!(
        "the component is not a wasi:cli/command (it exports no wasi:cli/run; its exports: {})",
        if exports.is_empty() {
            "none".to_owned()
        } else {
            exports.join(", ")
        }
    )))
}

/// Instantiates a `wasi:cli/command` component and calls its `run`: exit status 0 when
/// it returns `ok`, 1 when it returns `err` (as wasmtime's CLI).
///
/// # Errors
/// wasmtime's error: a trap, an exit, an interruption (the caller classifies them).
pub fn run_command<T: Send + 'static>(
    linker: &Linker<T>,
    store: &mut wasmtime::Store<T>,
    component: &Component,
) -> wasmtime::Result<ExitStatus> {
    use wasmtime_wasi::p2::bindings::sync::Command;
    let command = Command::instantiate(&mut *store, component, linker)?;
    Ok(match command.wasi_cli_run().call_run(&mut *store)? {
        Ok(()) => ExitStatus::Exited(0),
        Err(()) => ExitStatus::Exited(1),
    })
}
