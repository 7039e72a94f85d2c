//! The platform as separate processes, each its real binary — gateway, renderer, a BFF
//! made from the template — with its ops port, for tests that watch them from outside
//! as an operator does (a real Prometheus). Each is stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use bff_template::proto::items_service_server::{ItemsService, ItemsServiceServer};
use bff_template::proto::{
    GetItemRequest, GetItemResponse, Item, ListUserItemsRequest, ListUserItemsResponse,
};
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

/// A program the tests run from a Debian package: `$env_var` when set, else Debian's
/// `path`, else the same name on `PATH`.
pub fn debian_program(env_var: &str, path: &str) -> PathBuf {
    if let Some(own) = std::env::var_os(env_var) {
        return PathBuf::from(own);
    }
    let debian = Path::new(path);
    if debian.exists() {
        return debian.to_path_buf();
    }
    PathBuf::from(debian.file_name().unwrap_or(debian.as_os_str()))
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
        // Generous: a first start compiles every component not in its code cache (the
        // demo's Python and JavaScript ones take 15 s each on a busy 2-core machine).
        let until = Instant::now() + Duration::from_secs(180);
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

/// A BFF made from the template, in front of `backend`, with `env` besides.
pub async fn bff(backend: SocketAddr, env: &[(&str, String)]) -> Process {
    let (addr, ops) = (free_addr(), free_addr());
    let mut command = Command::new(binary("bff-template", "bff-template"));
    command
        .env("BFF_TEMPLATE_LISTEN", addr.to_string())
        .env("BFF_TEMPLATE_OPS_LISTEN", ops.to_string())
        .env("BFF_TEMPLATE_BACKEND_URL", format!("http://{backend}"))
        .env("BFF_TEMPLATE_DRAIN_MS", "0")
        .envs(env.iter().map(|(k, v)| (k, v)));
    Process::start("bff", command, addr, ops, (ops, "/readyz")).await
}

/// The renderer serving the site in `site`, with `env` besides.
pub async fn renderer(site: &Path, env: &[(&str, String)]) -> Process {
    let (addr, ops) = (free_addr(), free_addr());
    let mut command = Command::new(binary("oberon-renderer", "oberon-renderer"));
    command
        .arg("--site")
        .arg(site)
        .args([
            "--listen",
            &addr.to_string(),
            "--ops-listen",
            &ops.to_string(),
        ])
        .args(["--watch-ms", "0", "--workers", "2"])
        .envs(env.iter().map(|(k, v)| (k, v)));
    Process::start("renderer", command, addr, ops, (addr, "/_oberon/readyz")).await
}

/// A gateway's `gateway.toml` in `dir`: the renderer at `renderer` serves the public
/// pages `/p/{id}`; `more` is appended (issuers, routes).
pub fn gateway_config(dir: &Path, renderer: SocketAddr, more: &str) -> PathBuf {
    let config = dir.join("gateway.toml");
    let toml = format!(
        r#"public_url = "http://127.0.0.1:1"
trusted_hops = ["127.0.0.1/32"]

[upstreams]
renderer = "http://{renderer}"

[[routes]]
path = "/p/{{id}}"
upstream = "renderer"
kind = "page"
auth = "public"
{more}"#
    );
    std::fs::write(&config, toml).expect("gateway.toml");
    config
}

/// The gateway configured by `config`, with `env` besides.
pub async fn gateway(config: &Path, env: &[(&str, String)]) -> Process {
    let (addr, ops) = (free_addr(), free_addr());
    let mut command = Command::new(binary("oberon-gateway", "oberon-gateway"));
    command
        .arg("--config")
        .arg(config)
        .args([
            "--listen",
            &addr.to_string(),
            "--ops-listen",
            &ops.to_string(),
        ])
        .envs(env.iter().map(|(k, v)| (k, v)));
    Process::start("gateway", command, addr, ops, (addr, "/_gateway/readyz")).await
}

/// The backend behind a template BFF: its `ItemsService` (gRPC, the template's
/// `proto/`), noting the `traceparent` each call came with (empty when none).
pub struct ItemBackend {
    pub addr: SocketAddr,
    pub traceparents: Arc<Mutex<Vec<String>>>,
}

/// What [`ItemBackend`] serves.
#[derive(Clone)]
struct Items(Arc<Mutex<Vec<String>>>);

#[tonic::async_trait]
impl ItemsService for Items {
    async fn get_item(
        &self,
        request: tonic::Request<GetItemRequest>,
    ) -> Result<tonic::Response<GetItemResponse>, tonic::Status> {
        let tp = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        self.0
            .lock()
            .expect("traceparents")
            .push(tp.unwrap_or_default().to_string());
        let item = Item {
            id: request.get_ref().id.clone(),
            name: "Item".into(),
            price_cents: 1200,
            currency: "EUR".into(),
            stock: 3,
        };
        Ok(tonic::Response::new(GetItemResponse { item: Some(item) }))
    }

    async fn list_user_items(
        &self,
        _request: tonic::Request<ListUserItemsRequest>,
    ) -> Result<tonic::Response<ListUserItemsResponse>, tonic::Status> {
        Ok(tonic::Response::new(ListUserItemsResponse {
            items: Vec::new(),
        }))
    }
}

impl ItemBackend {
    pub async fn start() -> Self {
        let traceparents = Arc::new(Mutex::new(Vec::new()));
        let routes =
            tonic::service::Routes::new(ItemsServiceServer::new(Items(traceparents.clone())));
        let url = oberon_bff::testing::serve_grpc_on_loopback(routes).await;
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .expect("a loopback address");
        ItemBackend { addr, traceparents }
    }
}

/// A site in `dir`: `site.toml` (`components = "components"`, then `settings`), one
/// layout `page.html` placing every slot in page order, `page` as `pages/item.toml`, and
/// the test components `components`.
pub fn site(dir: &Path, settings: &str, page: &str, components: &[&str]) {
    for sub in ["pages", "layouts", "components"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    std::fs::write(
        dir.join("site.toml"),
        format!("components = \"components\"\n{settings}"),
    )
    .expect("site.toml");
    std::fs::write(
        dir.join("layouts/page.html"),
        "<!doctype html><html lang=\"en\"><head>{{ head }}</head><body>\
         {% for name, html in slots|items %}<div>{{ html }}</div>{% endfor %}{{ scripts }}</body></html>",
    )
    .expect("layout");
    std::fs::write(dir.join("pages/item.toml"), page).expect("page");
    for name in components {
        let artifact = oberon_test_artifacts::artifact(name);
        oberon_renderer::component_set::install(
            &dir.join("components"),
            name,
            artifact.wasm(),
            Some(&artifact.assets_dir()),
        )
        .expect("install component");
    }
}
