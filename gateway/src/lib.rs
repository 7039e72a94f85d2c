//! Oberon's gateway: the front door behind the CDN.
//!
//! Every request goes through [`Gateway::handle`]: request id; identity headers removed;
//! path normalised (and refused when it could mean two things); client rate limit;
//! route matched on the normalised path; the route's auth policy applied; user rate
//! limit; then proxied, streaming, with the verified identity as a signed assertion.
//! The gateway's own endpoints live under `/_gateway` and at
//! [`oberon_identity::assertion::JWKS_PATH`].
//!
//! - [`config`]: `gateway.toml`, checked whole at load.
//! - [`path`]: path normalisation and return-path validation.
//! - [`auth`]: token verification against identity providers' JWKS.
//! - [`proxy`]: forwarding, headers, failures.
//! - [`ratelimit`]: GCRA per client and per user.
//! - [`session`]: browser sign-in (`form_post` callback with a state cookie) and sign-out.
//! - [`devidp`]: a local identity provider for `oberon dev` and tests.
//! - [`origin`]: `[origin]`, the CDN's secret header, without which nothing but the
//!   health endpoints and the public keys is answered.

pub mod auth;
pub mod config;
pub mod devidp;
pub mod origin;
pub mod path;
pub mod proxy;
pub mod ratelimit;
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
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use oberon_config::listen::ListenLimits;
use oberon_config::{ConfigError, ConfigErrors};
use oberon_identity::Signer;
use oberon_identity::assertion::{HEADER as IDENTITY_HEADER, JWKS_PATH};
use oberon_service::request_id;

use crate::auth::{Issuers, Verified, claims_match, token_of, without_cookie};
use crate::config::{AuthPolicy, Cidr, GatewayConfig, RouteKind};
use crate::proxy::{ForwardError, Hop, HttpClient, gateway_answer};
use crate::ratelimit::{RateLimiter, retry_after_secs};

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

    /// The per-client rate limit, for every request the gateway answers on the
    /// client's behalf (proxied or its own sign-in endpoints): `Err` is how long the
    /// client must wait.
    fn admit_client(&self, hop: &Hop, headers: &http::HeaderMap) -> Result<(), Duration> {
        let client = proxy::client_addr(headers, hop, |ip| self.is_trusted_hop(ip));
        self.per_client.check(&client)
    }

    /// One request, from the front door to the upstream's response.
    pub async fn handle(&self, peer: SocketAddr, request: Request<Body>) -> Response<Body> {
        let hop = self.hop(peer);
        let request_id = hop
            .trusted
            .then(|| request_id::of(request.headers()))
            .flatten()
            .map_or_else(request_id::generate, String::from);
        let mut response = self.handle_inner(&hop, &request_id, request).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", v);
        }
        response
    }

    async fn handle_inner(
        &self,
        hop: &Hop,
        request_id: &str,
        mut request: Request<Body>,
    ) -> Response<Body> {
        // First, whatever else happens: no identity header a client sent survives.
        for name in &self.strip {
            request.headers_mut().remove(name);
        }
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > self.header_limit {
            return gateway_answer(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request headers are over {} bytes\n", self.header_limit),
            );
        }
        let path = match path::normalise(request.uri().path()) {
            Ok(p) => p,
            Err(e) => return gateway_answer(StatusCode::BAD_REQUEST, format!("bad path: {e}\n")),
        };
        if let Err(wait) = self.admit_client(hop, request.headers()) {
            return too_many(wait);
        }
        let Some((route, upstream_path)) = self.matched(&path) else {
            return gateway_answer(StatusCode::NOT_FOUND, "not found\n");
        };

        // A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
        // is authenticated like any other request: it carries no credentials, so on a
        // `required` route it is refused here and never reaches the upstream, and on an
        // `optional` one it goes on anonymous. Cross-origin callers of routes that
        // authenticate are therefore not supported: Oberon's pages and APIs share one
        // origin (`public_url`); a `public` route's upstream answers its own preflights.
        let mut verified: Option<Arc<Verified>> = None;
        if route.auth != AuthPolicy::Public {
            match token_of(request.headers(), &self.session.cookie) {
                None if route.auth == AuthPolicy::Optional => {}
                None => return self.challenge(route, &path, request.uri(), None),
                Some((token, presented)) => match self.issuers.verify(token, presented).await {
                    Ok(v) => verified = Some(v),
                    Err(e) => {
                        tracing::info!(request_id, path = %path, "token refused: {e}");
                        return self.challenge(route, &path, request.uri(), Some(&e));
                    }
                },
            }
        }
        if let Some(v) = &verified {
            let missing: Vec<&str> = route
                .roles
                .iter()
                .filter(|r| !v.identity.has_role(r))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() || !claims_match(&v.claims, &route.claims) {
                tracing::info!(request_id, path = %path, user = %v.identity.subject, ?missing, "forbidden");
                return gateway_answer(
                    StatusCode::FORBIDDEN,
                    "you are signed in, but not allowed here\n",
                );
            }
            let user_key = format!("{}\u{0}{}", v.identity.issuer, v.identity.subject);
            if let Err(wait) = self.per_user.check(&user_key) {
                return too_many(wait);
            }
        }

        if request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.body_limit)
        {
            return gateway_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is over {} bytes\n", self.body_limit),
            );
        }

        let Some(base) = self.upstreams.get(&route.upstream) else {
            return gateway_answer(StatusCode::BAD_GATEWAY, "no such upstream\n");
        };
        let mut target = format!(
            "{}{}",
            base.to_string().trim_end_matches('/'),
            path::encode(upstream_path)
        );
        if let Some(query) = request.uri().query() {
            target.push('?');
            target.push_str(query);
        }
        let Ok(uri) = target.parse::<Uri>() else {
            return gateway_answer(StatusCode::BAD_REQUEST, "bad request target\n");
        };

        let (mut parts, body) = request.into_parts();
        let host = parts.headers.get(header::HOST).cloned();
        let headers = &mut parts.headers;
        proxy::strip_hop_by_hop(headers);
        headers.remove(header::HOST);
        // The client's credentials are for the gateway; upstreams get the assertion.
        headers.remove(header::AUTHORIZATION);
        match without_cookie(headers, &self.session.cookie) {
            Some(v) => headers.insert(header::COOKIE, v),
            None => headers.remove(header::COOKIE),
        };
        proxy::set_forwarded(headers, hop, host);
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", v);
        }
        let (traceparent, continued) = proxy::traceparent(headers.get("traceparent"));
        if !continued {
            headers.remove("tracestate");
        }
        if let Ok(v) = HeaderValue::from_str(&traceparent) {
            headers.insert("traceparent", v);
        }
        if let Some(v) = &verified {
            match self.signer.sign(&v.identity, request_id, &route.audiences) {
                Ok(assertion) => {
                    if let Ok(value) = HeaderValue::from_str(&assertion) {
                        headers.insert(IDENTITY_HEADER, value);
                    }
                }
                Err(e) => {
                    tracing::error!("cannot sign an identity assertion: {e}");
                    return gateway_answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
                }
            }
        }
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let body = Body::new(http_body_util::Limited::new(
            body,
            usize::try_from(self.body_limit).unwrap_or(usize::MAX),
        ));
        let upstream_request = Request::from_parts(parts, body);
        match proxy::forward(&self.client, upstream_request, route.timeout).await {
            Ok(response) => response,
            Err(ForwardError::BodyTooLarge) => gateway_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is over {} bytes\n", self.body_limit),
            ),
            Err(ForwardError::Timeout(t)) => {
                tracing::warn!(request_id, upstream = %route.upstream, "upstream timed out after {t:?}");
                gateway_answer(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "upstream {} did not answer within {} ms\n",
                        route.upstream,
                        t.as_millis()
                    ),
                )
            }
            Err(ForwardError::Unreachable(e)) => {
                tracing::warn!(request_id, upstream = %route.upstream, "upstream failed: {e}");
                gateway_answer(
                    StatusCode::BAD_GATEWAY,
                    format!("upstream {} could not be reached\n", route.upstream),
                )
            }
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

    /// The answer to a request that must authenticate and did not (or could not).
    fn challenge(
        &self,
        route: &Route,
        path: &str,
        uri: &Uri,
        error: Option<&auth::TokenError>,
    ) -> Response<Body> {
        match route.kind {
            RouteKind::Page => {
                let mut return_to = path::encode(path);
                if let Some(q) = uri.query() {
                    return_to.push('?');
                    return_to.push_str(q);
                }
                let mut response = session::redirect_to_sign_in(&return_to);
                if error.is_some() {
                    // A session that no longer verifies is gone: do not send it again.
                    session::clear_session_cookie(&mut response, &self.session);
                }
                response
            }
            RouteKind::Api => {
                let mut response = gateway_answer(
                    StatusCode::UNAUTHORIZED,
                    if error.is_some() {
                        "the token is not valid\n"
                    } else {
                        "authentication required\n"
                    },
                );
                let challenge = if error.is_some() {
                    r#"Bearer realm="oberon", error="invalid_token""#
                } else {
                    r#"Bearer realm="oberon""#
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                response
            }
        }
    }
}

fn too_many(wait: Duration) -> Response<Body> {
    let mut response = gateway_answer(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(wait)),
    );
    response
}

/// Paths answered without the CDN's origin header (see [`origin`]): the probes of
/// the orchestrator and of the CDN itself, and the public keys that renderers and
/// BFFs fetch from inside the cluster.
pub const HEALTH_PATHS: [&str; 2] = ["/_gateway/livez", "/_gateway/readyz"];

/// The gateway's routes: its own endpoints, and everything else through
/// [`Gateway::handle`]. Everything a browser reaches (sign-in, pages, APIs) sits
/// behind [`origin::guard`]; the health endpoints and the JWKS do not.
pub fn app(gateway: Arc<Gateway>) -> Router {
    // The origin guard is the outer layer: a request that did not come through the CDN
    // is refused before it can spend anybody's rate-limit budget. The sign-in
    // endpoints are rate limited here; everything else in `Gateway::handle`.
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
    match gateway.admit_client(&gateway.hop(peer), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(wait),
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
