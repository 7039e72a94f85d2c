//! Paths of the guest components, built from source by this crate's build script.
//! Tests and benches use these instead of checked-in binaries or mocks.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// A built component: its `.wasm` and the crate it came from (for its `assets/`).
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    pub name: &'static str,
    pub wasm: &'static str,
    pub crate_dir: &'static str,
}

impl Artifact {
    pub fn wasm(&self) -> &Path {
        Path::new(self.wasm)
    }

    pub fn assets_dir(&self) -> PathBuf {
        Path::new(self.crate_dir).join("assets")
    }
}

/// The built component from crate `name`. Panics (a test setup error) if there is none.
pub fn artifact(name: &str) -> Artifact {
    ARTIFACTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(name, wasm, crate_dir)| Artifact {
            name,
            wasm,
            crate_dir,
        })
        .unwrap_or_else(|| {
            panic!("no component crate {name:?} in components/examples, components/testing or components/bench")
        })
}

/// Example `name` built for `wasm32-wasip2` instead (only those in `WASIP2_BUILDS`):
/// what the benchmarks compare the SDK's own target with.
pub fn wasip2_build(name: &str) -> &'static Path {
    WASIP2_BUILDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| Path::new(*wasm))
        .unwrap_or_else(|| panic!("{name:?} is not also built for wasm32-wasip2"))
}

/// The example (demo site) components.
pub fn examples() -> impl Iterator<Item = Artifact> {
    ARTIFACTS
        .iter()
        .filter(|(_, _, dir)| {
            Path::new(dir)
                .parent()
                .is_some_and(|p| p.ends_with("examples"))
        })
        .map(|&(name, wasm, crate_dir)| Artifact {
            name,
            wasm,
            crate_dir,
        })
}
