//! Embeds the BFF template (`../bff-template`) into the `oberon` binary, so
//! `oberon new bff` works wherever the binary is installed.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("../bff-template");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut out = String::from(
        "/// The BFF template's files: path relative to the template, and contents.\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, abs) in &files {
        out.push_str(&format!("    ({rel:?}, include_str!({abs:?})),\n"));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("bff_template.rs");
    std::fs::write(dest, out).expect("write bff_template.rs");
    println!("cargo::rerun-if-changed={}", root.display());
    component_template(&manifest.join("../components"));
}

/// Embeds what `oberon component new` writes beside a new component so that it builds
/// on its own: the guest SDK (its manifest made standalone, with the versions of the
/// components workspace), the contract version the SDK is built against, the build
/// settings and the lock file.
fn component_template(components: &Path) {
    let read = |rel: &str| {
        let path = components.join(rel);
        println!("cargo::rerun-if-changed={}", path.display());
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let workspace = read("Cargo.toml");
    let mut versions = std::collections::BTreeMap::new();
    let mut in_deps = false;
    for line in workspace.lines() {
        if line.starts_with('[') {
            in_deps = line.trim() == "[workspace.dependencies]";
        } else if in_deps && let Some((name, value)) = line.split_once('=') {
            versions.insert(name.trim().to_string(), value.trim().to_string());
        }
    }
    let mut sdk_manifest = String::new();
    for line in read("sdk/Cargo.toml").lines() {
        let line = match line.split_once(".workspace = true") {
            Some((key, _)) if versions.contains_key(key.trim()) => {
                format!("{} = {}", key.trim(), versions[key.trim()])
            }
            Some((key, _)) => match key.trim() {
                "version" => "version = \"0.1.0\"".to_string(),
                "edition" => "edition = \"2024\"".to_string(),
                "publish" => "publish = false".to_string(),
                // rust-version, license: the component's own business.
                _ => continue,
            },
            None => line.to_string(),
        };
        sdk_manifest.push_str(&line);
        sdk_manifest.push('\n');
    }
    // The contract the SDK is generated from (`path: "../wit/vX.Y.Z"` in its lib.rs):
    // the one a new component is built against.
    let sdk_lib = read("sdk/src/lib.rs");
    let contract = sdk_lib
        .split_once("path: \"../wit/v")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(version, _)| version.to_string())
        .expect("sdk/src/lib.rs names its contract as path: \"../wit/vX.Y.Z\"");
    let mut files: Vec<(String, String)> = vec![
        ("oberon/sdk/Cargo.toml".into(), sdk_manifest),
        (
            format!("oberon/wit/v{contract}/component.wit"),
            read(&format!("wit/v{contract}/component.wit")),
        ),
        (".cargo/config.toml".into(), read(".cargo/config.toml")),
        ("Cargo.lock".into(), read("Cargo.lock")),
    ];
    let sdk_src = components.join("sdk/src");
    println!("cargo::rerun-if-changed={}", sdk_src.display());
    let mut sources: Vec<_> = std::fs::read_dir(&sdk_src)
        .expect("components/sdk/src")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    sources.sort();
    for name in sources {
        files.push((
            format!("oberon/sdk/src/{name}"),
            read(&format!("sdk/src/{name}")),
        ));
    }
    let mut out = String::from(
        "/// What a new component crate gets beside its own code: path in the crate, contents.\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, text) in &files {
        out.push_str(&format!("    ({rel:?}, {text:?}),\n"));
    }
    out.push_str("];\n");
    out.push_str(&format!(
        "/// The `oberon:component` version the embedded SDK is built against.\npub const CONTRACT_VERSION: &str = {contract:?};\n"
    ));
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"))
        .join("component_template.rs");
    std::fs::write(dest, out).expect("write component_template.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') && name != ".gitignore" {
            continue;
        }
        if path.is_dir() {
            println!("cargo::rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            files.push((
                rel,
                path.canonicalize().expect("exists").display().to_string(),
            ));
        }
    }
}
