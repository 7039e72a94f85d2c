//! Component toolchains installed on demand from their language's package registry,
//! at pinned versions, into a tool directory of the project's own:
//! `<project>/.oberon/tools/<tool>-<version>/`, or `$OBERON_TOOLS_DIR/<tool>-<version>/`
//! when that is set (the tests share one install under `target/test-tools/`).
//!
//! A PyPI tool is a virtualenv made with the system Python's `venv` (`OBERON_PYTHON`,
//! else `python3`) and filled by its `pip`: nothing is downloaded from anywhere but the
//! registry. An npm tool is a folder with the pinned `package.json` and its
//! `package-lock.json`, filled by `npm ci` (Node 20+ and npm on `PATH`) from the npm
//! registry, without install scripts. Either install is complete once `.complete` is
//! written in it; one that was cut short is removed and made again, and a lock file
//! beside it keeps two builds from installing at once. Once installed, builds are
//! offline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Step;

/// Where tool directories are, for the project in `project`.
pub fn tools_dir(project: &Path) -> PathBuf {
    tools_dir_or(project.join(".oberon/tools"))
}

/// Where tool directories are: `$OBERON_TOOLS_DIR` when set, else `default` (`oberon
/// dev` keeps one for all the demo's components).
pub fn tools_dir_or(default: PathBuf) -> PathBuf {
    match std::env::var_os("OBERON_TOOLS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => default,
    }
}

/// A tool published on PyPI, pinned.
#[derive(Debug, Clone, Copy)]
pub struct PypiTool {
    /// The PyPI package, which installs a command of the same name.
    pub package: &'static str,
    pub version: &'static str,
}

impl PypiTool {
    /// The tool's directory under `tools`: `<package>-<version>`.
    pub fn dir(&self, tools: &Path) -> PathBuf {
        tools.join(format!("{}-{}", self.package, self.version))
    }

    /// The tool's command, installed first if it is not.
    pub fn command(&self, tools: &Path) -> anyhow::Result<PathBuf> {
        let dir = self.dir(tools);
        installed(tools, &dir, || self.install(&dir))?;
        Ok(dir.join("bin").join(self.package))
    }

    /// Whether it is installed under `tools`, or can be: the system Python and its
    /// `venv` (with `ensurepip`) are there. Asks nothing of the network.
    pub fn ready(&self, tools: &Path) -> anyhow::Result<()> {
        if self.dir(tools).join(".complete").is_file() {
            return Ok(());
        }
        let (python, python_name) = python();
        let status = Command::new(&python)
            .args(["-c", "import venv, ensurepip"])
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| no_python(&python_name))?;
        if !status.success() {
            bail!("{python_name} has no venv module with ensurepip: {VENV_HELP}");
        }
        Ok(())
    }

    /// Installs it into `dir`, which does not exist; returns what `.complete` says.
    fn install(&self, dir: &Path) -> anyhow::Result<String> {
        let step = Step::start(&format!(
            "installing {} {} from PyPI into {} (once; builds are offline after it)",
            self.package,
            self.version,
            dir.display()
        ));
        let (python, python_name) = python();
        let status = Command::new(&python)
            .args(["-m", "venv"])
            .arg(dir)
            .stdout(std::io::stderr())
            .status()
            .with_context(|| no_python(&python_name))?;
        if !status.success() {
            bail!(
                "`{python_name} -m venv {}` failed: {VENV_HELP}",
                dir.display()
            );
        }
        let pin = format!("{}=={}", self.package, self.version);
        let status = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", &pin])
            .stdout(std::io::stderr())
            .status()
            .context("running pip")?;
        if !status.success() {
            bail!(
                "`pip install {pin}` into {} failed (see pip's output above)",
                dir.display()
            );
        }
        step.done("");
        Ok(pin)
    }
}

/// A tool published on npm, pinned by a `package.json` and its `package-lock.json`
/// (the whole tree: the tool, its dependencies, what else the manifest lists).
#[derive(Debug, Clone, Copy)]
pub struct NpmTool {
    /// The tool's short name, which names its directory (`componentize-js`).
    pub name: &'static str,
    /// The npm package the build uses (`@bytecodealliance/componentize-js`).
    pub package: &'static str,
    /// Its version, as `package_json` pins it.
    pub version: &'static str,
    pub package_json: &'static str,
    pub package_lock: &'static str,
}

impl NpmTool {
    /// The tool's directory under `tools`: `<name>-<version>`.
    pub fn dir(&self, tools: &Path) -> PathBuf {
        tools.join(format!("{}-{}", self.name, self.version))
    }

    /// The tool's `node_modules`, installed first if it is not.
    pub fn node_modules(&self, tools: &Path) -> anyhow::Result<PathBuf> {
        let dir = self.dir(tools);
        installed(tools, &dir, || self.install(&dir))?;
        Ok(dir.join("node_modules"))
    }

    /// Whether it is installed under `tools`, or can be, and can run: Node.js 20+ is
    /// there, and npm too when it is not yet installed. Asks nothing of the network.
    pub fn ready(&self, tools: &Path) -> anyhow::Result<()> {
        node()?;
        if self.dir(tools).join(".complete").is_file() {
            return Ok(());
        }
        let npm = Command::new("npm")
            .arg("--version")
            .output()
            .with_context(|| format!("cannot run npm: {NODE_HELP}"))?;
        if !npm.status.success() {
            bail!("npm --version failed: {NODE_HELP}");
        }
        Ok(())
    }

    /// Installs it into `dir`, which does not exist; returns what `.complete` says.
    fn install(&self, dir: &Path) -> anyhow::Result<String> {
        node()?;
        let step = Step::start(&format!(
            "installing {} {} and its locked dependencies from the npm registry into {} (once; builds are offline after it)",
            self.package,
            self.version,
            dir.display()
        ));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, text) in [
            ("package.json", self.package_json),
            ("package-lock.json", self.package_lock),
        ] {
            std::fs::write(dir.join(file), text)
                .with_context(|| format!("cannot write {}", dir.join(file).display()))?;
        }
        // No install scripts: nothing is fetched but the locked packages (the native
        // parts of these tools come as packages of their own).
        let status = Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(dir)
            .stdout(std::io::stderr())
            .status()
            .with_context(|| format!("cannot run npm: {NODE_HELP}"))?;
        if !status.success() {
            bail!(
                "`npm ci` of {} {} in {} failed (see npm's output above)",
                self.package,
                self.version,
                dir.display()
            );
        }
        step.done("");
        Ok(format!("{}@{}", self.package, self.version))
    }
}

/// The Python that makes tool virtualenvs (`OBERON_PYTHON`, else `python3`), and its
/// name for messages.
fn python() -> (std::ffi::OsString, String) {
    let python = std::env::var_os("OBERON_PYTHON").unwrap_or_else(|| "python3".into());
    let name = PathBuf::from(&python).display().to_string();
    (python, name)
}

fn no_python(name: &str) -> String {
    format!("cannot run {name}: install Python 3 (with venv), or point OBERON_PYTHON at one")
}

/// How to get Python's `venv`, for the errors that need it.
const VENV_HELP: &str = "install Python's venv module (Debian: apt-get install python3-venv)";

/// How to get Node.js, for the errors that need it.
const NODE_HELP: &str = "JavaScript components need Node.js 20 or newer with npm on PATH (Debian: apt-get install nodejs npm; else https://nodejs.org)";

/// `node`, checked to be on `PATH` and at least version 20 (what ComponentizeJS needs).
pub fn node() -> anyhow::Result<PathBuf> {
    let node = PathBuf::from("node");
    let out = Command::new(&node)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run node: {NODE_HELP}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: Option<u32> = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok());
    match major {
        Some(major) if out.status.success() && major >= 20 => Ok(node),
        _ => bail!("node --version says {version:?}: {NODE_HELP}"),
    }
}

/// Makes sure the tool in `dir` (under `tools`) is complete: when it is not, takes the
/// tool's lock, and, if no other build installed it meanwhile, removes what an
/// unfinished install left and runs `install`, whose answer goes into `.complete`.
fn installed(
    tools: &Path,
    dir: &Path,
    install: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let complete = dir.join(".complete");
    if complete.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(tools).with_context(|| format!("cannot create {}", tools.display()))?;
    let mut lock_name = dir.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = tools.join(lock_name);
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    // Another build may have installed it while this one waited.
    if complete.is_file() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the unfinished {}", dir.display()))?;
    }
    let done = install()?;
    std::fs::write(&complete, format!("{done}\n"))
        .with_context(|| format!("cannot write {}", complete.display()))
}
