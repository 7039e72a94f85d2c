//! Why the gateway answers a request itself instead of with the upstream's response.
//!
//! A phase of [`Gateway::handle`](crate::Gateway::handle) that cannot go on returns a
//! [`Refusal`], tagged by the side that failed: the client (its request cannot be served
//! as sent), the upstream (it could not be reached, or did not answer in time), or the
//! gateway itself. [`Refusal::response`] is the one table from a refusal to a status,
//! a body and headers, and [`Refusal::log`] the one place its details are logged.
//!
//! Bodies name nothing internal: an upstream's name, its address, a timeout or an error
//! chain go to the log (inside the request's span, so with its request id), never to the
//! client, who gets the status and a short generic sentence. What a client may learn is
//! what it can act on: the limit it went over, why its path is ambiguous, when to retry.

use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use oberon_identity::assertion::KeyLoadError;
use oberon_service::error_chain;

use crate::auth::TokenError;
use crate::path::PathError;
use crate::proxy::gateway_answer;
use crate::ratelimit::retry_after_secs;
use crate::session;

/// A request the gateway answers itself, by the side that failed.
#[derive(Debug)]
pub(crate) enum Refusal {
    Client(ClientRefusal),
    Upstream(UpstreamFailure),
    Internal(InternalFailure),
}

impl Refusal {
    /// Refused by a rate limit (the client's or the user's).
    pub(crate) fn is_rate_limited(&self) -> bool {
        matches!(self, Refusal::Client(ClientRefusal::TooManyRequests { .. }))
    }
}

/// The client's request cannot be served as sent.
#[derive(Debug)]
pub(crate) enum ClientRefusal {
    /// Its headers add up to more than `limit` bytes (431).
    HeadersTooLarge { limit: usize },
    /// Its path could mean two things, or is not a path (400).
    BadPath(PathError),
    /// The client, or the user, has spent its rate-limit budget: retry after `wait` (429).
    TooManyRequests { wait: Duration },
    /// No route takes the path, or it is the services' own (404).
    NotFound,
    /// No credentials where the route needs them.
    Unauthenticated(Challenge),
    /// Credentials (at the normalised `path`) that do not verify.
    TokenRefused {
        challenge: Challenge,
        path: String,
        error: TokenError,
    },
    /// A verified `user` without the route's roles (`missing`) or claims (403).
    Forbidden {
        path: String,
        user: String,
        missing: Vec<String>,
    },
    /// A body, announced or streamed, over `limit` bytes (413).
    BodyTooLarge { limit: u64 },
    /// The path and query make no request target (400).
    BadTarget,
}

/// How a client that must authenticate is asked to, by the route's kind.
#[derive(Debug)]
pub(crate) enum Challenge {
    /// A page: the browser is sent to sign in, and back to `return_to` after.
    SignIn { return_to: String },
    /// An API: 401 with `WWW-Authenticate`.
    Bearer,
}

/// The upstream could not give an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamFailure {
    /// No response head within the route's timeout (504).
    #[error("upstream timed out after {after:?}")]
    TimedOut { upstream: String, after: Duration },
    /// Connecting or sending failed (502).
    #[error("upstream failed: {}", error_chain(.error))]
    Unreachable {
        upstream: String,
        error: hyper_util::client::legacy::Error,
    },
}

/// The gateway itself failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InternalFailure {
    /// The route names an upstream without a usable URL (502).
    #[error("route's upstream {upstream} has no usable URL")]
    NoSuchUpstream { upstream: String },
    /// The identity assertion could not be signed (500).
    #[error("cannot sign an identity assertion: {0}")]
    Signing(KeyLoadError),
}

impl From<ClientRefusal> for Refusal {
    fn from(refusal: ClientRefusal) -> Self {
        Refusal::Client(refusal)
    }
}

impl From<UpstreamFailure> for Refusal {
    fn from(failure: UpstreamFailure) -> Self {
        Refusal::Upstream(failure)
    }
}

impl From<InternalFailure> for Refusal {
    fn from(failure: InternalFailure) -> Self {
        Refusal::Internal(failure)
    }
}

impl Refusal {
    /// The answer the client gets: the policy table. `session` is for clearing a
    /// session cookie that no longer verifies.
    pub(crate) fn response(&self, session: &session::Settings) -> Response<Body> {
        use ClientRefusal as C;
        match self {
            Refusal::Client(C::HeadersTooLarge { limit }) => gateway_answer(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request headers are over {limit} bytes\n"),
            ),
            Refusal::Client(C::BadPath(e)) => {
                gateway_answer(StatusCode::BAD_REQUEST, format!("bad path: {e}\n"))
            }
            Refusal::Client(C::TooManyRequests { wait }) => too_many(*wait),
            Refusal::Client(C::NotFound) => gateway_answer(StatusCode::NOT_FOUND, "not found\n"),
            Refusal::Client(C::Unauthenticated(challenge)) => challenge.response(false, session),
            Refusal::Client(C::TokenRefused { challenge, .. }) => challenge.response(true, session),
            Refusal::Client(C::Forbidden { .. }) => gateway_answer(
                StatusCode::FORBIDDEN,
                "you are signed in, but not allowed here\n",
            ),
            Refusal::Client(C::BodyTooLarge { limit }) => gateway_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is over {limit} bytes\n"),
            ),
            Refusal::Client(C::BadTarget) => {
                gateway_answer(StatusCode::BAD_REQUEST, "bad request target\n")
            }
            Refusal::Upstream(UpstreamFailure::TimedOut { .. }) => {
                gateway_answer(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n")
            }
            Refusal::Upstream(UpstreamFailure::Unreachable { .. })
            | Refusal::Internal(InternalFailure::NoSuchUpstream { .. }) => {
                gateway_answer(StatusCode::BAD_GATEWAY, "bad gateway\n")
            }
            Refusal::Internal(InternalFailure::Signing(_)) => {
                gateway_answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }
        }
    }

    /// The details the client does not get, for the operator. Refusals that say nothing
    /// beyond their status (a bad path, a rate limit, a 404) are not logged.
    pub(crate) fn log(&self) {
        match self {
            Refusal::Client(ClientRefusal::TokenRefused { path, error, .. }) => {
                tracing::info!(path = %path, "token refused: {error}");
            }
            Refusal::Client(ClientRefusal::Forbidden {
                path,
                user,
                missing,
            }) => {
                tracing::info!(path = %path, user = %user, ?missing, "forbidden");
            }
            Refusal::Client(_) => {}
            Refusal::Upstream(
                failure @ (UpstreamFailure::TimedOut { upstream, .. }
                | UpstreamFailure::Unreachable { upstream, .. }),
            ) => {
                tracing::warn!(upstream = %upstream, "{failure}");
            }
            Refusal::Internal(failure) => tracing::error!("{failure}"),
        }
    }
}

impl Challenge {
    /// A sign-in redirect or a 401; `refused` when credentials came and did not verify.
    fn response(&self, refused: bool, session: &session::Settings) -> Response<Body> {
        match self {
            Challenge::SignIn { return_to } => {
                let mut response = session::redirect_to_sign_in(return_to);
                if refused {
                    // A session that no longer verifies is gone: do not send it again.
                    session::clear_session_cookie(&mut response, session);
                }
                response
            }
            Challenge::Bearer => {
                let (body, challenge) = if refused {
                    (
                        "the token is not valid\n",
                        r#"Bearer realm="oberon", error="invalid_token""#,
                    )
                } else {
                    ("authentication required\n", r#"Bearer realm="oberon""#)
                };
                let mut response = gateway_answer(StatusCode::UNAUTHORIZED, body);
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                response
            }
        }
    }
}

/// 429 with `Retry-After`.
fn too_many(wait: Duration) -> Response<Body> {
    let mut response = gateway_answer(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(wait)),
    );
    response
}
