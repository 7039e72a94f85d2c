//! The platform as separate processes, each its real binary — gateway, renderer, a BFF
//! made from the template — with its ops port, for tests that watch them from outside
//! as an operator does (a real Prometheus). Each is stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::varnish::reserve_port;

/// A workspace binary, built beside this test (`cargo test --workspace` builds every
/// binary before any test runs). Missing, the test fails with the command that builds it.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/all-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p {package}` (or the whole suite, `tests/run`)",
        path.display()
    );
    path
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], reserve_port()))
}

/// One running service: its process, the address it serves on, its ops port, and a
/// log to show when something goes wrong.
pub struct Process {
    name: &'static str,
    child: Child,
    pub addr: SocketAddr,
    pub ops: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Process {
    /// Start `command` (its stdout and stderr to a log file) and wait until
    /// `http://<ready_addr><ready_path>` answers 200.
    pub async fn start(
        name: &'static str,
        mut command: Command,
        addr: SocketAddr,
        ops: SocketAddr,
        ready: (SocketAddr, &str),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut process = Process {
            name,
            child,
            addr,
            ops,
            log,
            _dir: dir,
        };
        process.wait_until_ready(ready).await;
        process
    }

    async fn wait_until_ready(&mut self, (addr, path): (SocketAddr, &str)) {
        let url = format!("http://{addr}{path}");
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "{} not ready at {url} within 60 s:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop it now (SIGKILL): from here on, connections to it are refused.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
