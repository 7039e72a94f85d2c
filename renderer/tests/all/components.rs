//! Components on a page: bus ordering, declared topics, and containment of every way
//! a component can fail.

use std::time::Duration;

use crate::support::{TestSite, backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_run_before_subscribers_and_data_flows_between_them() {
    let site = TestSite::new(&[]);
    site.install(&["chain-source", "chain-double", "chain-sink"]);
    // Listed in reverse of bus order: the renderer must order them.
    site.page(
        "chain.toml",
        r#"
route = "/chain"
layout = "test.html"
team = "t"
cache = { class = "public" }
[[slots]]
name = "sink"
component = "chain-sink"
[[slots]]
name = "double"
component = "chain-double"
[[slots]]
name = "source"
component = "chain-source"
props = { n = 21 }
"#,
    );
    let running = site.start().await.expect("site starts");
    let page = running.get("/chain").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.slot("source"), "<p>source n=21</p>");
    assert_eq!(page.slot("double"), "<p>double n2=42</p>");
    assert_eq!(page.slot("sink"), "<p>sink n=21 n2=42</p>");
    let state = page.bus_state();
    assert_eq!(
        (state["n"].as_i64(), state["n2"].as_i64()),
        (Some(21), Some(42))
    );
    assert_eq!(state["request"]["path"], "/chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publisher_leaves_its_topics_absent_and_subscribers_still_render() {
    // Failing before publishing, and failing after publishing: either way the topic
    // must stay absent, so the host has to discard what a failed component published.
    for failure in ["fail = true", "fail_after_publish = true"] {
        let site = TestSite::new(&[]);
        site.install(&["chain-source", "chain-double", "chain-sink"]);
        site.page(
            "chain.toml",
            &format!(
                r#"
route = "/chain"
layout = "test.html"
team = "t"
cache = {{ class = "public" }}
[[slots]]
name = "source"
component = "chain-source"
props = {{ n = 3, {failure} }}
fallback = "<p>source fallback</p>"
[[slots]]
name = "double"
component = "chain-double"
[[slots]]
name = "sink"
component = "chain-sink"
"#
            ),
        );
        let running = site.start().await.expect("site starts");
        let page = running.get("/chain").await;
        assert_eq!(page.status, 200, "{failure}: {}", page.body);
        assert_eq!(page.slot("source"), "<p>source fallback</p>", "{failure}");
        assert_eq!(page.slot("double"), "<p>double n absent</p>", "{failure}");
        assert_eq!(
            page.slot("sink"),
            "<p>sink n=absent n2=absent</p>",
            "{failure}"
        );
        let state = page.bus_state();
        assert!(
            state.get("n").is_none() && state.get("n2").is_none(),
            "{failure}: {state}"
        );
        // A fallback makes the render partial: cached briefly at most.
        assert_eq!(
            page.header("cdn-cache-control"),
            "max-age=30, stale-while-revalidate=30, stale-if-error=86400",
            "{failure}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_reads_give_nothing_and_undeclared_publishes_fail() {
    let api = backend().await;
    let site = TestSite::new(&[("api", api)]);
    site.install(&["bus-probe"]);
    site.page(
        "probe.toml",
        r#"
route = "/probe"
layout = "test.html"
team = "t"
[[data]]
topic = "secret"
url = "{bff.api}/json/secret"
[[data]]
topic = "declared"
url = "{bff.api}/number/7"
[[slots]]
name = "probe"
component = "bus-probe"
"#,
    );
    let running = site.start().await.expect("site starts");
    let page = running.get("/probe").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.slot("probe"),
        "<p>secret=absent declared=7 publish-undeclared=err:topic &quot;not-mine&quot; is not declared in this \
         component&#39;s publishes publish-declared=ok</p>"
    );
    assert_eq!(page.bus_state()["mine"], 2);
}

/// Every way the `misbehave` test component can fail.
const MISBEHAVIOURS: [&str; 7] = ["loop", "sleep", "oom", "stack", "trap", "panic", "error"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_components_fall_back_within_their_deadline_and_the_page_renders() {
    let site = TestSite::new(&[]);
    site.install(&["misbehave", "chain-source"]);
    let mut page = String::from("route = \"/bad\"\nlayout = \"test.html\"\nteam = \"t\"\n");
    for mode in MISBEHAVIOURS {
        page.push_str(&format!(
            "[[slots]]\nname = \"{mode}\"\ncomponent = \"misbehave\"\nprops = {{ mode = \"{mode}\" }}\nfallback = \"<p>{mode} fallback</p>\"\n"
        ));
        if mode == "oom" {
            // Ended by the memory cap, not the clock: filling 16 MiB takes a few ms, but
            // can near the 100 ms deadline on a loaded machine, where it would end as a
            // timeout instead.
            page.push_str("deadline_ms = 500\n");
        }
    }
    page.push_str("[[slots]]\nname = \"good\"\ncomponent = \"chain-source\"\nprops = { n = 1 }\n");
    site.page("bad.toml", &page);
    let running = site.start().await.expect("site starts");

    for round in 0..3 {
        let page = running.get("/bad").await;
        assert_eq!(page.status, 200, "round {round}: {}", page.body);
        for mode in MISBEHAVIOURS {
            assert_eq!(
                page.slot(mode),
                format!("<p>{mode} fallback</p>"),
                "round {round}"
            );
        }
        assert_eq!(page.slot("good"), "<p>source n=1</p>");
        // The page is sent whole: its Server-Timing times each slot, with how it ended.
        let timing = page.header("server-timing");
        for (slot, ended) in [
            ("loop", "timeout"),
            ("sleep", "timeout"),
            ("oom", "oom"),
            ("stack", "trap"),
            ("trap", "trap"),
            ("panic", "trap"),
            ("error", "fallback"),
            ("good", "ok"),
        ] {
            let entry = timing
                .split(", ")
                .find(|m| m.starts_with(&format!("slot-{slot};")))
                .unwrap_or_else(|| panic!("no slot-{slot} in Server-Timing: {timing}"));
            let [_, dur, desc] = entry.split(';').collect::<Vec<_>>()[..] else {
                panic!("{entry}");
            };
            let ms: f64 = dur.strip_prefix("dur=").expect("dur").parse().expect("ms");
            assert!((0.0..1000.0).contains(&ms), "{entry}");
            assert_eq!(desc, format!("desc={ended}"), "{timing}");
        }
        // The looping and the sleeping component are stopped at their 100 ms
        // deadline (they run concurrently, in one stage), well inside the page's 1 s
        // deadline and nowhere near the 30 s sleep.
        assert!(
            page.elapsed < Duration::from_millis(500),
            "round {round}: took {:?}",
            page.elapsed
        );
    }
    // The process keeps serving ordinary pages.
    assert_eq!(running.get("/_oberon/livez").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_critical_component_makes_the_page_a_503_that_is_not_stored() {
    let site = TestSite::new(&[]);
    site.install(&["misbehave"]);
    site.page(
        "critical.toml",
        r#"
route = "/critical"
layout = "test.html"
team = "t"
cache = { class = "public" }
[[slots]]
name = "main"
component = "misbehave"
props = { mode = "trap" }
critical = true
"#,
    );
    let running = site.start().await.expect("site starts");
    let page = running.get("/critical").await;
    assert_eq!(page.status, 503);
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("cdn-cache-control"), "");
}

/// The SDK's allocator (components/sdk/src/allocator.rs), in a guest built for
/// wasm32-unknown-unknown like every component the SDK builds: memory freed during a
/// render is reused (24 MiB churned through a 16 MiB cap), large blocks work, and
/// running out of memory or panicking is a trap contained to the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_allocator_reuses_memory_and_contains_exhaustion() {
    let site = TestSite::new(&[]);
    site.install(&["alloc-churn"]);
    let mut page = String::from("route = \"/alloc\"\nlayout = \"test.html\"\nteam = \"t\"\n");
    // A generous deadline: churning takes ~20 ms alone, more on a busy test machine,
    // and a timeout here would hide what the test is about.
    for mode in ["churn", "big", "oom", "panic"] {
        page.push_str(&format!(
            "[[slots]]\nname = \"{mode}\"\ncomponent = \"alloc-churn\"\nprops = {{ mode = \"{mode}\" }}\nfallback = \"<p>{mode} fallback</p>\"\ndeadline_ms = 900\n"
        ));
    }
    site.page("alloc.toml", &page);
    let running = site.start().await.expect("site starts");
    for round in 0..2 {
        let page = running.get("/alloc").await;
        assert_eq!(page.status, 200, "round {round}: {}", page.body);
        let churn = page.slot("churn");
        let pages: usize = churn
            .strip_prefix("<p>churn ok pages=")
            .and_then(|rest| rest.strip_suffix("</p>"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: churn gave {churn}"));
        // About 1 MiB is alive at once; 24 MiB went through.
        assert!(pages <= 96, "round {round}: churn ended with {pages} pages");
        assert_eq!(page.slot("big"), "<p>big ok</p>", "round {round}");
        assert_eq!(page.slot("oom"), "<p>oom fallback</p>", "round {round}");
        assert_eq!(page.slot("panic"), "<p>panic fallback</p>", "round {round}");
    }
}

/// Memory per slot: the site's default cap unless the slot's `memory_mib` asks for
/// another (within the site's ceiling), in either direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_gets_the_memory_it_asks_for() {
    let site = TestSite::new(&[]);
    site.install(&["alloc-churn"]);
    let mut page = String::from("route = \"/hold\"\nlayout = \"test.html\"\nteam = \"t\"\n");
    for (slot, mib, memory) in [
        ("default", 24, ""),
        ("roomy", 24, "memory_mib = 48\n"),
        ("small", 24, "memory_mib = 8\n"),
        ("fits", 4, "memory_mib = 8\n"),
    ] {
        page.push_str(&format!(
            "[[slots]]\nname = \"{slot}\"\ncomponent = \"alloc-churn\"\nprops = {{ mode = \"hold\", mib = {mib} }}\nfallback = \"<p>{slot} fallback</p>\"\ndeadline_ms = 900\n{memory}"
        ));
    }
    site.page("hold.toml", &page);
    let running = site.start().await.expect("site starts");
    for round in 0..2 {
        let page = running.get("/hold").await;
        assert_eq!(page.status, 200, "round {round}: {}", page.body);
        assert_eq!(
            page.slot("default"),
            "<p>default fallback</p>",
            "16 MiB is the default"
        );
        assert!(
            page.slot("roomy").starts_with("<p>held 24 MiB"),
            "{}",
            page.body
        );
        assert_eq!(page.slot("small"), "<p>small fallback</p>");
        assert!(
            page.slot("fits").starts_with("<p>held 4 MiB"),
            "{}",
            page.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_an_empty_wasi_context() {
    let site = TestSite::new(&[]);
    site.install(&["misbehave"]);
    site.page("env.toml", "route = \"/env\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"env\"\ncomponent = \"misbehave\"\nprops = { mode = \"env\" }\n");
    let running = site.start().await.expect("site starts");
    assert_eq!(running.get("/env").await.slot("env"), "<p>env=0 fs=err</p>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_components_compose_with_head_assets_and_state() {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../demo/fixtures/event-42.json"
    ))
    .expect("demo fixture");
    let events = fixture_server(fixture).await;
    let site = TestSite::new(&[("events", events)]);
    site.install(&["event-details", "ticket-picker", "cart-summary"]);
    site.page(
        "event.toml",
        r#"
route = "/events/{id}"
layout = "test.html"
team = "events"
cache = { class = "public", ttl_s = 120 }
[[data]]
topic = "event"
url = "{bff.events}/v1/events/{params.id}"
[[slots]]
name = "details"
component = "event-details"
# The page's primary part, as in the demo: its title is in the head, which waits for it.
critical = true
[[slots]]
name = "picker"
component = "ticket-picker"
[[slots]]
name = "cart"
component = "cart-summary"
"#,
    );
    let running = site.start().await.expect("site starts");
    let page = running.get("/events/42?type=premium&qty=3").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<title>The Midnight Orchestra · Oberon Tickets</title>"),
        "{}",
        page.body
    );
    assert!(
        page.slot("cart").contains("EUR 267.00"),
        "{}",
        page.slot("cart")
    );
    assert_eq!(page.bus_state()["ticket-selection"]["quantity"], 3);
    // The picker is volatile, so the page is; in normal mode that keeps the base TTL.
    assert_eq!(
        page.header("cdn-cache-control"),
        "max-age=120, stale-while-revalidate=120, stale-if-error=86400"
    );
    assert_eq!(page.body.matches("/ticket-picker.js\"").count(), 1);
    // event-details ships no stylesheet (the demo's styles are inline in its layouts).
    assert!(!page.body.contains("rel=\"stylesheet\""), "{}", page.body);
}

async fn fixture_server(body: String) -> String {
    let app = axum::Router::new().route(
        "/v1/events/42",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Each way of failing is reported as what it is, so the logs say why a slot fell back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_reported_as_its_kind() {
    use std::sync::Arc;
    use std::time::Instant;

    use oberon_renderer::bus::BusSnapshot;
    use oberon_renderer::engine::{ComponentEngine, ComponentError, EngineLimits};

    let engine = ComponentEngine::new(EngineLimits::default()).expect("engine");
    let wasm = std::fs::read(oberon_test_artifacts::artifact("misbehave").wasm()).expect("wasm");
    let component = engine.load(&wasm).await.expect("load");
    let ctx = crate::support::bare_request("t");
    let bus = Arc::new(BusSnapshot::default());
    for (mode, expected) in [
        ("loop", "timeout"),
        ("sleep", "timeout"),
        ("oom", "trap"),
        ("stack", "trap"),
        ("trap", "trap"),
        ("panic", "trap"),
        ("error", "guest"),
    ] {
        let deadline = Instant::now() + Duration::from_millis(100);
        let props = format!(r#"{{"mode":"{mode}"}}"#);
        let result = engine
            .render(&component, &ctx, &props, &bus, engine.budget(deadline))
            .await;
        let kind = match &result.outcome {
            Ok(_) => "ok",
            Err(ComponentError::Timeout { .. }) => "timeout",
            Err(ComponentError::Trap { .. }) => "trap",
            Err(ComponentError::Guest { .. }) => "guest",
            Err(ComponentError::Instantiate { .. }) => "instantiate",
        };
        assert_eq!(kind, expected, "{mode}: {:?}", result.outcome.err());
        // Stopped at the deadline (1 ms epoch ticks), not whenever the guest is done.
        assert!(
            result.elapsed < Duration::from_millis(250),
            "{mode}: took {:?}",
            result.elapsed
        );
    }
    // And the instance after them is as good as new.
    let deadline = Instant::now() + Duration::from_millis(100);
    let ok = engine
        .render(
            &component,
            &ctx,
            r#"{"mode":"ok"}"#,
            &bus,
            engine.budget(deadline),
        )
        .await;
    assert_eq!(ok.outcome.expect("ok").html, "<p>misbehave ok</p>");
}

/// The instance pool stays the size of the most instances alive at once, plus the
/// warm slots kept for modules that rendered before, over a process's life. A deploy
/// brings new modules: past the warm slots they reuse freed slots rather than take
/// fresh ones (wasmtime's default, 100 warm slots, let every new version take fresh
/// slots, and the renderer's RSS grew 27 % over a 30-minute soak). And a guest that
/// grew to its memory cap leaves at most 1 MiB of it resident in its freed slot.
#[tokio::test]
async fn new_versions_reuse_freed_slots_and_a_grown_guest_leaves_little_resident() {
    use std::sync::Arc;
    use std::time::Instant;

    use oberon_renderer::bus::BusSnapshot;
    use oberon_renderer::engine::{ComponentEngine, EngineLimits};

    // wasmtime shares the warm slots out among its pool's shards, one per core (at
    // most 16); this test's one thread allocates from one of them.
    const WARM_PER_SHARD: u32 = 3;
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get().min(16)) as u32;
    let engine = ComponentEngine::new(EngineLimits {
        warm_slots: WARM_PER_SHARD * shards,
        ..EngineLimits::default()
    })
    .expect("engine");
    let wasm = std::fs::read(oberon_test_artifacts::artifact("alloc-churn").wasm()).expect("wasm");
    let ctx = crate::support::bare_request("t");
    let bus = Arc::new(BusSnapshot::default());
    let mut freed_by_version = Vec::new();
    // Every version stays loaded, as the components of a site do; a dropped module's
    // slots are no longer kept for it.
    let mut loaded = Vec::new();
    for version in 0..6 {
        // Loaded again: a new module, as after a deploy.
        let component = engine.load(&wasm).await.expect("load");
        for mode in ["big", "oom"] {
            let deadline = Instant::now() + Duration::from_secs(5);
            let props = format!(r#"{{"mode":"{mode}"}}"#);
            engine
                .render(&component, &ctx, &props, &bus, engine.budget(deadline))
                .await;
        }
        loaded.push(component);
        let pool = engine.pool();
        assert_eq!(pool.instances_in_use, 0, "version {version}");
        let freed = pool.memories_unused_warm;
        freed_by_version.push(freed);
        // The guest grew to its 16 MiB cap; its slot keeps at most 1 MiB.
        assert!(
            pool.memory_bytes_resident_unused <= (freed as usize) << 20,
            "version {version}: {pool:?}"
        );
    }
    // One render at a time: a slot is kept for each earlier version, up to the warm
    // slots; after that a new version takes the oldest one.
    assert_eq!(freed_by_version, [1, 2, 3, 3, 3, 3]);
}
