//! The demo as a visitor gets it: the `oberon` binary's `oberon dev`, serving the
//! repository's demo site (`demo/`: pages, layouts, gateway, fixtures) with its BFFs,
//! fixture backends, development identity provider, renderer and gateway, on a free
//! port. Its root is a copy in a temporary directory, so that a test may change a page
//! (a component that fails, say); the example components are the ones
//! `oberon-test-artifacts` built from source (Rust) and [`other_languages`] built
//! (Python, JavaScript), installed where `oberon dev --no-build` serves them from. Every
//! run shares one code cache, so only the first compiles the big guests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::platform::{Process, binary, free_addr};

/// What `demo/` holds that `oberon dev` serves (not the BFFs' sources).
const SERVED: [&str; 6] = [
    "site.toml",
    "gateway.toml",
    "pages",
    "layouts",
    "backends",
    "fixtures",
];

/// A running `oberon dev`. Dropping it stops it.
pub struct Demo {
    /// The gateway, where a visitor goes: `http://127.0.0.1:PORT`.
    pub url: String,
    process: Process,
    _root: TempDir,
}

impl Demo {
    /// The demo as it is.
    pub async fn start() -> Self {
        Self::start_changed(|_| {}).await
    }

    /// The demo after `change` has edited its copy of `demo/` (given that directory)
    /// and installed any components it needs besides the examples (with
    /// [`crate::origin::install`] into `<demo>/../target/oberon-dev/components`).
    pub async fn start_changed(change: impl FnOnce(&Path)) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let demo = root.path().join("demo");
        let repository_demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo");
        for entry in SERVED {
            copy(&repository_demo.join(entry), &demo.join(entry));
        }
        let components = root.path().join("target/oberon-dev/components");
        for example in oberon_test_artifacts::examples() {
            crate::origin::install(&components, example.name, example.name);
        }
        for built in other_languages() {
            copy(&built.dir, &components.join(&built.name));
        }
        let code_cache = target_dir().join("e2e-code-cache");
        std::fs::create_dir_all(&code_cache).expect("mkdir code cache");
        std::os::unix::fs::symlink(
            &code_cache,
            root.path().join("target/oberon-dev/code-cache"),
        )
        .expect("link the shared code cache");
        change(&demo);

        let addr = free_addr();
        let mut command = Command::new(binary("oberon", "oberon-cli"));
        command
            .arg("dev")
            .arg("--no-build")
            .arg("--root")
            .arg(root.path())
            .arg("--listen")
            .arg(addr.to_string());
        let process = Process::start(
            "oberon dev",
            command,
            addr,
            addr,
            (addr, "/_gateway/readyz"),
        )
        .await;
        Demo {
            url: format!("http://{addr}"),
            process,
            _root: root,
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sign in as `user` with `roles` the way a browser does — the gateway sends the
    /// visitor to the development identity provider, whose form posts the ID token back
    /// to the gateway — and return the session cookie (`name=value`).
    pub async fn sign_in(&self, user: &str, roles: &[&str]) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let started = client
            .get(format!(
                "{}/_gateway/sign-in?return_to=%2Faccount",
                self.url
            ))
            .send()
            .await
            .expect("sign-in");
        let authorize = header(&started, "location");
        let nonce_cookie = set_cookies(&started);
        let form = client
            .get(&authorize)
            .send()
            .await
            .expect("the provider's form")
            .text()
            .await
            .expect("form");
        let state = field(&form, "state");
        let redirect_uri = field(&form, "redirect_uri");
        let idp = authorize.split("/sign-in").next().expect("provider");
        let mut posted: Vec<(&str, &str)> = vec![
            ("state", &state),
            ("redirect_uri", &redirect_uri),
            ("user", user),
        ];
        posted.extend(roles.iter().map(|role| (*role, "on")));
        let answer = client
            .post(format!("{idp}/sign-in"))
            .form(&posted)
            .send()
            .await
            .expect("the provider's answer")
            .text()
            .await
            .expect("answer");
        let token = field(&answer, "id_token");
        let back = client
            .post(&redirect_uri)
            .header("cookie", nonce_cookie)
            .form(&[("id_token", token.as_str()), ("state", state.as_str())])
            .send()
            .await
            .expect("the sign-in callback");
        assert_eq!(back.status(), 303, "sign-in callback:\n{}", self.log());
        set_cookies(&back)
            .split("; ")
            .find(|c| c.starts_with("oberon_session="))
            .unwrap_or_else(|| panic!("no session cookie:\n{}", self.log()))
            .to_string()
    }
}

/// A demo component in Python or JavaScript, built from its project and installed as
/// `<dir>/component.wasm`.
#[derive(Debug)]
pub struct Built {
    pub name: String,
    pub lang: oberon_cli::component::lang::Lang,
    /// Where it is installed: `component.wasm` and the project's `assets/`.
    pub dir: PathBuf,
    /// `<dir>/component.wasm`.
    pub wasm: PathBuf,
    /// Its project (`components/examples-py/<name>` or `components/examples-js/<name>`).
    pub project: PathBuf,
}

impl Built {
    /// As the Rust components are given to tests and benches.
    pub fn artifact(&'static self) -> oberon_test_artifacts::Artifact {
        let utf8 = |path: &'static Path| path.to_str().expect("the repository's path is UTF-8");
        oberon_test_artifacts::Artifact {
            name: &self.name,
            wasm: utf8(&self.wasm),
            crate_dir: utf8(&self.project),
        }
    }
}

/// The demo's Python and JavaScript components, built from their sources
/// (`components/examples-py`, `components/examples-js`) once per process as `oberon dev`
/// builds them. The tools are `OBERON_TOOLS_DIR`'s (`tests/run` installs them and sets
/// it), else `target/test-tools`'s; the components go to `target/demo-components`.
pub fn other_languages() -> &'static [Built] {
    static BUILT: OnceLock<Vec<Built>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../components");
        let projects =
            oberon_cli::build::example_projects(&workspace).expect("the demo's projects");
        let tools = oberon_cli::component::tools::tools_dir_or(target_dir().join("test-tools"));
        let dir = target_dir().join("demo-components");
        oberon_cli::build::build_and_install_projects(&projects, &tools, &dir).unwrap_or_else(
            |e| panic!("building the demo's Python and JavaScript components: {e:#}"),
        );
        projects
            .into_iter()
            .map(|p| {
                let installed = dir.join(&p.name);
                Built {
                    wasm: installed.join("component.wasm"),
                    name: p.name,
                    lang: p.lang,
                    dir: installed,
                    project: p.dir,
                }
            })
            .collect()
    })
}

/// The repository's `target/`, where `tests/run` installs the test tools.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} on {}", response.url()))
        .to_string()
}

/// The cookies `response` sets, as a `Cookie` header would send them back.
fn set_cookies(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value of the hidden form field `name` in `html`.
fn field(html: &str, name: &str) -> String {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        .to_string()
}

/// Copy the file or directory `from` to `to`.
fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}
