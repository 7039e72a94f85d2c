//! Issue 20: the platform's metrics as an operator sees them. The real binaries —
//! gateway, renderer, a BFF made from the template — each serve `/metrics` on their own
//! ops port; a real Prometheus scrapes the three while pages go through the gateway,
//! one of their components traps and one of their BFFs is down. PromQL then says what
//! happened, to the request. And Varnish in front, scraped through its exporter: the
//! dashboard's CDN offload panel on what the CDN counted.

use std::net::SocketAddr;

use oberon_e2e_tests::platform::{self, ItemBackend, Process, free_addr};
use oberon_e2e_tests::prometheus::Prometheus;
use oberon_e2e_tests::varnish::{Varnish, reserve_port};

/// Pages requested through the gateway.
const PAGES: usize = 5;
/// Requests to a route that requires a token, sent without one.
const REFUSED: usize = 2;

/// A site of one page: the item from the BFF, a source on a BFF that is down, a
/// component that traps and one that renders.
fn site(dir: &std::path::Path, bff: SocketAddr, down: SocketAddr) {
    platform::site(
        dir,
        &format!(
            "[limits]\ncomponent_deadline_ms = 500\nmax_instances = 16\n\
             [bffs]\nitems = \"http://{bff}\"\ndown = \"http://{down}\"\n"
        ),
        r#"route = "/p/{id}"
layout = "page.html"
team = "shop"
cache = { class = "public" }
[[data]]
topic = "item"
url = "{bff.items}/v2/items/{params.id}"
[[data]]
topic = "gone"
url = "{bff.down}/x"
[[slots]]
name = "broken"
component = "misbehave"
props = { mode = "trap" }
fallback = "<p>unavailable</p>"
[[slots]]
name = "good"
component = "chain-source"
props = { n = 1 }
"#,
        &["misbehave", "chain-source"],
    );
}

/// The gateway: pages to the renderer, publicly; `/private` needs a token from an
/// identity provider whose key set cannot be fetched.
async fn gateway(dir: &std::path::Path, renderer: SocketAddr, jwks: SocketAddr) -> Process {
    let more = format!(
        r#"
[[issuers]]
issuer = "https://idp.metrics.test"
jwks_url = "http://{jwks}/jwks.json"
audiences = ["oberon"]
algorithms = ["RS256"]

[[routes]]
path = "/private"
upstream = "renderer"
kind = "api"
auth = "required"
"#
    );
    let config = platform::gateway_config(dir, renderer, &more);
    platform::gateway(&config, &[]).await
}

/// Pages `ids` through the gateway: each renders, with the trapping slot's fallback.
async fn pages_through(
    client: &reqwest::Client,
    gateway: &Process,
    renderer: &Process,
    ids: std::ops::RangeInclusive<usize>,
) {
    for id in ids {
        let page = client
            .get(format!("http://{}/p/{id}", gateway.addr))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 200, "{}", renderer.log());
        let body = page.text().await.expect("body");
        assert!(body.contains("<p>unavailable</p>"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_each_service_did() {
    let _exclusive = oberon_e2e_tests::exclusive().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bff = platform::bff(ItemBackend::start().await.addr, &[]).await;
    site(dir.path(), bff.addr, free_addr());
    let renderer = platform::renderer(dir.path(), &[]).await;
    let gateway = gateway(dir.path(), renderer.addr, free_addr()).await;
    let prometheus = Prometheus::start(&[
        ("gateway", vec![gateway.ops]),
        ("renderer", vec![renderer.ops]),
        ("bff", vec![bff.ops]),
    ])
    .await;

    let client = reqwest::Client::new();
    pages_through(&client, &gateway, &renderer, 1..=PAGES).await;
    for _ in 0..REFUSED {
        let refused = client
            .get(format!("http://{}/private", gateway.addr))
            .send()
            .await
            .expect("private");
        assert_eq!(refused.status(), 401);
    }

    let pages = PAGES as f64;
    for job in ["gateway", "renderer", "bff"] {
        prometheus
            .expect(&format!("up{{job=\"{job}\"}}"), 1.0)
            .await;
    }
    // The renderer: every page rendered, with its trapping component's fallback and
    // the down BFF's source left absent; the BFF that is up asked once per item.
    prometheus
        .expect(
            r#"sum(oberon_renderer_pages_total{job="renderer",http_route="/p/{id}",http_response_status_code="200",cache_class="public"})"#,
            pages,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_renderer_slot_renders_total{job="renderer",component="misbehave",outcome="trap"})"#,
            pages,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_renderer_slot_render_duration_seconds_count{job="renderer",component="chain-source",outcome="ok"})"#,
            pages,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_renderer_data_fetches_total{job="renderer",source="gone",outcome!="ok"})"#,
            pages,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_renderer_data_fetches_total{job="renderer",source="item",outcome="ok",cache="miss"})"#,
            pages,
        )
        .await;
    // The repository's recording rule, over pages rendered since its series were first
    // scraped (a rate needs two samples): every render of the trapping component failed.
    pages_through(&client, &gateway, &renderer, PAGES + 1..=2 * PAGES).await;
    prometheus
        .expect(
            r#"component:oberon_renderer_slot_failures:ratio_rate10m{component="misbehave"}"#,
            1.0,
        )
        .await;
    let pages = 2.0 * pages;

    // The gateway: the pages by route and how they were authenticated, the refusals,
    // the upstream's latency, the identity provider's key set that could not be had.
    prometheus
        .expect(
            r#"sum(oberon_gateway_requests_total{job="gateway",http_route="/p/{id}",http_response_status_code="200",auth="none"})"#,
            pages,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_gateway_requests_total{job="gateway",http_route="/private",http_response_status_code="401",auth="missing"})"#,
            REFUSED as f64,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_http_client_request_duration_seconds_count{job="gateway",upstream="renderer"})"#,
            pages,
        )
        .await;
    let failed_fetches = prometheus
        .query(r#"sum(oberon_gateway_jwks_refreshes_total{job="gateway",outcome="error"})"#)
        .await;
    assert!(
        matches!(failed_fetches.as_slice(), [(_, n)] if *n >= 1.0),
        "{failed_fetches:?}"
    );

    // The BFF: its API route by status, and the backend calls behind it.
    prometheus
        .expect(
            r#"sum(oberon_http_server_request_duration_seconds_count{job="bff",http_route="/v2/items/{id}",http_response_status_code="200"})"#,
            pages,
        )
        .await;
    prometheus
        .expect(
            r#"sum(oberon_bff_backend_calls_total{job="bff",outcome="ok"})"#,
            pages,
        )
        .await;
    drop(prometheus);
    drop((gateway, renderer, bff));
}

/// The fleet dashboard's query for its "CDN offload" panel.
fn offload_panel_query() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/observability/grafana/oberon-fleet.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard"))
            .expect("the dashboard's JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let panel = panels
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("CDN offload"))
        })
        .expect("a \"CDN offload\" panel");
    panel["targets"][0]["expr"]
        .as_str()
        .expect("its query")
        .to_string()
}

/// The CDN offload panel, on what Varnish counts itself: Varnish in front of the
/// gateway, its counters scraped through Debian's `prometheus-varnish-exporter`, and
/// the panel's query as the dashboard has it.
#[tokio::test]
async fn the_cdn_offload_panel_shows_what_varnish_answered_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bff = platform::bff(ItemBackend::start().await.addr, &[]).await;
    site(dir.path(), bff.addr, free_addr());
    let renderer = platform::renderer(dir.path(), &[]).await;
    let config = platform::gateway_config(dir.path(), renderer.addr, "");
    let gateway = platform::gateway(&config, &[]).await;
    let varnish = Varnish::start(reserve_port(), gateway.addr, "no-origin-check-here");
    let exporter = varnish.exporter().await;
    let prometheus = Prometheus::start(&[("varnish", vec![exporter.addr])]).await;
    // A sample before any page: the panel's rates start from it.
    let misses = r#"sum(varnish_main_cache_miss{job="varnish"})"#;
    prometheus.expect(misses, 0.0).await;

    let client = reqwest::Client::new();
    for id in 1..=PAGES {
        for _ in 0..3 {
            let page = client
                .get(varnish.url(&format!("/p/{id}")))
                .send()
                .await
                .expect("page");
            assert_eq!(page.status(), 200, "{}", varnish.log());
        }
    }
    // Each page's first request went to the origin; Varnish answered the other two.
    prometheus.expect(misses, PAGES as f64).await;
    prometheus
        .expect(
            r#"sum(varnish_main_cache_hit{job="varnish"})"#,
            2.0 * PAGES as f64,
        )
        .await;
    let offload = offload_panel_query().replace("$__rate_interval", "1m");
    prometheus.expect(&offload, 2.0 / 3.0).await;
    drop(prometheus);
    drop((exporter, varnish, gateway, renderer, bff));
}
