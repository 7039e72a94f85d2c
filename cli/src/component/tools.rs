//! Component toolchains installed on demand from their language's package registry,
//! at pinned versions, into a tool directory of the project's own:
//! `<project>/.oberon/tools/<tool>-<version>/`, or `$OBERON_TOOLS_DIR/<tool>-<version>/`
//! when that is set (the tests share one install under `target/test-tools/`).
//!
//! A PyPI tool is a virtualenv made with the system Python's `venv` (`OBERON_PYTHON`,
//! else `python3`) and filled by its `pip`: nothing is downloaded from anywhere but the
//! registry. The install is complete once `.complete` is written in it; one that was
//! cut short is removed and made again, and a lock file beside it keeps two builds from
//! installing at once. Once installed, builds are offline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Step;

/// Where tool directories are, for the project in `project`.
pub fn tools_dir(project: &Path) -> PathBuf {
    match std::env::var_os("OBERON_TOOLS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => project.join(".oberon/tools"),
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
        let command = dir.join("bin").join(self.package);
        if dir.join(".complete").is_file() {
            return Ok(command);
        }
        std::fs::create_dir_all(tools)
            .with_context(|| format!("cannot create {}", tools.display()))?;
        let lock_path = tools.join(format!("{}-{}.lock", self.package, self.version));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        // Another build may have installed it while this one waited.
        if !dir.join(".complete").is_file() {
            self.install(&dir)?;
        }
        Ok(command)
    }

    fn install(&self, dir: &Path) -> anyhow::Result<()> {
        let step = Step::start(&format!(
            "installing {} {} from PyPI into {} (once; builds are offline after it)",
            self.package,
            self.version,
            dir.display()
        ));
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove the unfinished {}", dir.display()))?;
        }
        let python = std::env::var_os("OBERON_PYTHON").unwrap_or_else(|| "python3".into());
        let python_name = PathBuf::from(&python).display().to_string();
        let status = Command::new(&python)
            .args(["-m", "venv"])
            .arg(dir)
            .stdout(std::io::stderr())
            .status()
            .with_context(|| {
                format!("cannot run {python_name}: install Python 3 (with venv), or point OBERON_PYTHON at one")
            })?;
        if !status.success() {
            bail!(
                "`{python_name} -m venv {}` failed: install Python's venv module (Debian: apt-get install python3-venv)",
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
        std::fs::write(dir.join(".complete"), format!("{pin}\n"))
            .with_context(|| format!("cannot write {}", dir.join(".complete").display()))?;
        step.done("");
        Ok(())
    }
}
