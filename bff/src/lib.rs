//! `oberon-bff`: what every Backend-For-Frontend does the same way, written once. A team's
//! BFF (made with `oberon new bff NAME`, which vendors this crate) keeps only its own
//! routes and domain code; everything a security fix or an operator's rule could touch
//! lives here, so one upgrade fixes every BFF.
//!
//! - [`config`]: the environment under the BFF's prefix, validated whole at start-up.
//! - [`identity`]: the gateway's assertion, verified by `oberon-identity`; the
//!   extractors [`OptionalUser`] and [`UserWithRole`].
//! - [`versions`]: `Deprecation`, `Sunset`, `Link` and `410 Gone` for an API version.
//! - [`backend`]: the backend client (gRPC through a generated client, or JSON over
//!   HTTP), with one deadline per call and a retry budget.
//! - Every API request gets an id, a span (joining the caller's trace), metrics by
//!   route pattern ([`metrics`]) and its log line.
//! - [`serve`]: the API and, on a port of its own that the gateway never routes to, the
//!   operational endpoints (`/livez`, `/readyz`, `/metrics`, `/openapi.json`); on
//!   SIGTERM readiness turns off, traffic drains, requests in flight finish.
//!
//! A BFF's library builds a [`Service`] from an [`Env`](config::Env); its binary is
//! `oberon_bff::run(NAME, PREFIX, my_bff::service)`, and its tests start it with
//! [`testing`].

pub mod backend;
pub mod config;
pub mod identity;
pub mod metrics;
mod observe;
#[cfg(feature = "testing")]
pub mod testing;
pub mod versions;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oberon_config::listen::{self, ListenLimits};
use oberon_identity::Verifier;
use oberon_service::metrics::Exporter;

pub use backend::{Backend, BackendError, BackendFailure};
pub use config::{ConfigErrors, Env, Settings};
pub use identity::{OptionalUser, Role, User, UserWithRole};
pub use observe::Forward;
pub use versions::{Lifecycle, versioned};

/// A missing resource is cached briefly, so a burst of misses does not reach the backend.
pub const NOT_FOUND_CACHE: &str = "public, max-age=10";
/// Errors and operational endpoints are never cached.
pub const NO_STORE: &str = "no-store";
/// An answer for one user: no shared cache may keep it, and nobody else may be shown it.
pub const PRIVATE: &str = "private, no-store";

/// The platform's side of one running BFF: its settings, backend client, identity
/// verifier, readiness and metrics exporter. Cheap to clone.
#[derive(Clone)]
pub struct Bff(Arc<Inner>);

struct Inner {
    settings: Settings,
    backend: Backend,
    identity: Option<Arc<Verifier>>,
    /// False once shutdown has begun: `/readyz` turns 503 so traffic drains away.
    ready: AtomicBool,
    exporter: Exporter,
}

impl Bff {
    /// The platform for the BFF `name` (its crate name, for `oberon_build_info`) at
    /// `version`, configured by `settings`.
    pub fn new(
        name: &'static str,
        version: &'static str,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        if settings.gateway_jwks_url.is_some() != settings.audience.is_some() {
            anyhow::bail!(
                "the gateway's keys and this service's audience go together: with one and not the other every user would be anonymous"
            );
        }
        let exporter = Exporter::install(name, version);
        let backend = Backend::new(&settings.backend_url, settings.backend_timeout)?;
        let identity = identity::verifier(&settings);
        Ok(Self(Arc::new(Inner {
            settings,
            backend,
            identity,
            ready: AtomicBool::new(true),
            exporter,
        })))
    }

    /// The platform configured from `env` (its [`Settings`]), and what `own` reads from
    /// the same variables for the BFF itself (its versions' lifecycles, say): every
    /// problem in either is reported at once.
    pub fn configure<C>(
        name: &'static str,
        version: &'static str,
        mut env: Env,
        own: impl FnOnce(&mut Env) -> C,
    ) -> anyhow::Result<(Self, C)> {
        let settings = Settings::read(&mut env);
        let own = own(&mut env);
        let (settings, own) = env.finish((settings, own))?;
        Ok((Self::new(name, version, settings)?, own))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn backend(&self) -> &Backend {
        &self.0.backend
    }

    fn identity(&self) -> Option<Arc<Verifier>> {
        self.0.identity.clone()
    }
}

/// A BFF ready to serve: the platform, the team's API routes and the OpenAPI document
/// that describes them.
pub struct Service {
    bff: Bff,
    api: Router,
    openapi: serde_json::Value,
}

impl Service {
    /// `api` holds only the team's routes, `openapi` describes them (derived from the
    /// handlers and types with `utoipa`); the platform adds the rest, to both.
    pub fn new(bff: Bff, api: Router, mut openapi: utoipa::openapi::OpenApi) -> Self {
        use utoipa::OpenApi as _;
        openapi.merge(Operational::openapi());
        let openapi = serde_json::to_value(&openapi).unwrap_or_else(|e| {
            tracing::error!("the OpenAPI document does not serialise: {e}");
            serde_json::Value::Null
        });
        Self { bff, api, openapi }
    }

    pub fn bff(&self) -> &Bff {
        &self.bff
    }

    /// The API as served: the team's routes behind the request layer (id, span,
    /// metrics, identity); anything else is a JSON 404.
    pub fn api(&self) -> Router {
        self.api
            .clone()
            .fallback(no_such_route)
            .layer(axum::middleware::from_fn_with_state(
                self.bff.clone(),
                observe::observe,
            ))
    }

    /// The operational endpoints, for the ops port only.
    pub fn ops(&self) -> Router {
        let openapi = Arc::new(self.openapi.clone());
        Router::new()
            .route("/livez", get(|| async { no_store("ok\n") }))
            .route("/readyz", get(readyz))
            .route(
                "/openapi.json",
                get(move || async move {
                    let cache = [(header::CACHE_CONTROL, "public, max-age=300")];
                    (cache, Json(openapi.as_ref().clone())).into_response()
                }),
            )
            .with_state(self.bff.clone())
            .merge(self.bff.0.exporter.clone().app(|| {}))
            .fallback(no_such_route)
    }
}

/// The operational endpoints, in every BFF's OpenAPI document (on the ops port only).
#[derive(utoipa::OpenApi)]
#[openapi(paths(livez_doc, readyz_doc, metrics_doc, openapi_doc))]
struct Operational;

/// The process is alive (ops port only).
#[utoipa::path(get, path = "/livez", responses((status = 200, description = "alive")))]
#[allow(dead_code)]
fn livez_doc() {}

/// Ready for traffic (ops port only); `503` while draining after SIGTERM.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "shutting down"),
))]
#[allow(dead_code)]
fn readyz_doc() {}

/// Prometheus metrics (ops port only).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "the text exposition format")))]
#[allow(dead_code)]
fn metrics_doc() {}

/// This document (ops port only).
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1")))]
#[allow(dead_code)]
fn openapi_doc() {}

async fn readyz(State(bff): State<Bff>) -> Response {
    if bff.0.ready.load(Ordering::SeqCst) {
        no_store("ready\n")
    } else {
        let cache = [(header::CACHE_CONTROL, NO_STORE)];
        (StatusCode::SERVICE_UNAVAILABLE, cache, "shutting down\n").into_response()
    }
}

async fn no_such_route() -> Response {
    error(StatusCode::NOT_FOUND, "no such route", NO_STORE)
}

fn no_store(body: &'static str) -> Response {
    ([(header::CACHE_CONTROL, NO_STORE)], body).into_response()
}

/// The body of every error a BFF answers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a developer.
    pub error: String,
}

/// A JSON error ([`ErrorBody`]) with its cache policy.
pub fn error(status: StatusCode, message: &str, cache: &'static str) -> Response {
    let body = Json(ErrorBody {
        error: message.to_string(),
    });
    (status, [(header::CACHE_CONTROL, cache)], body).into_response()
}

/// Where a BFF listens: the API, and the operational endpoints on a port of their own.
pub struct Listeners {
    pub api: tokio::net::TcpListener,
    pub ops: tokio::net::TcpListener,
}

impl Listeners {
    /// Bind both addresses of `settings`.
    pub async fn bind(settings: &Settings) -> std::io::Result<Self> {
        let bind = |addr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        };
        Ok(Self {
            api: bind(settings.listen).await?,
            ops: bind(settings.ops_listen).await?,
        })
    }
}

/// Serve until `shutdown` resolves. Then `/readyz` answers 503 for the configured drain
/// time while requests are still accepted, both listeners close, and requests in flight
/// finish before this returns. Both listen as Oberon's services do
/// (`oberon_config::listen`: header-read timeout, connection cap).
pub async fn serve(
    listeners: Listeners,
    service: Service,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bff = service.bff.clone();
    let drained = async move {
        shutdown.await;
        bff.0.ready.store(false, Ordering::SeqCst);
        let drain = bff.settings().drain;
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down: not ready, draining"
        );
        tokio::time::sleep(drain).await;
    };
    listen::serve_with_ops(
        listeners.api,
        service.api(),
        Some((listeners.ops, service.ops())),
        ListenLimits::default(),
        drained,
    )
    .await
}

/// A BFF's `main`: JSON logs (filtered by `<PREFIX>LOG`, default `info`) and traces
/// as the `OTEL_*` variables ask, configuration from the environment (every problem
/// printed, then exit 1), both ports bound, served until SIGTERM or Ctrl-C.
pub async fn run(
    name: &'static str,
    prefix: &str,
    service: impl FnOnce(Env<'static>) -> anyhow::Result<Service>,
) -> std::process::ExitCode {
    let filter = match std::env::var(format!("{prefix}LOG")) {
        Err(_) => tracing_subscriber::EnvFilter::new("info"),
        Ok(directives) => match tracing_subscriber::EnvFilter::try_new(&directives) {
            Ok(filter) => filter,
            Err(e) => {
                eprintln!("error: {prefix}LOG={directives:?} is not a log filter: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true);
    // Kept to the end: dropped, it sends the last spans.
    let _tracing = match oberon_service::trace::init(name, filter, logs) {
        Ok(tracing) => tracing,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match start(name, prefix, service).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn start(
    name: &'static str,
    prefix: &str,
    service: impl FnOnce(Env<'static>) -> anyhow::Result<Service>,
) -> anyhow::Result<()> {
    let service = service(Env::process(prefix))?;
    let settings = service.bff().settings();
    let listeners = Listeners::bind(settings).await?;
    tracing::info!(
        listen = %settings.listen,
        ops_listen = %settings.ops_listen,
        backend = %settings.backend_url,
        "{name} serving"
    );
    serve(listeners, service, oberon_service::shutdown_signal()).await?;
    Ok(())
}
