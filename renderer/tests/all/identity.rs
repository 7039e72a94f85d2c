//! The user reaches components (and BFFs) only through the gateway's signed assertion:
//! a request that skips the gateway and forges the header renders anonymously.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use oberon_identity::assertion::HEADER;
use oberon_identity::{Identity, Signer, Verifier};

use crate::support::TestSite;

/// A checkout BFF's `/orders`: records the assertion it got, answers `private`.
async fn orders_bff() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/orders",
        get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let assertion = headers
                    .get(HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                record.lock().expect("lock").push(assertion);
                (
                    [("cache-control", "private, max-age=60")],
                    axum::Json(serde_json::json!({
                        "orders": [{ "id": "o-1", "event": "The Midnight Orchestra", "quantity": 2 }]
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn alice() -> Identity {
    Identity {
        subject: "alice".into(),
        issuer: "https://idp.test".into(),
        roles: vec!["buyer".into()],
        name: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateways_assertion_signs_a_user_in() {
    let (bff, seen) = orders_bff().await;
    let site = TestSite::new(&[("checkout", bff)]);
    site.install(&["account-summary"]);
    site.page(
        "account.toml",
        r#"
route = "/account"
layout = "test.html"
team = "checkout"
cache = { class = "personal" }
[[data]]
topic = "orders"
url = "{bff.checkout}/orders"
private = true
identity = true
[[slots]]
name = "account"
component = "account-summary"
"#,
    );
    let gateway = Signer::generate();
    let running = site
        .start_with_identity(Some(Arc::new(Verifier::fixed(&gateway.jwks(), "renderer"))))
        .await
        .expect("site starts");

    // Through the gateway: the assertion was made for this request id.
    let assertion = gateway
        .sign(&alice(), "req-1", &["renderer", "checkout"])
        .expect("sign");
    let page = running
        .get_with(
            "/account",
            &[(HEADER, assertion.as_str()), ("x-request-id", "req-1")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let slot = page.slot("account");
    assert!(
        slot.contains("Signed in as <span data-oberon-user>alice</span>"),
        "{slot}"
    );
    assert!(slot.contains("2 × The Midnight Orchestra"), "{slot}");
    assert!(
        page.header("cache-control").contains("private"),
        "personal pages are private"
    );
    // The BFF got the user's assertion, to verify for itself.
    assert_eq!(
        seen.lock().expect("lock").last(),
        Some(&Some(assertion.clone()))
    );
    // The component knows the user by issuer and subject: alice at another identity
    // provider is someone else.
    assert!(
        page.body
            .contains(r#"data-oberon-user-id="https://idp.test#alice""#),
        "{slot}"
    );
    let other_alice = Identity {
        issuer: "https://other-idp.test".into(),
        ..alice()
    };
    let other = running
        .get_with(
            "/account",
            &[
                (
                    HEADER,
                    gateway
                        .sign(&other_alice, "req-b", &["renderer", "checkout"])
                        .expect("sign")
                        .as_str(),
                ),
                ("x-request-id", "req-b"),
            ],
        )
        .await;
    assert!(
        other
            .body
            .contains(r#"data-oberon-user-id="https://other-idp.test#alice""#),
        "{}",
        other.body
    );

    // Around the gateway: a forged header, a key the gateway does not have, and a real
    // assertion replayed onto another request are all anonymous.
    let forged_key = Signer::generate()
        .sign(&alice(), "req-2", &["renderer", "checkout"])
        .expect("sign");
    for (case, value, request_id) in [
        ("forged", "alice", "req-2"),
        ("another key", forged_key.as_str(), "req-2"),
        ("replayed", assertion.as_str(), "req-3"),
    ] {
        let before = seen.lock().expect("lock").len();
        let page = running
            .get_with("/account", &[(HEADER, value), ("x-request-id", request_id)])
            .await;
        assert_eq!(page.status, 200, "{case}");
        assert!(
            page.slot("account").contains("You are not signed in"),
            "{case}: {}",
            page.body
        );
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), before + 1, "{case}");
        assert_eq!(
            seen[before], None,
            "{case}: nothing was passed on to the BFF"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gateway_keys_every_request_is_anonymous() {
    let (bff, _) = orders_bff().await;
    let site = TestSite::new(&[("checkout", bff)]);
    site.install(&["account-summary"]);
    site.page(
        "account.toml",
        "route = \"/account\"\nlayout = \"test.html\"\nteam = \"checkout\"\n[[slots]]\nname = \"a\"\ncomponent = \"account-summary\"\n",
    );
    let running = site.start().await.expect("site starts");
    let assertion = Signer::generate()
        .sign(&alice(), "r", &["renderer"])
        .expect("sign");
    let page = running
        .get_with(
            "/account",
            &[(HEADER, assertion.as_str()), ("x-request-id", "r")],
        )
        .await;
    assert!(
        page.slot("a").contains("You are not signed in"),
        "{}",
        page.body
    );
}

/// A BFF recording, per path, the assertion each request carried.
async fn recording_bff() -> (String, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
        let record = record.clone();
        async move {
            let assertion = headers
                .get(HEADER)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            record
                .lock()
                .expect("lock")
                .push((uri.path().to_string(), assertion));
            (
                [("cache-control", "private, max-age=60")],
                axum::Json(serde_json::json!({ "orders": [] })),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The user's assertion goes only to data sources that receive the user, and only
/// when the gateway made it good at their BFF; a public source is asked anonymously
/// (finding 9: every source of the page got it). And the renderer accepts only
/// assertions made for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_goes_only_where_the_page_and_the_gateway_say() {
    let (bff, seen) = recording_bff().await;
    let site = TestSite::new(&[
        ("checkout", format!("{bff}/checkout")),
        ("events", format!("{bff}/events")),
        ("loyalty", format!("{bff}/loyalty")),
    ]);
    site.install(&["account-summary"]);
    site.page(
        "account.toml",
        r#"
route = "/account"
layout = "test.html"
team = "checkout"
cache = { class = "personal" }
[[data]]
topic = "orders"
url = "{bff.checkout}/orders"
identity = true
[[data]]
topic = "events"
url = "{bff.events}/listing"
[[data]]
topic = "points"
url = "{bff.loyalty}/points"
identity = true
[[slots]]
name = "account"
component = "account-summary"
"#,
    );
    let gateway = Signer::generate();
    let running = site
        .start_with_identity(Some(Arc::new(Verifier::fixed(&gateway.jwks(), "renderer"))))
        .await
        .expect("site starts");
    // The gateway lets the renderer pass the user on to checkout, not to loyalty.
    let assertion = gateway
        .sign(&alice(), "req-1", &["renderer", "checkout"])
        .expect("sign");
    let page = running
        .get_with(
            "/account",
            &[(HEADER, assertion.as_str()), ("x-request-id", "req-1")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.slot("account").contains("alice"), "{}", page.body);
    let mut got = seen.lock().expect("lock").clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("/checkout/orders".to_string(), Some(assertion.clone())),
            ("/events/listing".to_string(), None),
            ("/loyalty/points".to_string(), None),
        ]
    );

    // An assertion the gateway made for another upstream is not good here.
    seen.lock().expect("lock").clear();
    let elsewhere = gateway
        .sign(&alice(), "req-2", &["checkout"])
        .expect("sign");
    let page = running
        .get_with(
            "/account",
            &[(HEADER, elsewhere.as_str()), ("x-request-id", "req-2")],
        )
        .await;
    assert!(
        page.slot("account").contains("You are not signed in"),
        "{}",
        page.body
    );
    assert!(
        seen.lock().expect("lock").iter().all(|(_, a)| a.is_none()),
        "nothing was passed on"
    );
}
