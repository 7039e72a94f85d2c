//! A BFF's metrics, through the `metrics` facade and `oberon_service`'s exporter (the
//! same buckets and names as the gateway and the renderer; `docs/observability.md` is
//! the catalogue): requests by route pattern and status with their duration, backend
//! calls by outcome, retries, and requests to deprecated API versions, so a team knows
//! when it may sunset one.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use oberon_service::metrics::{http_client_request, http_server_request};

/// `oberon_bff_backend_calls_total{outcome}`.
pub const BACKEND_CALLS: &str = "oberon_bff_backend_calls_total";
/// `oberon_bff_backend_retries_total{outcome}`: `retried`, or `budget_exhausted` when
/// the retry budget refused one.
pub const BACKEND_RETRIES: &str = "oberon_bff_backend_retries_total";
/// `oberon_bff_deprecated_requests_total{api_version}`.
pub const DEPRECATED_REQUESTS: &str = "oberon_bff_deprecated_requests_total";

/// One answered request. `route` is the matched route pattern (never the raw path:
/// bounded cardinality); `deprecated` when the answer carried `Deprecation`.
pub(crate) fn request(
    route: &str,
    method: &Method,
    status: StatusCode,
    deprecated: bool,
    took: Duration,
) {
    http_server_request(route.to_string(), method, status, took);
    if deprecated {
        let version = api_version(route).to_string();
        metrics::counter!(DEPRECATED_REQUESTS, "api_version" => version).increment(1);
    }
}

/// One backend call, retries included: `outcome` is `ok`, `status_4xx`, `status_5xx`,
/// `timeout` or `error`.
pub(crate) fn backend_call(outcome: &'static str, took: Duration) {
    metrics::counter!(BACKEND_CALLS, "outcome" => outcome).increment(1);
    http_client_request("backend", took);
}

/// One retry made (`retried`) or refused by the budget (`budget_exhausted`).
pub(crate) fn backend_retry(outcome: &'static str) {
    metrics::counter!(BACKEND_RETRIES, "outcome" => outcome).increment(1);
}

/// The API version a route belongs to: its first segment (`/v1/items/{id}` → `v1`).
fn api_version(route: &str) -> &str {
    route
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_the_routes_first_segment() {
        assert_eq!(api_version("/v1/items/{id}"), "v1");
        assert_eq!(api_version("/openapi.json"), "openapi.json");
    }
}
