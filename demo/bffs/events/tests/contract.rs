//! The events BFF's contract: a fake catalogue backend on port 0, the real service on
//! port 0, real HTTP between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use events_bff::config::{Config, PREFIX};
use events_bff::{AppState, EventV1, Listeners, NOT_FOUND_CACHE, PUBLIC_CACHE, Related, serve};

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

struct Bff {
    /// The API.
    url: String,
    /// The operational endpoints.
    ops: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(vars: &[(&str, String)]) -> Bff {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v.clone()))
        .collect();
    let config = Config::from_lookup(|k| map.get(k).cloned()).expect("valid config");
    let state = AppState::new(config).expect("state");
    let bind = || async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
    };
    let listeners = Listeners {
        api: bind().await,
        ops: bind().await,
    };
    let url = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().expect("addr"));
    let (url, ops) = (url(&listeners.api), url(&listeners.ops));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(serve(listeners, state, async move {
        let _ = rx.await;
    }));
    Bff {
        url,
        ops,
        stop: Some(tx),
        done,
    }
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("request")
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
    let seen = fake.seen.lock().expect("lock");
    assert!(
        seen.iter()
            .all(|h| h["traceparent"] == tp && h["x-request-id"] == "req-1")
    );
}

#[tokio::test]
async fn a_generated_request_id_reaches_the_backend_and_the_response() {
    let (backend, fake) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    // No request id: the BFF makes one, and every backend call carries the very id the
    // response names.
    let r = get(&format!("{}/v1/events/43", bff.url), &[]).await;
    assert_eq!(r.status(), 200);
    let answered = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(!answered.is_empty());
    let seen = fake.seen.lock().expect("lock");
    assert_eq!(seen.len(), 2, "the event and its related event");
    assert!(seen.iter().all(|h| h["x-request-id"] == answered.as_str()));
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
}

/// The operational endpoints answer on their own port only: a gateway route to the API
/// (`/api/events/{*rest}`, prefix stripped) cannot reach them (issue 18, finding 6).
#[tokio::test]
async fn operational_endpoints_are_not_on_the_api_port() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    for path in ["/livez", "/readyz", "/metrics", "/openapi.json"] {
        let r = get(&format!("{}{path}", bff.url), &[]).await;
        assert_eq!(r.status(), 404, "{path} on the API port");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        let r = get(&format!("{}{path}", bff.ops), &[]).await;
        assert_eq!(r.status(), 200, "{path} on the operational port");
    }
    // And the API is not on the operational port.
    let r = get(&format!("{}/v1/events/42", bff.ops), &[]).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn shutdown_turns_readiness_off_and_finishes_requests_in_flight() {
    let (backend, _) = fake_backend().await;
    let mut bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "1000".into()),
        ("DRAIN_MS", "500".into()),
    ])
    .await;
    assert_eq!(get(&format!("{}/readyz", bff.ops), &[]).await.status(), 200);
    assert_eq!(get(&format!("{}/livez", bff.ops), &[]).await.status(), 200);

    // A slow request is in flight when shutdown begins; it still gets its answer.
    let url = format!("{}/v1/events/slow", bff.url);
    let in_flight = tokio::spawn(async move { get(&url, &[]).await.status() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = bff.stop.take().expect("running").send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: still accepting, but no longer ready.
    assert_eq!(get(&format!("{}/readyz", bff.ops), &[]).await.status(), 503);
    assert_eq!(in_flight.await.expect("join"), 504);
    bff.done.await.expect("join").expect("served");
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
    let app = Router::new().route("/events/{id}", routing::get(file));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
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
