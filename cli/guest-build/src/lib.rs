//! How a guest crate becomes an Oberon component, shared by the `oberon` command (`dev`,
//! `component build`), the test artifacts' build script and the renderer image's build.
//!
//! Guests are compiled for [`TARGET`] (`wasm32-unknown-unknown`): a core module that
//! imports only the `oberon:component` interfaces, which [`componentize`] wraps into a
//! component with the world wit-bindgen embedded in it. A Rust guest built for
//! `wasm32-wasip2` instead imports some 30 WASI functions through std's panic and stdio
//! paths, whether or not it uses them, and every import is linked again for every
//! instance: on the demo's components that was a third of an instance+render
//! (ARCHITECTURE.md, "Why guests are built for wasm32-unknown-unknown"). Components
//! built for `wasm32-wasip2` still load: the renderer links WASI with an empty context,
//! and [`componentize`] passes a component through unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The target of guests that use WASI (std's threads, clocks, environment, files): only
/// the renderer's own containment tests build one, to prove that WASI is linked with an
/// empty context.
pub const WASI_TARGET: &str = "wasm32-wasip2";

/// Why a module could not be made into a component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentizeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a guest module Oberon can wrap: {message}; build it with the oberon-sdk crate (or wit-bindgen) for {TARGET}"
    )]
    Encode { path: PathBuf, message: String },
}

/// The component for a core module: the module wrapped with the world that
/// wit-bindgen embedded in it, and validated. A component is returned as it is.
pub fn componentize(wasm: &[u8]) -> Result<Vec<u8>, String> {
    if wasmparser::Parser::is_component(wasm) {
        return Ok(wasm.to_vec());
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(wasm)
        .and_then(|mut encoder| encoder.encode())
        .map_err(|e| format!("{e:#}"))
}

/// The file cargo names a guest crate's module: `ticket-picker` → `ticket_picker.wasm`.
pub fn module_file_name(crate_name: &str) -> String {
    format!("{}.wasm", crate_name.replace('-', "_"))
}

/// Where [`componentize_file`] puts the component of the core module at `core`:
/// beside it, `name.wasm` → `name.component.wasm`.
pub fn component_path(core: &Path) -> PathBuf {
    core.with_extension("component.wasm")
}

/// Componentize the module at `core` into `out`, replacing `out` atomically (a
/// renderer or deploy reading `out` never sees half a file).
pub fn componentize_file(core: &Path, out: &Path) -> Result<(), ComponentizeError> {
    let wasm = std::fs::read(core).map_err(|source| ComponentizeError::Read {
        path: core.to_path_buf(),
        source,
    })?;
    let component = componentize(&wasm).map_err(|message| ComponentizeError::Encode {
        path: core.to_path_buf(),
        message,
    })?;
    let tmp = out.with_extension("wasm.tmp");
    std::fs::write(&tmp, &component)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|source| ComponentizeError::Write {
            path: out.to_path_buf(),
            source,
        })
}

/// The guest targets in `wanted` that rustup reports missing. `None` when rustup cannot
/// be run (a toolchain not managed by rustup): the build then says what is missing.
pub fn missing_targets<'a>(wanted: &[&'a str]) -> Option<Vec<&'a str>> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()?;
    let installed = String::from_utf8_lossy(&out.stdout);
    Some(
        wanted
            .iter()
            .copied()
            .filter(|t| !installed.lines().any(|l| l.trim() == *t))
            .collect(),
    )
}

/// `rustup target add` for `targets`; whether it succeeded.
pub fn add_targets(targets: &[&str]) -> bool {
    Command::new("rustup")
        .args(["target", "add"])
        .args(targets)
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_passes_through_and_garbage_is_refused() {
        // The smallest component: the preamble with the component layer.
        let component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        assert_eq!(componentize(&component).unwrap(), component);
        let err = componentize(b"not wasm").unwrap_err();
        assert!(!err.is_empty());
        // A core module without wit-bindgen's world has nothing to export.
        let bare = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        assert!(componentize(&bare).is_ok_and(|c| wasmparser::Parser::is_component(&c)));
    }

    #[test]
    fn writes_beside_the_core_module() {
        let dir = tempfile::tempdir().unwrap();
        let core = dir.path().join("hello_v1.wasm");
        assert_eq!(module_file_name("hello-v1"), "hello_v1.wasm");
        assert_eq!(
            component_path(&core),
            dir.path().join("hello_v1.component.wasm")
        );
        std::fs::write(&core, b"garbage").unwrap();
        let err = componentize_file(&core, &component_path(&core)).unwrap_err();
        assert!(
            err.to_string()
                .contains("hello_v1.wasm is not a guest module"),
            "{err}"
        );
        assert!(!component_path(&core).exists());
    }
}
