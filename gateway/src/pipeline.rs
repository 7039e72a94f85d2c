//! The life of a proxied request: [`Gateway::handle`] runs its phases in order, each a
//! function that either hands the request on or ends it with a [`Refusal`].
//!
//! 1. [`prepare`](Gateway::prepare): identity headers removed, the header size limit,
//!    the normalised path.
//! 2. [`admit`](Gateway::admit): the per-client rate limit; then the route.
//! 3. [`authorize`](Gateway::authorize): the route's auth policy, its roles and
//!    claims; then [`admit_user`](Gateway::admit_user), the per-user rate limit.
//! 4. [`upstream_request`](Gateway::upstream_request) and
//!    [`assert_identity`](Gateway::assert_identity): what the upstream gets.
//! 5. [`forward`](Gateway::forward): sent, the response head awaited within the
//!    route's timeout.
//!
//! A refusal becomes an answer in one place ([`Refusal::response`]) and is logged in
//! one place ([`Refusal::log`]), inside the request's span ([`request_span`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use metrics::SharedString;
use oberon_identity::Identity;
use oberon_identity::assertion::HEADER as IDENTITY_HEADER;
use oberon_service::metrics::http_client_request;
use oberon_service::request_id;
use oberon_service::trace::{Onward, Sampling};
use tracing::Instrument;

use crate::auth::{Verified, claims_match, token_of, without_cookie};
use crate::config::{AuthPolicy, RouteKind};
use crate::metrics::Seen;
use crate::proxy::{self, ForwardError, Hop};
use crate::refusal::{Challenge, ClientRefusal, InternalFailure, Refusal, UpstreamFailure};
use crate::{Gateway, Route, path};

/// What [`request_span`] chose for the request, for [`Gateway::handle`] to send on:
/// its id, and its trace.
#[derive(Debug, Clone)]
struct Arrival {
    request_id: String,
    /// The trace it sends on; `None` when sampled: its span is the upstream's parent,
    /// once named for its route.
    trace: Option<Onward>,
}

/// Middleware: the request's span, `request{request_id, method, path}`, around
/// everything that happens to it, so each of its log lines carries its id. Sampled
/// for a trace, it is the trace's server span, joining the caller's (the CDN's, or
/// the client's through it).
pub(crate) async fn request_span(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    use tracing::field::Empty;
    let request_id = gateway.request_id_of(&gateway.hop(peer), request.headers());
    let sampling = Sampling::decide(request.headers());
    let sampled = sampling.as_ref().is_some_and(Sampling::is_sampled);
    let (method, path) = (request.method(), request.uri().path());
    let span = if sampled {
        tracing::info_span!(
            "request",
            request_id = %request_id,
            %method,
            path,
            otel.kind = "server",
            otel.name = method.as_str(),
            http.route = Empty,
            http.response.status_code = Empty,
        )
    } else {
        tracing::info_span!("request", request_id = %request_id, %method, path)
    };
    let trace = match sampling {
        Some(sampling) => sampling.begin(&span),
        None => Some(Onward::passed_on(request.headers())),
    };
    request
        .extensions_mut()
        .insert(Arrival { request_id, trace });
    let response = next.run(request).instrument(span.clone()).await;
    if sampled {
        span.record("http.response.status_code", response.status().as_u16());
    }
    response
}

impl Gateway {
    /// One request, from the front door to the upstream's response. Served through
    /// [`app`](crate::app), it runs in the request's span, under the id chosen there;
    /// called directly, it chooses the id itself.
    pub async fn handle(&self, peer: SocketAddr, mut request: Request<Body>) -> Response<Body> {
        let started = Instant::now();
        let hop = self.hop(peer);
        let arrival = match request.extensions_mut().remove::<Arrival>() {
            Some(arrival) => arrival,
            None => Arrival {
                request_id: self.request_id_of(&hop, request.headers()),
                trace: Some(Onward::passed_on(request.headers())),
            },
        };
        let method = request.method().clone();
        let mut seen = Seen::default();
        let (mut response, rate_limited) =
            match self.run_phases(&hop, &arrival, request, &mut seen).await {
                Ok(response) => (response, false),
                Err(refusal) => {
                    refusal.log();
                    (refusal.response(&self.session), refusal.is_rate_limited())
                }
            };
        seen.answered(&method, response.status(), rate_limited, started.elapsed());
        if let Ok(v) = HeaderValue::from_str(&arrival.request_id) {
            response.headers_mut().insert(request_id::HEADER, v);
        }
        response
    }

    /// The request's id: the trusted hop's when it sent a well-formed one, else new.
    fn request_id_of(&self, hop: &Hop, headers: &HeaderMap) -> String {
        hop.trusted
            .then(|| request_id::of(headers))
            .flatten()
            .map_or_else(request_id::generate, String::from)
    }

    /// The phases, in order: the first refusal ends the request.
    async fn run_phases(
        &self,
        hop: &Hop,
        arrival: &Arrival,
        mut request: Request<Body>,
        seen: &mut Seen,
    ) -> Result<Response<Body>, Refusal> {
        let path = self.prepare(&mut request)?;
        self.admit(hop, request.headers())?;
        let Some((route, upstream_path)) = self.matched(&path) else {
            return self.not_found(hop, arrival, request).await;
        };
        seen.route = Some(SharedString::from_owned(route.pattern.clone()));
        if arrival.trace.is_none() {
            let span = tracing::Span::current();
            span.record("http.route", route.pattern.as_str());
            span.record(
                "otel.name",
                format!("{} {}", request.method(), route.pattern),
            );
        }
        let query = request.uri().query();
        let verified = self
            .authorize(route, &path, request.headers(), query, &mut seen.auth)
            .await?;
        if let Some(verified) = &verified {
            self.admit_user(&verified.identity)?;
        }
        let mut upstream_request =
            self.upstream_request(hop, arrival, route, upstream_path, request)?;
        if let Some(verified) = &verified {
            let headers = upstream_request.headers_mut();
            self.assert_identity(headers, route, &arrival.request_id, verified)?;
        }
        self.forward(route, upstream_request).await
    }

    /// A path no route has: the `[not_found]` page, sent with 404 (GET and HEAD); the
    /// gateway's own plain 404 for other methods, without one, or when its upstream
    /// does not answer with a page.
    async fn not_found(
        &self,
        hop: &Hop,
        arrival: &Arrival,
        request: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        let Some((route, path)) = &self.not_found else {
            return Err(ClientRefusal::NotFound.into());
        };
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return Err(ClientRefusal::NotFound.into());
        }
        let upstream_request = self.upstream_request(hop, arrival, route, path, request)?;
        match self.forward(route, upstream_request).await {
            Ok(mut response)
                if matches!(response.status(), StatusCode::OK | StatusCode::NOT_FOUND) =>
            {
                *response.status_mut() = StatusCode::NOT_FOUND;
                Ok(response)
            }
            _ => Err(ClientRefusal::NotFound.into()),
        }
    }

    /// Phase 1. First, whatever else happens: no identity header a client sent
    /// survives. Then the headers' size, and the path, normalised.
    fn prepare(&self, request: &mut Request<Body>) -> Result<String, Refusal> {
        for name in &self.strip {
            request.headers_mut().remove(name);
        }
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > self.header_limit {
            return Err(ClientRefusal::HeadersTooLarge {
                limit: self.header_limit,
            }
            .into());
        }
        path::normalise(request.uri().path()).map_err(|e| ClientRefusal::BadPath(e).into())
    }

    /// Phase 2: the per-client rate limit, for every request the gateway answers on the
    /// client's behalf (proxied, or its own sign-in endpoints).
    pub(crate) fn admit(&self, hop: &Hop, headers: &HeaderMap) -> Result<(), Refusal> {
        let client = proxy::client_addr(headers, hop, |ip| self.is_trusted_hop(ip));
        self.per_client
            .check(&client)
            .map_err(|wait| ClientRefusal::TooManyRequests { wait }.into())
    }

    /// Phase 3: the route's auth policy. `None` is an anonymous request the route
    /// takes (`public`, or `optional` without a token).
    ///
    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
    /// authenticated like any other request: it carries no credentials, so on a
    /// `required` route it is refused here and never reaches the upstream, and on an
    /// `optional` one it goes on anonymous. Cross-origin callers of routes that
    /// authenticate are therefore not supported: Oberon's pages and APIs share one
    /// origin (`public_url`); a `public` route's upstream answers its own preflights.
    async fn authorize(
        &self,
        route: &Route,
        path: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        auth: &mut &'static str,
    ) -> Result<Option<Arc<Verified>>, Refusal> {
        if route.auth == AuthPolicy::Public {
            return Ok(None);
        }
        let verified = match token_of(headers, &self.session.cookie) {
            None if route.auth == AuthPolicy::Optional => {
                *auth = "anonymous";
                return Ok(None);
            }
            None => {
                *auth = "missing";
                return Err(ClientRefusal::Unauthenticated(challenge(route, path, query)).into());
            }
            Some((token, presented)) => {
                self.issuers
                    .verify(token, presented)
                    .await
                    .map_err(|error| {
                        *auth = error.auth_label();
                        ClientRefusal::TokenRefused {
                            challenge: challenge(route, path, query),
                            path: path.to_string(),
                            error,
                        }
                    })?
            }
        };
        *auth = "forbidden";
        permit(route, path, &verified)?;
        *auth = "ok";
        Ok(Some(verified))
    }

    /// Phase 3, last: the per-user rate limit. A user is an issuer and a subject.
    fn admit_user(&self, identity: &Identity) -> Result<(), Refusal> {
        let user_key = format!("{}\u{0}{}", identity.issuer, identity.subject);
        self.per_user
            .check(&user_key)
            .map_err(|wait| ClientRefusal::TooManyRequests { wait }.into())
    }

    /// Phase 4: the request the upstream gets. The normalised path (less the route's
    /// `strip_prefix`) and the raw query; no hop-by-hop headers, no `Host`, none of the
    /// client's credentials (they are for the gateway); `X-Forwarded-*`, the request id
    /// and `traceparent` set; the body limited as it streams.
    fn upstream_request(
        &self,
        hop: &Hop,
        arrival: &Arrival,
        route: &Route,
        upstream_path: &str,
        request: Request<Body>,
    ) -> Result<Request<Body>, Refusal> {
        if announced_length(request.headers()).is_some_and(|n| n > self.body_limit) {
            return Err(ClientRefusal::BodyTooLarge {
                limit: self.body_limit,
            }
            .into());
        }
        let uri = self.upstream_uri(route, upstream_path, request.uri().query())?;
        let (mut parts, body) = request.into_parts();
        self.upstream_headers(&mut parts.headers, hop, arrival);
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let body = Body::new(http_body_util::Limited::new(
            body,
            usize::try_from(self.body_limit).unwrap_or(usize::MAX),
        ));
        Ok(Request::from_parts(parts, body))
    }

    /// The upstream's base URL, the encoded upstream path and the query.
    fn upstream_uri(
        &self,
        route: &Route,
        upstream_path: &str,
        query: Option<&str>,
    ) -> Result<Uri, Refusal> {
        let base =
            self.upstreams
                .get(&route.upstream)
                .ok_or_else(|| InternalFailure::NoSuchUpstream {
                    upstream: route.upstream.clone(),
                })?;
        let mut target = format!(
            "{}{}",
            base.to_string().trim_end_matches('/'),
            path::encode(upstream_path)
        );
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        target
            .parse::<Uri>()
            .map_err(|_| ClientRefusal::BadTarget.into())
    }

    /// The client's headers as the upstream gets them (see [`Gateway::upstream_request`]).
    fn upstream_headers(&self, headers: &mut HeaderMap, hop: &Hop, arrival: &Arrival) {
        let host = headers.get(header::HOST).cloned();
        proxy::strip_hop_by_hop(headers);
        headers.remove(header::HOST);
        // The client's credentials are for the gateway; upstreams get the assertion.
        headers.remove(header::AUTHORIZATION);
        match without_cookie(headers, &self.session.cookie) {
            Some(v) => headers.insert(header::COOKIE, v),
            None => headers.remove(header::COOKIE),
        };
        proxy::set_forwarded(headers, hop, host);
        if let Ok(v) = HeaderValue::from_str(&arrival.request_id) {
            headers.insert(request_id::HEADER, v);
        }
        // The request's span is the upstream's parent when exported; else the trace
        // still goes on, through a span id of the gateway's own.
        match &arrival.trace {
            Some(onward) => onward.write(headers),
            None => Onward::of(&tracing::Span::current()).write(headers),
        }
    }

    /// Phase 4, for a verified user: the gateway's signed assertion of who they are,
    /// bound to this request and good at the route's upstream and its delegates.
    fn assert_identity(
        &self,
        headers: &mut HeaderMap,
        route: &Route,
        request_id: &str,
        verified: &Verified,
    ) -> Result<(), Refusal> {
        let assertion = self
            .signer
            .sign(&verified.identity, request_id, &route.audiences)
            .map_err(InternalFailure::Signing)?;
        if let Ok(value) = HeaderValue::from_str(&assertion) {
            headers.insert(IDENTITY_HEADER, value);
        }
        Ok(())
    }

    /// Phase 5: send, and wait for the response head within the route's timeout; the
    /// response streams back without hop-by-hop headers.
    async fn forward(
        &self,
        route: &Route,
        request: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        let upstream = || route.upstream.clone();
        let started = Instant::now();
        let forwarded = proxy::forward(&self.client, request, route.timeout).await;
        http_client_request(
            SharedString::from_owned(route.upstream.clone()),
            started.elapsed(),
        );
        forwarded.map_err(|e| match e {
            ForwardError::BodyTooLarge => ClientRefusal::BodyTooLarge {
                limit: self.body_limit,
            }
            .into(),
            ForwardError::Timeout(after) => UpstreamFailure::TimedOut {
                upstream: upstream(),
                after,
            }
            .into(),
            ForwardError::Unreachable(error) => UpstreamFailure::Unreachable {
                upstream: upstream(),
                error,
            }
            .into(),
        })
    }
}

/// How a client that must authenticate on `route` is asked to: a page sends the
/// browser to sign in and back to `path` and `query`; an API answers 401.
fn challenge(route: &Route, path: &str, query: Option<&str>) -> Challenge {
    match route.kind {
        RouteKind::Page => {
            let mut return_to = path::encode(path);
            if let Some(q) = query {
                return_to.push('?');
                return_to.push_str(q);
            }
            Challenge::SignIn { return_to }
        }
        RouteKind::Api => Challenge::Bearer,
    }
}

/// The route's roles and claims, for a verified user.
fn permit(route: &Route, path: &str, verified: &Verified) -> Result<(), ClientRefusal> {
    let missing: Vec<String> = route
        .roles
        .iter()
        .filter(|r| !verified.identity.has_role(r))
        .cloned()
        .collect();
    if missing.is_empty() && claims_match(&verified.claims, &route.claims) {
        return Ok(());
    }
    Err(ClientRefusal::Forbidden {
        path: path.to_string(),
        user: verified.identity.subject.clone(),
        missing,
    })
}

/// The body length a request announces in `Content-Length`, if it is a number.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}
