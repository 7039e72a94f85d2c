//! The BFF's contract, tested the way a team tests its own: a fake backend on port 0,
//! the real service on port 0 (`oberon_bff::testing`), real HTTP between them. What
//! every BFF does the same way (request ids, the operational port, draining, slow
//! clients, key rotation, retries) is `oberon-bff`'s to test; these are this BFF's own
//! routes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use bff_template::{ItemV1, ItemV2, Me, Money, PREFIX, PUBLIC_CACHE};
use oberon_bff::Env;
use oberon_bff::NOT_FOUND_CACHE;
use oberon_bff::testing::{FakeGateway, Running, get, serve_on_loopback};

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
    (serve_on_loopback(app).await, fake)
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
    let sent = seen[0]["traceparent"].to_str().expect("ascii");
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{sent}"
    );
    assert!(sent.ends_with("-01") && sent != tp, "{sent}");
    assert_eq!(seen[0]["x-request-id"], "req-1");
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
    let ok = &doc["paths"]["/v2/items/{id}"]["get"]["responses"]["200"];
    assert_eq!(
        ok["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ItemV2"
    );
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

/// A subject is a value, never a path (issue 18, finding 5): a user whose subject is
/// `..` or `.` must not reach the backend path a segment above their own.
#[tokio::test]
async fn a_subject_of_dot_dot_climbs_no_backend_path() {
    let (backend, _) = fake_backend().await;
    let gateway = FakeGateway::start().await;
    let bff = start_with_identity(backend, &gateway).await;
    for (subject, rid) in [("..", "req-dots"), (".", "req-dot")] {
        let token = assertion(&gateway, subject, &["buyer"], rid);
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
            .contains("BFF_TEMPLATE_V1_SUNSET_AT: is earlier than V1_DEPRECATED_AT"),
        "{err}"
    );
}
