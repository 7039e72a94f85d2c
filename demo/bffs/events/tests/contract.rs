//! The events BFF's contract: a fake catalogue backend on port 0, the real service on
//! port 0, real HTTP between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use events_bff::{EventV1, PREFIX, PUBLIC_CACHE, Related};
use oberon_bff::Env;
use oberon_bff::NOT_FOUND_CACHE;
use oberon_bff::testing::{Running, get, serve_on_loopback};

/// The fake catalogue: events by id, and what it was sent.
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<HeaderMap>>,
}

fn event(id: &str, name: &str, related: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "id": id, "name": name, "venue": "Hall", "city": "London",
        "starts_at": "2026-12-05T20:00:00Z", "description": "Music.",
        "ticket_types": [{ "id": "standard", "name": "Standard", "price_cents": 4500, "currency": "EUR", "remaining": 3 }],
        "related_ids": related,
    })
}

async fn fake_backend() -> (String, Arc<Fake>) {
    async fn get_event(
        State(fake): State<Arc<Fake>>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        fake.seen.lock().expect("lock").push(headers);
        match id.as_str() {
            "42" => axum::Json(event(
                "42",
                "The Midnight Orchestra",
                &["43", "gone", "slow"],
            ))
            .into_response(),
            "43" => axum::Json(event("43", "Strings at Dawn", &["42"])).into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK.into_response()
            }
            "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "garbage" => ([("content-type", "application/json")], "{\"id\":").into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/events/{id}", routing::get(get_event))
        .with_state(fake.clone());
    (serve_on_loopback(app).await, fake)
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
    assert!(seen.iter().all(|h| {
        let sent = h["traceparent"].to_str().expect("ascii");
        sent.starts_with(trace) && sent != tp && h["x-request-id"] == "req-1"
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
        ("garbage", 502, "no-store"),
        ("slow", 504, "no-store"),
        ("bad%20id", 400, "no-store"),
    ] {
        let r = get(&format!("{}/v1/events/{id}", bff.url), &[]).await;
        assert_eq!(r.status(), status, "{id}");
        assert_eq!(r.headers()["cache-control"], cache, "{id}");
    }
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

/// The demo's catalogue fixtures, served as files: what `oberon dev` runs this BFF on.
async fn demo_catalogue() -> String {
    async fn file(Path(id): Path<String>) -> Response {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../backends/events/events");
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return StatusCode::NOT_FOUND.into_response();
        }
        match std::fs::read(format!("{root}/{id}.json")) {
            Ok(body) => ([("content-type", "application/json")], body).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }
    serve_on_loopback(Router::new().route("/events/{id}", routing::get(file))).await
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
