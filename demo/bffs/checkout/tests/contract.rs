//! The checkout BFF's contract: a fake orders backend and a stand-in gateway (signing
//! identity assertions) on port 0, the real service on port 0, real HTTP between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing;
use checkout_bff::config::{Config, PREFIX};
use checkout_bff::{AppState, Listeners, OrderV1, OrdersV1, PRIVATE, serve};

/// The fake orders service, and the paths it was asked for.
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<String>>,
}

async fn fake_backend() -> (String, Arc<Fake>) {
    async fn orders(State(fake): State<Arc<Fake>>, Path(user): Path<String>) -> Response {
        fake.seen.lock().expect("lock").push(user.clone());
        match user.as_str() {
            "alice" => axum::Json(serde_json::json!([{
                "id": "o-1", "event_id": "42", "event_name": "The Midnight Orchestra",
                "quantity": 2, "total_cents": 9000, "currency": "EUR"
            }]))
            .into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK.into_response()
            }
            "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
    // Orders are kept per user *at an issuer*: only https://idp.example's users have any.
    async fn issuer_orders(
        state: State<Arc<Fake>>,
        Path((issuer, user)): Path<(String, String)>,
    ) -> Response {
        if issuer == "https://idp.example" {
            orders(state, Path(user)).await
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    }
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/users/{user}/orders", routing::get(orders))
        .route(
            "/issuers/{issuer}/users/{user}/orders",
            routing::get(issuer_orders),
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
async fn orders_are_for_the_signed_in_buyer_only_and_never_shared() {
    let (backend, fake) = fake_backend().await;
    let gateway = fake_gateway().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "300".into()),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
    ])
    .await;
    let url = format!("{}/v1/orders", bff.url);
    let as_user = |user: &str, roles: &[&str], rid: &str| assertion(&gateway.key, user, roles, rid);

    let alice = as_user("alice", &["buyer"], "r1");
    let r = get(&url, &[("oberon-identity", &alice), ("x-request-id", "r1")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], PRIVATE);
    let got: OrdersV1 = r.json().await.expect("json");
    assert_eq!(
        got.orders,
        [OrderV1 {
            id: "o-1".into(),
            event: "The Midnight Orchestra".into(),
            event_url: "/events/42".into(),
            quantity: 2,
            total: "EUR 90.00".into(),
        }]
    );
    // A buyer the orders service does not know has no orders.
    let carol = as_user("carol", &["buyer"], "r2");
    let r = get(&url, &[("oberon-identity", &carol), ("x-request-id", "r2")]).await;
    assert_eq!(r.json::<OrdersV1>().await.expect("json").orders, []);

    // No user, a forged one, or no role: refused, and the backend never asked.
    let before = fake.seen.lock().expect("lock").len();
    let forged = assertion(&ed25519_key(9), "alice", &["buyer"], "r3");
    let visitor = as_user("dave", &[], "r4");
    for (headers, status) in [
        (vec![], 401),
        (vec![("x-user-id", "alice")], 401),
        (
            vec![("oberon-identity", forged.as_str()), ("x-request-id", "r3")],
            401,
        ),
        (
            vec![
                ("oberon-identity", alice.as_str()),
                ("x-request-id", "replayed"),
            ],
            401,
        ),
        // Replayed with the request id left out, so nothing shows it is another request's.
        (vec![("oberon-identity", alice.as_str())], 401),
        (
            vec![
                ("oberon-identity", visitor.as_str()),
                ("x-request-id", "r4"),
            ],
            403,
        ),
    ] {
        let r = get(&url, &headers).await;
        assert_eq!(r.status(), status, "{headers:?}");
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    assert_eq!(fake.seen.lock().expect("lock").len(), before);

    for (user, status) in [("slow", 504), ("broken", 502)] {
        let token = as_user(user, &["buyer"], "r5");
        let r = get(&url, &[("oberon-identity", &token), ("x-request-id", "r5")]).await;
        assert_eq!(r.status(), status, "{user}");
    }
}

/// The gateway accepts several identity providers: `alice` at one and `alice` at
/// another are different buyers, and neither sees the other's orders.
#[tokio::test]
async fn alice_at_another_issuer_does_not_see_the_first_alices_orders() {
    let (backend, _) = fake_backend().await;
    let gateway = fake_gateway().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
    ])
    .await;
    let orders = |idp: &'static str, rid: &'static str| {
        let token = assertion_at(&gateway.key, idp, "alice", &["buyer"], rid);
        let url = format!("{}/v1/orders", bff.url);
        async move {
            let r = get(&url, &[("oberon-identity", &token), ("x-request-id", rid)]).await;
            assert_eq!(r.status(), 200, "{idp}");
            r.json::<OrdersV1>().await.expect("json").orders
        }
    };
    assert_eq!(orders("https://idp.example", "a-1").await.len(), 1);
    assert_eq!(
        orders("https://other-idp.example", "b-1").await,
        [],
        "alice at another issuer sees the first alice's orders"
    );
}

/// The operational endpoints answer on their own port only: a gateway route to the API
/// (`/api/checkout/{*rest}`, prefix stripped) cannot reach them (issue 18, finding 6).
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
    let r = get(&format!("{}/v1/orders", bff.ops), &[]).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn shutdown_turns_readiness_off_and_finishes_requests_in_flight() {
    let (backend, _) = fake_backend().await;
    let gateway = fake_gateway().await;
    let mut bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", "this-bff".into()),
        ("BACKEND_TIMEOUT_MS", "1000".into()),
        ("DRAIN_MS", "500".into()),
    ])
    .await;
    assert_eq!(get(&format!("{}/readyz", bff.ops), &[]).await.status(), 200);
    assert_eq!(get(&format!("{}/livez", bff.ops), &[]).await.status(), 200);

    // A slow request is in flight when shutdown begins; it still gets its answer.
    let url = format!("{}/v1/orders", bff.url);
    let token = assertion(&gateway.key, "slow", &["buyer"], "r");
    let in_flight = tokio::spawn(async move {
        get(&url, &[("oberon-identity", &token), ("x-request-id", "r")])
            .await
            .status()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = bff.stop.take().expect("running").send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: still accepting, but no longer ready.
    assert_eq!(get(&format!("{}/readyz", bff.ops), &[]).await.status(), 503);
    assert_eq!(in_flight.await.expect("join"), 504);
    bff.done.await.expect("join").expect("served");
}
