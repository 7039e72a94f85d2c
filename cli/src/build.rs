//! Building the demo's components: the Rust crates (the guest target check, the cargo
//! call, and wrapping each built module into a component with `oberon-guest-build`),
//! and the Python and JavaScript projects, each with its language's build
//! ([`crate::component::lang`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub use oberon_guest_build::TARGET;

use crate::component::lang::Lang;

/// A component crate in the components workspace.
#[derive(Debug, Clone)]
pub struct ComponentCrate {
    pub name: String,
    pub dir: PathBuf,
}

impl ComponentCrate {
    /// The core module cargo builds.
    pub fn core_wasm(&self, workspace: &Path) -> PathBuf {
        workspace
            .join("target")
            .join(TARGET)
            .join("release")
            .join(oberon_guest_build::module_file_name(&self.name))
    }

    /// The component [`build`] makes of it.
    pub fn wasm(&self, workspace: &Path) -> PathBuf {
        oberon_guest_build::component_path(&self.core_wasm(workspace))
    }
}

/// Make sure the guest target is installed, adding it with rustup if it is not.
pub fn ensure_target() -> anyhow::Result<()> {
    let missing = oberon_guest_build::missing_targets(&[TARGET])
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "oberon: the {TARGET} target is missing; adding it with `rustup target add {TARGET}`"
    );
    if !oberon_guest_build::add_targets(&[TARGET]) {
        bail!("`rustup target add {TARGET}` failed; components cannot be built without it");
    }
    Ok(())
}

/// The crates under `<workspace>/examples`.
pub fn example_crates(workspace: &Path) -> anyhow::Result<Vec<ComponentCrate>> {
    let dir = workspace.join("examples");
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let manifest = path.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest)?;
        let name = text
            .lines()
            .find_map(|l| {
                l.trim().strip_prefix("name").map(|r| {
                    r.trim_start_matches([' ', '='])
                        .trim()
                        .trim_matches('"')
                        .to_string()
                })
            })
            .with_context(|| format!("{}: no package name", manifest.display()))?;
        crates.push(ComponentCrate { name, dir: path });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}

/// `cargo build --release --target wasm32-unknown-unknown` for `crates`, then each
/// crate's module wrapped into its component.
pub fn build(workspace: &Path, crates: &[ComponentCrate]) -> anyhow::Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", TARGET]);
    for c in crates {
        cmd.args(["-p", &c.name]);
    }
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        bail!("building the components failed (see cargo's output above)");
    }
    for c in crates {
        oberon_guest_build::componentize_file(&c.core_wasm(workspace), &c.wasm(workspace))?;
    }
    Ok(())
}

/// Install every crate's built component into `dest` (atomically, per component).
pub fn install_all(workspace: &Path, crates: &[ComponentCrate], dest: &Path) -> anyhow::Result<()> {
    for c in crates {
        let wasm = c.wasm(workspace);
        oberon_renderer::component_set::install(dest, &c.name, &wasm, Some(&c.dir.join("assets")))
            .with_context(|| format!("installing {} from {}", c.name, wasm.display()))?;
    }
    Ok(())
}

/// A demo component in another language than Rust: a project under
/// `<workspace>/examples-py` or `<workspace>/examples-js`, named by its directory.
#[derive(Debug, Clone)]
pub struct ComponentProject {
    pub name: String,
    pub dir: PathBuf,
    pub lang: Lang,
}

/// What a component project's folder holds that is not its source: build outputs,
/// installed tools, caches. Neither watched nor copied.
pub const NOT_SOURCES: [&str; 4] = ["build", "node_modules", "__pycache__", ".oberon"];

/// Where the projects of each language other than Rust are, in the components workspace.
pub const PROJECT_DIRS: [&str; 2] = ["examples-py", "examples-js"];

/// The projects under `<workspace>/examples-py` and `<workspace>/examples-js`.
pub fn example_projects(workspace: &Path) -> anyhow::Result<Vec<ComponentProject>> {
    let mut projects = Vec::new();
    for group in PROJECT_DIRS {
        let dir = workspace.join(group);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let lang = Lang::detect(&path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            projects.push(ComponentProject {
                name,
                dir: path,
                lang,
            });
        }
    }
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(projects)
}

/// Build each project with its language's tool (from `tools`, installed there on first
/// use) and install its component into `dest`.
pub fn build_and_install_projects(
    projects: &[ComponentProject],
    tools: &Path,
    dest: &Path,
) -> anyhow::Result<()> {
    for p in projects {
        let compiled = p
            .lang
            .build(&p.dir, tools)
            .with_context(|| format!("building {} ({})", p.name, p.lang.name()))?;
        oberon_renderer::component_set::install(
            dest,
            &p.name,
            &compiled.wasm,
            Some(&p.dir.join("assets")),
        )
        .with_context(|| format!("installing {} from {}", p.name, compiled.wasm.display()))?;
    }
    Ok(())
}
