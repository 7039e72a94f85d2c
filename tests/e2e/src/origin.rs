//! The origin behind the CDN, all real and on loopback: a backend standing in for the
//! teams' BFFs, the renderer serving a site of the demo's components, and the gateway
//! in front of it, counting the page requests that reach it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oberon_gateway::{Gateway, GatewayOptions};
use oberon_identity::Verifier;
use oberon_renderer::cache::Mode;
use oberon_renderer::{Renderer, RendererOptions, server};
use rsa::pkcs1::EncodeRsaPrivateKey;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The renderer's admin token in these tests.
pub const ADMIN_TOKEN: &str = "cdn-test-admin-token-0123456789abcdef";
/// `iss` of the test identity provider's tokens ([`Issuer`]).
pub const ISSUER: &str = "https://idp.cdn.test";
const AUDIENCE: &str = "oberon";

/// How the test site is set up.
#[derive(Debug, Clone)]
pub struct SiteSettings {
    /// The event pages' CDN TTL in `normal` mode.
    pub event_ttl_s: u32,
    /// `limits.max_concurrent_renders`.
    pub max_concurrent_renders: u32,
    /// Where the renderer sends its purges (the CDN under test).
    pub purge: Vec<String>,
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            event_ttl_s: 60,
            max_concurrent_renders: 256,
            purge: Vec::new(),
        }
    }
}

/// The backend the site's data sources call: events (public for 60 s) and the signed-in
/// user's orders (private). Its answers can be slowed down to overload the renderer.
#[derive(Default)]
pub struct Backend {
    pub delay_ms: AtomicU64,
}

/// The gateway's count of what reached it (health probes excluded).
#[derive(Default)]
pub struct Counter {
    pub requests: AtomicU64,
}

impl Counter {
    pub fn get(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The whole origin. Dropping it stops everything.
pub struct Origin {
    pub renderer: Arc<Renderer>,
    pub gateway_addr: SocketAddr,
    pub renderer_addr: SocketAddr,
    pub backend: Arc<Backend>,
    /// Requests that reached the gateway, other than its own health endpoints.
    pub counter: Arc<Counter>,
    /// What the CDN must send in `X-Origin-Verify` for the gateway to answer.
    pub origin_secret: String,
    issuer: Issuer,
    site: TempDir,
    _gateway_dir: TempDir,
    stops: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Origin {
    pub async fn start(settings: SiteSettings) -> Self {
        let backend = Arc::new(Backend::default());
        let backend_url = serve_router(backend_router(backend.clone())).await;

        let site = tempfile::tempdir().expect("tempdir");
        write_site(site.path(), &settings, &backend_url);
        let issuer = Issuer::start().await;
        let gateway_dir = tempfile::tempdir().expect("tempdir");

        // The gateway signs assertions; the renderer trusts its keys. The gateway needs
        // the renderer's address and the renderer the gateway's keys, so the gateway is
        // loaded first and the renderer's listener bound before either serves.
        let renderer_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let renderer_addr = renderer_listener.local_addr().expect("addr");
        // The CDN proves itself to the gateway with this secret (`[origin]`).
        let origin_secret = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let secret_file = gateway_dir.path().join("origin-secret");
        std::fs::write(&secret_file, &origin_secret).expect("origin secret");
        let config = gateway_dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "{GATEWAY_CONFIG}\n[origin]\nheader = \"x-origin-verify\"\nsecret_file = {:?}\n",
                secret_file.display().to_string()
            ),
        )
        .expect("gateway.toml");
        let gateway = Gateway::load(GatewayOptions {
            config,
            upstreams: [("renderer".to_string(), format!("http://{renderer_addr}"))].into(),
            jwks_urls: [(ISSUER.to_string(), issuer.jwks_url.clone())].into(),
            ..GatewayOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("gateway config: {e}"));
        let gateway = Arc::new(gateway);

        let renderer = Renderer::start(RendererOptions {
            site_dir: site.path().to_path_buf(),
            components_dir: None,
            bffs: BTreeMap::new(),
            data_client: None,
            identity: Some(Arc::new(Verifier::fixed(
                &gateway.signer().jwks(),
                "renderer",
            ))),
            admin_token: Some(ADMIN_TOKEN.into()),
            code_cache: None,
        })
        .await
        .unwrap_or_else(|e| panic!("renderer start: {e}"));
        // As `oberon-renderer` does: pick up component deploys.
        renderer.watch(Duration::from_millis(100));

        let mut stops = Vec::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::app(renderer.clone());
        let task = tokio::spawn(async move {
            let _ = server::serve(renderer_listener, app, async {
                let _ = stopped.await;
            })
            .await;
        });
        stops.push((stop, task));

        let counter = Arc::new(Counter::default());
        let count = counter.clone();
        let app = oberon_gateway::app(gateway).layer(axum::middleware::from_fn(
            move |request: Request<axum::body::Body>, next: Next| {
                let count = count.clone();
                async move {
                    if !request.uri().path().starts_with("/_gateway/") {
                        count.requests.fetch_add(1, Ordering::SeqCst);
                    }
                    next.run(request).await
                }
            },
        ));
        let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gateway_addr = gateway_listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = oberon_gateway::serve(gateway_listener, app, async {
                let _ = stopped.await;
            })
            .await;
        });
        stops.push((stop, task));

        Self {
            renderer,
            gateway_addr,
            renderer_addr,
            backend,
            counter,
            origin_secret,
            issuer,
            site,
            _gateway_dir: gateway_dir,
            stops,
        }
    }

    /// The site directory (to deploy components into while running).
    pub fn site_dir(&self) -> &Path {
        self.site.path()
    }

    /// A bearer token of `user` from the gateway's identity provider.
    pub fn token(&self, user: &str) -> String {
        self.issuer.token(user)
    }

    /// Stop the gateway and the renderer: from now on connections to the origin are
    /// refused, as when its processes are killed.
    pub async fn kill(&mut self) {
        for (stop, task) in self.stops.drain(..) {
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        assert!(
            tokio::net::TcpStream::connect(self.gateway_addr)
                .await
                .is_err(),
            "the gateway still accepts connections after being stopped"
        );
    }

    /// The operator's mode (as `oberon mode` sets it; `None` hands it back to the
    /// signals), through the admin endpoint.
    pub async fn set_mode(&self, mode: Option<Mode>) {
        let body = serde_json::json!({ "mode": mode.map_or("auto", Mode::as_str) });
        let response = reqwest::Client::new()
            .post(format!("http://{}/_oberon/mode", self.renderer_addr))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /_oberon/mode");
        assert!(
            response.status().is_success(),
            "POST /_oberon/mode {body}: {}",
            response.status()
        );
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        for (stop, task) in self.stops.drain(..) {
            let _ = stop.send(());
            task.abort();
        }
    }
}

/// Serve `app` on a free loopback port; its base URL.
pub async fn serve_router(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The demo's event, under the id asked for.
fn event_json(id: &str) -> serde_json::Value {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/fixtures/event-42.json");
    let text = std::fs::read_to_string(&fixture).expect("demo/fixtures/event-42.json");
    let mut event: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    event["id"] = id.into();
    event["name"] = format!("Event {id}").into();
    event
}

fn backend_router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route(
            "/v1/events/{id}",
            routing::get(
                |State(backend): State<Arc<Backend>>, UrlPath(id): UrlPath<String>| async move {
                    let delay = backend.delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    (
                        [("cache-control", "public, max-age=60")],
                        axum::Json(event_json(&id)),
                    )
                },
            ),
        )
        .route(
            "/v1/orders",
            routing::get(|headers: HeaderMap| async move {
                // The user's own orders: whoever the gateway's assertion says.
                if !headers.contains_key(oberon_identity::assertion::HEADER) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                (
                    [("cache-control", "private, max-age=60")],
                    axum::Json(serde_json::json!({
                        "orders": [{ "id": "o-1", "event": "Event 1", "quantity": 2 }]
                    })),
                )
                    .into_response()
            }),
        )
        .with_state(backend)
}

const LAYOUT: &str = "<!doctype html><html><head>{{ head }}</head><body>\
{% for name, html in slots|items %}<div data-slot=\"{{ name }}\">{{ html }}</div>{% endfor %}\
{{ scripts }}</body></html>";

/// The pages whose configuration does not depend on [`SiteSettings`].
const FIXED_PAGES: [(&str, &str); 5] = [
    (
        "tonight",
        r#"route = "/tonight/{id}"
layout = "test.html"
team = "events"
cache = { class = "public", ttl_s = 60 }
[[data]]
topic = "event"
url = "{bff.events}/v1/events/{params.id}"
deadline_ms = 1500
[[slots]]
name = "ready"
component = "site-footer"
fallback = "<footer>Oberon Tickets</footer>"
[[slots]]
name = "waiting"
component = "recommendations"
fallback = ""
"#,
    ),
    (
        "about",
        r#"route = "/about"
layout = "test.html"
team = "marketing"
cache = { class = "public", ttl_s = 60 }
[[slots]]
name = "footer"
component = "site-footer"
fallback = "<footer>Oberon Tickets</footer>"
"#,
    ),
    (
        "hello",
        r#"route = "/hello"
layout = "test.html"
team = "hello"
cache = { class = "public", ttl_s = 60 }
[[slots]]
name = "hello"
component = "hello"
fallback = "<p>hello unavailable</p>"
"#,
    ),
    (
        "account",
        r#"route = "/account"
layout = "test.html"
team = "checkout"
cache = { class = "personal" }
[[data]]
topic = "orders"
url = "{bff.checkout}/v1/orders"
private = true
identity = true
[[slots]]
name = "account"
component = "account-summary"
critical = true
"#,
    ),
    (
        "broken",
        r#"route = "/broken"
layout = "test.html"
team = "testing"
cache = { class = "public", ttl_s = 60 }
[[slots]]
name = "main"
component = "misbehave"
props = { mode = "trap" }
critical = true
"#,
    ),
];

/// A site of the demo's components: `/events/{id}` (team events, public, four
/// components over the events backend), `/tonight/{id}` (the footer, then
/// recommendations over the same backend, no critical slot: streamed while the backend
/// is slow), `/about` (team marketing, public, one
/// component and no data), `/hello` (team hello, public: component `hello`, for
/// deploys), `/account` (team checkout, personal), `/broken` (a critical component
/// that traps: a 5xx; not routed by the gateway).
fn write_site(dir: &Path, settings: &SiteSettings, backend: &str) {
    for sub in ["pages", "layouts", "components"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    let purge = settings
        .purge
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let site = format!(
        r#"components = "components"
[bffs]
events = "{backend}"
checkout = "{backend}"
[limits]
page_deadline_ms = 2000
component_deadline_ms = 200
max_concurrent_renders = {max}
[cache]
jitter = 0.0
purge = [{purge}]
[mode]
calm_period_s = 120
"#,
        max = settings.max_concurrent_renders,
    );
    std::fs::write(dir.join("site.toml"), site).expect("site.toml");
    std::fs::write(dir.join("layouts/test.html"), LAYOUT).expect("layout");
    let event = format!(
        r#"route = "/events/{{id}}"
layout = "test.html"
team = "events"
cache = {{ class = "public", ttl_s = {ttl} }}
[[data]]
topic = "event"
url = "{{bff.events}}/v1/events/{{params.id}}"
deadline_ms = 1500
[[slots]]
name = "main"
component = "event-details"
fallback = "<p>Event details are unavailable right now.</p>"
critical = true
[[slots]]
name = "tickets"
component = "ticket-picker"
props = {{ default_quantity = 2 }}
fallback = "<p>Ticket sales are paused.</p>"
[[slots]]
name = "cart"
component = "cart-summary"
fallback = "<p>Your cart is unavailable.</p>"
[[slots]]
name = "aside"
component = "recommendations"
fallback = ""
"#,
        ttl = settings.event_ttl_s,
    );
    std::fs::write(dir.join("pages/event.toml"), event).expect("event.toml");
    for (name, toml) in FIXED_PAGES {
        std::fs::write(dir.join("pages").join(format!("{name}.toml")), toml).expect(name);
    }
    let components = dir.join("components");
    for name in [
        "event-details",
        "ticket-picker",
        "cart-summary",
        "recommendations",
        "site-footer",
        "account-summary",
        "misbehave",
    ] {
        install(&components, name, name);
    }
    install(&components, "hello", "hello-v1");
}

/// Deploy the component built from `crate_name` as `name` (into a running site too).
pub fn install(components: &Path, name: &str, crate_name: &str) {
    let artifact = oberon_test_artifacts::artifact(crate_name);
    oberon_renderer::component_set::install(
        components,
        name,
        artifact.wasm(),
        Some(&artifact.assets_dir()),
    )
    .expect("install component");
}

/// The gateway as a production deployment behind a CDN has it, on loopback: Varnish is
/// the trusted hop (it sets `X-Forwarded-For` to the client), and the rate limits
/// are far above what the tests send. Pages and the components' client assets are
/// routed as in `demo/gateway.toml`.
const GATEWAY_CONFIG: &str = r#"
public_url = "http://127.0.0.1:1"
trusted_hops = ["127.0.0.1/32"]

[session]
sign_in_url = "https://idp.cdn.test/sign-in"
issuer = "https://idp.cdn.test"

[rate_limit]
per_client = { per_second = 100000, burst = 100000 }
per_user = { per_second = 100000, burst = 100000 }

[upstreams]
renderer = "http://127.0.0.1:9"
# Not routed: the renderer reaches it, with the user for the account page's orders.
checkout = "http://127.0.0.1:9"

[delegates]
renderer = ["checkout"]

[[issuers]]
issuer = "https://idp.cdn.test"
jwks_url = "https://idp.cdn.test/jwks.json"
audiences = ["oberon"]
algorithms = ["RS256"]

[[routes]]
path = "/events/{id}"
upstream = "renderer"
kind = "page"
auth = "optional"

[[routes]]
path = "/about"
upstream = "renderer"
kind = "page"
auth = "optional"

[[routes]]
path = "/tonight/{id}"
upstream = "renderer"
kind = "page"
auth = "optional"

[[routes]]
path = "/hello"
upstream = "renderer"
kind = "page"
auth = "optional"

[[routes]]
path = "/account"
upstream = "renderer"
kind = "page"
auth = "required"

[[routes]]
path = "/assets/{*path}"
upstream = "renderer"
kind = "api"
auth = "public"
"#;

/// An RSA identity provider: its JWKS on loopback, and tokens for any user (audience
/// `oberon`, role `buyer`, valid for 10 minutes).
pub struct Issuer {
    key: EncodingKey,
    pub jwks_url: String,
}

impl Issuer {
    pub async fn start() -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
        let key = EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("DER").as_bytes());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("JWK");
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        jwk.common.key_id = Some("k1".into());
        let jwks = JwkSet { keys: vec![jwk] };
        let base = serve_router(Router::new().route(
            "/jwks.json",
            routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        ))
        .await;
        Self {
            key,
            jwks_url: format!("{base}/jwks.json"),
        }
    }

    pub fn token(&self, user: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": user,
            "iat": now, "nbf": now, "exp": now + 600, "roles": ["buyer"],
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }
}

/// The response of a request through the CDN, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `X-Cache` as `oberon.vcl` sets it.
    pub fn cache(&self) -> &str {
        self.header("x-cache")
    }
}

/// GET `url` with extra headers, read whole.
pub async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Got {
        status,
        headers,
        body,
    }
}

/// A client that neither follows redirects nor pools connections across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}
