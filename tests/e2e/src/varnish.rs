//! A real Varnish (Debian's `varnish` package) running `infra/cdn/varnish/oberon.vcl`
//! in front of an origin on loopback, for as long as the [`Varnish`] value lives.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::platform::debian_program;

/// `varnishd`: `$OBERON_VARNISHD`, else Debian's path, else whatever is on `PATH`.
fn varnishd() -> PathBuf {
    debian_program("OBERON_VARNISHD", "/usr/sbin/varnishd")
}

/// `prometheus-varnish-exporter`: `$OBERON_VARNISH_EXPORTER`, else Debian's path,
/// else whatever is on `PATH`.
fn varnish_exporter() -> PathBuf {
    debian_program(
        "OBERON_VARNISH_EXPORTER",
        "/usr/bin/prometheus-varnish-exporter",
    )
}

/// The cache's storage (`-s malloc,SIZEm` in [`flags`]), in MiB: what its memory may
/// grow by as it fills. 0 if the flags name none.
pub fn storage_mib() -> u64 {
    flags()
        .iter()
        .find_map(|f| f.strip_prefix("malloc,")?.strip_suffix('m')?.parse().ok())
        .unwrap_or(0)
}

/// The repository's `infra/cdn/varnish/`.
fn vcl_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/cdn/varnish")
}

/// The flags of `infra/cdn/varnish/varnishd.flags`, which `infra/cdn/README.md`'s
/// command also passes: one place for them, so the tests run what is documented.
pub fn flags() -> Vec<String> {
    let path = vcl_dir().join("varnishd.flags");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(String::from)
        .collect()
}

/// A free loopback port, for a server started later (Varnish takes its listen address
/// on the command line). The small window in which somebody else could take it is
/// covered by [`Varnish::start`] failing loudly.
pub fn reserve_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A running `varnishd -F`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Varnish {
    child: Child,
    pub addr: SocketAddr,
    /// The VCL, the backend declaration, varnishd's working directory and its log.
    dir: TempDir,
}

impl Varnish {
    /// Start Varnish on `127.0.0.1:port` with `oberon.vcl` and an `origin` backend at
    /// `origin` (probed on `/_gateway/readyz`, as `oberon-backend.vcl.example` does)
    /// that it proves itself to with `origin_secret`, and wait until it answers.
    pub fn start(port: u16, origin: SocketAddr, origin_secret: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // varnishd compiles and loads the VCL as its own unprivileged user when it is
        // started as root: everything it reads must be readable by others.
        chmod(dir.path(), 0o755);
        let example = std::fs::read_to_string(vcl_dir().join("oberon-backend.vcl.example"))
            .expect("read oberon-backend.vcl.example");
        let backend = example
            .replace(
                ".host = \"127.0.0.1\";",
                &format!(".host = \"{}\";", origin.ip()),
            )
            .replace(
                ".port = \"8080\";",
                &format!(".port = \"{}\";", origin.port()),
            );
        let placeholder = "\"REPLACE-WITH-THE-ORIGIN-SECRET\"";
        assert!(
            backend != example && backend.contains(placeholder),
            "oberon-backend.vcl.example no longer declares 127.0.0.1:8080 and the origin secret's placeholder; update this test"
        );
        let backend = backend.replace(placeholder, &format!("\"{origin_secret}\""));
        write_readable(&dir.path().join("oberon-backend.vcl"), &backend);
        let vcl = std::fs::read_to_string(vcl_dir().join("oberon.vcl")).expect("read oberon.vcl");
        write_readable(&dir.path().join("oberon.vcl"), &vcl);
        let workdir = dir.path().join("work");
        std::fs::create_dir(&workdir).expect("mkdir work");
        chmod(&workdir, 0o755);
        let log = std::fs::File::create(dir.path().join("varnishd.log")).expect("log file");

        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let program = varnishd();
        // No parent-death signal: varnishd's manager changes its credentials to start
        // its worker, which clears one (prctl(2)). Whoever starts it stops it.
        let child = Command::new(&program)
            .arg("-F")
            .arg("-n")
            .arg(&workdir)
            .arg("-a")
            .arg(addr.to_string())
            // The management interface on a port of its own choosing.
            .args(["-T", "127.0.0.1:0"])
            .arg("-f")
            .arg(dir.path().join("oberon.vcl"))
            .arg("-p")
            .arg(format!("vcl_path={}", dir.path().display()))
            .args(flags())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches whoever started
            // it, who stops it (and the group, worker included) on drop.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}\nThese tests need Varnish: install Debian's `varnish` package (tests/run installs it as root, or prints the command), or set OBERON_VARNISHD",
                    program.display()
                )
            });
        let mut varnish = Self { child, addr, dir };
        varnish.wait_until_serving();
        varnish
    }

    /// The manager's pid (its worker is a child of it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Debian's `prometheus-varnish-exporter` reading this Varnish's counters (it runs
    /// `varnishstat` on varnishd's working directory), at `/metrics` on its `addr`;
    /// returned once it answers with them.
    pub async fn exporter(&self) -> VarnishExporter {
        let addr = crate::platform::free_addr();
        let log = self.dir.path().join("exporter.log");
        let program = varnish_exporter();
        let child = Command::new(&program)
            .arg("-n")
            .arg(self.dir.path().join("work"))
            .args(["-web.listen-address", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}\nThis test needs Debian's `prometheus-varnish-exporter` (tests/run installs it as root, or prints the command), or OBERON_VARNISH_EXPORTER",
                    program.display()
                )
            });
        let exporter = VarnishExporter { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://{addr}/metrics");
        loop {
            let metrics = match reqwest::get(&url).await {
                Ok(answer) => answer.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if metrics.lines().any(|line| line == "varnish_up 1") {
                return exporter;
            }
            assert!(
                Instant::now() < deadline,
                "the exporter did not report Varnish up within 30 s:\n{metrics}\n{}",
                std::fs::read_to_string(&exporter.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What varnishd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("varnishd.log")).unwrap_or_default()
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("varnishd exited ({status}) before serving:\n{}", self.log());
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "varnishd did not listen on {} within 60 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        // SIGTERM lets the manager stop its worker child; SIGKILL would orphan it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let group = format!("-{}", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                kill_group(&group);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_group(&group);
        let _ = self.child.wait();
    }
}

/// A running `prometheus-varnish-exporter`, stopped when dropped.
pub struct VarnishExporter {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for VarnishExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGKILL to what is left of a process group (`-PGID`): nothing, normally.
fn kill_group(group: &str) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn write_readable(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write");
    chmod(path, 0o644);
}
