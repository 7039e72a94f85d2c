//! Oberon's gateway: the front door behind the CDN.
//!
//! Every request runs in a span that carries its request id, and goes through
//! [`Gateway::handle`], whose phases are in `pipeline`: prepare (identity headers
//! removed, header size, path normalised and refused when it could mean two things),
//! admit (client rate limit; the route matched on the normalised path), authorize (the
//! route's auth policy; user rate limit), the upstream request (with the verified
//! identity as a signed assertion), forward (streaming). A phase that cannot go on
//! returns a `Refusal`, answered and logged in one place. The gateway's own endpoints
//! live under `/_gateway` and at [`oberon_identity::assertion::JWKS_PATH`].
//!
//! - [`config`]: `gateway.toml`, checked whole at load.
//! - `pipeline`: the phases of a proxied request, and the request's span.
//! - `refusal`: why the gateway answers itself, by side; the status and body of each.
//! - [`path`]: path normalisation and return-path validation.
//! - [`auth`]: token verification against identity providers' JWKS.
//! - [`proxy`]: forwarding, headers, failures.
//! - [`ratelimit`]: GCRA per client and per user.
//! - [`session`]: browser sign-in (`form_post` callback with a state cookie) and sign-out.
//! - [`devidp`]: a local identity provider for `oberon dev` and tests.
//! - [`origin`]: `[origin]`, the CDN's secret header, without which nothing but the
//!   health endpoints and the public keys is answered.

#![warn(clippy::too_many_lines)]

pub mod auth;
pub mod config;
pub mod devidp;
pub mod metrics;
pub mod origin;
pub mod path;
mod pipeline;
pub mod proxy;
pub mod ratelimit;
mod refusal;
pub mod session;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::header::{self, HeaderName};
use http::{Request, Response, Uri};
use oberon_config::listen::ListenLimits;
use oberon_config::{ConfigError, ConfigErrors};
use oberon_identity::Signer;
use oberon_identity::assertion::JWKS_PATH;

use crate::auth::Issuers;
use crate::config::{AuthPolicy, Cidr, GatewayConfig, RouteKind};
use crate::proxy::{Hop, HttpClient};
use crate::ratelimit::RateLimiter;

/// What [`Gateway::load`] needs beyond the configuration file.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    pub config: PathBuf,
    /// Upstream base URLs that replace those in `[upstreams]` (by name).
    pub upstreams: BTreeMap<String, String>,
    /// JWKS URLs that replace an issuer's `jwks_url` (by issuer).
    pub jwks_urls: HashMap<String, String>,
    /// Replaces `[session] sign_in_url`.
    pub sign_in_url: Option<String>,
    /// Replaces `public_url`.
    pub public_url: Option<String>,
}

struct Route {
    /// The configured pattern (`/api/events/{*rest}`).
    pattern: String,
    upstream: String,
    /// `aud` of the assertions sent on this route: the upstream and its delegates.
    audiences: Vec<String>,
    kind: RouteKind,
    auth: AuthPolicy,
    roles: Vec<String>,
    claims: BTreeMap<String, String>,
    strip_prefix: Option<String>,
    timeout: Duration,
}

/// Where a request path goes (see [`Gateway::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed<'a> {
    /// The matched route's pattern, as configured.
    pub pattern: &'a str,
    /// The route's upstream: a name from `[upstreams]`.
    pub upstream: &'a str,
    /// The path sent upstream (before [`path::encode`]): the normalised path, less the
    /// route's `strip_prefix`.
    pub upstream_path: &'a str,
}

/// The gateway, ready to serve.
pub struct Gateway {
    routes: matchit::Router<usize>,
    route_list: Vec<Route>,
    upstreams: HashMap<String, Uri>,
    issuers: Issuers,
    signer: Signer,
    client: HttpClient,
    trusted_hops: Vec<Cidr>,
    strip: Vec<HeaderName>,
    per_client: RateLimiter<IpAddr>,
    per_user: RateLimiter<String>,
    body_limit: u64,
    header_limit: usize,
    pub(crate) session: session::Settings,
    /// `[origin]`: when set, only requests through the CDN are answered.
    pub(crate) origin: Option<origin::OriginGuard>,
    /// `[not_found]`: the route and path that answer a path no route has.
    not_found: Option<(Route, String)>,
}

impl Gateway {
    /// Read and check the configuration, load the assertion key and fetch the identity
    /// providers' keys. Fails listing every configuration problem.
    pub async fn load(options: GatewayOptions) -> Result<Self, ConfigErrors> {
        let (mut config, source) = config::load(&options.config)?;
        for (name, url) in &options.upstreams {
            config
                .upstreams
                .insert(name.clone(), toml::Spanned::new(0..0, url.clone()));
        }
        if let Some(url) = &options.sign_in_url {
            config.session.sign_in_url = Some(toml::Spanned::new(0..0, url.clone()));
        }
        if let Some(url) = &options.public_url {
            config.public_url = toml::Spanned::new(0..0, url.clone());
        }
        config::check(&options.config, &source, &config)?;
        let signer = match &config.assertion_key {
            None => {
                tracing::warn!(
                    "no assertion_key configured: this gateway signs with a key of its own; several replicas need a shared key"
                );
                Signer::generate()
            }
            Some(path) => {
                let file = options
                    .config
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(path.get_ref());
                let err = |m: String| {
                    ConfigErrors::from(
                        ConfigError::new(&options.config, m).at(&source, path.span().start),
                    )
                };
                let pem = std::fs::read(&file)
                    .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
                Signer::from_pem(&pem).map_err(|e| err(format!("{}: {e}", file.display())))?
            }
        };
        let origin = match &config.origin {
            None => None,
            Some(o) => Some(origin::OriginGuard::load(
                o,
                &options.config,
                &source,
                |name| std::env::var(name).ok(),
            )?),
        };
        let mut gateway = Self::build(config, signer, &options.jwks_urls);
        gateway.origin = origin;
        gateway.issuers.prefetch().await;
        Ok(gateway)
    }

    /// A gateway from a configuration that [`config::check`] accepted, without reading
    /// files or fetching keys: what [`Gateway::load`] does once it has read everything.
    /// `jwks` replaces issuers' `jwks_url`s (by issuer). For tests and fuzzing.
    pub fn build(config: GatewayConfig, signer: Signer, jwks: &HashMap<String, String>) -> Self {
        let mut routes = matchit::Router::new();
        let mut route_list = Vec::new();
        for r in &config.routes {
            // `check` has proven every pattern inserts.
            let _ = routes.insert(r.path.get_ref().clone(), route_list.len());
            route_list.push(Route {
                pattern: r.path.get_ref().clone(),
                upstream: r.upstream.get_ref().clone(),
                audiences: config::audiences_of(&config, r.upstream.get_ref()),
                kind: r.kind,
                auth: r.auth,
                roles: r.roles.clone(),
                claims: r.claims.clone(),
                strip_prefix: r.strip_prefix.as_ref().map(|p| p.get_ref().clone()),
                timeout: Duration::from_millis(
                    r.timeout_ms.unwrap_or(config.limits.upstream_timeout_ms),
                ),
            });
        }
        // A public page route of its own, which no path matches.
        let not_found = config.not_found.as_ref().map(|n| {
            let route = Route {
                pattern: String::new(),
                upstream: n.upstream.get_ref().clone(),
                audiences: Vec::new(),
                kind: RouteKind::Page,
                auth: AuthPolicy::Public,
                roles: Vec::new(),
                claims: BTreeMap::new(),
                strip_prefix: None,
                timeout: Duration::from_millis(config.limits.upstream_timeout_ms),
            };
            (route, n.path.get_ref().clone())
        });
        let upstreams = config
            .upstreams
            .iter()
            .filter_map(|(name, url)| {
                Some((
                    name.clone(),
                    url.get_ref().trim_end_matches('/').parse().ok()?,
                ))
            })
            .collect();
        let strip = proxy::IDENTITY_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .chain(
                config
                    .strip_headers
                    .iter()
                    .filter_map(|h| HeaderName::from_bytes(h.get_ref().as_bytes()).ok()),
            )
            .collect();
        Self {
            routes,
            route_list,
            upstreams,
            issuers: Issuers::new(&config.issuers, jwks),
            signer,
            client: proxy::client(Duration::from_millis(config.limits.connect_timeout_ms)),
            trusted_hops: config
                .trusted_hops
                .iter()
                .filter_map(|h| Cidr::parse(h.get_ref()))
                .collect(),
            strip,
            per_client: RateLimiter::new(config.rate_limit.per_client),
            per_user: RateLimiter::new(config.rate_limit.per_user),
            body_limit: config.limits.body_bytes,
            header_limit: config.limits.header_bytes,
            session: session::Settings::new(&config),
            origin: None,
            not_found,
        }
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    /// Whether `ip` is one of the CDN's addresses (`trusted_hops`).
    fn is_trusted_hop(&self, ip: IpAddr) -> bool {
        self.trusted_hops.iter().any(|c| c.contains(ip))
    }

    /// The hop a request arrived from: its peer, and whether that peer is the CDN.
    fn hop(&self, peer: SocketAddr) -> Hop {
        Hop {
            peer: peer.ip(),
            trusted: self.is_trusted_hop(peer.ip()),
        }
    }

    /// The route a normalised path (see [`path::normalise`]) takes, and the path sent
    /// upstream, exactly as [`Gateway::handle`] decides them; `None` is a 404.
    pub fn route<'a>(&'a self, path: &'a str) -> Option<Routed<'a>> {
        self.matched(path).map(|(route, upstream_path)| Routed {
            pattern: &route.pattern,
            upstream: &route.upstream,
            upstream_path,
        })
    }

    fn matched<'a>(&'a self, path: &'a str) -> Option<(&'a Route, &'a str)> {
        // The services' own endpoints are never reachable from outside, whatever the
        // routes say (`check` also refuses a route that could match them).
        if path::is_reserved(path) {
            return None;
        }
        let matched = self.routes.at(path).ok()?;
        let route = &self.route_list[*matched.value];
        Some((
            route,
            path::upstream_path(path, route.strip_prefix.as_deref()),
        ))
    }
}

/// Paths answered without the CDN's origin header (see [`origin`]): the probes of
/// the orchestrator and of the CDN itself, and the public keys that renderers and
/// BFFs fetch from inside the cluster.
pub const HEALTH_PATHS: [&str; 2] = ["/_gateway/livez", "/_gateway/readyz"];

/// The gateway's routes: its own endpoints, and everything else through
/// [`Gateway::handle`]. Everything a browser reaches (sign-in, pages, APIs) sits
/// behind [`origin::guard`]; the health endpoints and the JWKS do not.
pub fn app(gateway: Arc<Gateway>) -> Router {
    // The request's span is the outermost layer, so that whatever happens to a request
    // is logged with its id. Inside it, the origin guard: a request that did not come
    // through the CDN is refused before it can spend anybody's rate-limit budget. The
    // sign-in endpoints are rate limited here; everything else in `Gateway::handle`.
    let through_the_cdn = Router::new()
        .route("/_gateway/sign-in", get(session::start_sign_in))
        .route(
            "/_gateway/session",
            post(session::finish_sign_in).layer(axum::extract::DefaultBodyLimit::max(
                session::CALLBACK_BYTES,
            )),
        )
        .route("/_gateway/sign-out", post(session::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            client_rate_limit,
        ))
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            origin::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            pipeline::request_span,
        ));
    Router::new()
        .route(HEALTH_PATHS[0], get(health))
        .route(HEALTH_PATHS[1], get(health))
        .route(JWKS_PATH, get(jwks))
        .merge(through_the_cdn)
        .with_state(gateway)
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response<Body> {
    gateway.handle(peer, request).await
}

/// The per-client rate limit as a layer, for the gateway's own sign-in endpoints.
async fn client_rate_limit(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    match gateway.admit(&gateway.hop(peer), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.response(&gateway.session),
    }
}

/// Health answers are about this instant and this instance: nobody may cache them.
async fn health() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n")
}

async fn jwks(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        axum::Json(gateway.signer.jwks()),
    )
}

/// The ops port's routes: `GET /metrics`, in Prometheus's text format. Never behind
/// the gateway's own routes: it listens on its own address (`--ops-listen`).
pub fn ops_app(gateway: Arc<Gateway>, exporter: oberon_service::metrics::Exporter) -> Router {
    exporter.app(move || metrics::observe(&gateway))
}

/// [`serve`] `app`, and the ops app on its own listener when given (`--ops-listen`).
pub async fn serve_with_ops(
    listener: tokio::net::TcpListener,
    app: Router,
    ops: Option<(tokio::net::TcpListener, Router)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    oberon_config::listen::serve_with_ops(listener, app, ops, ListenLimits::default(), shutdown)
        .await
}

/// Serve `app` on `listener` (with the peer address every request needs) until
/// `shutdown` resolves, finishing requests in flight: within [`ListenLimits`], so a
/// connection that sends its head slowly, or nothing, is closed at the header-read
/// timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    oberon_config::listen::serve(listener, app, ListenLimits::default(), shutdown).await
}

pub use oberon_service::shutdown_signal;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::StatusCode;

    /// Even with a route that `config::check` refuses (`/{*rest}`), no request under
    /// `/_oberon` reaches an upstream: the gateway answers 404 itself.
    #[tokio::test]
    async fn the_services_own_paths_are_answered_404_whatever_the_routes() {
        let src = r#"
public_url = "http://gateway.test"
[upstreams]
renderer = "http://127.0.0.1:9"
[[routes]]
path = "/{*rest}"
upstream = "renderer"
kind = "page"
auth = "public"
"#;
        let config: GatewayConfig =
            oberon_config::parse_toml(std::path::Path::new("gateway.toml"), src).unwrap();
        let gateway = Gateway::build(config, Signer::generate(), &HashMap::new());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        for path in [
            "/_oberon",
            "/_oberon/status",
            "/%5Foberon/mode",
            "/pages/../_oberon/mode",
            "//_oberon/readyz",
        ] {
            let response = gateway.handle(peer, get(path)).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        // Anything else goes to the upstream, which is not there.
        let response = gateway.handle(peer, get("/_oberonx")).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
}
