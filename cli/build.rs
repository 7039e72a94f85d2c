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
    bff_platform(&manifest.join(".."));
}

/// The crates a new BFF vendors under `oberon/` (`oberon-bff` and the platform crates it
/// builds on), their manifests made standalone, the Dockerfile every BFF image is
/// built with, and the repository's lock file.
const VENDORED: [&str; 4] = ["bff", "identity", "service", "config"];

fn bff_platform(repo: &Path) {
    let read = |rel: &str| {
        let path = repo.join(rel);
        println!("cargo::rerun-if-changed={}", path.display());
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let workspace: toml::Table = read("Cargo.toml")
        .parse()
        .expect("the workspace manifest parses");
    let mut files: Vec<(String, String)> = Vec::new();
    for dir in VENDORED {
        let manifest: toml::Table = read(&format!("{dir}/Cargo.toml"))
            .parse()
            .expect("a member manifest parses");
        files.push((
            format!("oberon/{dir}/Cargo.toml"),
            standalone(manifest, &workspace),
        ));
        let src = repo.join(dir).join("src");
        // A directory: cargo runs this again when anything under it changes.
        println!("cargo::rerun-if-changed={}", src.display());
        let mut sources = Vec::new();
        collect(&repo.join(dir), &src, &mut sources);
        sources.sort();
        for (rel, abs) in sources {
            let text = std::fs::read_to_string(&abs).expect("a source file is text");
            files.push((format!("oberon/{dir}/{rel}"), text));
        }
    }
    files.push(("Dockerfile".into(), read("infra/docker/bff.Dockerfile")));
    files.push(("Cargo.lock".into(), read("Cargo.lock")));
    let mut out = String::from(
        "/// What a new BFF gets beside the template: path in the crate, contents.\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, text) in &files {
        out.push_str(&format!("    ({rel:?}, {text:?}),\n"));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("bff_platform.rs");
    std::fs::write(dest, out).expect("write bff_platform.rs");
}

/// A workspace member's manifest as a crate of its own beside the other vendored ones:
/// every `workspace = true` resolved from the workspace's tables (a path dependency on
/// another member points at its sibling directory), no dev-dependencies or extra
/// targets (a vendored crate is built, never tested, by the BFF).
fn standalone(mut manifest: toml::Table, workspace: &toml::Table) -> String {
    let ws = &workspace["workspace"];
    let inherited = |value: &toml::Value| {
        value
            .as_table()
            .and_then(|t| t.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true)
    };
    if let Some(package) = manifest
        .get_mut("package")
        .and_then(toml::Value::as_table_mut)
    {
        for (key, value) in package.iter_mut() {
            if inherited(value) {
                *value = ws["package"][key.as_str()].clone();
            }
        }
        package.insert("publish".into(), false.into());
    }
    for table in ["dependencies", "build-dependencies"] {
        let Some(deps) = manifest.get_mut(table).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        for (name, value) in deps.iter_mut() {
            if inherited(value) {
                *value = resolved(name, value, &ws["dependencies"]);
            }
        }
    }
    if manifest.get("lints").is_some_and(inherited) {
        manifest.insert("lints".into(), ws["lints"].clone());
    }
    assert!(
        !manifest.contains_key("target"),
        "a vendored crate has [target.*.dependencies]: make `standalone` resolve them"
    );
    for dropped in ["dev-dependencies", "bench", "test", "example"] {
        manifest.remove(dropped);
    }
    // `[package]` first, as people write it (a table serialises in key order).
    let package = manifest
        .remove("package")
        .expect("a member has a [package]");
    let package = toml::Table::from_iter([("package".to_string(), package)]);
    let text = |t: &toml::Table| toml::to_string(t).expect("a manifest serialises");
    format!(
        "# Vendored by `oberon new bff`: replaced whole by `oberon bff upgrade`, never edited.\n{}\n{}",
        text(&package),
        text(&manifest)
    )
}

/// The workspace's entry for `name`, with the member's own features and flags.
fn resolved(name: &str, member: &toml::Value, workspace_deps: &toml::Value) -> toml::Value {
    let mut dep = match &workspace_deps[name] {
        toml::Value::String(version) => {
            toml::Table::from_iter([("version".to_string(), version.clone().into())])
        }
        toml::Value::Table(t) => t.clone(),
        other => panic!("workspace dependency {name}: unexpected {other}"),
    };
    if let Some(toml::Value::String(path)) = dep.get("path") {
        let sibling = format!("../{path}");
        dep.insert("path".into(), sibling.into());
    }
    let member = member
        .as_table()
        .expect("an inherited dependency is a table");
    if let Some(toml::Value::Array(extra)) = member.get("features") {
        let mut features = dep
            .get("features")
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default();
        for f in extra {
            if !features.contains(f) {
                features.push(f.clone());
            }
        }
        dep.insert("features".into(), features.into());
    }
    for key in ["optional", "default-features"] {
        if let Some(v) = member.get(key) {
            dep.insert(key.into(), v.clone());
        }
    }
    toml::Value::Table(dep)
}

/// Embeds what `oberon component new` writes beside a new component so that it builds
/// on its own: for Rust, the guest SDK (its manifest made standalone, with the versions of the
/// components workspace), the contract version the SDK is built against, the build
/// settings and the lock file; for Python, the Python SDK and the same contract; for
/// JavaScript, the JavaScript SDK, its build entry and its toolchain's pins, and the same contract.
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
    // A Python project gets the Python SDK (`sdk-py/oberon_sdk`, its modules only) and
    // the same contract.
    let py_sdk = components.join("sdk-py/oberon_sdk");
    println!("cargo::rerun-if-changed={}", py_sdk.display());
    let mut py_sources: Vec<_> = std::fs::read_dir(&py_sdk)
        .expect("components/sdk-py/oberon_sdk")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py"))
        .collect();
    py_sources.sort();
    let mut py_files: Vec<(String, String)> = files
        .iter()
        .filter(|(rel, _)| rel.starts_with("oberon/wit/"))
        .cloned()
        .collect();
    for name in py_sources {
        py_files.push((
            format!("oberon/sdk/oberon_sdk/{name}"),
            read(&format!("sdk-py/oberon_sdk/{name}")),
        ));
    }
    out.push_str(
        "/// What a new Python project gets beside its own code: path in it, contents.\npub const PYTHON_FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, text) in &py_files {
        out.push_str(&format!("    ({rel:?}, {text:?}),\n"));
    }
    out.push_str("];\n");
    // A JavaScript project gets the JavaScript SDK (`sdk-js/src`, its modules) with the
    // build entry and the pinned toolchain's manifest and lock beside it, in
    // `oberon/sdk-js/`, and the same contract.
    let js_sdk = components.join("sdk-js/src");
    println!("cargo::rerun-if-changed={}", js_sdk.display());
    let mut js_sources: Vec<_> = std::fs::read_dir(&js_sdk)
        .expect("components/sdk-js/src")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".js"))
        .collect();
    js_sources.sort();
    let js_sources = js_sources.into_iter().map(|n| format!("src/{n}"));
    let js_toolchain = ["build.mjs", "package.json", "package-lock.json"].map(String::from);
    let mut js_files: Vec<(String, String)> = files
        .iter()
        .filter(|(rel, _)| rel.starts_with("oberon/wit/"))
        .cloned()
        .collect();
    for rel in js_sources.chain(js_toolchain) {
        let name = rel.strip_prefix("src/").unwrap_or(&rel);
        js_files.push((
            format!("oberon/sdk-js/{name}"),
            read(&format!("sdk-js/{rel}")),
        ));
    }
    out.push_str(
        "/// What a new JavaScript project gets beside its own code: path in it, contents.\npub const JS_FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, text) in &js_files {
        out.push_str(&format!("    ({rel:?}, {text:?}),\n"));
    }
    out.push_str("];\n");
    let manifest: serde_json::Value =
        serde_json::from_str(&read("sdk-js/package.json")).expect("sdk-js/package.json parses");
    let componentize_js = manifest["devDependencies"]["@bytecodealliance/componentize-js"]
        .as_str()
        .expect("sdk-js/package.json pins @bytecodealliance/componentize-js");
    out.push_str(&format!(
        "/// The `@bytecodealliance/componentize-js` that `components/sdk-js/package.json` pins.\npub const COMPONENTIZE_JS_VERSION: &str = {componentize_js:?};\n"
    ));
    out.push_str(&format!(
        "/// `components/sdk-js/package.json`: the JavaScript toolchain's pins.\npub const JS_PACKAGE_JSON: &str = {:?};\n/// `components/sdk-js/package-lock.json`: the lock they are installed from.\npub const JS_PACKAGE_LOCK: &str = {:?};\n",
        read("sdk-js/package.json"),
        read("sdk-js/package-lock.json")
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
        let kept_dotfile = matches!(name.as_str(), ".gitignore" | ".dockerignore");
        if name == "target" || name.starts_with('.') && !kept_dotfile {
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
