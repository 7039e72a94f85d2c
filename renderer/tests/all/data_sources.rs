//! Data sources that fail, hang, or answer garbage leave their topic absent; the page
//! renders, within the source's deadline.

use std::time::Duration;

use crate::support::{TestSite, backend, dead_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_slow_and_broken_sources_leave_topics_absent_and_the_page_renders() {
    let api = backend().await;
    let site = TestSite::new(&[("api", api), ("dead", dead_url())]);
    site.install(&["bus-probe", "chain-sink"]);
    // chain-sink shows `n` and `n2`; each page points one of them at a bad source.
    for (name, url, deadline) in [
        ("dead", "{bff.dead}/json/x", 300),
        ("slow", "{bff.api}/slow", 200),
        ("garbage", "{bff.api}/garbage", 300),
        ("unavailable", "{bff.api}/unavailable", 300),
        ("huge", "{bff.api}/huge", 2000),
    ] {
        site.page(
            &format!("{name}.toml"),
            &format!(
                r#"
route = "/{name}"
layout = "test.html"
team = "t"
[[data]]
topic = "n"
url = "{url}"
deadline_ms = {deadline}
[[data]]
topic = "n2"
url = "{{bff.api}}/number/4"
[[slots]]
name = "sink"
component = "chain-sink"
"#
            ),
        );
    }
    let running = site.start().await.expect("site starts");
    for name in ["dead", "slow", "garbage", "unavailable", "huge"] {
        let page = running.get(&format!("/{name}")).await;
        assert_eq!(page.status, 200, "{name}: {}", page.body);
        assert_eq!(page.slot("sink"), "<p>sink n=absent n2=4</p>", "{name}");
        assert!(page.bus_state().get("n").is_none(), "{name}");
    }
    // The slow source is cut at its own 200 ms deadline, not the backend's 3 s.
    let page = running.get("/slow").await;
    assert!(
        page.elapsed < Duration::from_millis(700),
        "took {:?}",
        page.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_parameters_are_encoded_into_source_urls() {
    let api = backend().await;
    let site = TestSite::new(&[("api", api)]);
    site.install(&["chain-sink"]);
    site.page(
        "p.toml",
        r#"
route = "/p/{name}"
layout = "test.html"
team = "t"
[[data]]
topic = "n"
url = "{bff.api}/json/{params.name}"
[[slots]]
name = "sink"
component = "chain-sink"
"#,
    );
    let running = site.start().await.expect("site starts");
    // `%2F..%2F` would climb out of /json/ if it were passed on decoded.
    let page = running.get("/p/a%20b").await;
    assert_eq!(page.bus_state()["n"]["name"], "a b");
    let page = running.get("/p/..%2Fslow").await;
    assert_eq!(page.bus_state()["n"]["name"], "../slow");
    assert!(page.elapsed < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_cache_follows_the_bff_not_the_browser() {
    let api = backend().await;
    let site = TestSite::new(&[("api", api)]);
    site.install(&["chain-sink"]);
    site.page(
        "counted.toml",
        r#"
route = "/counted"
layout = "test.html"
team = "t"
[[data]]
topic = "n"
url = "{bff.api}/counted"
[[data]]
topic = "n2"
url = "{bff.api}/number/4"
[[slots]]
name = "sink"
component = "chain-sink"
"#,
    );
    let running = site.start().await.expect("site starts");
    let first = running.get("/counted").await;
    assert_eq!(first.slot("sink"), "<p>sink n=1 n2=4</p>");
    // The BFF said max-age=60: a browser asking for a fresh copy does not reach it.
    let again = running
        .get_with(
            "/counted",
            &[("cache-control", "no-cache"), ("pragma", "no-cache")],
        )
        .await;
    assert_eq!(again.slot("sink"), "<p>sink n=1 n2=4</p>");
    let status: serde_json::Value =
        serde_json::from_str(&running.get("/_oberon/status").await.body).expect("json");
    assert_eq!(status["data"]["stats"]["fresh_hits"], 1, "{status}");
    assert_eq!(status["data"]["breakers"][0]["state"], "closed", "{status}");
}

/// Caching headers at u64::MAX (`max-age`, `s-maxage`, `stale-if-error`, or an `Age`
/// beyond any `max-age`) neither fail the page that fetched them nor any later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_caching_headers_never_fail_a_page() {
    let api = backend().await;
    let site = TestSite::new(&[("api", api)]);
    site.install(&["chain-sink"]);
    let kinds = ["max-age", "s-maxage", "age", "stale-if-error"];
    for kind in kinds {
        site.page(
            &format!("{kind}.toml"),
            &format!(
                r#"
route = "/{kind}"
layout = "test.html"
team = "t"
[[data]]
topic = "n"
url = "{{bff.api}}/hostile/{kind}"
[[data]]
topic = "n2"
url = "{{bff.api}}/number/4"
[[slots]]
name = "sink"
component = "chain-sink"
"#
            ),
        );
    }
    let running = site.start().await.expect("site starts");
    for round in 0..3 {
        for kind in kinds {
            let page = running.get(&format!("/{kind}")).await;
            assert_eq!(page.status, 200, "{kind}, round {round}: {}", page.body);
            assert_eq!(
                page.slot("sink"),
                "<p>sink n=7 n2=4</p>",
                "{kind}, round {round}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
