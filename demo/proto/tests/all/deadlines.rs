//! A BFF's deadline (`oberon_bff::Backend::call`) against a backend that never answers,
//! and a backend that is down.

use std::time::{Duration, Instant};

use tonic::service::Routes;
use tonic::{Request, Response, Status};

use oberon_bff::{Backend, BackendError, Forward};
use oberon_demo_proto::events::v1::events_service_client::EventsServiceClient;
use oberon_demo_proto::events::v1::events_service_server::{EventsService, EventsServiceServer};
use oberon_demo_proto::events::v1::{GetEventRequest, GetEventResponse};

use crate::TestServer;

/// Past the deadline, what a loaded machine may add before the caller sees the status.
const SLACK: Duration = Duration::from_millis(500);

/// An events service that takes every call and never answers it.
struct Hangs;

#[tonic::async_trait]
impl EventsService for Hangs {
    async fn get_event(
        &self,
        _request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        std::future::pending().await
    }
}

/// `GetEvent` through a BFF's backend client (`oberon_bff::Backend`), with `deadline`.
async fn timed_get_event(uri: &str, deadline: Duration) -> (BackendError, Duration) {
    let backend = Backend::new(uri, deadline).expect("backend");
    let events = EventsServiceClient::new(backend.channel().expect("channel"));
    let request = GetEventRequest { id: "42".into() };
    let fwd = Forward::fresh();
    let started = Instant::now();
    let call = backend.call("GetEvent", &fwd, request, |r| {
        let mut events = events.clone();
        async move { events.get_event(r).await }
    });
    // A deadline that does not hold fails the test rather than hanging it.
    let error = tokio::time::timeout(deadline + Duration::from_secs(10), call)
        .await
        .expect("the call ended")
        .expect_err("no answer");
    (error, started.elapsed())
}

fn assert_deadline_exceeded(error: &BackendError, took: Duration, deadline: Duration) {
    assert!(matches!(error, BackendError::Timeout(_)), "{error:?}");
    assert!(took >= deadline, "gave up early, after {took:?}");
    assert!(took <= deadline + SLACK, "gave up late, after {took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_costs_the_deadline_and_no_more() {
    let server = TestServer::start(Routes::new(EventsServiceServer::new(Hangs))).await;
    let deadline = Duration::from_millis(300);
    let (error, took) = timed_get_event(&format!("http://{}", server.addr), deadline).await;
    assert_deadline_exceeded(&error, took, deadline);
}

#[tokio::test]
async fn a_peer_that_accepts_and_never_speaks_costs_the_deadline_and_no_more() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepts connections and holds them, silent.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let deadline = Duration::from_millis(300);
    let (error, took) = timed_get_event(&format!("http://{addr}"), deadline).await;
    assert_deadline_exceeded(&error, took, deadline);
    silent.abort();
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (error, took) = timed_get_event(&format!("http://{addr}"), Duration::from_secs(5)).await;
    // Unavailable, retried within the budget, and still well within the deadline.
    assert!(matches!(error, BackendError::Unreachable(_)), "{error:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
