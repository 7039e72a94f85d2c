//! The client for the backend service a BFF fronts, over gRPC (the golden path: a
//! generated client, [`Backend::call`]) or JSON over HTTP ([`Backend::get`]): one
//! deadline for the whole call, retries included; retries only of what failed before
//! the backend could act on it (unreachable, `UNAVAILABLE`, or `502`/`503`/`504`), at
//! most [`MAX_RETRIES`] and only while the retry budget allows, so a backend in trouble
//! gets a trickle of retries rather than a storm; the request id and the trace
//! forwarded; errors that say which way it failed.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use oberon_service::request_id;
use oberon_service::trace::Onward;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tower::retry::budget::{Budget as _, TpsBudget};
use tracing::Instrument as _;

use crate::observe::Forward;

/// Why a backend call failed.
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
    #[error("backend answered something its contract does not allow: {0}")]
    Invalid(String),
    #[error("backend answered {code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
}

impl BackendError {
    /// Whether the backend cannot have acted on the request: worth another attempt.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Status(502..=504))
    }

    /// A gRPC status as the failure it is: `NOT_FOUND`, `DEADLINE_EXCEEDED` (the
    /// deadline of `timeout`, whoever noticed it) and `UNAVAILABLE` (nothing acted on
    /// the call: retried) by their names, any other code as itself.
    fn of_status(status: &tonic::Status, timeout: Duration) -> Self {
        use tonic::Code;
        match status.code() {
            Code::NotFound => Self::NotFound,
            Code::DeadlineExceeded => Self::Timeout(timeout),
            Code::Unavailable => Self::Unreachable(status.message().to_string()),
            code => Self::Rpc {
                code,
                message: status.message().to_string(),
            },
        }
    }

    /// The `outcome` label of `oberon_bff_backend_calls_total`.
    fn outcome(&self) -> &'static str {
        match self {
            Self::NotFound => "status_4xx",
            Self::Status(s) if *s < 500 => "status_4xx",
            Self::Status(_) => "status_5xx",
            Self::Timeout(_) => "timeout",
            Self::Unreachable(_) | Self::Invalid(_) => "error",
            Self::Rpc { code, .. } if is_callers(*code) => "status_4xx",
            Self::Rpc { .. } => "status_5xx",
        }
    }

    /// The answer for a request whose backend call failed so, `what` naming what it
    /// asked for (`"item"`): `404` (cached briefly, so a burst of misses does not reach
    /// the backend), `504` when it timed out, else `502`; never cached otherwise. For a
    /// resource that is the same for everyone; one that depends on the user is
    /// [`BackendError::answer_for_user`].
    pub fn answer(&self, what: &str) -> axum::response::Response {
        use axum::http::StatusCode;
        if !matches!(self, Self::NotFound) {
            tracing::warn!("backend call failed: {self}");
        }
        match self {
            Self::NotFound => crate::error(
                StatusCode::NOT_FOUND,
                &format!("no such {what}"),
                crate::NOT_FOUND_CACHE,
            ),
            Self::Timeout(_) => crate::error(
                StatusCode::GATEWAY_TIMEOUT,
                "backend timed out",
                crate::NO_STORE,
            ),
            _ => crate::error(StatusCode::BAD_GATEWAY, "backend failed", crate::NO_STORE),
        }
    }

    /// Like [`BackendError::answer`], for a route whose answer depends on the user:
    /// every status `private, no-store`, a `404` too (a shared cache keyed by the URL
    /// alone must not show one user's answer to another).
    pub fn answer_for_user(&self, what: &str) -> axum::response::Response {
        let mut response = self.answer(what);
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static(crate::PRIVATE),
        );
        response
    }
}

/// A backend call's failures as a route's OpenAPI document lists them, beside the
/// route's own answers: `responses((status = 200, …), oberon_bff::BackendFailure)`.
/// [`BackendError::answer`] is what gives them.
#[derive(Debug, utoipa::IntoResponses)]
pub enum BackendFailure {
    #[response(status = 502, description = "the backend failed")]
    Failed(crate::ErrorBody),
    #[response(status = 504, description = "the backend timed out")]
    TimedOut(crate::ErrorBody),
}

/// Whether a gRPC code says the caller's request was wrong (HTTP's 4xx), rather than
/// the backend (5xx).
fn is_callers(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unauthenticated
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
    )
}

/// The most retries of one call.
pub const MAX_RETRIES: u32 = 2;
/// The pause before the first retry; it doubles for the next.
const BACKOFF: Duration = Duration::from_millis(10);

/// The backend: its base URL, the deadline of a call and the retry budget shared by
/// every call (cheap to clone). It speaks JSON over HTTP ([`Backend::get`]) or gRPC
/// ([`Backend::call`], through a generated client on [`Backend::channel`]).
#[derive(Clone)]
pub struct Backend {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    budget: Arc<TpsBudget>,
    /// Made on first use: a channel's worker runs on the runtime that makes it.
    channel: Arc<OnceLock<Result<Channel, String>>>,
}

impl Backend {
    /// Calls to `base` (no trailing `/`), each within `timeout`. The retry budget
    /// allows retries of up to 20 % of the last 10 s's calls, and 10 a second however
    /// few calls there were (Finagle's and linkerd's defaults).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        Self::with_budget(
            base,
            timeout,
            TpsBudget::new(Duration::from_secs(10), 10, 0.2),
        )
    }

    /// With a budget of its own (tests make it small).
    pub fn with_budget(base: &str, timeout: Duration, budget: TpsBudget) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            timeout,
            budget: Arc::new(budget),
            channel: Arc::new(OnceLock::new()),
        })
    }

    /// GET `path` (starting with `/`) and decode its JSON, for the request `fwd`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        fwd: &Forward,
    ) -> Result<T, BackendError> {
        // A sampled request's call is a client span of its own, the backend's parent.
        let span = match fwd.onward {
            None => tracing::info_span!(
                "backend",
                otel.kind = "client",
                otel.name = "GET",
                otel.status_code = tracing::field::Empty,
                http.request.method = "GET",
                url.path = path,
            ),
            Some(_) => tracing::Span::none(),
        };
        self.within_deadline(span.clone(), MAX_RETRIES, |_| {
            self.get_once(path, fwd, &span)
        })
        .await
    }

    /// A gRPC channel to the backend, connected on first use and again after a
    /// connection is lost, for the generated clients
    /// (`EventsServiceClient::new(backend.channel()?)`); calls go through
    /// [`Backend::call`].
    pub fn channel(&self) -> Result<Channel, BackendError> {
        let made = self.channel.get_or_init(|| {
            let mut endpoint =
                Endpoint::from_shared(self.base.clone()).map_err(|e| e.to_string())?;
            if self.base.starts_with("https://") {
                let tls = ClientTlsConfig::new().with_webpki_roots();
                endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
            }
            Ok(endpoint
                .connect_timeout(connect_timeout(self.timeout))
                .tcp_nodelay(true)
                .connect_lazy())
        });
        made.clone()
            .map_err(|e| BackendError::Unreachable(format!("{}: {e}", self.base)))
    }

    /// The unary gRPC call `rpc` (`package.Service/Method`, the span's name) of
    /// `message`, for the request `fwd`: `call` makes it with a client on
    /// [`Backend::channel`] (clients are cheap to clone:
    /// `|r| { let mut c = client.clone(); async move { c.get_event(r).await } }`). The
    /// backend is told the time left (`grpc-timeout`), the request id and the trace.
    /// `UNAVAILABLE` is retried, as gRPC allows for a call that may be repeated: a
    /// read. A call that changes something goes through [`Backend::call_once`].
    pub async fn call<M, T, F, Fut>(
        &self,
        rpc: &'static str,
        fwd: &Forward,
        message: M,
        call: F,
    ) -> Result<T, BackendError>
    where
        M: Clone,
        F: Fn(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rpc(rpc, fwd, message, call, MAX_RETRIES).await
    }

    /// Like [`Backend::call`], never repeated: for a call that changes something
    /// (`PlaceOrder`), which a retry could make twice.
    pub async fn call_once<M, T, F, Fut>(
        &self,
        rpc: &'static str,
        fwd: &Forward,
        message: M,
        call: F,
    ) -> Result<T, BackendError>
    where
        M: Clone,
        F: Fn(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rpc(rpc, fwd, message, call, 0).await
    }

    async fn rpc<M, T, F, Fut>(
        &self,
        rpc: &'static str,
        fwd: &Forward,
        message: M,
        call: F,
        max_retries: u32,
    ) -> Result<T, BackendError>
    where
        M: Clone,
        F: Fn(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let span = match fwd.onward {
            None => tracing::info_span!(
                "backend",
                otel.kind = "client",
                otel.name = rpc,
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
            ),
            Some(_) => tracing::Span::none(),
        };
        let attempt = |deadline: Instant| {
            let answer = call(rpc_request(message.clone(), deadline, fwd, &span));
            async move {
                match answer.await {
                    Ok(response) => Ok(response.into_inner()),
                    // tonic's own expiry of the `grpc-timeout` it sent is `CANCELLED`.
                    Err(_) if Instant::now() >= deadline => {
                        Err(BackendError::Timeout(self.timeout))
                    }
                    Err(status) => Err(BackendError::of_status(&status, self.timeout)),
                }
            }
        };
        self.within_deadline(span.clone(), max_retries, attempt)
            .await
    }

    /// `attempt` (given the call's deadline) and at most `max_retries` retries, as the
    /// rules, the budget and the time left allow, all within the deadline; the outcome
    /// counted and set on `span`.
    async fn within_deadline<T, Fut>(
        &self,
        span: tracing::Span,
        max_retries: u32,
        attempt: impl Fn(Instant) -> Fut,
    ) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let started = Instant::now();
        let deadline = started + self.timeout;
        self.budget.deposit();
        let attempts = self
            .attempts(deadline, max_retries, || attempt(deadline))
            .instrument(span.clone());
        let result = tokio::time::timeout_at(deadline, attempts)
            .await
            .unwrap_or(Err(BackendError::Timeout(self.timeout)));
        let outcome = result.as_ref().map_or_else(BackendError::outcome, |_| "ok");
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        crate::metrics::backend_call(outcome, started.elapsed());
        result
    }

    /// The first attempt, and the retries the rules and the budget allow. A retry that
    /// could not begin before `deadline` is not made: the call fails for its own reason,
    /// not as a timeout, and the budget keeps its token.
    async fn attempts<T, Fut>(
        &self,
        deadline: Instant,
        max_retries: u32,
        attempt: impl Fn() -> Fut,
    ) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let mut retries = 0;
        loop {
            match attempt().await {
                Err(e) if e.is_retryable() && retries < max_retries => {
                    let backoff = BACKOFF * 2u32.pow(retries);
                    if Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    if !self.budget.withdraw() {
                        crate::metrics::backend_retry("budget_exhausted");
                        return Err(e);
                    }
                    crate::metrics::backend_retry("retried");
                    tracing::debug!(error = %e, "retrying the backend call");
                    tokio::time::sleep(backoff).await;
                    retries += 1;
                }
                result => return result,
            }
        }
    }

    async fn get_once<T: DeserializeOwned>(
        &self,
        path: &str,
        fwd: &Forward,
        span: &tracing::Span,
    ) -> Result<T, BackendError> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "application/json");
        for (name, value) in forwarded(fwd, span) {
            request = request.header(name, value);
        }
        let unreachable = |e: reqwest::Error| BackendError::Unreachable(e.to_string());
        let response = request.send().await.map_err(unreachable)?;
        match response.status().as_u16() {
            200..=299 => {}
            404 => return Err(BackendError::NotFound),
            s => return Err(BackendError::Status(s)),
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&bytes).map_err(|e| BackendError::Invalid(e.to_string()))
    }
}

/// A gRPC request of `message`, telling the backend the time left before `deadline`
/// (`grpc-timeout`) and sending on what `fwd` carries, as metadata.
fn rpc_request<M>(
    message: M,
    deadline: Instant,
    fwd: &Forward,
    span: &tracing::Span,
) -> tonic::Request<M> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    let metadata = request.metadata_mut();
    for (name, value) in forwarded(fwd, span) {
        let name = MetadataKey::from_bytes(name.as_str().as_bytes());
        let value = value
            .to_str()
            .ok()
            .and_then(|v| MetadataValue::try_from(v).ok());
        if let (Ok(name), Some(value)) = (name, value) {
            metadata.insert(name, value);
        }
    }
    request
}

/// How long opening a connection may take: a healthy backend accepts in milliseconds,
/// and a caller that waits longer only holds up its own answer.
fn connect_timeout(deadline: Duration) -> Duration {
    deadline.min(Duration::from_secs(1))
}

/// What a call sends on for `fwd`: the request id, and the trace (this call's span,
/// when the request is sampled; else the request's trace as it came).
fn forwarded(fwd: &Forward, span: &tracing::Span) -> Vec<(HeaderName, HeaderValue)> {
    let onward = match &fwd.onward {
        Some(onward) => onward.clone(),
        None => Onward::of(span),
    };
    let mut headers: Vec<_> = onward.headers().collect();
    if let Ok(id) = HeaderValue::from_str(&fwd.request_id) {
        headers.push((HeaderName::from_static(request_id::HEADER), id));
    }
    headers
}

/// `s` as one path segment of a backend URL: percent-encoded, or `None` when no
/// encoding can make it one segment. `.` and `..` are unreserved, and URL parsers read
/// `%2E%2E` as `..` too, so either would climb the backend's paths
/// (`/users/../items` is `/items`); an empty segment would vanish. Anything a user
/// controls (an id, a subject, an issuer) goes into a path through this.
pub fn path_segment(s: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_segment_cannot_climb_or_vanish() {
        assert_eq!(path_segment("alice").as_deref(), Some("alice"));
        assert_eq!(
            path_segment("https://idp.example").as_deref(),
            Some("https%3A%2F%2Fidp.example")
        );
        assert_eq!(path_segment("a/../b").as_deref(), Some("a%2F..%2Fb"));
        for bad in ["", ".", ".."] {
            assert_eq!(path_segment(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_failures_the_backend_cannot_have_acted_on_are_retried() {
        assert!(BackendError::Unreachable("refused".into()).is_retryable());
        assert!(BackendError::Status(503).is_retryable());
        for no in [
            BackendError::Status(500),
            BackendError::NotFound,
            BackendError::Timeout(Duration::from_millis(1)),
            BackendError::Invalid("x".into()),
        ] {
            assert!(!no.is_retryable(), "{no}");
        }
    }
}
