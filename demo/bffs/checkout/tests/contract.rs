//! The checkout BFF's contract: a fake orders backend and a stand-in gateway (signing
//! identity assertions) on port 0, the real service on port 0, real HTTP and gRPC
//! between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkout_bff::{OrderV1, OrdersV1, PREFIX};
use oberon_bff::Env;
use oberon_bff::PRIVATE;
use oberon_bff::testing::{FakeGateway, Running, get, serve_grpc_on_loopback};
use oberon_demo_proto::checkout::v1::orders_service_server::{OrdersService, OrdersServiceServer};
use oberon_demo_proto::checkout::v1::{ListOrdersRequest, ListOrdersResponse, Order};
use tonic::{Request, Response, Status};

/// The fake orders service, and the users (issuer, subject) it was asked about.
#[derive(Default, Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl OrdersService for Fake {
    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        let ListOrdersRequest { issuer, subject } = request.into_inner();
        self.seen
            .lock()
            .expect("lock")
            .push((issuer.clone(), subject.clone()));
        // Orders are kept per user *at an issuer*: only https://idp.example's users have
        // any.
        let orders = match (issuer.as_str(), subject.as_str()) {
            ("https://idp.example", "alice") => vec![Order {
                id: "o-1".into(),
                event_id: "42".into(),
                event_name: "The Midnight Orchestra".into(),
                quantity: 2,
                total_cents: 9000,
                currency: "EUR".into(),
            }],
            (_, "slow") => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Vec::new()
            }
            (_, "broken") => return Err(Status::internal("the orders store broke")),
            _ => Vec::new(),
        };
        Ok(Response::new(ListOrdersResponse { orders }))
    }
}

async fn fake_backend() -> (String, Fake) {
    let fake = Fake::default();
    let routes = tonic::service::Routes::new(OrdersServiceServer::new(fake.clone()));
    (serve_grpc_on_loopback(routes).await, fake)
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
