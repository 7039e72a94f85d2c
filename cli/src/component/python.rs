//! Python components: an `app.py` written against the vendored `oberon_sdk`, built with
//! componentize-py (PyPI, pinned, installed on demand by [`super::tools`]) into a
//! component that carries CPython, pre-initialised with the app imported.
//!
//! The project is `pyproject.toml` (its `[project]` name and version, and
//! `[tool.oberon]`: the app module and the contract directory), `app.py`, and
//! `oberon/sdk` and `oberon/wit` embedded in the `oberon` binary by `cli/build.rs`.
//! The build writes `build/<name>.component.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use oberon_registry::Version;

use super::Step;
use super::lang::{Compiled, asset_placeholder, sdk_home, type_name};
use super::new::template;
use super::tools::PypiTool;

/// The componentize-py version every Python component is built with. `tests/run` reads
/// it from this line to install the same one for the tests.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// componentize-py, from PyPI.
pub const COMPONENTIZE_PY: PypiTool = PypiTool {
    package: "componentize-py",
    version: COMPONENTIZE_PY_VERSION,
};

/// What a build needs from `pyproject.toml`.
#[derive(Debug, Clone, PartialEq)]
struct Project {
    name: String,
    version: Version,
    /// The module that defines `WitWorld` (`[tool.oberon] app`, default `app`).
    app: String,
    /// The contract's directory in the project (`[tool.oberon] wit`).
    wit: PathBuf,
}

impl Project {
    fn parse(text: &str) -> anyhow::Result<Project> {
        let doc: toml::Table = text.parse()?;
        let project = doc.get("project").and_then(toml::Value::as_table);
        let get = |key: &str| {
            project
                .and_then(|p| p.get(key))
                .and_then(toml::Value::as_str)
                .with_context(|| format!("[project] has no {key} (a string)"))
        };
        let version_text = get("version")?;
        let version = Version::parse(version_text).with_context(|| {
            format!("[project] version {version_text:?} is not semver (e.g. 0.1.0)")
        })?;
        let oberon = doc
            .get("tool")
            .and_then(|t| t.get("oberon"))
            .and_then(toml::Value::as_table);
        let setting = |key: &str, default: String| match oberon.and_then(|o| o.get(key)) {
            None => Ok(default),
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(other) => bail!("[tool.oberon] {key} is a string, not {other}"),
        };
        Ok(Project {
            name: get("name")?.to_string(),
            version,
            app: setting("app", "app".into())?,
            wit: setting("wit", format!("oberon/wit/v{}", template::CONTRACT_VERSION))?.into(),
        })
    }
}

/// A new project's files: its own, then the vendored SDK and contract.
pub fn scaffold(name: &str) -> Vec<(String, String)> {
    let own = [
        ("pyproject.toml".to_string(), pyproject(name)),
        ("app.py".into(), app_py(name)),
        asset_placeholder(name),
        (
            ".gitignore".into(),
            "/build\n/.oberon\n__pycache__/\n".into(),
        ),
        ("README.md".into(), readme(name)),
    ];
    own.into_iter()
        .chain(
            template::PYTHON_FILES
                .iter()
                .map(|(rel, text)| (rel.to_string(), text.to_string())),
        )
        .collect()
}

/// componentize-py over the project, into `build/<name>.component.wasm`.
pub fn build(dir: &Path, tools: &Path) -> anyhow::Result<Compiled> {
    let pyproject = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).with_context(|| {
        format!(
            "no Python component at {} (no pyproject.toml)",
            dir.display()
        )
    })?;
    let project = Project::parse(&text).with_context(|| pyproject.display().to_string())?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let home = sdk_home(&dir, template::PYTHON_FILES)?;
    let componentize_py = COMPONENTIZE_PY.command(tools)?;
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let wasm = out_dir.join(format!("{}.component.wasm", project.name));
    let step = Step::start(&format!(
        "compiling {} with componentize-py {}",
        dir.display(),
        COMPONENTIZE_PY.version
    ));
    let status = Command::new(&componentize_py)
        .arg("--quiet")
        .arg("-d")
        .arg(home.join(&project.wit))
        .args(["-w", "component", "componentize", "-p"])
        .arg(&dir)
        .arg("-p")
        .arg(home.join("oberon/sdk"))
        .arg(&project.app)
        .arg("-o")
        .arg(&wasm)
        .current_dir(&dir)
        // What componentize-py says goes with the rest of the progress, not into the
        // one line `oberon component build` prints.
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("running {}", componentize_py.display()))?;
    if !status.success() {
        bail!(
            "building {} failed (see componentize-py's output above)",
            dir.display()
        );
    }
    step.done(&wasm.display().to_string());
    Ok(Compiled {
        wasm,
        version: project.version,
    })
}

fn pyproject(name: &str) -> String {
    format!(
        r#"[project]
name = "{name}"
# The version `oberon component deploy` ships: bump it for every deploy.
version = "0.1.0"
description = "An Oberon component"

# How `oberon component build` builds it (componentize-py {cpy}).
[tool.oberon]
# The module that defines `WitWorld`.
app = "app"
# The contract it is built against.
wit = "oberon/wit/v{contract}"
"#,
        cpy = COMPONENTIZE_PY.version,
        contract = template::CONTRACT_VERSION
    )
}

fn app_py(name: &str) -> String {
    let class = type_name(name);
    format!(
        r#""""`{name}`: an Oberon component. `describe` says what it reads, writes and ships;
`render` turns a request and its props into HTML for its slot."""

from oberon_sdk import Component, Context, Fragment, Metadata, Props, export, html


class {class}(Component):
    def describe(self) -> Metadata:
        return Metadata("{name}", assets=["{name}.js"])

    def render(self, ctx: Context, props: Props) -> Fragment:
        who = props.str("who", "world")
        return Fragment(f"<p>Hello, {{html.escape(who)}}!</p>")


# componentize-py calls the class `WitWorld` of this module.
WitWorld = export({class})
"#
    )
}

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nAn Oberon component in Python.\n\n```sh\noberon component build                       # build/{name}.component.wasm\noberon component deploy --registry PATH       # validate, upload, point stable at it\noberon component deploy --registry PATH --channel canary --canary-percent 10\noberon component promote {name} --registry PATH\n```\n\nThe first build installs componentize-py {cpy} from PyPI into `.oberon/tools/`\n(`OBERON_TOOLS_DIR` moves it); later builds are offline. `oberon/` holds the\nPython SDK (`oberon_sdk`) and the contract (`oberon:component@{contract}`) this\ncomponent is built against; bump the version in `pyproject.toml` for every deploy.\n\nAn exception raised in `render` is the render's error: the page shows the slot's\nfallback. One raised in `describe` stops the component from loading, and\n`deploy` refuses it. The component runs in CPython compiled to WebAssembly, with\nonly the standard library and what is in this folder, and no network, files or\nstate kept between requests: import every module at the top of `app.py` (a module\nfirst imported inside `render` cannot be found then).\n",
        cpy = COMPONENTIZE_PY.version,
        contract = template::CONTRACT_VERSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_project_and_says_what_is_wrong() {
        let p = Project::parse(&pyproject("gift-card")).unwrap();
        assert_eq!(
            p,
            Project {
                name: "gift-card".into(),
                version: Version::new(0, 1, 0),
                app: "app".into(),
                wit: format!("oberon/wit/v{}", template::CONTRACT_VERSION).into(),
            }
        );
        let p = Project::parse("[project]\nname = \"x\"\nversion = \"1.2.3\"\n").unwrap();
        assert_eq!(
            (p.app.as_str(), p.version.to_string()),
            ("app", "1.2.3".to_string())
        );
        for (text, message) in [
            (
                "[project]\nname = \"x\"\n",
                "[project] has no version (a string)",
            ),
            ("[project]\nversion = \"1.0.0\"\n", "[project] has no name"),
            (
                "[project]\nname = \"x\"\nversion = \"1.0\"\n",
                "\"1.0\" is not semver",
            ),
            (
                "[project]\nname = \"x\"\nversion = \"1.0.0\"\n[tool.oberon]\napp = 3\n",
                "[tool.oberon] app is a string, not 3",
            ),
        ] {
            let err = format!("{:#}", Project::parse(text).unwrap_err());
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn scaffolds_a_project_with_the_sdk_and_contract() {
        let files = scaffold("2fa-box");
        let get = |rel: &str| {
            files
                .iter()
                .find(|(r, _)| r == rel)
                .map(|(_, t)| t.as_str())
                .unwrap_or_else(|| panic!("no {rel}"))
        };
        let app = get("app.py");
        assert!(app.contains("class C2faBox(Component):"), "{app}");
        assert!(app.contains("WitWorld = export(C2faBox)"), "{app}");
        assert!(get("oberon/sdk/oberon_sdk/component.py").contains("def export("));
        let wit = get(&format!(
            "oberon/wit/v{}/component.wit",
            template::CONTRACT_VERSION
        ));
        assert!(wit.contains("world component"), "{wit}");
        assert!(
            !files
                .iter()
                .any(|(r, _)| r.contains("tests/") || r.contains("__pycache__"))
        );
    }
}
