//! The checkout BFF's contract: a fake orders backend and a stand-in gateway (signing
//! identity assertions) on port 0, the real service on port 0, real HTTP between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing;
use checkout_bff::{OrderV1, OrdersV1, PREFIX};
use oberon_bff::Env;
use oberon_bff::PRIVATE;
use oberon_bff::testing::{FakeGateway, Running, get, serve_on_loopback};

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
    (serve_on_loopback(app).await, fake)
}

async fn start(vars: &[(&str, String)]) -> Running {
    Running::start(
        checkout_bff::service(Env::from_pairs(PREFIX, vars)).expect("valid configuration"),
    )
    .await
}

const AUDIENCE: &str = "this-bff";

fn assertion(gateway: &FakeGateway, user: &str, roles: &[&str], rid: &str) -> String {
    assertion_at(gateway, "https://idp.example", user, roles, rid)
}

/// `gateway`'s assertion for `user` at the identity provider `idp`.
fn assertion_at(gateway: &FakeGateway, idp: &str, user: &str, roles: &[&str], rid: &str) -> String {
    gateway.assertion(idp, user, roles, rid, &["renderer", AUDIENCE])
}

#[tokio::test]
async fn orders_are_for_the_signed_in_buyer_only_and_never_shared() {
    let (backend, fake) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("BACKEND_TIMEOUT_MS", "300".into()),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", AUDIENCE.into()),
    ])
    .await;
    let url = format!("{}/v1/orders", bff.url);
    let as_user = |user: &str, roles: &[&str], rid: &str| assertion(&gateway, user, roles, rid);

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
    let impostor = FakeGateway::start().await;
    let forged = assertion(&impostor, "alice", &["buyer"], "r3");
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
    let gateway = FakeGateway::start().await;
    let bff = start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", AUDIENCE.into()),
    ])
    .await;
    let orders = |idp: &'static str, rid: &'static str| {
        let token = assertion_at(&gateway, idp, "alice", &["buyer"], rid);
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
