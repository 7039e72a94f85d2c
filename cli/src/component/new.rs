//! `oberon component new NAME`: a component crate that builds on its own, anywhere.
//!
//! The guest SDK is not on crates.io, so the crate carries it: `oberon/sdk` (the SDK
//! this `oberon` was built with) and `oberon/wit` (its contract), embedded in the
//! binary by `cli/build.rs`, with the components workspace's lock file and build
//! settings (the wasm32-unknown-unknown target, the 16 KiB stack).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

mod template {
    include!(concat!(env!("OUT_DIR"), "/component_template.rs"));
}

#[derive(Debug, Clone, clap::Args)]
pub struct NewArgs {
    /// The component's name, lower-case kebab case (e.g. `ticket-picker`): the crate
    /// name and the name `describe()` gives.
    pub name: String,
    /// Where to create it (default: `./NAME`). Must not exist, or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let written = new_component(&args.name, &dir)?;
    println!("created {} ({written} files)", dir.display());
    println!(
        "next:\n  cd {}\n  oberon component build\n  oberon component deploy --registry PATH",
        dir.display()
    );
    Ok(())
}

/// Write a new component crate `name` into `dir`. Returns the number of files written.
pub fn new_component(name: &str, dir: &Path) -> anyhow::Result<usize> {
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
    let own: [(&str, String); 5] = [
        ("Cargo.toml", manifest(name)),
        ("src/lib.rs", lib_rs(name)),
        (
            &format!("assets/{name}.js"),
            format!(
                "// Client-side code for {name}, served with the page under a content-hashed URL.\nexport {{}};\n"
            ),
        ),
        (".gitignore", "/target\n".into()),
        ("README.md", readme(name)),
    ];
    let mut count = 0;
    let files = own
        .iter()
        .map(|(rel, text)| (*rel, text.as_str()))
        .chain(template::FILES.iter().copied());
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        count += 1;
    }
    Ok(count)
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
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    // A digit cannot start a type name (`2fa` → `C2fa`).
    let type_name = if type_name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("C{type_name}")
    } else {
        type_name
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffolds_a_standalone_crate_and_refuses_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let n = new_component("gift-card2", &dir).unwrap();
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
        let err = new_component("gift-card2", &dir).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        for bad in ["", "Gift", "a_b", "-a", "a-", "../x"] {
            assert!(new_component(bad, &tmp.path().join("x")).is_err(), "{bad}");
        }
    }
}
