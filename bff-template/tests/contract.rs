//! The BFF's contract, tested the way a team tests its own: a fake backend (the gRPC
//! server generated from `proto/`) on port 0, the real service on port 0
//! (`oberon_bff::testing`), real HTTP and gRPC between them. What
//! every BFF does the same way (request ids, the operational port, draining, slow
//! clients, key rotation, retries) is `oberon-bff`'s to test; these are this BFF's own
//! routes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_template::proto::items_service_server::{ItemsService, ItemsServiceServer};
use bff_template::proto::{
    GetItemRequest, GetItemResponse, Item, ListUserItemsRequest, ListUserItemsResponse,
};
use bff_template::{ItemV1, ItemV2, Me, Money, PREFIX, PUBLIC_CACHE};
use oberon_bff::Env;
use oberon_bff::NOT_FOUND_CACHE;
use oberon_bff::testing::{FakeGateway, Running, get, serve_grpc_on_loopback};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// The fake backend: items by id, users' saved items, and the metadata of every call
/// (shared by its clones: the server's and the test's).
#[derive(Default, Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    users: Arc<Mutex<Vec<(String, String)>>>,
}

fn item(id: &str, name: &str, stock: u32) -> Item {
    Item {
        id: id.into(),
        name: name.into(),
        price_cents: 12550,
        currency: "EUR".into(),
        stock,
    }
}

#[tonic::async_trait]
impl ItemsService for Fake {
    async fn get_item(
        &self,
        request: Request<GetItemRequest>,
    ) -> Result<Response<GetItemResponse>, Status> {
        self.seen
            .lock()
            .expect("lock")
            .push(request.metadata().clone());
        let item = match request.get_ref().id.as_str() {
            "42" => item("42", "Rust Nation", 3),
            "soldout" => item("soldout", "Gone", 0),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                item("slow", "Late", 1)
            }
            // A success without its item: not what the contract promises.
            "empty" => return Ok(Response::new(GetItemResponse { item: None })),
            "broken" => return Err(Status::internal("the backend broke")),
            _ => return Err(Status::not_found("no such item")),
        };
        Ok(Response::new(GetItemResponse { item: Some(item) }))
    }

    async fn list_user_items(
        &self,
        request: Request<ListUserItemsRequest>,
    ) -> Result<Response<ListUserItemsResponse>, Status> {
        let ListUserItemsRequest { issuer, subject } = request.into_inner();
        self.users
            .lock()
            .expect("lock")
            .push((issuer.clone(), subject.clone()));
        // A user is a subject at an issuer: only alice at https://idp.example has items.
        let items = match (issuer.as_str(), subject.as_str()) {
            ("https://idp.example", "alice") => vec![item("42", "Rust Nation", 3)],
            _ => Vec::new(),
        };
        Ok(Response::new(ListUserItemsResponse { items }))
    }
}

async fn fake_backend() -> (String, Fake) {
    let fake = Fake::default();
    let routes = tonic::service::Routes::new(ItemsServiceServer::new(fake.clone()));
    (serve_grpc_on_loopback(routes).await, fake)
}

async fn start(vars: &[(&str, String)]) -> Running {
    let service =
        bff_template::service(Env::from_pairs(PREFIX, vars)).expect("valid configuration");
    Running::start(service).await
}

/// This service's name in the gateway's `[upstreams]`, in the tests.
const AUDIENCE: &str = "this-bff";

/// The BFF, trusting `gateway`'s assertions.
async fn start_with_identity(backend: String, gateway: &FakeGateway) -> Running {
    start(&[
        ("BACKEND_URL", backend),
        ("GATEWAY_JWKS_URL", gateway.jwks_url.clone()),
        ("AUDIENCE", AUDIENCE.into()),
    ])
    .await
}

/// `gateway`'s assertion for `subject` at `idp`, made for the request `rid`.
fn assertion_at(
    gateway: &FakeGateway,
    idp: &str,
    subject: &str,
    roles: &[&str],
    rid: &str,
) -> String {
    gateway.assertion(idp, subject, roles, rid, &["renderer", AUDIENCE])
}

fn assertion(gateway: &FakeGateway, subject: &str, roles: &[&str], rid: &str) -> String {
    assertion_at(gateway, "https://idp.example", subject, roles, rid)
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
    // The backend's call is in the caller's trace, still sampled, under a span id of
    // this service's.
    let seen = fake.seen.lock().expect("lock");
    let header = |name: &str| {
        seen[0]
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let sent = header("traceparent");
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{sent}"
    );
    assert!(sent.ends_with("-01") && sent != tp, "{sent}");
    assert_eq!(header("x-request-id"), "req-1");
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
    assert_ne!(doc["paths"]["/v2/items/{id}"]["get"]["deprecated"], true);
    // Derived from the code: the handlers' paths, the answers' types, the platform's
    // operational endpoints.
    assert_eq!(doc["info"]["title"], "bff-template");
    let responses = &doc["paths"]["/v2/items/{id}"]["get"]["responses"];
    assert_eq!(
        responses["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ItemV2"
    );
    // The platform's failures of a backend call, as `BackendError::answer` gives them.
    for (status, description) in [
        ("502", "the backend failed"),
        ("504", "the backend timed out"),
    ] {
        assert_eq!(responses[status]["description"], description, "{responses}");
        assert_eq!(
            responses[status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{responses}"
        );
    }
    let item = &doc["components"]["schemas"]["ItemV2"];
    assert_eq!(
        item["required"],
        serde_json::json!(["id", "title", "price", "in_stock"])
    );
    assert!(doc["components"]["schemas"]["Money"].is_object(), "{doc}");
    for path in ["/v2/me", "/v2/me/items", "/livez", "/readyz", "/metrics"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} in {doc}");
    }
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
        ("empty", 502, "no-store"),
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
}

#[tokio::test]
async fn the_user_comes_only_from_the_gateways_assertion() {
    let (backend, _) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start_with_identity(backend, &gateway).await;
    let me = |headers: Vec<(&'static str, String)>| {
        let url = format!("{}/v2/me", bff.url);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = get(&url, &headers).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["cache-control"], "private, no-store");
            r.json::<Me>().await.expect("json")
        }
    };
    assert!(!me(vec![]).await.signed_in);
    let valid = assertion(&gateway, "alice", &["buyer"], "req-1");
    let got = me(vec![
        ("oberon-identity", valid.clone()),
        ("x-request-id", "req-1".into()),
    ])
    .await;
    assert_eq!(
        got,
        Me {
            signed_in: true,
            id: Some("https://idp.example#alice".into()),
            roles: vec!["buyer".into()],
        }
    );
    // Forged: signed by a key the gateway does not publish; replayed onto another
    // request; or not a JWT at all. All anonymous.
    let impostor = FakeGateway::start().await;
    let forged = assertion(&impostor, "alice", &["buyer"], "req-2");
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
    let visitor = assertion(&gateway, "bob", &[], "req-5");
    let r = get(
        &items,
        &[("oberon-identity", &visitor), ("x-request-id", "req-5")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let buyer = assertion(&gateway, "alice", &["buyer"], "req-6");
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

/// A subject is a value, never a path (issue 18, finding 5): over gRPC the user goes to
/// the backend as its two fields, so a subject of `..` or `.` is just an unknown user
/// with nothing saved, exactly as the backend was told it.
#[tokio::test]
async fn a_subject_of_dot_dot_is_a_value() {
    let (backend, fake) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start_with_identity(backend, &gateway).await;
    for (subject, rid) in [("..", "req-dots"), (".", "req-dot")] {
        let token = assertion(&gateway, subject, &["buyer"], rid);
        let r = get(
            &format!("{}/v2/me/items", bff.url),
            &[("oberon-identity", &token), ("x-request-id", rid)],
        )
        .await;
        assert_eq!(r.status(), 200, "subject {subject:?}");
        assert_eq!(r.headers()["cache-control"], "private, no-store");
        assert_eq!(r.json::<Vec<ItemV2>>().await.expect("json"), []);
    }
    let asked = fake.users.lock().expect("lock").clone();
    let subjects: Vec<&str> = asked.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(subjects, ["..", "."]);
}

/// Several identity providers may each have an `alice`: they are different users, and
/// neither sees the other's items.
#[tokio::test]
async fn alice_at_another_issuer_is_another_user() {
    let (backend, _) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start_with_identity(backend, &gateway).await;
    let items = |idp: &'static str, rid: &'static str| {
        let token = assertion_at(&gateway, idp, "alice", &["buyer"], rid);
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
                &assertion_at(&gateway, "https://other-idp.example", "alice", &[], "req-c"),
            ),
            ("x-request-id", "req-c"),
        ],
    )
    .await
    .json::<Me>()
    .await
    .expect("json");
    assert_eq!(me.id.as_deref(), Some("https://other-idp.example#alice"));
}

#[test]
fn start_up_refuses_a_sunset_before_the_deprecation() {
    let vars = [
        ("BACKEND_URL", "http://127.0.0.1:9".to_string()),
        ("V1_DEPRECATED_AT", "2027-06-01T00:00:00Z".into()),
        ("V1_SUNSET_AT", "2027-01-01T00:00:00Z".into()),
        ("V1_DOCS_URL", "https://docs.example.com".into()),
    ];
    let Err(err) = bff_template::service(Env::from_pairs(PREFIX, &vars)) else {
        panic!("started with a sunset before the deprecation");
    };
    assert!(
        err.to_string()
            .contains("BFF_TEMPLATE_V1_SUNSET_AT: is earlier than BFF_TEMPLATE_V1_DEPRECATED_AT"),
        "{err}"
    );
}
