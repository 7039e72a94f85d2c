//! Real servers on port 0 for the gateway's tests: an upstream that records what it
//! saw, a JWKS endpoint that can be taken down and counts its fetches, an issuer whose
//! tokens the tests craft claim by claim, and the gateway itself.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request};
use axum::response::IntoResponse;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oberon_gateway::{Gateway, GatewayOptions};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "oberon";

pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body_len: usize,
}

/// An upstream recording every request. `/slow/…` answers after 2 s.
#[derive(Clone, Default)]
pub struct Upstream {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start() -> (Self, String) {
        let upstream = Self::default();
        let app = Router::new().fallback(record).with_state(upstream.clone());
        let url = serve(app).await;
        (upstream, url)
    }

    /// Requests that carried `x-case: case`.
    pub fn saw(&self, case: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.headers.get("x-case").is_some_and(|v| v == case))
            .cloned()
            .collect()
    }
}

async fn record(State(upstream): State<Upstream>, request: Request<Body>) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if parts.uri.path().contains("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    upstream.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body_len: body.len(),
    });
    (
        [
            ("x-upstream-hop", "keep-me"),
            ("connection", "x-upstream-hop"),
        ],
        format!("upstream saw {}", parts.uri),
    )
}

type JwksState = (Arc<Mutex<JwkSet>>, Arc<AtomicUsize>, Arc<AtomicBool>);

/// An RSA issuer whose tokens are built claim by claim, and its JWKS endpoint.
pub struct TestIssuer {
    pub key: EncodingKey,
    pub kid: String,
    pub public_pem: String,
    pub jwks: Arc<Mutex<JwkSet>>,
    pub fetches: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    pub jwks_url: String,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn rsa_key() -> (EncodingKey, Jwk, String) {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let key = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    (key, jwk, public_pem)
}

impl TestIssuer {
    pub async fn start() -> Self {
        let (key, mut jwk, public_pem) = rsa_key();
        let kid = "key-1".to_string();
        jwk.common.key_id = Some(kid.clone());
        let jwks = Arc::new(Mutex::new(JwkSet { keys: vec![jwk] }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let state = (jwks.clone(), fetches.clone(), down.clone());
        let app = Router::new()
            .route(
                "/jwks.json",
                axum::routing::get(
                    |State((jwks, fetches, down)): State<JwksState>| async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        if down.load(Ordering::SeqCst) {
                            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down")
                                .into_response();
                        }
                        axum::Json(jwks.lock().unwrap().clone()).into_response()
                    },
                ),
            )
            .with_state(state);
        let base = serve(app).await;
        Self {
            key,
            kid,
            public_pem,
            jwks,
            fetches,
            down,
            jwks_url: format!("{base}/jwks.json"),
        }
    }

    pub fn claims(&self, sub: &str) -> serde_json::Value {
        serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
            "iat": now(), "nbf": now(), "exp": now() + 600,
            "roles": ["buyer"], "tenant": "acme",
        })
    }

    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_with(claims, Some(&self.kid))
    }

    pub fn sign_with(&self, claims: &serde_json::Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(String::from);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    pub fn token(&self, sub: &str) -> String {
        self.sign(&self.claims(sub))
    }
}

pub const CONFIG: &str = r#"
public_url = "http://gateway.test"
trusted_hops = ["10.99.0.0/16"]

[session]
sign_in_url = "https://idp.test/sign-in"
issuer = "https://idp.test"

[upstreams]
echo = "http://127.0.0.1:9"

[[issuers]]
issuer = "https://idp.test"
jwks_url = "https://idp.test/jwks.json"
audiences = ["oberon"]
algorithms = ["RS256"]
leeway_s = 5
jwks_cooldown_s = 30

[[routes]]
path = "/public/{*rest}"
upstream = "echo"
kind = "api"
auth = "public"

[[routes]]
path = "/opt/{*rest}"
upstream = "echo"
kind = "api"
auth = "optional"

[[routes]]
path = "/req/{*rest}"
upstream = "echo"
kind = "api"
auth = "required"

[[routes]]
path = "/admin/{*rest}"
upstream = "echo"
kind = "api"
auth = "required"
roles = ["admin"]

[[routes]]
path = "/acme/{*rest}"
upstream = "echo"
kind = "api"
auth = "required"
claims = { tenant = "acme" }

[[routes]]
path = "/account"
upstream = "echo"
kind = "page"
auth = "required"

[[routes]]
path = "/events/{id}"
upstream = "echo"
kind = "page"
auth = "optional"

[[routes]]
path = "/api/events/{*rest}"
upstream = "echo"
kind = "api"
auth = "public"
strip_prefix = "/api/events"
timeout_ms = 300
"#;

/// A gateway on port 0 over `config` (extra TOML appended), with the echo upstream and
/// the test issuer's JWKS URL.
pub async fn gateway(
    config: &str,
    upstream: &str,
    jwks: &[(&str, &str)],
) -> (Arc<Gateway>, String, tempfile::TempDir) {
    gateway_with_files(config, &[], upstream, jwks).await
}

/// [`gateway`], with more files (name, content) beside `gateway.toml`.
pub async fn gateway_with_files(
    config: &str,
    files: &[(&str, &str)],
    upstream: &str,
    jwks: &[(&str, &str)],
) -> (Arc<Gateway>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let gateway = Gateway::load(GatewayOptions {
        config: file,
        upstreams: [("echo".to_string(), upstream.to_string())].into(),
        jwks_urls: jwks
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..GatewayOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let gateway = Arc::new(gateway);
    // Through the gateway's own listener, as in production.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(oberon_gateway::serve(
        listener,
        oberon_gateway::app(gateway.clone()),
        std::future::pending(),
    ));
    (gateway, url, dir)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Log lines, as the gateway's binary writes them (JSON), captured for one test:
/// install [`Logs::subscriber`] with `tracing::subscriber::set_default` in a
/// current-thread test, where the gateway's tasks run on the test's thread.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let logs = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || logs.clone())
            .finish()
    }

    /// Every line so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
