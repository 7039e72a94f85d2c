//! `oberon component new NAME [--lang rust|python|javascript]`: a component project that builds on
//! its own, anywhere. What a language's project holds is its module's `scaffold`
//! (see [`super::lang`]); this checks the name and the directory and writes it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::lang::Lang;

pub(super) mod template {
    include!(concat!(env!("OUT_DIR"), "/component_template.rs"));
}

#[derive(Debug, Clone, clap::Args)]
pub struct NewArgs {
    /// The component's name, lower-case kebab case (e.g. `ticket-picker`): the project's
    /// name and the name `describe()` gives.
    pub name: String,
    /// Where to create it (default: `./NAME`). Must not exist, or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The language it is written in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let written = new_component(&args.name, args.lang, &dir)?;
    println!(
        "created {} ({written} files, {})",
        dir.display(),
        args.lang.name()
    );
    println!(
        "next:\n  cd {}\n  oberon component build\n  oberon component deploy --registry PATH",
        dir.display()
    );
    Ok(())
}

/// Write a new component project `name` in `lang` into `dir`. Returns the number of
/// files written.
pub fn new_component(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<usize> {
    if !oberon_registry::is_valid_component_name(name) {
        bail!(
            "{name:?} is not a valid component name: use lower-case letters, digits and single dashes (e.g. `ticket-picker`), at most 64 characters"
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let files = lang.scaffold(name)?;
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffolds_a_standalone_crate_and_refuses_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let n = new_component("gift-card2", Lang::Rust, &dir).unwrap();
        assert!(n >= 10, "{n}");
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("struct GiftCard2;") && lib.contains("Metadata::new(\"gift-card2\")"));
        let sdk = std::fs::read_to_string(dir.join("oberon/sdk/Cargo.toml")).unwrap();
        assert!(!sdk.contains("workspace"), "{sdk}");
        assert!(sdk.contains("wit-bindgen = \""), "{sdk}");
        assert_eq!(
            template::CONTRACT_VERSION,
            oberon_renderer::component::WIT_LATEST
        );
        let wit = std::fs::read_to_string(dir.join("oberon/wit/v0.2.0/component.wit")).unwrap();
        assert!(wit.contains("package oberon:component@0.2.0;"), "{wit}");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains("(`oberon:component@0.2.0`)"), "{readme}");
        assert!(dir.join("assets/gift-card2.js").is_file());
        let err = new_component("gift-card2", Lang::Python, &dir).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        for bad in ["", "Gift", "a_b", "-a", "a-", "../x"] {
            assert!(
                new_component(bad, Lang::Python, &tmp.path().join("x")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn scaffolds_a_python_project_that_names_its_language() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        new_component("gift-card", Lang::Python, &dir).unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::Python);
        let wit = std::fs::read_to_string(dir.join("oberon/wit/v0.2.0/component.wit")).unwrap();
        assert!(wit.contains("package oberon:component@0.2.0;"), "{wit}");
        assert!(dir.join("oberon/sdk/oberon_sdk/bus.py").is_file());
    }

    #[test]
    fn scaffolds_a_javascript_project_that_names_its_language() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("j");
        new_component("gift-card", Lang::Javascript, &dir).unwrap();
        assert_eq!(Lang::detect(&dir).unwrap(), Lang::Javascript);
        let wit = std::fs::read_to_string(dir.join("oberon/wit/v0.2.0/component.wit")).unwrap();
        assert!(wit.contains("package oberon:component@0.2.0;"), "{wit}");
        for file in [
            "src/index.js",
            "assets/gift-card.js",
            "oberon/sdk-js/bus.js",
            "oberon/sdk-js/build.mjs",
        ] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        let ignored = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
        assert!(ignored.lines().any(|l| l == "node_modules"), "{ignored}");
    }
}
