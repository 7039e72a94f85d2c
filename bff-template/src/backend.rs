//! The client for the backend service this BFF fronts: one timeout for the whole call,
//! the request id and W3C `traceparent` forwarded, and errors that say which way it
//! failed.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend has no such resource")]
    NotFound,
    #[error("backend answered HTTP {0}")]
    Status(u16),
    #[error("backend did not answer within {0:?}")]
    Timeout(Duration),
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    #[error("backend answered something that is not the expected JSON: {0}")]
    Invalid(String),
}

/// What a request forwards to the backend.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    pub request_id: String,
    /// Forwarded only when it is a well-formed version-00 traceparent.
    pub traceparent: Option<String>,
}

#[derive(Clone)]
pub struct Backend {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Backend {
    pub fn new(base: &str, timeout: Duration, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            timeout,
            metrics,
        })
    }

    /// GET `path` (starting with `/`) and decode its JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        fwd: &Forward,
    ) -> Result<T, BackendError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "backend",
            otel.kind = "client",
            otel.name = "GET",
            otel.status_code = tracing::field::Empty,
            http.request.method = "GET",
            url.path = path,
        );
        let result = tokio::time::timeout(self.timeout, self.get_inner(path, fwd, &span))
            .instrument(span.clone())
            .await
            .unwrap_or(Err(BackendError::Timeout(self.timeout)));
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(BackendError::NotFound) => "status_4xx",
            Err(BackendError::Status(s)) if *s < 500 => "status_4xx",
            Err(BackendError::Status(_)) => "status_5xx",
            Err(BackendError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.metrics.backend(outcome, started.elapsed());
        result
    }

    async fn get_inner<T: DeserializeOwned>(
        &self,
        path: &str,
        fwd: &Forward,
        span: &tracing::Span,
    ) -> Result<T, BackendError> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "application/json")
            .header("x-request-id", &fwd.request_id);
        // Exporting spans, this call is the backend's parent; else the caller's trace
        // is passed on as it came.
        let traced = crate::trace::headers_for(span);
        if !traced.is_empty() {
            request = request.headers(traced);
        } else if let Some(tp) = fwd.traceparent.as_deref().filter(|tp| is_traceparent(tp)) {
            request = request.header("traceparent", tp);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BackendError::Unreachable(e.to_string()))?;
        match response.status().as_u16() {
            200..=299 => {}
            404 => return Err(BackendError::NotFound),
            s => return Err(BackendError::Status(s)),
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| BackendError::Unreachable(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| BackendError::Invalid(e.to_string()))
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.
pub fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_format() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent("garbage\r\nx: y"));
    }
}
