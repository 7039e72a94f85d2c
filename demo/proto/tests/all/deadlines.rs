//! A caller's deadline against a backend that never answers, and a backend that is down.

use std::time::{Duration, Instant};

use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};

use oberon_demo_proto::client;
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

async fn timed_get_event(uri: &str, deadline: Duration) -> (Status, Duration) {
    let mut events = EventsServiceClient::new(client::channel(uri).expect("channel"));
    let request = GetEventRequest { id: "42".into() };
    let started = Instant::now();
    let call = client::unary(deadline, request, |r| events.get_event(r));
    // A deadline that does not hold fails the test rather than hanging it.
    let status = tokio::time::timeout(deadline + Duration::from_secs(10), call)
        .await
        .expect("the call ended")
        .expect_err("no answer");
    (status, started.elapsed())
}

fn assert_deadline_exceeded(status: &Status, took: Duration, deadline: Duration) {
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(took >= deadline, "gave up early, after {took:?}");
    assert!(took <= deadline + SLACK, "gave up late, after {took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_costs_the_deadline_and_no_more() {
    let server = TestServer::start(Routes::new(EventsServiceServer::new(Hangs))).await;
    let deadline = Duration::from_millis(300);
    let (status, took) = timed_get_event(&format!("http://{}", server.addr), deadline).await;
    assert_deadline_exceeded(&status, took, deadline);
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
    let (status, took) = timed_get_event(&format!("http://{addr}"), deadline).await;
    assert_deadline_exceeded(&status, took, deadline);
    silent.abort();
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (status, took) = timed_get_event(&format!("http://{addr}"), Duration::from_secs(5)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
