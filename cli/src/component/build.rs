//! `oberon component build`: `cargo build --release --target wasm32-unknown-unknown`
//! for one component crate, the core module found from cargo's own artifact messages
//! and wrapped into a component beside it (`<crate>.component.wasm`, by
//! `oberon-guest-build`), and the component's SHA-256 written beside that
//! (`<file>.wasm.sha256`), which `deploy` checks so a file changed or damaged after the
//! build is refused as a corrupt upload.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use oberon_registry::{Version, sha256_hex};

use super::Step;
use crate::build::{TARGET, ensure_target};

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The component crate.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// A built component.
#[derive(Debug, Clone)]
pub struct Built {
    pub wasm: PathBuf,
    pub version: Version,
    pub sha256: String,
}

pub fn run(args: BuildArgs) -> anyhow::Result<Built> {
    let manifest = args.dir.join("Cargo.toml");
    let manifest = manifest.canonicalize().with_context(|| {
        format!(
            "no component crate at {} (no Cargo.toml)",
            args.dir.display()
        )
    })?;
    ensure_target()?;
    let step = Step::start(&format!("compiling {} for {TARGET}", args.dir.display()));
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
            args.dir.display()
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
    let wasm = component;
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let sha256 = sha256_hex(&bytes);
    let mut sidecar = wasm.clone().into_os_string();
    sidecar.push(".sha256");
    let file_name = wasm
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(&sidecar, format!("{sha256}  {file_name}\n"))
        .with_context(|| format!("writing {}", PathBuf::from(&sidecar).display()))?;
    step.done(&format!("{} ({} KiB)", wasm.display(), bytes.len() / 1024));
    Ok(Built {
        wasm,
        version,
        sha256,
    })
}
