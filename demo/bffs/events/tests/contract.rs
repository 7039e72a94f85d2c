//! The events BFF's contract: a fake catalogue (gRPC) on port 0, the real service on
//! port 0, real HTTP and gRPC between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events_bff::{EventV1, PREFIX, PUBLIC_CACHE, Related};
use oberon_bff::Env;
use oberon_bff::NOT_FOUND_CACHE;
use oberon_bff::testing::{Running, get, serve_grpc_on_loopback};
use oberon_demo_proto::events::v1::events_service_server::{EventsService, EventsServiceServer};
use oberon_demo_proto::events::v1::{Event, GetEventRequest, GetEventResponse, TicketType};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// The fake catalogue: events by id, and the metadata of every call (shared by its
/// clones: the server's and the test's).
#[derive(Default, Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<MetadataMap>>>,
}

fn event(id: &str, name: &str, related: &[&str]) -> Event {
    Event {
        id: id.into(),
        name: name.into(),
        venue: "Hall".into(),
        city: "London".into(),
        starts_at: Some(prost_types::Timestamp {
            seconds: 1_796_500_800,
            nanos: 0,
        }),
        description: "Music.".into(),
        ticket_types: vec![TicketType {
            id: "standard".into(),
            name: "Standard".into(),
            price_cents: 4500,
            currency: "EUR".into(),
            remaining: 3,
        }],
        related_ids: related.iter().map(|r| r.to_string()).collect(),
    }
}

#[tonic::async_trait]
impl EventsService for Fake {
    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        self.seen
            .lock()
            .expect("lock")
            .push(request.metadata().clone());
        let event = match request.get_ref().id.as_str() {
            "42" => event("42", "The Midnight Orchestra", &["43", "gone", "slow"]),
            "43" => event("43", "Strings at Dawn", &["42"]),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                event("slow", "Late", &[])
            }
            "broken" => return Err(Status::internal("the catalogue broke")),
            // A success without its event: not what the contract promises.
            "empty" => return Ok(Response::new(GetEventResponse { event: None })),
            _ => return Err(Status::not_found("no such event")),
        };
        Ok(Response::new(GetEventResponse { event: Some(event) }))
    }
}

async fn fake_backend() -> (String, Fake) {
    let fake = Fake::default();
    let routes = tonic::service::Routes::new(EventsServiceServer::new(fake.clone()));
    (serve_grpc_on_loopback(routes).await, fake)
}

async fn start(vars: &[(&str, String)]) -> Running {
    Running::start(events_bff::service(Env::from_pairs(PREFIX, vars)).expect("valid configuration"))
        .await
}

#[tokio::test]
async fn an_event_comes_with_its_related_events_and_its_cache_policy() {
    let (backend, fake) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "300".into()),
    ])
    .await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = get(
        &format!("{}/v1/events/42", bff.url),
        &[("traceparent", tp), ("x-request-id", "req-1")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], PUBLIC_CACHE);
    let got: EventV1 = r.json().await.expect("json");
    assert_eq!(got.name, "The Midnight Orchestra");
    assert_eq!(got.ticket_types[0].price_cents, 4500);
    // "gone" (404) and "slow" (past the backend timeout) are left out; the page
    // still gets its event.
    assert_eq!(
        got.related,
        [Related {
            id: "43".into(),
            name: "Strings at Dawn".into(),
            starts_at: "2026-12-05T20:00:00Z".into()
        }]
    );
    // Every call is in the caller's trace, under a span id of this service's.
    let seen = fake.seen.lock().expect("lock");
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-";
    assert_eq!(seen.len(), 4, "the event and its three related events");
    assert!(seen.iter().all(|m| {
        let sent = m
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let id = m.get("x-request-id").and_then(|v| v.to_str().ok());
        sent.starts_with(trace) && sent != tp && id == Some("req-1")
    }));
}

#[tokio::test]
async fn failures_map_to_clear_statuses_that_are_not_cached() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "300".into()),
    ])
    .await;
    for (id, status, cache) in [
        ("missing", 404, NOT_FOUND_CACHE),
        ("broken", 502, "no-store"),
        ("empty", 502, "no-store"),
        ("slow", 504, "no-store"),
        ("bad%20id", 400, "no-store"),
    ] {
        let r = get(&format!("{}/v1/events/{id}", bff.url), &[]).await;
        assert_eq!(r.status(), status, "{id}");
        assert_eq!(r.headers()["cache-control"], cache, "{id}");
    }
}

/// The catalogue down (nothing listens): `502` at once, well within the deadline.
#[tokio::test]
async fn a_catalogue_that_is_down_is_a_bad_gateway_at_once() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let nowhere = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let bff = start(&[
        ("BACKEND_URL", nowhere),
        ("BACKEND_TIMEOUT_MS", "800".into()),
    ])
    .await;
    let started = std::time::Instant::now();
    let r = get(&format!("{}/v1/events/42", bff.url), &[]).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "{took:?}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_event() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    let doc: serde_json::Value = get(&format!("{}/openapi.json", bff.ops), &[])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["info"]["title"], "events-bff");
    assert!(doc["paths"]["/v1/events/{id}"]["get"].is_object());
    assert_eq!(doc["paths"]["/v1/events/{id}"]["get"]["deprecated"], false);
    let event = &doc["components"]["schemas"]["EventV1"];
    assert_eq!(
        event["properties"]["ticket_types"]["items"]["$ref"],
        "#/components/schemas/TicketType"
    );
}

/// The demo's catalogue fixtures, served as `oberon dev` serves them.
async fn demo_catalogue() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../backends/events");
    let fixtures = oberon_demo_proto::fixtures::Fixtures::load(std::path::Path::new(root))
        .expect("the demo's catalogue loads");
    serve_grpc_on_loopback(fixtures.routes()).await
}

/// `demo/fixtures/event-42.json` (what the renderer's tests and benchmarks give the
/// event page) is exactly what this BFF answers over the demo's catalogue.
#[tokio::test]
async fn the_demo_fixture_is_what_this_bff_answers() {
    let bff = start(&[("BACKEND_URL", demo_catalogue().await)]).await;
    let answered: serde_json::Value = get(&format!("{}/v1/events/42", bff.url), &[])
        .await
        .json()
        .await
        .expect("json");
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../../fixtures/event-42.json")).expect("fixture");
    assert_eq!(answered, fixture);
}
