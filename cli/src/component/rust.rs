//! Rust components: a cdylib crate depending on the vendored `oberon-sdk`, built with
//! `cargo build --release --target wasm32-unknown-unknown`; the core module is found
//! from cargo's own artifact messages and wrapped into a component beside it
//! (`<crate>.component.wasm`, by `oberon-guest-build`).
//!
//! The guest SDK is not on crates.io, so a new crate carries it: `oberon/sdk` (the SDK
//! this `oberon` was built with) and `oberon/wit` (its contract), embedded in the
//! binary by `cli/build.rs`, with the components workspace's lock file and build
//! settings (the wasm32-unknown-unknown target, the 16 KiB stack).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use oberon_registry::Version;

use super::Step;
use super::lang::{Compiled, asset_placeholder, type_name};
use super::new::template;
use crate::build::{TARGET, ensure_target};

/// A new crate's files: its own, then the vendored SDK, contract and settings.
pub fn scaffold(name: &str) -> Vec<(String, String)> {
    let own = [
        ("Cargo.toml".to_string(), manifest(name)),
        ("src/lib.rs".into(), lib_rs(name)),
        asset_placeholder(name),
        (".gitignore".into(), "/target\n".into()),
        ("README.md".into(), readme(name)),
    ];
    own.into_iter()
        .chain(
            template::FILES
                .iter()
                .map(|(rel, text)| (rel.to_string(), text.to_string())),
        )
        .collect()
}

/// `cargo build` for wasm32-unknown-unknown, then the core module wrapped.
pub fn build(dir: &Path) -> anyhow::Result<Compiled> {
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("no component crate at {} (no Cargo.toml)", dir.display()))?;
    ensure_target()?;
    let step = Step::start(&format!("compiling {} for {TARGET}", dir.display()));
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", TARGET])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let mut found: Option<(PathBuf, String)> = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact"
            || msg["manifest_path"].as_str().map(PathBuf::from).as_ref() != Some(&manifest)
        {
            continue;
        }
        let wasm = msg["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"));
        if let (Some(wasm), Some(id)) = (wasm, msg["package_id"].as_str()) {
            found = Some((PathBuf::from(wasm), id.to_string()));
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "building {} failed (see cargo's output above)",
            dir.display()
        );
    }
    let Some((wasm, package_id)) = found else {
        bail!(
            "{} built no .wasm: a component crate has `crate-type = [\"cdylib\"]`",
            manifest.display()
        );
    };
    // `path+file:///dir#0.1.0` or `path+file:///dir#name@0.1.0`.
    let version_text = package_id
        .rsplit('#')
        .next()
        .map(|s| s.rsplit('@').next().unwrap_or(s))
        .unwrap_or_default();
    let version = Version::parse(version_text)
        .with_context(|| format!("cargo's package id {package_id:?} has no semver version"))?;
    let component = oberon_guest_build::component_path(&wasm);
    oberon_guest_build::componentize_file(&wasm, &component)?;
    step.done(&component.display().to_string());
    Ok(Compiled {
        wasm: component,
        version,
    })
}

fn manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
oberon-sdk = {{ path = "oberon/sdk" }}

# Small components: optimise for size.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true

# Its own workspace, not part of any enclosing one.
[workspace]
"#
    )
}

fn lib_rs(name: &str) -> String {
    let type_name = type_name(name);
    format!(
        r#"//! `{name}`: an Oberon component. `describe` says what it reads, writes and ships;
//! `render` turns a request and its props into HTML for its slot.

use oberon_sdk::{{Component, Context, Fragment, Metadata, Props, html}};

struct {type_name};

impl Component for {type_name} {{
    fn describe() -> Metadata {{
        Metadata::new("{name}").assets(["{name}.js"])
    }}

    fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {{
        let who = props.str("who").unwrap_or("world");
        let mut out = String::from("<p>Hello, ");
        html::escape_into(&mut out, who);
        out.push_str("!</p>");
        Ok(Fragment::html(out))
    }}
}}

oberon_sdk::export_component!({type_name});
"#
    )
}

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nAn Oberon component.\n\n```sh\noberon component build                       # target/wasm32-unknown-unknown/release/*.component.wasm\noberon component deploy --registry PATH       # validate, upload, point stable at it\noberon component deploy --registry PATH --channel canary --canary-percent 10\noberon component promote {name} --registry PATH\noberon component rollback {name} --registry PATH\n```\n\n`oberon/` holds the guest SDK and the contract (`oberon:component@{contract}`) this\ncomponent is built against; bump the version in `Cargo.toml` for every deploy.\n\nIf its render depends only on its props, the topics it subscribes to and the\nrequest's path, parameters, query and locale, declare `.reuse(SECONDS)` in\n`describe` so the renderer can reuse renders (see the SDK's documentation,\n\"Reuse\", for what such a component must not do).\n",
        contract = template::CONTRACT_VERSION
    )
}
