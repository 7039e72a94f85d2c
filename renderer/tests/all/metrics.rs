//! The renderer's metrics as Prometheus scrapes them from its ops port: pages by route,
//! status and class, each slot's outcome by component, each data source's fetches.
//!
//! The recorder is the process's, shared with every other test in this binary: the
//! page's route and its data sources' topics are this test's alone, so their counts
//! are exact; its components render in other tests too, so theirs are at least.

use oberon_service::metrics::Exporter;

use crate::support::{TestSite, backend, dead_url};

/// The value of the series whose line starts with `series` (name and labels, exactly as
/// the exporter writes them).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_sources_and_pages_are_counted_by_outcome() {
    let exporter = Exporter::install("renderer", "test");
    let ok_url = backend().await;
    let site = TestSite::new(&[]);
    site.install(&["chain-source", "misbehave"]);
    let mut page = String::from(
        "route = \"/metered/{id}\"\nlayout = \"test.html\"\nteam = \"t\"\ncache = { class = \"public\" }\n",
    );
    page.push_str(&format!(
        "[[data]]\ntopic = \"metered-up\"\nurl = \"{ok_url}/counted\"\n[[data]]\ntopic = \"metered-down\"\nurl = \"{}/x\"\n",
        dead_url()
    ));
    for mode in ["loop", "oom", "trap", "error"] {
        page.push_str(&format!(
            "[[slots]]\nname = \"{mode}\"\ncomponent = \"misbehave\"\nprops = {{ mode = \"{mode}\" }}\nfallback = \"<p>fallback</p>\"\n"
        ));
    }
    page.push_str("[[slots]]\nname = \"good\"\ncomponent = \"chain-source\"\nprops = { n = 1 }\n");
    site.page("metered.toml", &page);
    let running = site.start().await.expect("site starts");

    for id in 1..=3 {
        let got = running.get(&format!("/metered/{id}")).await;
        assert_eq!(got.status, 200, "{}", got.body);
    }
    assert_eq!(running.get("/metered").await.status, 404);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ops = listener.local_addr().expect("addr");
    let app = oberon_renderer::server::ops_app(running.renderer.clone(), exporter);
    tokio::spawn(oberon_renderer::server::serve(
        listener,
        app,
        std::future::pending(),
    ));
    let scraped = reqwest::get(format!("http://{ops}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(
        scraped.headers()["content-type"],
        oberon_service::metrics::CONTENT_TYPE
    );
    let text = scraped.text().await.expect("text");

    let slot = |outcome: &str, component: &str| {
        value(
            &text,
            &format!(
                "oberon_renderer_slot_renders_total{{component=\"{component}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    for outcome in ["timeout", "oom", "trap", "fallback"] {
        assert!(slot(outcome, "misbehave") >= 3.0, "{outcome}");
    }
    assert!(slot("ok", "chain-source") >= 3.0);
    // Renders that ran are timed too.
    assert!(
        value(
            &text,
            "oberon_renderer_slot_render_duration_seconds_count{component=\"misbehave\",outcome=\"trap\"}"
        ) >= 3.0
    );

    let fetches = |source: &str, outcome: &str, cache: &str| {
        value(
            &text,
            &format!(
                "oberon_renderer_data_fetches_total{{source=\"{source}\",outcome=\"{outcome}\",cache=\"{cache}\"}}"
            ),
        )
    };
    // The first page fetched it; the next two found it fresh in the cache (max-age=60).
    assert_eq!(fetches("metered-up", "ok", "miss"), 1.0);
    assert_eq!(fetches("metered-up", "ok", "hit"), 2.0);
    assert_eq!(fetches("metered-down", "error", "none"), 3.0);
    // Timed: the fetches that asked (a fresh hit asks nobody).
    let timed = |source: &str| {
        value(
            &text,
            &format!("oberon_renderer_data_fetch_duration_seconds_count{{source=\"{source}\"}}"),
        )
    };
    assert_eq!(timed("metered-up"), 1.0);
    assert_eq!(timed("metered-down"), 3.0);

    // A page with a fallback is `partial`, but its class is the page's.
    assert_eq!(
        value(
            &text,
            "oberon_renderer_pages_total{http_route=\"/metered/{id}\",http_response_status_code=\"200\",cache_class=\"public\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "oberon_http_server_request_duration_seconds_count{http_route=\"/metered/{id}\",http_request_method=\"GET\",http_response_status_code=\"200\"}"
        ),
        3.0
    );
    // The 404: no route matched, so the route label is empty.
    assert!(
        value(
            &text,
            "oberon_renderer_pages_total{http_route=\"\",http_response_status_code=\"404\",cache_class=\"none\"}"
        ) >= 1.0
    );
    // State read at the scrape.
    assert_eq!(value(&text, "oberon_renderer_cache_mode"), 0.0);
    assert!(text.contains("oberon_build_info{service=\"renderer\",version=\"test\"} 1"));
}
