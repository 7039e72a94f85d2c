//! The fixture servers, through tonic's generated clients over loopback TCP.

use std::path::Path;
use std::time::Duration;

use tonic::Code;

use oberon_demo_proto::checkout::v1::orders_service_client::OrdersServiceClient;
use oberon_demo_proto::checkout::v1::{ListOrdersRequest, Order};
use oberon_demo_proto::events::v1::events_service_client::EventsServiceClient;
use oberon_demo_proto::events::v1::{Event, GetEventRequest};
use oberon_demo_proto::fixtures::{FixtureError, Fixtures};

use crate::{TestServer, repo};

const DEADLINE: Duration = Duration::from_secs(5);

async fn get_event(server: &TestServer, id: &str) -> Result<Event, tonic::Status> {
    let mut events = EventsServiceClient::new(server.channel());
    let request = GetEventRequest { id: id.to_string() };
    let answer = tokio::time::timeout(DEADLINE, events.get_event(request))
        .await
        .expect("the fixtures answer")?;
    Ok(answer
        .into_inner()
        .event
        .expect("a found event is in the answer"))
}

async fn list_orders(
    server: &TestServer,
    issuer: &str,
    subject: &str,
) -> Result<Vec<Order>, tonic::Status> {
    let mut orders = OrdersServiceClient::new(server.channel());
    let request = ListOrdersRequest {
        issuer: issuer.to_string(),
        subject: subject.to_string(),
    };
    let answer = tokio::time::timeout(DEADLINE, orders.list_orders(request))
        .await
        .expect("the fixtures answer")?;
    Ok(answer.into_inner().orders)
}

fn order_ids(orders: &[Order]) -> Vec<&str> {
    orders.iter().map(|o| o.id.as_str()).collect()
}

#[tokio::test]
async fn an_event_comes_with_its_ticket_types_and_related_ids() {
    let server = TestServer::fixtures(&repo().join("demo/backends/events")).await;
    let event = get_event(&server, "42").await.expect("event 42");
    assert_eq!(event.id, "42");
    assert_eq!(event.name, "The Midnight Orchestra");
    assert_eq!(event.venue, "Royal Festival Hall");
    assert_eq!(event.city, "London");
    let starts_at = event.starts_at.expect("starts_at");
    assert_eq!(starts_at.to_string(), "2026-12-05T20:00:00Z");
    let tickets: Vec<_> = event
        .ticket_types
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.price_cents,
                t.currency.as_str(),
                t.remaining,
            )
        })
        .collect();
    assert_eq!(
        tickets,
        [
            ("standard", 4500, "EUR", 120),
            ("premium", 8900, "EUR", 14),
            ("box", 15000, "EUR", 0)
        ]
    );
    assert_eq!(event.ticket_types[2].name, "Box seat");
    assert_eq!(event.related_ids, ["43", "44"]);
}

#[tokio::test]
async fn an_unknown_event_is_not_found_and_an_empty_id_invalid() {
    let server = TestServer::fixtures(&repo().join("demo/backends/events")).await;
    let status = get_event(&server, "41").await.expect_err("no event 41");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = get_event(&server, "").await.expect_err("an empty id");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn alice_at_the_dev_issuer_has_her_orders() {
    let server = TestServer::fixtures(&repo().join("demo/backends/checkout")).await;
    let orders = list_orders(&server, "oberon-dev-idp", "alice")
        .await
        .expect("alice's orders");
    assert_eq!(order_ids(&orders), ["o-1001", "o-1002"]);
    let first = &orders[0];
    assert_eq!(
        (
            first.event_id.as_str(),
            first.event_name.as_str(),
            first.quantity,
            first.total_cents,
            first.currency.as_str()
        ),
        ("42", "The Midnight Orchestra", 2, 9000, "EUR")
    );
}

/// A root with `alice` at two issuers (one a URL, percent-encoded as a directory name),
/// each with orders of her own.
fn two_alices(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("checkout");
    let order = |id: &str| {
        format!(
            r#"[{{"id":"{id}","event_id":"42","event_name":"E","quantity":1,"total_cents":100,"currency":"EUR"}}]"#
        )
    };
    for (issuer, id) in [
        ("oberon-dev-idp", "dev"),
        ("https%3A%2F%2Fid.example.com", "url"),
    ] {
        let user = root.join("issuers").join(issuer).join("users/alice");
        std::fs::create_dir_all(&user).expect("mkdir");
        std::fs::write(user.join("orders.json"), order(id)).expect("write");
    }
    root
}

#[tokio::test]
async fn the_same_subject_at_another_issuer_is_another_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::fixtures(&two_alices(dir.path())).await;
    let at = |issuer: &'static str| list_orders(&server, issuer, "alice");
    assert_eq!(
        order_ids(&at("oberon-dev-idp").await.expect("dev")),
        ["dev"]
    );
    let url = at("https://id.example.com").await.expect("url issuer");
    assert_eq!(order_ids(&url), ["url"]);
    assert!(at("other-idp").await.expect("other").is_empty());
    let status = list_orders(&server, "", "alice")
        .await
        .expect_err("no issuer");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn no_id_issuer_or_subject_reaches_another_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("events-root");
    std::fs::create_dir_all(root.join("events")).expect("mkdir");
    let event_42 = repo().join("demo/backends/events/events/42.json");
    std::fs::copy(&event_42, root.join("events/42.json")).expect("copy");
    std::fs::copy(&event_42, dir.path().join("42.json")).expect("copy outside the root");
    let server = TestServer::fixtures(&root).await;
    for id in ["../events/42", "./42", "42.json", "../../42", "%2E%2E%2F42"] {
        let status = get_event(&server, id).await.expect_err(id);
        assert_eq!(status.code(), Code::NotFound, "{id}: {status:?}");
    }
    let absolute = dir.path().join("42").display().to_string();
    let status = get_event(&server, &absolute).await.expect_err("absolute");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let server = TestServer::fixtures(&repo().join("demo/backends/checkout")).await;
    for (issuer, subject) in [
        ("oberon-dev-idp/users/../../oberon-dev-idp", "alice"),
        ("oberon-dev-idp", "../users/alice"),
        ("oberon-dev-idp/users/alice", "."),
    ] {
        let orders = list_orders(&server, issuer, subject).await.expect("a list");
        assert!(orders.is_empty(), "{issuer} {subject}: {orders:?}");
    }
}

#[tokio::test]
async fn a_root_serves_only_the_services_it_has_fixtures_for() {
    let server = TestServer::fixtures(&repo().join("demo/backends/events")).await;
    let status = list_orders(&server, "oberon-dev-idp", "alice")
        .await
        .expect_err("no orders here");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

fn load_error(files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, body) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    let error: FixtureError = Fixtures::load(dir.path()).expect_err("a broken root");
    error.to_string()
}

#[test]
fn a_broken_fixture_is_refused_naming_its_file() {
    let event = |id: &str, starts_at: &str| {
        format!(
            r#"{{"id":"{id}","name":"n","venue":"v","city":"c","starts_at":"{starts_at}","description":"d","ticket_types":[]}}"#
        )
    };
    let cases = [
        (
            vec![("events/7.json", event("8", "2026-01-01T00:00:00Z"))],
            r#"events/7.json: the event's id is "8", not its file's name"#,
        ),
        (
            vec![("events/7.json", event("7", "tomorrow"))],
            r#"events/7.json: starts_at "tomorrow" is not an RFC 3339 time"#,
        ),
        (
            vec![("events/7.json", r#"{"id":"7","title":"x"}"#.to_string())],
            "events/7.json: unknown field `title`",
        ),
        (
            vec![("issuers/i/users/u/orders.json", "{}".to_string())],
            "issuers/i/users/u/orders.json: invalid type: map, expected a sequence",
        ),
        (
            vec![("other/x.json", "{}".to_string())],
            "has neither events/",
        ),
    ];
    for (files, expected) in cases {
        let files: Vec<_> = files.iter().map(|(p, b)| (*p, b.as_str())).collect();
        let error = load_error(&files);
        assert!(error.contains(expected), "{error}\nshould say: {expected}");
    }
}
