//! events-bff: the events team's Backend-For-Frontend, made with `oberon new bff
//! events`. It calls the catalogue backend and answers the renderer with what an event
//! page needs, in one JSON document that says how long it may be cached.
//!
//! - `GET /v1/events/{id}`: the event, its ticket types, and its related events (one
//!   backend call per related event, concurrently; a related event that fails is left
//!   out rather than failing the page's data).
//! - On a port of their own ([`ops`]), which only the cluster reaches: `GET /livez`,
//!   `GET /readyz` (503 once shutdown has begun), `GET /metrics` (Prometheus),
//!   `GET /openapi.json`. The API port answers none of them, so a gateway route to
//!   this service (`/api/events/{*rest}`) cannot expose them.
//!
//! Start from [`config::Config::from_env`], build with [`app`] and [`ops`], run with
//! [`serve`].

pub mod backend;
pub mod config;
pub mod identity;
pub mod listen;
pub mod metrics;
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
use crate::identity::GatewayKeys;
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
    /// `EVENTS_BFF_GATEWAY_JWKS_URL` is not set (every request is then anonymous).
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
        .route("/v1/events/{id}", get(event_v1))
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
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    let deprecated = response.headers().contains_key("deprecation");
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

// --- the domain: events -----------------------------------------------------------

/// A ticket type, as the backend and the page both describe it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct TicketType {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub remaining: u32,
}

/// An event as the catalogue backend describes it: related events by id only.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BackendEvent {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub city: String,
    pub starts_at: String,
    pub description: String,
    pub ticket_types: Vec<TicketType>,
    #[serde(default)]
    pub related_ids: Vec<String>,
}

/// A related event, as much as a link to it needs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Related {
    pub id: String,
    pub name: String,
    pub starts_at: String,
}

/// `/v1/events/{id}`: what the event page's components read from the `event` topic.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct EventV1 {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub city: String,
    pub starts_at: String,
    pub description: String,
    pub ticket_types: Vec<TicketType>,
    pub related: Vec<Related>,
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

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn event_v1(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lifecycle = &state.config.v1;
    if let Some(gone) = gone(lifecycle) {
        return gone;
    }
    if !valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "invalid event id", NO_STORE);
    }
    let fwd = forward(&headers);
    let event = match state
        .backend
        .get::<BackendEvent>(&format!("/events/{id}"), &fwd)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("backend call failed: {e}");
            return match e {
                BackendError::NotFound => {
                    error(StatusCode::NOT_FOUND, "no such event", NOT_FOUND_CACHE)
                }
                BackendError::Timeout(_) => {
                    error(StatusCode::GATEWAY_TIMEOUT, "backend timed out", NO_STORE)
                }
                _ => error(StatusCode::BAD_GATEWAY, "backend failed", NO_STORE),
            };
        }
    };
    // Related events concurrently; one that fails is left out, not fatal.
    let lookups: Vec<_> = event
        .related_ids
        .iter()
        .filter(|r| valid_id(r))
        .take(8)
        .map(|rid| {
            let backend = state.backend.clone();
            let fwd = fwd.clone();
            let path = format!("/events/{rid}");
            tokio::spawn(async move { backend.get::<BackendEvent>(&path, &fwd).await })
        })
        .collect();
    let mut related = Vec::new();
    for lookup in lookups {
        match lookup.await {
            Ok(Ok(r)) => related.push(Related {
                id: r.id,
                name: r.name,
                starts_at: r.starts_at,
            }),
            Ok(Err(e)) => tracing::info!("related event left out: {e}"),
            Err(e) => tracing::warn!("related event lookup failed: {e}"),
        }
    }
    versioned(
        lifecycle,
        EventV1 {
            id: event.id,
            name: event.name,
            venue: event.venue,
            city: event.city,
            starts_at: event.starts_at,
            description: event.description,
            ticket_types: event.ticket_types,
            related,
        },
    )
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

async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    let doc = serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "events-bff", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/v1/events/{id}": { "get": {
                "deprecated": versions::is_deprecated(&state.config.v1),
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } }],
                "responses": {
                    "200": { "description": "the event", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EventV1" } } } },
                    "404": { "description": "no such event" },
                    "502": { "description": "the backend failed" },
                    "504": { "description": "the backend timed out" }
                }
            } },
            "/livez": { "get": { "responses": { "200": { "description": "alive" } } } },
            "/readyz": { "get": { "responses": { "200": { "description": "ready" }, "503": { "description": "shutting down" } } } },
            "/metrics": { "get": { "responses": { "200": { "description": "Prometheus metrics" } } } }
        },
        "components": { "schemas": {
            "TicketType": { "type": "object", "required": ["id", "name", "price_cents", "currency", "remaining"], "properties": {
                "id": { "type": "string" }, "name": { "type": "string" }, "price_cents": { "type": "integer" },
                "currency": { "type": "string" }, "remaining": { "type": "integer" } } },
            "EventV1": { "type": "object", "required": ["id", "name", "venue", "city", "starts_at", "description", "ticket_types", "related"], "properties": {
                "id": { "type": "string" }, "name": { "type": "string" }, "venue": { "type": "string" }, "city": { "type": "string" },
                "starts_at": { "type": "string", "format": "date-time" }, "description": { "type": "string" },
                "ticket_types": { "type": "array", "items": { "$ref": "#/components/schemas/TicketType" } },
                "related": { "type": "array", "items": { "type": "object", "required": ["id", "name", "starts_at"], "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" }, "starts_at": { "type": "string" } } } } } }
        } }
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response()
}
