//! The gateway's metrics (`docs/observability.md` is the catalogue): each request by
//! route, status and how its caller was authenticated, upstream latency, rate-limit
//! refusals; the identity providers' key-set fetches are read when Prometheus scrapes.

use std::time::Duration;

use metrics::SharedString;
use oberon_service::metrics::{http_server_request, status_label};

use crate::Gateway;

/// What the metrics say about one request, learnt as its phases run.
#[derive(Debug)]
pub(crate) struct Seen {
    /// The matched route's pattern; `None` before a route matched (or none did).
    pub route: Option<SharedString>,
    /// How the caller was authenticated: `none` (no check: a public route, or refused
    /// before), `anonymous` (an optional route, no token), `ok`, `missing` (a required
    /// route, no token), `forbidden` (roles or claims), or why the token was refused
    /// ([`crate::auth::TokenError::auth_label`]).
    pub auth: &'static str,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            route: None,
            auth: "none",
        }
    }
}

impl Seen {
    pub fn answered(
        self,
        method: &http::Method,
        status: http::StatusCode,
        rate_limited: bool,
        took: Duration,
    ) {
        let route = self.route.unwrap_or(SharedString::const_str(""));
        if rate_limited {
            metrics::counter!("oberon_gateway_rate_limited_total", "http_route" => route.clone())
                .increment(1);
        }
        metrics::counter!(
            "oberon_gateway_requests_total",
            "http_route" => route.clone(),
            "http_response_status_code" => status_label(status),
            "auth" => self.auth,
        )
        .increment(1);
        http_server_request(route, method, status, took);
    }
}

/// Sets what is state from the gateway as it is now: called by `GET /metrics`.
pub fn observe(gateway: &Gateway) {
    for (issuer, stats) in gateway.issuers.key_set_stats() {
        let ok = stats.fetches.saturating_sub(stats.failed_fetches);
        metrics::counter!("oberon_gateway_jwks_refreshes_total", "issuer" => issuer.to_string(), "outcome" => "ok")
            .absolute(ok);
        metrics::counter!("oberon_gateway_jwks_refreshes_total", "issuer" => issuer.to_string(), "outcome" => "error")
            .absolute(stats.failed_fetches);
    }
}
