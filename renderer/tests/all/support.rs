//! A throwaway site on disk, a running renderer, and a backend to fetch data from.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use oberon_renderer::{Renderer, RendererOptions, StartError, server};
use tempfile::TempDir;

/// A layout that places whatever slots a page has, so test pages need no layout of
/// their own.
pub const ANY_SLOTS_LAYOUT: &str = "<!doctype html><html><head>{{ head }}</head><body>\
{% for name, html in slots|items %}<div data-slot=\"{{ name }}\">{{ html }}</div>{% endfor %}\
{{ scripts }}</body></html>";

/// The admin token of every test renderer.
#[allow(dead_code)]
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub struct TestSite {
    pub dir: TempDir,
}

impl TestSite {
    /// A site with the given BFFs and the any-slots layout.
    pub fn new(bffs: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut toml = String::from(
            "components = \"components\"\n[limits]\npage_deadline_ms = 1000\ncomponent_deadline_ms = 100\nmax_instances = 32\n[cache]\njitter = 0.0\n[bffs]\n",
        );
        for (name, url) in bffs {
            toml.push_str(&format!("{name} = \"{url}\"\n"));
        }
        std::fs::write(dir.path().join("site.toml"), toml).expect("site.toml");
        for sub in ["pages", "layouts", "components"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let site = Self { dir };
        site.layout("test.html", ANY_SLOTS_LAYOUT);
        site
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn layout(&self, name: &str, source: &str) {
        std::fs::write(self.path().join("layouts").join(name), source).expect("layout");
    }

    pub fn page(&self, name: &str, toml: &str) {
        std::fs::write(self.path().join("pages").join(name), toml).expect("page");
    }

    /// Install the component built from crate `crate_name` under the name `as_name`.
    pub fn install_as(&self, as_name: &str, crate_name: &str) {
        let artifact = oberon_test_artifacts::artifact(crate_name);
        oberon_renderer::component_set::install(
            &self.path().join("components"),
            as_name,
            artifact.wasm(),
            Some(&artifact.assets_dir()),
        )
        .expect("install component");
    }

    pub fn install(&self, names: &[&str]) {
        for name in names {
            self.install_as(name, name);
        }
    }

    pub async fn start(&self) -> Result<Running, StartError> {
        self.start_with_identity(None).await
    }

    /// Start with a verifier of the gateway's identity assertions.
    pub async fn start_with_identity(
        &self,
        identity: Option<Arc<oberon_identity::Verifier>>,
    ) -> Result<Running, StartError> {
        self.start_with(identity, None).await
    }

    /// Start with a compiled-code cache directory.
    pub async fn start_with_code_cache(
        &self,
        code_cache: Option<std::path::PathBuf>,
    ) -> Result<Running, StartError> {
        self.start_with(None, code_cache).await
    }

    async fn start_with(
        &self,
        identity: Option<Arc<oberon_identity::Verifier>>,
        code_cache: Option<std::path::PathBuf>,
    ) -> Result<Running, StartError> {
        let renderer = Renderer::start(RendererOptions {
            site_dir: self.path().to_path_buf(),
            components_dir: None,
            bffs: BTreeMap::new(),
            data_client: None,
            identity,
            admin_token: Some(ADMIN_TOKEN.into()),
            code_cache,
        })
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = server::app(renderer.clone());
        tokio::spawn(server::serve(listener, app, std::future::pending()));
        Ok(Running {
            renderer,
            addr,
            client: reqwest::Client::new(),
        })
    }
}

pub struct Running {
    pub renderer: Arc<Renderer>,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

pub struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub elapsed: Duration,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The HTML of one slot under the any-slots layout.
    pub fn slot(&self, name: &str) -> &str {
        let open = format!("<div data-slot=\"{name}\">");
        let start = self
            .body
            .find(&open)
            .unwrap_or_else(|| panic!("no slot {name} in:\n{}", self.body))
            + open.len();
        let end = self.body[start..]
            .find("</div><")
            .map_or(self.body.len(), |e| start + e);
        &self.body[start..end]
    }

    /// The embedded client bus state.
    pub fn bus_state(&self) -> serde_json::Value {
        let open = "<script id=\"oberon-bus-state\" type=\"application/json\">";
        let start = self.body.find(open).expect("bus state") + open.len();
        let end = start
            + self.body[start..]
                .find("</script>")
                .expect("end of bus state");
        serde_json::from_str(&self.body[start..end]).expect("bus state is JSON")
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Got {
        self.get_with(path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        let started = Instant::now();
        let mut request = self.client.get(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Got {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        }
    }
}

/// A backend (standing in for a BFF) with well-behaved and badly-behaved endpoints.
pub async fn backend() -> String {
    let hits = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let app = Router::new()
        .route(
            // Cacheable for a minute; the body counts the requests this route has had.
            "/counted",
            get(move || {
                let hits = hits.clone();
                async move {
                    let n = hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    ([("cache-control", "public, max-age=60")], axum::Json(n))
                }
            }),
        )
        .route(
            "/json/{name}",
            get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    axum::Json(serde_json::json!({ "name": name, "n": 5 }))
                },
            ),
        )
        .route(
            "/number/{n}",
            get(|axum::extract::Path(n): axum::extract::Path<i64>| async move { axum::Json(n) }),
        )
        .route(
            // Numbers with caching headers no BFF should send, each at u64::MAX.
            "/hostile/{kind}",
            get(
                |axum::extract::Path(kind): axum::extract::Path<String>| async move {
                    const MAX: &str = "18446744073709551615";
                    let (cache_control, age) = match kind.as_str() {
                        "max-age" => (format!("public, max-age={MAX}"), None),
                        "s-maxage" => (format!("public, s-maxage={MAX}"), None),
                        "age" => ("public, max-age=60".to_string(), Some(MAX)),
                        _ => (format!("public, max-age=60, stale-if-error={MAX}"), None),
                    };
                    let mut response = axum::Json(7).into_response();
                    let headers = response.headers_mut();
                    headers.insert("cache-control", cache_control.parse().expect("value"));
                    if let Some(age) = age {
                        headers.insert("age", age.parse().expect("value"));
                    }
                    response
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                axum::Json(serde_json::json!({ "late": true }))
            }),
        )
        .route(
            "/garbage",
            get(|| async { ([("content-type", "application/json")], "{\"not\": json") }),
        )
        .route(
            "/unavailable",
            get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response() }),
        )
        .route(
            "/huge",
            get(|| async {
                // 50 MB of valid JSON, far over the renderer's 4 MiB limit, without a
                // length.
                let chunks = std::iter::once(bytes::Bytes::from_static(b"\""))
                    .chain((0..800).map(|_| bytes::Bytes::from(vec![b'x'; 64 << 10])))
                    .chain(std::iter::once(bytes::Bytes::from_static(b"\"")))
                    .map(Ok::<_, std::io::Error>);
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A URL on which nothing listens.
/// A bare request for rendering a component directly (no page around it): `/`, in
/// English, anonymous, with `request_id`.
pub fn bare_request(request_id: &str) -> oberon_renderer::component::RequestContext {
    oberon_renderer::component::RequestContext {
        path: "/".into(),
        params: vec![],
        query: vec![],
        locale: "en".into(),
        user: None,
        request_id: Arc::from(request_id),
    }
}

pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[allow(dead_code)]
pub fn config_cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-errors")
}

/// A moto S3 server on a free loopback port, killed when dropped (as in the
/// registry's tests).
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server not found: run the tests with `tests/run`, which installs it (tests/requirements.txt)");
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("moto_server exited before listening")
                .expect("read moto_server's output");
            if let Some(rest) = line.split("Running on ").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Moto { child, endpoint }
    }

    /// Create a bucket (moto accepts unsigned requests).
    pub async fn bucket(&self, name: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket")
            .status();
        assert!(status.is_success(), "create bucket {name}: {status}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
