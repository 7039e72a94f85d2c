//! `oberon component build`: builds the component project in `--dir` with its
//! language's toolchain ([`super::lang::Lang::detect`] finds which) and writes the
//! component's SHA-256 beside it (`<file>.wasm.sha256`), which `deploy` checks so a file
//! changed or damaged after the build is refused as a corrupt upload.

use std::path::PathBuf;

use anyhow::Context;
use oberon_registry::{Version, sha256_hex};

use super::lang::Lang;
use super::tools::tools_dir;

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The component project (a crate with `Cargo.toml`, a Python project with
    /// `pyproject.toml`, or a JavaScript one with `package.json`).
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
    let lang = Lang::detect(&args.dir)?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let compiled = lang.build(&dir, &tools_dir(&dir))?;
    let wasm = compiled.wasm;
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
    eprintln!(
        "oberon: built {} ({}, {} KiB)",
        wasm.display(),
        lang.name(),
        bytes.len() / 1024
    );
    Ok(Built {
        wasm,
        version: compiled.version,
        sha256,
    })
}
