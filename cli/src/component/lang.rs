//! The languages a component is written in, and the one place that maps each to its
//! toolchain module: a new language is a variant here, a module beside this one with
//! `scaffold` and `build`, and an arm in each `match` below.
//!
//! `oberon component new --lang` picks one; `oberon component build` and `deploy`
//! find it from the project's marker file, so a project never says it twice. Rust
//! builds with cargo; Python and JavaScript with a tool ([`super::tools`]) installed on
//! first use from their registry, at the version this binary pins: componentize-py
//! from PyPI, ComponentizeJS from npm (as `components/sdk-js/package.json` locks it).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use oberon_registry::Version;

use super::{javascript, python, rust};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A cdylib crate with `oberon-sdk`, built with cargo for wasm32-unknown-unknown.
    Rust,
    /// An `app.py` with `oberon_sdk`, built with componentize-py (installed on demand).
    Python,
    /// A `src/index.js` with the JavaScript SDK, built with ComponentizeJS (npm,
    /// installed on demand; needs Node.js 20+).
    Javascript,
}

/// What a language's build made: the component, and the version its project declares.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub wasm: PathBuf,
    pub version: Version,
}

impl Lang {
    /// The file that marks a project as this language's, checked in this order.
    const MARKERS: [(Lang, &'static str); 3] = [
        (Lang::Rust, "Cargo.toml"),
        (Lang::Python, "pyproject.toml"),
        (Lang::Javascript, "package.json"),
    ];

    /// The language of the project in `dir`, from its marker file.
    pub fn detect(dir: &Path) -> anyhow::Result<Lang> {
        for (lang, marker) in Lang::MARKERS {
            if dir.join(marker).is_file() {
                return Ok(lang);
            }
        }
        let markers: Vec<_> = Lang::MARKERS
            .iter()
            .map(|(lang, marker)| format!("{marker} ({})", lang.name()))
            .collect();
        bail!(
            "no component project at {}: it has none of {}; create one with `oberon component new NAME --lang rust|python|javascript`",
            dir.display(),
            markers.join(", ")
        )
    }

    /// Whether a project in this language can be built here: its toolchain is
    /// there, or its tool is installed under `tools` or can be. Quick, and asks
    /// nothing of the network: so a build that would fail for want of a toolchain
    /// fails before anything else is built.
    pub fn ready(self, tools: &Path) -> anyhow::Result<()> {
        match self {
            // cargo is there (it ran this); `build::ensure_target` adds the target.
            Lang::Rust => Ok(()),
            Lang::Python => python::COMPONENTIZE_PY.ready(tools),
            Lang::Javascript => javascript::COMPONENTIZE_JS.ready(tools),
        }
    }

    /// The language's name, as `--lang` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Javascript => "javascript",
        }
    }

    /// The files of a new project for the component `name`: path in it, contents.
    pub fn scaffold(self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Lang::Rust => Ok(rust::scaffold(name)),
            Lang::Python => Ok(python::scaffold(name)),
            Lang::Javascript => Ok(javascript::scaffold(name)),
        }
    }

    /// Builds the project in `dir` into a component, with the tools under `tools`
    /// ([`super::tools::tools_dir`]; installed there first if they are not).
    pub fn build(self, dir: &Path, tools: &Path) -> anyhow::Result<Compiled> {
        match self {
            Lang::Rust => rust::build(dir),
            Lang::Python => python::build(dir, tools),
            Lang::Javascript => javascript::build(dir, tools),
        }
    }
}

/// Where a project's `oberon/` (its SDK and contract) is: in the project, when it
/// vendors them as a scaffold does; else in its `build/`, where this binary's own
/// (`files`, as a scaffold would get them) are written first. That is how the
/// repository's demo components, which vendor nothing, build against the SDK beside
/// them.
pub fn sdk_home(dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    if dir.join("oberon").is_dir() {
        return Ok(dir.to_path_buf());
    }
    let home = dir.join("build");
    let vendored = home.join("oberon");
    // Written whole every build: a file the SDK no longer has must not linger.
    if vendored.exists() {
        std::fs::remove_dir_all(&vendored)
            .with_context(|| format!("cannot remove {}", vendored.display()))?;
    }
    for (rel, text) in files {
        let path = home.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(home)
}

/// A component name (`gift-card2`) as a type or class name (`GiftCard2`); one that
/// would start with a digit gets a `C` (`2fa` → `C2fa`).
pub fn type_name(name: &str) -> String {
    let camel: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if camel.starts_with(|c: char| c.is_ascii_digit()) {
        format!("C{camel}")
    } else {
        camel
    }
}

/// Every scaffold's client-side file, `assets/NAME.js`, with what it is for.
pub fn asset_placeholder(name: &str) -> (String, String) {
    (
        format!("assets/{name}.js"),
        format!(
            "// Client-side code for {name}, served with the page under a content-hashed URL.\nexport {{}};\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_language_from_the_marker_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Lang::detect(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(
                "none of Cargo.toml (rust), pyproject.toml (python), package.json (javascript)"
            ),
            "{err}"
        );
        std::fs::write(tmp.path().join("package.json"), "{}").unwrap();
        assert_eq!(Lang::detect(tmp.path()).unwrap(), Lang::Javascript);
        std::fs::write(tmp.path().join("pyproject.toml"), "").unwrap();
        assert_eq!(Lang::detect(tmp.path()).unwrap(), Lang::Python);
        std::fs::write(tmp.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(Lang::detect(tmp.path()).unwrap(), Lang::Rust);
    }
}
