//! Wasm bytes from outside: read them, tell a core module from a component, text from
//! binary, and garbage from all of them, before anything is compiled.

use crate::ending::first_line;
use std::borrow::Cow;
use std::path::Path;

const MAGIC: &[u8; 4] = b"\0asm";

/// What a file holding wasm turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core WebAssembly module (what WASI preview1 runs).
    Module,
    /// A component (WASI 0.2).
    Component,
}

/// Errors reading or classifying wasm.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The file does not exist.
    #[error("{path}: no such file (give the path of a .wasm module, or `hello-world`)")]
    NotFound { path: String },
    /// The file could not be read.
    #[error("{path}: cannot read the module")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Neither binary wasm nor WebAssembly text.
    #[error("{name}: not a WebAssembly module (no \\0asm header, and not WebAssembly text)")]
    NotWasm { name: String },
    /// The `\0asm` magic without the full 8-byte header after it.
    #[error(
        "{name}: a truncated WebAssembly module ({len} bytes: the \\0asm header needs 8, then the module's sections)"
    )]
    Truncated { name: String, len: usize },
    /// A wasm binary of a version this engine does not know.
    #[error("{name}: unsupported WebAssembly binary version {version:#010x}")]
    UnknownVersion { name: String, version: u32 },
    /// WebAssembly text that does not parse.
    #[error("{name}: invalid WebAssembly text: {message}")]
    BadText { name: String, message: String },
    /// A component where a core module is needed.
    #[error(
        "{name}: this is a WebAssembly component (WASI 0.2); Capsule runs core modules \
         (WASI preview1) for now, and components are not supported yet"
    )]
    Component { name: String },
}

/// Classifies binary wasm by its header.
pub fn kind_of(bytes: &[u8]) -> Option<Result<WasmKind, u32>> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    // Core modules are version 1 layer 0; components use layer 1 (bytes 6..8).
    Some(match (version & 0xffff, version >> 16) {
        (1, 0) => Ok(WasmKind::Module),
        (_, 1) => Ok(WasmKind::Component),
        _ => Err(version),
    })
}

/// Turns bytes that should hold a core module (binary or text) into binary wasm.
///
/// # Errors
/// [`ModuleError`] for garbage, components, unknown versions and bad text.
pub fn core_module_bytes<'a>(name: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, ModuleError> {
    match wasm_bytes(name, bytes)? {
        (binary, WasmKind::Module) => Ok(binary),
        (_, WasmKind::Component) => Err(ModuleError::Component {
            name: name.to_owned(),
        }),
    }
}

/// Turns bytes that should hold a core module (binary or text) or a component into
/// binary wasm, and says which it is.
///
/// # Errors
/// [`ModuleError`] for garbage, unknown versions and bad text.
pub fn wasm_bytes<'a>(
    name: &str,
    bytes: &'a [u8],
) -> Result<(Cow<'a, [u8]>, WasmKind), ModuleError> {
    let binary: Cow<'a, [u8]> = match kind_of(bytes) {
        Some(_) => Cow::Borrowed(bytes),
        None if looks_like_text(bytes) => match wat::parse_bytes(bytes) {
            Ok(parsed) => Cow::Owned(parsed.into_owned()),
            Err(e) => {
                return Err(ModuleError::BadText {
                    name: name.to_owned(),
                    message: first_line(&e.to_string()),
                });
            }
        },
        None if bytes.starts_with(MAGIC) => {
            return Err(ModuleError::Truncated {
                name: name.to_owned(),
                len: bytes.len(),
            });
        }
        None => {
            return Err(ModuleError::NotWasm {
                name: name.to_owned(),
            });
        }
    };
    match kind_of(&binary) {
        Some(Ok(kind)) => Ok((binary, kind)),
        Some(Err(version)) => Err(ModuleError::UnknownVersion {
            name: name.to_owned(),
            version,
        }),
        None => Err(ModuleError::NotWasm {
            name: name.to_owned(),
        }),
    }
}

/// Reads a module file named on the command line.
///
/// # Errors
/// [`ModuleError::NotFound`] or [`ModuleError::Read`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, ModuleError> {
    crate::ambient::read_file(path).map_err(|source| {
        let path = path.display().to_string();
        if source.kind() == std::io::ErrorKind::NotFound {
            ModuleError::NotFound { path }
        } else {
            ModuleError::Read { path, source }
        }
    })
}

/// WebAssembly text starts (after blanks and comments) with `(`; anything with a NUL
/// byte or invalid UTF-8 is not text.
fn looks_like_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix(";;") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if rest.starts_with("(;") {
            return true;
        } else {
            return rest.starts_with('(');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_headers() {
        assert_eq!(kind_of(b"\0asm\x01\0\0\0"), Some(Ok(WasmKind::Module)));
        assert_eq!(kind_of(b"\0asm\x0d\0\x01\0"), Some(Ok(WasmKind::Component)));
        assert_eq!(kind_of(b"\x7fELF\x02\x01\x01\0"), None);
        assert!(matches!(kind_of(b"\0asm\x02\0\0\0"), Some(Err(2))));
    }

    #[test]
    fn text_is_parsed_and_components_refused() {
        let wasm = core_module_bytes("t", b";; hi\n(module)").expect("parses");
        assert_eq!(kind_of(&wasm), Some(Ok(WasmKind::Module)));
        assert!(matches!(
            core_module_bytes("c", b"(component)"),
            Err(ModuleError::Component { .. })
        ));
        assert!(matches!(
            core_module_bytes("g", b"#!/bin/sh\n"),
            Err(ModuleError::NotWasm { .. })
        ));
        let short = core_module_bytes("m", b"\0asm").expect_err("4 bytes");
        assert!(
            short
                .to_string()
                .contains("truncated WebAssembly module (4 bytes"),
            "{short}"
        );
        assert!(matches!(
            core_module_bytes("b", b"(module (func (oops)))"),
            Err(ModuleError::BadText { .. })
        ));
    }
}
