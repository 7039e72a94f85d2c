//! What every BFF gets from the platform, tested through a small BFF made here the way a
//! team makes one: a fake backend on port 0, the service on port 0, real HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::{Json, Router};
use oberon_bff::Env;
use oberon_bff::testing::{FakeGateway, Running, get, serve_on_loopback};
use oberon_bff::{Bff, Forward, Lifecycle, OptionalUser, Service, Settings, versioned};
use oberon_config::listen::ListenLimits;
use oberon_config::testing::assert_slow_clients_are_closed;
use utoipa::OpenApi as _;

const PREFIX: &str = "TEST_BFF_";
const AUDIENCE: &str = "test-bff";

/// The fake backend: `/things/{id}` answers by id, counts the calls per id and keeps
/// the headers it was sent.
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<HeaderMap>>,
    calls: Mutex<HashMap<String, u32>>,
}

impl Fake {
    fn calls(&self, id: &str) -> u32 {
        self.calls
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

async fn thing(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    fake.seen.lock().expect("lock").push(headers);
    let n = {
        let mut calls = fake.calls.lock().expect("lock");
        let n = calls.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    match id.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        // Unavailable once, then fine: what a retry is for.
        "flaky" if n == 1 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "down" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => Json(serde_json::json!({ "id": id })).into_response(),
    }
}

async fn fake_backend() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/things/{id}", routing::get(thing))
        .with_state(fake.clone());
    (serve_on_loopback(app).await, fake)
}

/// The document of [`service`]'s routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(thing_v1_doc, thing_v2_doc))]
struct ApiDoc;

#[utoipa::path(get, path = "/v1/things/{id}", responses((status = 200, description = "a thing")))]
#[allow(dead_code)]
fn thing_v1_doc() {}

#[utoipa::path(get, path = "/v2/things/{id}", responses((status = 200, description = "a thing")))]
#[allow(dead_code)]
fn thing_v2_doc() {}

/// A BFF with a versioned `/v1` and a current `/v2` of one resource, and `/v2/me`.
fn service(vars: &[(&str, String)]) -> Service {
    let mut env = Env::from_pairs(PREFIX, vars);
    let settings = Settings::read(&mut env);
    let v1 = Lifecycle::read(&mut env, "V1");
    let (settings, v1) = env.finish((settings, v1)).expect("valid configuration");
    let bff = Bff::new("test-bff", "0.0.0", settings).expect("platform");
    async fn fetch(State(bff): State<Bff>, Path(id): Path<String>, fwd: Forward) -> Response {
        match bff
            .backend()
            .get::<serde_json::Value>(&format!("/things/{id}"), &fwd)
            .await
        {
            Ok(thing) => Json(thing).into_response(),
            Err(e) => e.answer("thing"),
        }
    }
    async fn me(OptionalUser(user): OptionalUser) -> Json<Option<String>> {
        Json(user.map(|u| u.id()))
    }
    // A page of things, with the handler's own `Link` to the next.
    async fn page() -> Response {
        let next = [("link", "</v1/things?page=2>; rel=\"next\"")];
        (next, Json(serde_json::json!([]))).into_response()
    }
    let v1_routes = Router::new()
        .route("/v1/things/{id}", routing::get(fetch))
        .route("/v1/things", routing::get(page));
    let api = Router::new()
        .route("/v2/things/{id}", routing::get(fetch))
        .route("/v2/me", routing::get(me))
        .merge(versioned(v1_routes, v1.clone()))
        .with_state(bff.clone());
    let mut doc = ApiDoc::openapi();
    v1.document(&mut doc, "/v1/");
    Service::new(bff, api, doc)
}

async fn start(vars: &[(&str, String)]) -> Running {
    Running::start(service(vars)).await
}

/// Like [`metric`], 0 when the series is not there yet.
async fn metric_or_zero(ops: &str, series: &str) -> f64 {
    let text = get(&format!("{ops}/metrics"), &[])
        .await
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The value of the first line of `/metrics` that starts with `series`.
async fn metric(ops: &str, series: &str) -> f64 {
    let text = get(&format!("{ops}/metrics"), &[])
        .await
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn a_generated_request_id_reaches_the_backend_and_the_response() {
    let (backend, fake) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    let long = "x".repeat(200);
    // Kept when well formed; else (absent, too long) the BFF makes one, and the
    // backend sees the very id the response names.
    for (n, headers) in [
        vec![("x-request-id", "req-1")],
        vec![],
        vec![("x-request-id", long.as_str())],
    ]
    .into_iter()
    .enumerate()
    {
        let r = get(&format!("{}/v2/things/a", bff.url), &headers).await;
        assert_eq!(r.status(), 200);
        let answered = r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        if n == 0 {
            assert_eq!(answered, "req-1");
        }
        assert!(!answered.is_empty() && answered != long, "{answered}");
        assert_eq!(
            fake.seen.lock().expect("lock")[n]["x-request-id"],
            answered.as_str()
        );
    }
}

/// The operational endpoints answer on their own port only: a gateway route to the API
/// (`/api/things/{*rest}`, prefix stripped) cannot reach them.
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
    assert_eq!(
        get(&format!("{}/v2/things/a", bff.ops), &[]).await.status(),
        404
    );
    let doc: serde_json::Value = get(&format!("{}/openapi.json", bff.ops), &[])
        .await
        .json()
        .await
        .expect("json");
    for path in [
        "/v2/things/{id}",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in {doc}");
    }
}

#[tokio::test]
async fn requests_are_counted_by_route_pattern_and_deprecated_use_by_version() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("V1_DEPRECATED_AT", "2027-01-01T00:00:00Z".into()),
        ("V1_DOCS_URL", "https://docs.example.com/v1-to-v2".into()),
    ])
    .await;
    for id in ["a", "b", "broken"] {
        get(&format!("{}/v1/things/{id}", bff.url), &[]).await;
    }
    let r = get(&format!("{}/v1/things/c", bff.url), &[]).await;
    assert_eq!(r.headers()["deprecation"], "@1798761600");
    // The document says what the headers say.
    let doc: serde_json::Value = get(&format!("{}/openapi.json", bff.ops), &[])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["paths"]["/v1/things/{id}"]["get"]["deprecated"], true);
    assert_ne!(doc["paths"]["/v2/things/{id}"]["get"]["deprecated"], true);
    // The recorder is the process's: other tests here count too, hence "at least".
    let route = "http_route=\"/v1/things/{id}\",http_request_method=\"GET\"";
    let ok = format!(
        "oberon_http_server_request_duration_seconds_count{{{route},http_response_status_code=\"200\"}}"
    );
    assert!(metric(&bff.ops, &ok).await >= 3.0);
    let failed = format!(
        "oberon_http_server_request_duration_seconds_count{{{route},http_response_status_code=\"502\"}}"
    );
    assert!(metric(&bff.ops, &failed).await >= 1.0);
    let deprecated = "oberon_bff_deprecated_requests_total{api_version=\"v1\"}";
    assert!(metric(&bff.ops, deprecated).await >= 4.0);
    let text = get(&format!("{}/metrics", bff.ops), &[])
        .await
        .text()
        .await
        .expect("text");
    assert!(!text.contains("/v1/things/a"), "a raw path became a label");
}

/// A version with only a sunset date is deprecated too: it says so, is counted, and
/// keeps the handler's own `Link`s beside its own.
#[tokio::test]
async fn a_version_with_only_a_sunset_is_counted_and_keeps_the_handlers_links() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("V1_SUNSET_AT", "2099-07-01T00:00:00Z".into()),
        ("V1_DOCS_URL", "https://docs.example.com/v1-to-v2".into()),
    ])
    .await;
    let series = "oberon_bff_deprecated_requests_total{api_version=\"v1\"}";
    let before = metric_or_zero(&bff.ops, series).await;
    let r = get(&format!("{}/v1/things", bff.url), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["sunset"], "Wed, 01 Jul 2099 00:00:00 GMT");
    let links: Vec<_> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(
        links,
        [
            "</v1/things?page=2>; rel=\"next\"",
            "<https://docs.example.com/v1-to-v2>; rel=\"sunset\"; type=\"text/html\"",
        ]
    );
    // The recorder is the process's: other tests here count too, hence "at least".
    assert!(metric(&bff.ops, series).await >= before + 1.0);
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
    // A slow request is in flight when shutdown begins; it still gets its answer.
    let url = format!("{}/v2/things/slow", bff.url);
    let in_flight = tokio::spawn(async move { get(&url, &[]).await.status() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    bff.shut_down();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: still accepting, but no longer ready.
    assert_eq!(get(&format!("{}/readyz", bff.ops), &[]).await.status(), 503);
    assert_eq!(in_flight.await.expect("join"), 504);
    bff.stop().await.expect("served");
}

/// Only failures the backend cannot have acted on are retried, within the call's
/// deadline; a backend that is down or hanging gives the documented status in time.
#[tokio::test]
async fn backend_calls_retry_within_their_deadline_and_fail_in_time() {
    let (backend, fake) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "300".into()),
    ])
    .await;
    let at = |id: &str| format!("{}/v2/things/{id}", bff.url);

    let r = get(&at("flaky"), &[]).await;
    assert_eq!(r.status(), 200, "a 503 once, then fine");
    assert_eq!(fake.calls("flaky"), 2);
    assert_eq!(get(&at("down"), &[]).await.status(), 502);
    assert_eq!(fake.calls("down"), 1 + oberon_bff::backend::MAX_RETRIES);
    assert_eq!(get(&at("broken"), &[]).await.status(), 502);
    assert_eq!(fake.calls("broken"), 1, "a 500 may have acted: not retried");
    assert!(
        metric(
            &bff.ops,
            "oberon_bff_backend_retries_total{outcome=\"retried\"}"
        )
        .await
            >= 3.0
    );

    let started = Instant::now();
    let r = get(&at("slow"), &[]).await;
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(800),
        "{took:?}"
    );

    // Nothing listens there: refused at once, retried, 502 well within the deadline.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let nowhere = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let down = start(&[
        ("BACKEND_URL", nowhere),
        ("BACKEND_TIMEOUT_MS", "300".into()),
    ])
    .await;
    let started = Instant::now();
    let r = get(&format!("{}/v2/things/a", down.url), &[]).await;
    assert_eq!(r.status(), 502);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_empty_retry_budget_allows_no_retry() {
    let (backend, fake) = fake_backend().await;
    let none = tower::retry::budget::TpsBudget::new(Duration::from_secs(1), 0, 0.0);
    let client = oberon_bff::Backend::with_budget(&backend, Duration::from_millis(300), none)
        .expect("client");
    let got = client
        .get::<serde_json::Value>("/things/down", &Forward::fresh())
        .await;
    assert!(
        matches!(got, Err(oberon_bff::BackendError::Status(503))),
        "{got:?}"
    );
    assert_eq!(fake.calls("down"), 1);
}

async fn me(bff: &Running, token: &str, rid: &str) -> Option<String> {
    let headers = [("oberon-identity", token), ("x-request-id", rid)];
    let r = get(&format!("{}/v2/me", bff.url), &headers).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// A key the gateway withdrew from its JWKS stops being accepted once the keys the BFF
/// holds are `GATEWAY_KEYS_MAX_AGE_MS` old, and a rotated-in key is accepted.
#[tokio::test]
async fn a_withdrawn_gateway_key_stops_working_within_the_refresh_period() {
    let (backend, _) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", AUDIENCE.into()),
        ("GATEWAY_KEYS_MAX_AGE_MS", "1000".into()),
    ])
    .await;
    let sign = |rid: &str| gateway.assertion("https://idp.example", "alice", &[], rid, &[AUDIENCE]);
    let alice = Some("https://idp.example#alice".to_string());
    assert_eq!(me(&bff, &sign("r1"), "r1").await, alice);
    gateway.withdraw_keys();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        me(&bff, &sign("r2"), "r2").await,
        None,
        "the withdrawn key still works"
    );
    gateway.rotate();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        me(&bff, &sign("r3"), "r3").await,
        alice,
        "the new key is not accepted"
    );
}

/// Captured from a request the gateway made for `req-1`, an assertion is good for that
/// request only: sent again without a request id (the BFF makes one) or with another,
/// or at another service, it is anonymous.
#[tokio::test]
async fn an_assertion_is_good_only_for_its_request_and_its_services() {
    let (backend, _) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", AUDIENCE.into()),
    ])
    .await;
    let captured = gateway.assertion("https://idp.example", "alice", &[], "req-1", &[AUDIENCE]);
    assert!(me(&bff, &captured, "req-1").await.is_some());
    assert_eq!(me(&bff, &captured, "req-2").await, None);
    let r = get(
        &format!("{}/v2/me", bff.url),
        &[("oberon-identity", &captured)],
    )
    .await;
    assert_eq!(r.json::<Option<String>>().await.expect("json"), None);
    let elsewhere = gateway.assertion("https://idp.example", "alice", &[], "req-3", &["checkout"]);
    assert_eq!(me(&bff, &elsewhere, "req-3").await, None);
    // Two issuers' `alice` are two users.
    let other = gateway.assertion("https://other.example", "alice", &[], "req-4", &[AUDIENCE]);
    assert_eq!(
        me(&bff, &other, "req-4").await.as_deref(),
        Some("https://other.example#alice")
    );
}

/// Slowloris: a connection that dribbles its head, one that sends nothing and a
/// kept-alive one left idle are all closed at the header-read timeout (10 s) rather
/// than holding a file descriptor for as long as the client likes.
#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed_at_the_header_read_timeout() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    let timeout = ListenLimits::default().header_read_timeout;
    assert_slow_clients_are_closed(
        bff.url.trim_start_matches("http://"),
        bff.ops.trim_start_matches("http://"),
        "/livez",
        timeout,
    )
    .await;
    assert_eq!(get(&format!("{}/livez", bff.ops), &[]).await.status(), 200);
}
