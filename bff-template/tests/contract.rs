//! The BFF's contract, tested the way a team tests its own: a fake backend on port 0,
//! the real service on port 0, real HTTP between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use bff_template::config::{Config, PREFIX};
use bff_template::{
    AppState, ItemV1, ItemV2, Listeners, Money, NOT_FOUND_CACHE, PUBLIC_CACHE, serve,
};

/// The fake backend: items by id, and what it was sent.
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<HeaderMap>>,
}

async fn fake_backend() -> (String, Arc<Fake>) {
    async fn item(
        State(fake): State<Arc<Fake>>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Response {
        fake.seen.lock().expect("lock").push(headers);
        match id.as_str() {
            "42" => axum::Json(serde_json::json!({
                "id": "42", "name": "Rust Nation", "price_cents": 12550, "currency": "EUR", "stock": 3
            }))
            .into_response(),
            "soldout" => axum::Json(serde_json::json!({
                "id": "soldout", "name": "Gone", "price_cents": 100, "currency": "EUR", "stock": 0
            }))
            .into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK.into_response()
            }
            "garbage" => ([("content-type", "application/json")], "{\"id\":").into_response(),
            "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let fake = Arc::new(Fake::default());
    async fn user_items(Path(user): Path<String>) -> Response {
        match user.as_str() {
            "alice" => axum::Json(serde_json::json!([
                { "id": "42", "name": "Rust Nation", "price_cents": 12550, "currency": "EUR", "stock": 3 }
            ]))
            .into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
    // A user is a subject at an issuer: only alice at https://idp.example has items.
    async fn issuer_user_items(Path((issuer, user)): Path<(String, String)>) -> Response {
        if issuer == "https://idp.example" {
            user_items(Path(user)).await
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    }
    // What no user may see: every user's items at an issuer, one path segment above
    // a user's own (`/issuers/{issuer}/users/../items`).
    async fn everyones_items() -> Response {
        axum::Json(serde_json::json!([
            { "id": "42", "name": "Rust Nation", "price_cents": 12550, "currency": "EUR", "stock": 3 },
            { "id": "7", "name": "Someone else's", "price_cents": 100, "currency": "EUR", "stock": 1 }
        ]))
        .into_response()
    }
    let app = Router::new()
        .route("/items/{id}", routing::get(item))
        .route("/issuers/{issuer}/items", routing::get(everyones_items))
        .route("/users/{user}/items", routing::get(user_items))
        .route(
            "/issuers/{issuer}/users/{user}/items",
            routing::get(issuer_user_items),
        )
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
async fn v2_answers_the_ui_shape_with_its_cache_policy_and_forwards_the_trace() {
    let (backend, fake) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = get(
        &format!("{}/v2/items/42", bff.url),
        &[("traceparent", tp), ("x-request-id", "req-1")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], PUBLIC_CACHE);
    assert_eq!(r.headers()["x-request-id"], "req-1");
    assert!(r.headers().get("deprecation").is_none());
    let item: ItemV2 = r.json().await.expect("json");
    assert_eq!(
        item,
        ItemV2 {
            id: "42".into(),
            title: "Rust Nation".into(),
            price: Money {
                amount_cents: 12550,
                currency: "EUR".into(),
                label: "EUR 125.50".into()
            },
            in_stock: true,
        }
    );
    let seen = fake.seen.lock().expect("lock");
    assert_eq!(seen[0]["traceparent"], tp);
    assert_eq!(seen[0]["x-request-id"], "req-1");
}

#[tokio::test]
async fn a_generated_request_id_reaches_the_backend_and_the_response() {
    let (backend, fake) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    let long = "x".repeat(200);
    // No request id, then one that is not sane: either way the BFF makes one, and the
    // backend sees the very id the response names.
    for (n, headers) in [vec![], vec![("x-request-id", long.as_str())]]
        .into_iter()
        .enumerate()
    {
        let r = get(&format!("{}/v2/items/42", bff.url), &headers).await;
        assert_eq!(r.status(), 200);
        let answered = r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(!answered.is_empty() && answered != long, "{answered}");
        let seen = fake.seen.lock().expect("lock");
        assert_eq!(seen[n]["x-request-id"], answered.as_str());
    }
}

#[tokio::test]
async fn a_deprecated_v1_says_so_in_exact_headers_and_in_the_openapi_document() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("V1_DEPRECATED_AT", "2027-01-01T00:00:00Z".into()),
        ("V1_SUNSET_AT", "2099-07-01T00:00:00Z".into()),
        ("V1_DOCS_URL", "https://docs.example.com/v1-to-v2".into()),
    ])
    .await;
    let r = get(&format!("{}/v1/items/42", bff.url), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["deprecation"], "@1798761600");
    assert_eq!(r.headers()["sunset"], "Wed, 01 Jul 2099 00:00:00 GMT");
    let links: Vec<_> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    assert_eq!(
        links,
        [
            "<https://docs.example.com/v1-to-v2>; rel=\"deprecation\"; type=\"text/html\"",
            "<https://docs.example.com/v1-to-v2>; rel=\"sunset\"; type=\"text/html\"",
        ]
    );
    let item: ItemV1 = r.json().await.expect("json");
    assert_eq!(item.price_label, "EUR 125.50");

    let doc: serde_json::Value = get(&format!("{}/openapi.json", bff.ops), &[])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["paths"]["/v1/items/{id}"]["get"]["deprecated"], true);
    assert_eq!(doc["paths"]["/v2/items/{id}"]["get"]["deprecated"], false);
}

#[tokio::test]
async fn a_version_past_its_sunset_is_gone() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("V1_DEPRECATED_AT", "2020-01-01T00:00:00Z".into()),
        ("V1_SUNSET_AT", "2021-01-01T00:00:00Z".into()),
        ("V1_DOCS_URL", "https://docs.example.com/v1-to-v2".into()),
    ])
    .await;
    let r = get(&format!("{}/v1/items/42", bff.url), &[]).await;
    assert_eq!(r.status(), 410);
    assert_eq!(r.headers()["sunset"], "Fri, 01 Jan 2021 00:00:00 GMT");
}

#[tokio::test]
async fn backend_failures_map_to_clear_statuses_that_are_not_cached() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "200".into()),
    ])
    .await;
    let cases = [
        ("nope", 404, NOT_FOUND_CACHE),
        ("broken", 502, "no-store"),
        ("garbage", 502, "no-store"),
        ("bad id!", 400, "no-store"),
    ];
    for (id, status, cache) in cases {
        let r = get(
            &format!("{}/v2/items/{}", bff.url, id.replace(' ', "%20")),
            &[],
        )
        .await;
        assert_eq!(r.status(), status, "{id}");
        assert_eq!(r.headers()["cache-control"], cache, "{id}");
    }
    let started = Instant::now();
    let r = get(&format!("{}/v2/items/slow", bff.url), &[]).await;
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the backend timeout"
    );

    let metrics = get(&format!("{}/metrics", bff.ops), &[])
        .await
        .text()
        .await
        .expect("text");
    // The recorder is the process's: other tests in this binary count too, so at least.
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!(
        value(
            "oberon_http_server_request_duration_seconds_count{http_route=\"/v2/items/{id}\",http_request_method=\"GET\",http_response_status_code=\"502\"}"
        ) >= 2.0
    );
    assert!(value("oberon_bff_backend_calls_total{outcome=\"timeout\"}") >= 1.0);
}

/// The operational endpoints answer on their own port only: a gateway route to the API
/// (`/api/items/{*rest}`, prefix stripped) cannot reach them (issue 18, finding 6).
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
    let r = get(&format!("{}/v2/items/42", bff.ops), &[]).await;
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
    let url = format!("{}/v2/items/slow", bff.url);
    let in_flight = tokio::spawn(async move { get(&url, &[]).await.status() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = bff.stop.take().expect("running").send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: still accepting, but no longer ready.
    assert_eq!(get(&format!("{}/readyz", bff.ops), &[]).await.status(), 503);
    assert_eq!(in_flight.await.expect("join"), 504);
    bff.done.await.expect("join").expect("served");
}

#[test]
fn start_up_refuses_a_sunset_before_the_deprecation() {
    let vars = HashMap::from([
        (
            format!("{PREFIX}BACKEND_URL"),
            "http://127.0.0.1:9".to_string(),
        ),
        (
            format!("{PREFIX}V1_DEPRECATED_AT"),
            "2027-06-01T00:00:00Z".to_string(),
        ),
        (
            format!("{PREFIX}V1_SUNSET_AT"),
            "2027-01-01T00:00:00Z".to_string(),
        ),
        (
            format!("{PREFIX}V1_DOCS_URL"),
            "https://docs.example.com".to_string(),
        ),
    ]);
    let err = Config::from_lookup(|k| vars.get(k).cloned()).expect_err("refused");
    assert!(
        err.to_string()
            .contains("BFF_TEMPLATE_V1_SUNSET_AT: is earlier than V1_DEPRECATED_AT"),
        "{err}"
    );
}

/// A stand-in for Oberon's gateway: an Ed25519 key, its JWKS on port 0, and assertions
/// signed the way the gateway signs them.
struct FakeGateway {
    jwks_url: String,
    key: jsonwebtoken::EncodingKey,
}

fn ed25519_key(seed: u8) -> jsonwebtoken::EncodingKey {
    // PKCS#8 v1 (RFC 8410) prefix, then the 32-byte seed.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    jsonwebtoken::EncodingKey::from_ed_der(&der)
}

async fn fake_gateway() -> FakeGateway {
    let key = ed25519_key(1);
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::EdDSA)
        .expect("jwk");
    jwk.common.key_id = Some("gw-1".into());
    let set = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
    let app = Router::new().route(
        "/.well-known/oberon/jwks.json",
        routing::get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/oberon/jwks.json",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeGateway { jwks_url: url, key }
}

fn assertion(key: &jsonwebtoken::EncodingKey, user: &str, roles: &[&str], rid: &str) -> String {
    assertion_at(key, "https://idp.example", user, roles, rid)
}

/// An assertion for `user` at the identity provider `idp`.
fn assertion_at(
    key: &jsonwebtoken::EncodingKey,
    idp: &str,
    user: &str,
    roles: &[&str],
    rid: &str,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("gw-1".into());
    let claims = serde_json::json!({
        "iss": "oberon-gateway", "aud": ["renderer", "this-bff"], "sub": user, "roles": roles,
        "iat": now, "nbf": now, "exp": now + 60, "idp": idp, "rid": rid,
    });
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

#[tokio::test]
async fn the_user_comes_only_from_the_gateways_assertion() {
    let (backend, _) = fake_backend().await;
    let gateway = fake_gateway().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
    ])
    .await;
    let me = |headers: Vec<(&'static str, String)>| {
        let url = format!("{}/v2/me", bff.url);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = get(&url, &headers).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["cache-control"], "private, no-store");
            r.json::<bff_template::Me>().await.expect("json")
        }
    };
    assert!(!me(vec![]).await.signed_in);
    let valid = assertion(&gateway.key, "alice", &["buyer"], "req-1");
    let got = me(vec![
        ("oberon-identity", valid.clone()),
        ("x-request-id", "req-1".into()),
    ])
    .await;
    assert_eq!(
        got,
        bff_template::Me {
            signed_in: true,
            id: Some("https://idp.example#alice".into()),
            roles: vec!["buyer".into()],
        }
    );
    // Forged: signed by another key under the gateway's kid; replayed onto another
    // request; or not a JWT at all. All anonymous.
    let forged = assertion(&ed25519_key(2), "alice", &["buyer"], "req-2");
    for (value, rid) in [
        (forged, "req-2"),
        (valid.clone(), "req-3"),
        ("alice".into(), "req-4"),
    ] {
        let got = me(vec![
            ("oberon-identity", value),
            ("x-request-id", rid.into()),
        ])
        .await;
        assert!(!got.signed_in, "{rid}");
    }

    // A user with a role, or a refusal that says which.
    let items = format!("{}/v2/me/items", bff.url);
    let r = get(&items, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let visitor = assertion(&gateway.key, "bob", &[], "req-5");
    let r = get(
        &items,
        &[("oberon-identity", &visitor), ("x-request-id", "req-5")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let buyer = assertion(&gateway.key, "alice", &["buyer"], "req-6");
    let r = get(
        &items,
        &[("oberon-identity", &buyer), ("x-request-id", "req-6")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let list: Vec<ItemV2> = r.json().await.expect("json");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].title, "Rust Nation");
}

/// A subject is a value, never a path (issue 18, finding 5): a user whose subject is
/// `..` or `.` must not reach the backend path a segment above their own.
#[tokio::test]
async fn a_subject_of_dot_dot_climbs_no_backend_path() {
    let (backend, _) = fake_backend().await;
    let gateway = fake_gateway().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
    ])
    .await;
    for (subject, rid) in [("..", "req-dots"), (".", "req-dot")] {
        let token = assertion(&gateway.key, subject, &["buyer"], rid);
        let r = get(
            &format!("{}/v2/me/items", bff.url),
            &[("oberon-identity", &token), ("x-request-id", rid)],
        )
        .await;
        assert_eq!(r.status(), 403, "subject {subject:?}");
        assert_eq!(r.headers()["cache-control"], "private, no-store");
        let body = r.text().await.expect("body");
        assert!(!body.contains("Someone else"), "{body}");
    }
}

/// Several identity providers may each have an `alice`: they are different users, and
/// neither sees the other's items.
#[tokio::test]
async fn alice_at_another_issuer_is_another_user() {
    let (backend, _) = fake_backend().await;
    let gateway = fake_gateway().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
    ])
    .await;
    let items = |idp: &'static str, rid: &'static str| {
        let token = assertion_at(&gateway.key, idp, "alice", &["buyer"], rid);
        let url = format!("{}/v2/me/items", bff.url);
        async move {
            let r = get(&url, &[("oberon-identity", &token), ("x-request-id", rid)]).await;
            assert_eq!(r.status(), 200, "{idp}");
            r.json::<Vec<ItemV2>>().await.expect("json").len()
        }
    };
    assert_eq!(items("https://idp.example", "req-a").await, 1);
    assert_eq!(
        items("https://other-idp.example", "req-b").await,
        0,
        "alice at another issuer sees nothing of the first alice's"
    );
    let me = get(
        &format!("{}/v2/me", bff.url),
        &[
            (
                "oberon-identity",
                &assertion_at(
                    &gateway.key,
                    "https://other-idp.example",
                    "alice",
                    &[],
                    "req-c",
                ),
            ),
            ("x-request-id", "req-c"),
        ],
    )
    .await
    .json::<bff_template::Me>()
    .await
    .expect("json");
    assert_eq!(me.id.as_deref(), Some("https://other-idp.example#alice"));
}

#[tokio::test]
async fn an_assertion_replayed_without_its_request_id_is_anonymous() {
    let (backend, _) = fake_backend().await;
    let gateway = fake_gateway().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
    ])
    .await;
    // Captured from a request the gateway made for `req-1`, then sent again without the
    // `x-request-id` that would show it belongs to another request.
    let captured = assertion(&gateway.key, "alice", &["buyer"], "req-1");
    let r = get(
        &format!("{}/v2/me", bff.url),
        &[("oberon-identity", &captured)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(!r.json::<bff_template::Me>().await.expect("json").signed_in);
    let r = get(
        &format!("{}/v2/me/items", bff.url),
        &[("oberon-identity", &captured)],
    )
    .await;
    assert_eq!(r.status(), 401);
    // With its own request id it is still good (the refusal above is the binding).
    let r = get(
        &format!("{}/v2/me/items", bff.url),
        &[("oberon-identity", &captured), ("x-request-id", "req-1")],
    )
    .await;
    assert_eq!(r.status(), 200);
}

/// How a slow client behaves on one connection.
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Sends a request head one byte every 500 ms, never finishing it.
    Dribble,
    /// Sends nothing at all.
    Silent,
    /// Sends one whole request, reads the answer, then keeps the connection idle.
    IdleAfterAnswer,
}

/// How long the server at `url` kept a connection of a `how` client open before
/// closing it; `None` if it was still open after `limit`.
async fn held_open(url: &str, how: Slow, limit: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let started = Instant::now();
    let head = format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
    let mut dribble = head.into_bytes().into_iter().chain(std::iter::repeat(b'a'));
    if let Slow::IdleAfterAnswer = how {
        let request = format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
    }
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        if let Slow::Dribble = how {
            let byte = dribble.next().unwrap_or(b'a');
            if stream.write_all(&[byte]).await.is_err() {
                return Some(started.elapsed());
            }
        }
        // End of file or a reset: closed by the server. An answer (to the whole
        // request, or a 408) or nothing yet: read on until it closes.
        let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(started.elapsed());
        }
    }
    None
}

/// Slowloris: a connection that dribbles its head, one that sends nothing and a
/// kept-alive one left idle are all closed at the header-read timeout (10 s) rather
/// than holding a file descriptor for as long as the client likes.
#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed_at_the_header_read_timeout() {
    let (backend, _) = fake_backend().await;
    let bff = start(&[("BACKEND_URL", backend)]).await;
    let limit = Duration::from_secs(14);
    let (dribble, silent, idle) = tokio::join!(
        held_open(&bff.url, Slow::Dribble, limit),
        held_open(&bff.url, Slow::Silent, limit),
        held_open(&bff.url, Slow::IdleAfterAnswer, limit),
    );
    for (how, held) in [("dribble", dribble), ("silent", silent), ("idle", idle)] {
        let held = held.unwrap_or_else(|| panic!("{how}: still open after {limit:?}"));
        println!("{how}: closed by the server after {held:?}");
        assert!(
            held >= Duration::from_secs(9),
            "{how}: closed early, {held:?}"
        );
    }
    assert_eq!(get(&format!("{}/livez", bff.ops), &[]).await.status(), 200);
}
