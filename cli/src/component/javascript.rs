//! JavaScript components: ES modules written against the vendored SDK, built by the
//! SDK's own `build.mjs` with ComponentizeJS (npm, pinned by `components/sdk-js`'s
//! `package.json` and lock, installed on demand by [`super::tools`]) into a component
//! that carries StarlingMonkey, pre-initialised with the modules loaded.
//!
//! The project is `package.json` (its name and version, and an optional `"oberon"`
//! object: the entry module and the contract directory), `src/index.js`, and
//! `oberon/sdk-js` (the SDK, `build.mjs` and the toolchain's manifest and lock) and
//! `oberon/wit`, embedded in the `oberon` binary by `cli/build.rs`. `build.mjs` imports
//! ComponentizeJS by its package name, and Node resolves an ES module's bare import
//! from the `node_modules` folders above the importing file (never from `NODE_PATH`):
//! so the build links `oberon/node_modules` (ignored by git, skipped by `build.mjs`'s
//! copy) to the installed tool's. The build writes `build/<name>.component.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use oberon_registry::Version;

use super::Step;
use super::lang::{Compiled, asset_placeholder, sdk_home};
use super::new::template;
use super::tools::{NpmTool, node};

/// ComponentizeJS and the rest of `components/sdk-js`'s locked toolchain, from npm.
pub const COMPONENTIZE_JS: NpmTool = NpmTool {
    name: "componentize-js",
    package: "@bytecodealliance/componentize-js",
    version: template::COMPONENTIZE_JS_VERSION,
    package_json: template::JS_PACKAGE_JSON,
    package_lock: template::JS_PACKAGE_LOCK,
};

/// What a build needs from `package.json`.
#[derive(Debug, Clone, PartialEq)]
struct Project {
    name: String,
    version: Version,
    /// The entry module, relative to the project (`"oberon": {"entry"}`, default
    /// `src/index.js`).
    entry: String,
    /// The contract's directory in the project (`"oberon": {"wit"}`).
    wit: PathBuf,
}

impl Project {
    fn parse(text: &str) -> anyhow::Result<Project> {
        let doc: serde_json::Value = serde_json::from_str(text)?;
        let get = |key: &str| {
            doc.get(key)
                .and_then(serde_json::Value::as_str)
                .with_context(|| format!("it has no \"{key}\" (a string)"))
        };
        let name = get("name")?;
        if !oberon_registry::is_valid_component_name(name) {
            bail!(
                "\"name\" {name:?} is not a component name: lower-case letters, digits and single dashes, unscoped"
            );
        }
        let version_text = get("version")?;
        let version = Version::parse(version_text)
            .with_context(|| format!("\"version\" {version_text:?} is not semver (e.g. 0.1.0)"))?;
        let oberon = doc.get("oberon");
        let setting = |key: &str, default: String| match oberon.and_then(|o| o.get(key)) {
            None => Ok(default),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => bail!("\"oberon\".\"{key}\" is a string, not {other}"),
        };
        Ok(Project {
            name: name.to_string(),
            version,
            entry: setting("entry", "src/index.js".into())?,
            wit: setting("wit", format!("oberon/wit/v{}", template::CONTRACT_VERSION))?.into(),
        })
    }
}

/// A new project's files: its own, then the vendored SDK and contract.
pub fn scaffold(name: &str) -> Vec<(String, String)> {
    let own = [
        ("package.json".to_string(), package_json(name)),
        ("src/index.js".into(), index_js(name)),
        asset_placeholder(name),
        (
            ".gitignore".into(),
            "/build\n/.oberon\nnode_modules\n".into(),
        ),
        ("README.md".into(), readme(name)),
    ];
    own.into_iter()
        .chain(
            template::JS_FILES
                .iter()
                .map(|(rel, text)| (rel.to_string(), text.to_string())),
        )
        .collect()
}

/// The vendored `build.mjs` over the project, into `build/<name>.component.wasm`.
pub fn build(dir: &Path, tools: &Path) -> anyhow::Result<Compiled> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "no JavaScript component at {} (no package.json)",
            dir.display()
        )
    })?;
    let project = Project::parse(&text).with_context(|| manifest.display().to_string())?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let home = sdk_home(&dir, template::JS_FILES)?;
    let build_mjs = home.join("oberon/sdk-js/build.mjs");
    if !build_mjs.is_file() {
        bail!(
            "{} is missing: a JavaScript project vendors the SDK in oberon/sdk-js (`oberon component new NAME --lang javascript` writes it)",
            build_mjs.display()
        );
    }
    let node = node()?;
    let node_modules = COMPONENTIZE_JS.node_modules(tools)?;
    link_node_modules(&home.join("oberon/node_modules"), &node_modules)?;
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let wasm = out_dir.join(format!("{}.component.wasm", project.name));
    let step = Step::start(&format!(
        "compiling {} with ComponentizeJS {}",
        dir.display(),
        COMPONENTIZE_JS.version
    ));
    let status = Command::new(&node)
        .arg(&build_mjs)
        .arg("--project")
        .arg(&dir)
        .arg("--sdk")
        .arg(home.join("oberon/sdk-js"))
        .arg("--wit")
        .arg(home.join(&project.wit))
        .arg("--out")
        .arg(&wasm)
        .arg("--entry")
        .arg(&project.entry)
        .current_dir(&dir)
        // What build.mjs says goes with the rest of the progress, not into the one
        // line `oberon component build` prints.
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("running {}", node.display()))?;
    if !status.success() {
        bail!(
            "building {} failed (see build.mjs's output above)",
            dir.display()
        );
    }
    step.done(&wasm.display().to_string());
    Ok(Compiled {
        wasm,
        version: project.version,
    })
}

/// Points `link` (the project's `oberon/node_modules`) at the tool's `node_modules`,
/// replacing a link to another install (`OBERON_TOOLS_DIR` moved, a new version).
fn link_node_modules(link: &Path, target: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::read_link(link).is_ok_and(|t| t == target) {
                return Ok(());
            }
            std::fs::remove_file(link)
                .with_context(|| format!("cannot remove {}", link.display()))?;
        }
        Ok(_) => bail!(
            "{} is not a link to the build's tools: remove it (the build makes it)",
            link.display()
        ),
        Err(_) => {}
    }
    symlink_dir(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

fn package_json(name: &str) -> String {
    // The version is the one `oberon component deploy` ships: bump it for every deploy.
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "description": "An Oberon component",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "oberon component build"
  }},
  "oberon": {{
    "entry": "src/index.js",
    "wit": "oberon/wit/v{contract}"
  }}
}}
"#,
        contract = template::CONTRACT_VERSION
    )
}

fn index_js(name: &str) -> String {
    format!(
        r#"// `{name}`: an Oberon component. `describe` says what it reads, writes and ships;
// `render` turns a request and its props into HTML for its slot.
import {{ defineComponent, Fragment, Metadata, html }} from '../oberon/sdk-js/index.js';

export const {{ describe, render }} = defineComponent({{
  describe() {{
    return new Metadata('{name}').assets('{name}.js');
  }},
  render(ctx, props) {{
    const who = props.str('who') ?? 'world';
    return Fragment.html(`<p>Hello, ${{html.escape(who)}}!</p>`);
  }},
}});
"#
    )
}

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nAn Oberon component in JavaScript.\n\n```sh\noberon component build                       # build/{name}.component.wasm\noberon component deploy --registry PATH       # validate, upload, point stable at it\noberon component deploy --registry PATH --channel canary --canary-percent 10\noberon component promote {name} --registry PATH\n```\n\nBuilds need Node.js 20+ and npm. The first build installs ComponentizeJS {cjs}\n(with the rest of `oberon/sdk-js/package-lock.json`) from the npm registry into\n`.oberon/tools/` (`OBERON_TOOLS_DIR` moves it) and links `oberon/node_modules` to it;\nlater builds are offline. `oberon/` holds the JavaScript SDK and its build\n(`oberon/sdk-js`) and the contract (`oberon:component@{contract}`) this component is\nbuilt against; bump the version in `package.json` for every deploy.\n\nWhatever `render` throws is the render's error: the page shows the slot's fallback.\nWhat `describe` throws stops the component from loading, and `deploy` refuses it.\nThe component runs in StarlingMonkey compiled to WebAssembly, with only the modules in\nthis folder (import them by relative path: bare npm imports are not resolved), and no\nnetwork, files, clock, randomness or `console` output (use the SDK's `log`).\n",
        cjs = COMPONENTIZE_JS.version,
        contract = template::CONTRACT_VERSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_project_and_says_what_is_wrong() {
        let p = Project::parse(&package_json("gift-card")).unwrap();
        assert_eq!(
            p,
            Project {
                name: "gift-card".into(),
                version: Version::new(0, 1, 0),
                entry: "src/index.js".into(),
                wit: format!("oberon/wit/v{}", template::CONTRACT_VERSION).into(),
            }
        );
        let p = Project::parse(r#"{"name": "x", "version": "1.2.3"}"#).unwrap();
        assert_eq!(
            (p.entry.as_str(), p.version.to_string()),
            ("src/index.js", "1.2.3".to_string())
        );
        for (text, message) in [
            (r#"{"name": "x"}"#, "it has no \"version\" (a string)"),
            (r#"{"version": "1.0.0"}"#, "it has no \"name\""),
            (
                r#"{"name": "@a/x", "version": "1.0.0"}"#,
                "\"@a/x\" is not a component name",
            ),
            (
                r#"{"name": "x", "version": "1.0"}"#,
                "\"1.0\" is not semver",
            ),
            (
                r#"{"name": "x", "version": "1.0.0", "oberon": {"entry": 3}}"#,
                "\"oberon\".\"entry\" is a string, not 3",
            ),
            ("{", "EOF while parsing"),
        ] {
            let err = format!("{:#}", Project::parse(text).unwrap_err());
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn scaffolds_a_project_with_the_sdk_its_build_and_the_contract() {
        let files = scaffold("gift-card");
        let get = |rel: &str| {
            files
                .iter()
                .find(|(r, _)| r == rel)
                .map(|(_, t)| t.as_str())
                .unwrap_or_else(|| panic!("no {rel}"))
        };
        let index = get("src/index.js");
        assert!(
            index.contains("new Metadata('gift-card').assets('gift-card.js')"),
            "{index}"
        );
        assert!(index.contains("html.escape(who)"), "{index}");
        assert!(
            get("oberon/sdk-js/index.js").contains("export function defineComponent(definition)")
        );
        assert!(get("oberon/sdk-js/component.js").contains("export function defineComponent"));
        assert!(get("oberon/sdk-js/build.mjs").contains("export async function buildComponent"));
        // The toolchain's pins, once: the tool installs from the same manifest and lock.
        assert_eq!(
            get("oberon/sdk-js/package.json"),
            COMPONENTIZE_JS.package_json
        );
        assert_eq!(
            get("oberon/sdk-js/package-lock.json"),
            COMPONENTIZE_JS.package_lock
        );
        let pinned = format!(
            "\"@bytecodealliance/componentize-js\": \"{}\"",
            COMPONENTIZE_JS.version
        );
        assert!(COMPONENTIZE_JS.package_json.contains(&pinned), "{pinned}");
        let wit = get(&format!(
            "oberon/wit/v{}/component.wit",
            template::CONTRACT_VERSION
        ));
        assert!(wit.contains("world component"), "{wit}");
        assert!(
            !files
                .iter()
                .any(|(r, _)| r.contains("test/") || r.contains("node_modules"))
        );
    }
}
