//! Build every component in `components/` (examples and test components) for
//! `wasm32-unknown-unknown` and wrap each into a component (`oberon-guest-build`), and
//! generate a table of their component paths for tests to use. `testing/misbehave`,
//! which uses WASI (sleeping, reading the environment), is built for `wasm32-wasip2`.
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

    ensure_targets();
    // misbehave uses WASI: it proves that the renderer links WASI with an empty
    // context and contains a guest parked in a WASI call.
    cargo_build(
        &workspace,
        &[
            "--target",
            oberon_guest_build::TARGET,
            "--workspace",
            "--exclude",
            WASI_GUEST,
        ],
    );
    // ...and, for the benchmark that compares the two targets side by side, two
    // examples built for wasm32-wasip2 as well.
    let mut wasi_args = vec![
        "--target",
        oberon_guest_build::WASI_TARGET,
        "-p",
        WASI_GUEST,
    ];
    for name in WASIP2_COMPARED {
        wasi_args.extend(["-p", name]);
    }
    cargo_build(&workspace, &wasi_args);

    let release = |target: &str| workspace.join("target").join(target).join("release");
    let mut out = String::from(
        "/// Every component built from `components/`: (crate name, .wasm path, crate directory).\n",
    );
    out.push_str("pub const ARTIFACTS: &[(&str, &str, &str)] = &[\n");
    for group in ["examples", "testing", "bench"] {
        for dir in crate_dirs(&workspace.join(group)) {
            let name = package_name(&dir);
            let file = oberon_guest_build::module_file_name(&name);
            let wasm = if name == WASI_GUEST {
                release(oberon_guest_build::WASI_TARGET).join(file)
            } else {
                let core = release(oberon_guest_build::TARGET).join(file);
                let component = oberon_guest_build::component_path(&core);
                if let Err(e) = oberon_guest_build::componentize_file(&core, &component) {
                    panic!("{e}");
                }
                component
            };
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
    out.push_str(
        "/// Examples also built for wasm32-wasip2 (crate name, .wasm path), for benchmarks.\n",
    );
    out.push_str("pub const WASIP2_BUILDS: &[(&str, &str)] = &[\n");
    for name in WASIP2_COMPARED {
        let wasm = release(oberon_guest_build::WASI_TARGET)
            .join(oberon_guest_build::module_file_name(name));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        writeln!(out, "    ({name:?}, {:?}),", wasm.display().to_string()).ok();
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

/// The one test component built for WASI.
const WASI_GUEST: &str = "misbehave";

/// Examples also built for WASI, to measure what building for it costs.
const WASIP2_COMPARED: [&str; 2] = ["site-footer", "ticket-picker"];

/// `cargo build --release` in the components workspace.
fn cargo_build(workspace: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release"])
        .args(args);
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
        "building components/ ({}) failed; if a target is missing, run `rustup target add {} {}`",
        args.join(" "),
        oberon_guest_build::TARGET,
        oberon_guest_build::WASI_TARGET
    );
}

/// Add the guest targets if rustup manages this toolchain and they are missing, so the
/// README's test command works on a fresh machine.
fn ensure_targets() {
    let wanted = [oberon_guest_build::TARGET, oberon_guest_build::WASI_TARGET];
    let Some(missing) = oberon_guest_build::missing_targets(&wanted) else {
        return;
    };
    if missing.is_empty() {
        return;
    }
    println!(
        "cargo:warning=adding the {} target(s) with rustup to build the test components",
        missing.join(" ")
    );
    oberon_guest_build::add_targets(&missing);
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
