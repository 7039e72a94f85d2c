//! bff-template: a Backend-For-Frontend. It calls the team's backend services and
//! answers the renderer with UI-shaped, versioned JSON that says how long it may be
//! cached.
//!
//! - `GET /v2/items/{id}`: the current shape; `GET /v1/items/{id}`: the older one,
//!   which can be deprecated and sunset from the environment (see [`config`]).
//! - On a port of their own ([`ops`]), which only the cluster reaches: `GET /livez`,
//!   `GET /readyz` (503 once shutdown has begun), `GET /metrics` (Prometheus),
//!   `GET /openapi.json`. The API port answers none of them, so a gateway route to
//!   this service (`/api/items/{*rest}`) cannot expose them.
//!
//! Start from [`config::Config::from_env`], build with [`app`] and [`ops`], run with
//! [`serve`].

pub mod backend;
pub mod config;
pub mod identity;
pub mod listen;
pub mod metrics;
pub mod trace;
pub mod versions;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::backend::{Backend, BackendError, Forward};
use crate::config::{Config, Lifecycle};
use crate::identity::{GatewayKeys, OptionalUser, Role, UserWithRole};
use crate::listen::ListenLimits;
use crate::metrics::Metrics;

/// Cache policy of a successful, public answer: the renderer's data client (and any
/// shared cache) may keep it 30 s, revalidate in the background for 30 s more, and
/// fall back to it for 5 minutes if this service fails.
pub const PUBLIC_CACHE: &str = "public, max-age=30, stale-while-revalidate=30, stale-if-error=300";
/// A missing resource is cached briefly, so a burst of misses does not reach the backend.
pub const NOT_FOUND_CACHE: &str = "public, max-age=10";
/// Errors and operational endpoints are never cached.
pub const NO_STORE: &str = "no-store";
/// An answer for one user: no shared cache may keep it, and nobody else may be shown it.
pub const PRIVATE: &str = "private, no-store";

/// Shared state of the service.
pub struct AppState {
    pub config: Config,
    pub backend: Backend,
    pub metrics: Arc<Metrics>,
    /// The gateway's keys, to verify identity assertions; `None` when
    /// `BFF_TEMPLATE_GATEWAY_JWKS_URL` is not set (every request is then anonymous).
    pub identity: Option<GatewayKeys>,
    /// False once shutdown has begun: `/readyz` turns 503 so traffic drains away.
    pub ready: AtomicBool,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::install());
        let backend = Backend::new(&config.backend_url, config.backend_timeout, metrics.clone())?;
        let identity = config
            .gateway_jwks_url
            .as_deref()
            .zip(config.audience.as_deref())
            .map(|(url, audience)| GatewayKeys::new(url, audience));
        Ok(Arc::new(Self {
            config,
            backend,
            metrics,
            identity,
            ready: AtomicBool::new(true),
        }))
    }
}

/// The service's API and its middleware.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/items/{id}", get(item_v1))
        .route("/v2/items/{id}", get(item_v2))
        .route("/v2/me", get(me))
        .route("/v2/me/items", get(my_items))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route", NO_STORE) })
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The operational endpoints, served on their own port (`OPS_LISTEN`).
pub fn ops(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/livez", get(|| async { no_store("ok\n") }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route", NO_STORE) })
        .with_state(state)
}

/// Where the service listens: the API, and the operational endpoints on a port of
/// their own.
pub struct Listeners {
    pub api: tokio::net::TcpListener,
    pub ops: tokio::net::TcpListener,
}

impl Listeners {
    /// Bind both addresses of `config`.
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let bind = |addr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        };
        Ok(Self {
            api: bind(config.listen).await?,
            ops: bind(config.ops_listen).await?,
        })
    }
}

/// Serve until `shutdown` resolves. Then `/readyz` answers 503 for the configured
/// drain time while requests are still accepted, both listeners close, and requests
/// in flight finish before this returns.
pub async fn serve(
    listeners: Listeners,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let flag = state.clone();
    let drain = async move {
        shutdown.await;
        flag.ready.store(false, Ordering::SeqCst);
        tracing::info!(
            drain_ms = flag.config.drain.as_millis() as u64,
            "shutting down: not ready, draining"
        );
        tokio::time::sleep(flag.config.drain).await;
        let _ = closing.send(true);
    };
    let drained = move || {
        let mut closed = closed.clone();
        async move {
            let _ = closed.wait_for(|closed| *closed).await;
        }
    };
    let limits = ListenLimits::default();
    let api = listen::serve(listeners.api, app(state.clone()), limits, drained());
    let ops = listen::serve(listeners.ops, ops(state), limits, drained());
    let ((), api, ops) = tokio::join!(drain, api, ops);
    api.and(ops)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Request id (kept from `x-request-id` when sane, else generated) on the log span, the
/// request (so handlers forward it to the backend, and an identity assertion made for
/// another request does not verify) and the response; metrics by matched route.
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(fresh_request_id, str::to_string);
    // Whatever the request carried (nothing, or something not sane) is replaced, so the
    // id handlers see is the one logged and answered. (It is visible ASCII either way.)
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert("x-request-id", v);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        otel.kind = tracing::field::Empty,
        otel.name = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if trace::enabled() {
        span.record("otel.kind", "server");
        span.record("otel.name", format!("{method} {route}"));
        span.record("http.route", route.as_str());
        trace::continue_from(&span, request.headers());
    }
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    let deprecated = response.headers().contains_key("deprecation");
    if trace::enabled() {
        span.record("http.response.status_code", status);
    }
    span.in_scope(|| {
        tracing::info!(status, elapsed_ms = took.as_secs_f64() * 1e3, "answered");
    });
    state
        .metrics
        .request(&route, method.as_str(), status, deprecated, took);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn fresh_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{t:016x}{:08x}",
        NEXT.fetch_add(1, Ordering::Relaxed) as u32
    )
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        no_store("ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, NO_STORE)],
            "shutting down\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, NO_STORE),
        ],
        state.metrics.render(),
    )
        .into_response()
}

fn no_store(body: &'static str) -> Response {
    ([(header::CACHE_CONTROL, NO_STORE)], body).into_response()
}

pub(crate) fn error(status: StatusCode, message: &str, cache: &'static str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, cache)],
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

// --- the domain: items ------------------------------------------------------------

/// An item as the backend describes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BackendItem {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
}

/// `/v2`: what the UI needs, nothing more.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemV2 {
    pub id: String,
    pub title: String,
    pub price: Money,
    pub in_stock: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Money {
    pub amount_cents: i64,
    pub currency: String,
    /// Ready to show: `EUR 12.50`.
    pub label: String,
}

/// `/v1`: the older shape, kept for consumers that have not moved yet.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemV1 {
    pub id: String,
    pub name: String,
    pub price_label: String,
}

fn money_label(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
}

fn forward(headers: &HeaderMap) -> Forward {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Forward {
        request_id: get("x-request-id").unwrap_or_default(),
        traceparent: get("traceparent"),
    }
}

async fn load_item(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<BackendItem, Response> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(error(StatusCode::BAD_REQUEST, "invalid item id", NO_STORE));
    }
    state
        .backend
        .get::<BackendItem>(&format!("/items/{id}"), &forward(headers))
        .await
        .map_err(|e| {
            tracing::warn!("backend call failed: {e}");
            match e {
                BackendError::NotFound => {
                    error(StatusCode::NOT_FOUND, "no such item", NOT_FOUND_CACHE)
                }
                BackendError::Timeout(_) => {
                    error(StatusCode::GATEWAY_TIMEOUT, "backend timed out", NO_STORE)
                }
                _ => error(StatusCode::BAD_GATEWAY, "backend failed", NO_STORE),
            }
        })
}

fn versioned(lifecycle: &Lifecycle, body: impl Serialize) -> Response {
    let mut response = ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(body)).into_response();
    response
        .headers_mut()
        .extend(versions::lifecycle_headers(lifecycle));
    response
}

fn gone(lifecycle: &Lifecycle) -> Option<Response> {
    versions::is_gone(lifecycle, SystemTime::now()).then(|| {
        let mut r = error(
            StatusCode::GONE,
            "this API version has been retired",
            NOT_FOUND_CACHE,
        );
        r.headers_mut()
            .extend(versions::lifecycle_headers(lifecycle));
        r
    })
}

async fn item_v2(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match load_item(&state, &id, &headers).await {
        Ok(item) => versioned(&Lifecycle::default(), item_v2_of(item)),
        Err(response) => response,
    }
}

fn item_v2_of(item: BackendItem) -> ItemV2 {
    ItemV2 {
        price: Money {
            label: money_label(item.price_cents, &item.currency),
            amount_cents: item.price_cents,
            currency: item.currency,
        },
        id: item.id,
        title: item.name,
        in_stock: item.stock > 0,
    }
}

async fn item_v1(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lifecycle = &state.config.v1;
    if let Some(gone) = gone(lifecycle) {
        return gone;
    }
    match load_item(&state, &id, &headers).await {
        Ok(item) => versioned(
            lifecycle,
            ItemV1 {
                price_label: money_label(item.price_cents, &item.currency),
                id: item.id,
                name: item.name,
            },
        ),
        Err(mut response) => {
            response
                .headers_mut()
                .extend(versions::lifecycle_headers(lifecycle));
            response
        }
    }
}

async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    let deprecated_v1 = versions::is_deprecated(&state.config.v1);
    let item_op = |schema: &str, deprecated: bool| {
        serde_json::json!({
            "deprecated": deprecated,
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } }],
            "responses": {
                "200": { "description": "the item", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } },
                "404": { "description": "no such item" },
                "502": { "description": "the backend failed" },
                "504": { "description": "the backend timed out" }
            }
        })
    };
    let doc = serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "bff-template", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/v2/items/{id}": { "get": item_op("ItemV2", false) },
            "/v1/items/{id}": { "get": item_op("ItemV1", deprecated_v1) },
            "/v2/me": { "get": {
                "description": "who the gateway's identity assertion (header Oberon-Identity) says is asking",
                "parameters": [{ "name": "Oberon-Identity", "in": "header", "required": false, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "the user, or signed_in: false", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Me" } } } } }
            } },
            "/v2/me/items": { "get": {
                "description": "the signed-in buyer's saved items (role `buyer`)",
                "parameters": [{ "name": "Oberon-Identity", "in": "header", "required": true, "schema": { "type": "string" } }],
                "responses": {
                    "200": { "description": "the items", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/ItemV2" } } } } },
                    "401": { "description": "no valid identity assertion" },
                    "403": { "description": "the user lacks the role `buyer`" },
                    "502": { "description": "the backend failed" }
                }
            } },
            "/livez": { "get": { "responses": { "200": { "description": "alive" } } } },
            "/readyz": { "get": { "responses": { "200": { "description": "ready" }, "503": { "description": "shutting down" } } } },
            "/metrics": { "get": { "responses": { "200": { "description": "Prometheus metrics" } } } }
        },
        "components": { "schemas": {
            "ItemV2": { "type": "object", "required": ["id", "title", "price", "in_stock"], "properties": {
                "id": { "type": "string" }, "title": { "type": "string" }, "in_stock": { "type": "boolean" },
                "price": { "type": "object", "required": ["amount_cents", "currency", "label"], "properties": {
                    "amount_cents": { "type": "integer" }, "currency": { "type": "string" }, "label": { "type": "string" } } } } },
            "ItemV1": { "type": "object", "required": ["id", "name", "price_label"], "properties": {
                "id": { "type": "string" }, "name": { "type": "string" }, "price_label": { "type": "string" } } },
            "Me": { "type": "object", "required": ["signed_in", "roles"], "properties": {
                "signed_in": { "type": "boolean" }, "id": { "type": ["string", "null"] },
                "roles": { "type": "array", "items": { "type": "string" } } } }
        } }
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response()
}

// --- the signed-in user -----------------------------------------------------------

/// The role [`my_items`] needs.
pub struct Buyer;

impl Role for Buyer {
    const NAME: &'static str = "buyer";
}

/// `/v2/me`: who the gateway says is asking (or nobody).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Me {
    pub signed_in: bool,
    /// Issuer and subject in one string ([`identity::User::id`]): unique across the
    /// identity providers, as `sub` alone is not.
    pub id: Option<String>,
    pub roles: Vec<String>,
}

async fn me(OptionalUser(user): OptionalUser) -> Response {
    let me = match user {
        Some(u) => Me {
            signed_in: true,
            id: Some(u.id()),
            roles: u.roles,
        },
        None => Me {
            signed_in: false,
            id: None,
            roles: Vec::new(),
        },
    };
    ([(header::CACHE_CONTROL, PRIVATE)], Json(me)).into_response()
}

/// `/v2/me/items`: the signed-in buyer's saved items.
async fn my_items(
    State(state): State<Arc<AppState>>,
    user: UserWithRole<Buyer>,
    headers: HeaderMap,
) -> Response {
    // Keyed by issuer and subject: `alice` at one identity provider is not `alice` at
    // another.
    let user = user.user();
    let (Some(issuer), Some(subject)) = (path_segment(&user.issuer), path_segment(&user.subject))
    else {
        return error(
            StatusCode::FORBIDDEN,
            "this identity cannot name a backend path",
            PRIVATE,
        );
    };
    let path = format!("/issuers/{issuer}/users/{subject}/items");
    match state
        .backend
        .get::<Vec<BackendItem>>(&path, &forward(&headers))
        .await
    {
        Ok(items) => {
            let items: Vec<ItemV2> = items.into_iter().map(item_v2_of).collect();
            ([(header::CACHE_CONTROL, PRIVATE)], Json(items)).into_response()
        }
        Err(BackendError::NotFound) => (
            [(header::CACHE_CONTROL, PRIVATE)],
            Json(Vec::<ItemV2>::new()),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("backend call failed: {e}");
            error(StatusCode::BAD_GATEWAY, "backend failed", NO_STORE)
        }
    }
}

/// `s` as one path segment of a backend URL: percent-encoded, or `None` when no
/// encoding can make it one segment. `.` and `..` are unreserved, and URL parsers read
/// `%2E%2E` as `..` too, so either would climb the backend's paths
/// (`/users/../items` is `/items`); an empty segment would vanish.
fn path_segment(s: &str) -> Option<String> {
    if matches!(s, "" | "." | "..") {
        return None;
    }
    Some(
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    )
}
