//! Calling the demo's services: a channel that connects when first used, and unary
//! calls bounded by a deadline.
//!
//! tonic bounds a call by the `grpc-timeout` it sends, but reports the expiry as
//! `CANCELLED` ("Timeout expired"), which reads as if the caller gave up on its own
//! accord. [`unary`] reports it as the gRPC spec does, `DEADLINE_EXCEEDED`, and holds
//! the deadline itself too, so it holds whatever the channel does.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

/// How long a connection may take to open: on loopback or in a cluster a healthy
/// backend accepts in milliseconds, and a caller that waits longer only holds up its
/// own answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A channel to `uri` (`http://127.0.0.1:9000`), connected on first use and again
/// after a connection is lost. A backend that is down costs each call
/// `UNAVAILABLE`, at most [`CONNECT_TIMEOUT`] after it starts, never the caller's
/// start-up. Made inside a tokio runtime: the channel's worker is spawned on it.
pub fn channel(uri: &str) -> Result<Channel, InvalidUri> {
    let endpoint = Endpoint::from_shared(uri.to_string()).map_err(|source| InvalidUri {
        uri: uri.to_string(),
        source,
    })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// A backend address that is not a URI a channel can use.
#[derive(Debug, thiserror::Error)]
#[error("backend uri {uri}: {source}")]
pub struct InvalidUri {
    uri: String,
    #[source]
    source: tonic::transport::Error,
}

/// Calls `call` with `message`, waiting at most `timeout` for its answer. The server is
/// told the deadline (`grpc-timeout`), so it can stop working for a caller that has
/// gone; past the deadline the status is `DEADLINE_EXCEEDED`, whether the caller's
/// timer or tonic's noticed first.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use oberon_demo_proto::client;
/// use oberon_demo_proto::events::v1::GetEventRequest;
/// use oberon_demo_proto::events::v1::events_service_client::EventsServiceClient;
///
/// let mut events = EventsServiceClient::new(client::channel("http://127.0.0.1:9000")?);
/// let request = GetEventRequest { id: "42".into() };
/// let answer = client::unary(Duration::from_millis(300), request, |r| events.get_event(r)).await?;
/// # Ok(()) }
/// ```
pub async fn unary<M, T, F, Fut>(timeout: Duration, message: M, call: F) -> Result<T, Status>
where
    F: FnOnce(Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let deadline = Instant::now() + timeout;
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    match tokio::time::timeout_at(deadline, call(request)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        // tonic's own expiry of the `grpc-timeout` it sent.
        Ok(Err(status)) if status.code() == Code::Cancelled && Instant::now() >= deadline => {
            Err(deadline_exceeded(timeout))
        }
        Ok(Err(status)) => Err(status),
        Err(_elapsed) => Err(deadline_exceeded(timeout)),
    }
}

fn deadline_exceeded(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!("no answer within {} ms", timeout.as_millis()))
}
