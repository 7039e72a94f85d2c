//! The layer every API request goes through: its id, its span (a trace's server span
//! when sampled), its metrics by route pattern, and what handlers and extractors need
//! to know about it ([`Arrival`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use oberon_identity::Verifier;
use oberon_service::request_id;
use oberon_service::trace::{Onward, Sampling};
use tracing::Instrument as _;

use crate::Bff;

/// What the platform learned of a request as it arrived.
#[derive(Clone)]
pub(crate) struct Arrival {
    /// Kept from `x-request-id` when well formed, else new: the id logged, answered,
    /// sent to the backend and required of the identity assertion.
    pub request_id: String,
    /// The trace the backend call continues: `None` when this request is sampled (the
    /// call's own client span is then the backend's parent).
    pub onward: Option<Onward>,
    /// The verifier of the gateway's assertions, when configured.
    pub identity: Option<Arc<Verifier>>,
}

/// Middleware (through `Router::layer`, so after routing: the route pattern is known).
pub(crate) async fn observe(State(bff): State<Bff>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id::of_or_generate(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let sampling = Sampling::decide(request.headers());
    let sampled = sampling.as_ref().is_some_and(Sampling::is_sampled);
    let span = request_span(&request_id, &method, &route, sampled);
    let onward = match sampling {
        Some(sampling) => sampling.begin(&span),
        None => Some(Onward::passed_on(request.headers())),
    };
    // The id handlers see is the one logged and answered, whatever the request carried.
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(request_id::HEADER, v.clone());
    }
    request.extensions_mut().insert(Arrival {
        request_id: request_id.clone(),
        onward,
        identity: bff.identity(),
    });
    let mut response = next.run(request).instrument(span.clone()).await;
    let (status, took) = (response.status(), started.elapsed());
    if sampled {
        span.record("http.response.status_code", status.as_u16());
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = took.as_secs_f64() * 1e3,
            "answered"
        );
    });
    let deprecated = response
        .extensions()
        .get::<crate::versions::DeprecatedVersion>()
        .is_some();
    crate::metrics::request(&route, &method, status, deprecated, took);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(request_id::HEADER, v);
    }
    response
}

/// `request{request_id, method, route}`, around everything that happens to the request;
/// sampled, the trace's server span.
fn request_span(request_id: &str, method: &Method, route: &str, sampled: bool) -> tracing::Span {
    if sampled {
        tracing::info_span!(
            "request",
            request_id,
            %method,
            route,
            otel.kind = "server",
            otel.name = %format_args!("{method} {route}"),
            http.route = route,
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::info_span!("request", request_id, %method, route)
    }
}

/// What a backend call sends on for the request it serves: the request id and its
/// place in the trace. An extractor; a handler passes it to
/// [`Backend::get`](crate::backend::Backend::get).
#[derive(Debug, Clone)]
pub struct Forward {
    pub request_id: String,
    /// `None` when the request is sampled: the call makes its own client span.
    pub(crate) onward: Option<Onward>,
}

impl Forward {
    /// For a call made outside any request (a warm-up, a test): a new id, and a trace
    /// of its own only if traces are on.
    pub fn fresh() -> Self {
        Self {
            request_id: request_id::generate(),
            onward: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Forward {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(match parts.extensions.get::<Arrival>() {
            Some(arrival) => Self {
                request_id: arrival.request_id.clone(),
                onward: arrival.onward.clone(),
            },
            // A route not served by the platform (a handler called in a unit test).
            None => Self {
                request_id: request_id::of_or_generate(&parts.headers),
                onward: Some(Onward::passed_on(&parts.headers)),
            },
        })
    }
}
