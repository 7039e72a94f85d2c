//! Build every component in `components/` (examples and test components) for
//! `wasm32-wasip2`, and generate a table of their `.wasm` paths for tests to use.
//! The guests are a separate cargo workspace with its own target directory, so this
//! nested cargo never contends for the outer build's lock.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .join("../../components")
        .canonicalize()
        .expect("components/ exists");
    for watched in [
        "sdk",
        "examples",
        "testing",
        "bench",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--workspace",
    ]);
    // What cargo sets for this build script must not leak into the guests' build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("run cargo for the components workspace");
    assert!(
        status.success(),
        "building components/ for wasm32-wasip2 failed; if the target is missing, run `rustup target add wasm32-wasip2`"
    );

    let release = workspace.join("target/wasm32-wasip2/release");
    let mut out = String::from(
        "/// Every component built from `components/`: (crate name, .wasm path, crate directory).\n",
    );
    out.push_str("pub const ARTIFACTS: &[(&str, &str, &str)] = &[\n");
    for group in ["examples", "testing", "bench"] {
        for dir in crate_dirs(&workspace.join(group)) {
            let name = package_name(&dir);
            let wasm = release.join(format!("{}.wasm", name.replace('-', "_")));
            assert!(wasm.is_file(), "{} was not built", wasm.display());
            writeln!(
                out,
                "    ({name:?}, {:?}, {:?}),",
                wasm.display().to_string(),
                dir.display().to_string()
            )
            .ok();
        }
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// The components workspace.\npub const COMPONENTS_DIR: &str = {:?};",
        workspace.display().to_string()
    )
    .ok();
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("artifacts.rs");
    std::fs::write(dest, out).expect("write artifacts.rs");
}

/// Add the guest target if rustup manages this toolchain and it is missing, so the
/// README's test command works on a fresh machine.
fn ensure_target() {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return;
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return;
    }
    println!(
        "cargo:warning=adding the wasm32-wasip2 target with rustup to build the test components"
    );
    let _ = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
}

fn crate_dirs(group: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(group)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn package_name(dir: &Path) -> String {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("read Cargo.toml");
    manifest
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("name").map(|r| {
                r.trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        })
        .expect("package name")
}
