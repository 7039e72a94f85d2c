//! The render cache (`oberon_renderer::render_cache`) with real components: a page with
//! the cache on is byte for byte the page with it off, through changing inputs; a
//! reused publisher still feeds its subscribers; nothing is reused for a signed-in
//! request or one with credentials; a deploy or rollback never serves the previous
//! version's fragment; and the cache stays within its bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use oberon_identity::assertion::HEADER;
use oberon_identity::{Identity, Signer, Verifier};
use oberon_registry::{Channel, Registry, Target};

use crate::registry_channels;
use crate::support::{Got, Running, TestSite};

/// The demo's Rust components.
const DEMO_COMPONENTS: [&str; 7] = [
    "site-header",
    "site-footer",
    "event-details",
    "ticket-picker",
    "cart-summary",
    "recommendations",
    "account-summary",
];

/// How many slots a page's `Server-Timing` says were reused.
fn reused(page: &Got) -> usize {
    let timing = page.header("server-timing");
    timing
        .split(',')
        .find_map(|m| m.trim().strip_prefix("reused;desc="))
        .unwrap_or_else(|| panic!("no reused count in Server-Timing: {timing:?}"))
        .parse()
        .expect("a count")
}

async fn status(running: &Running) -> serde_json::Value {
    let got = running.get("/_oberon/status").await;
    serde_json::from_str::<serde_json::Value>(&got.body).expect("status is JSON")["render_cache"]
        .clone()
}

/// Events and orders, as the demo's BFFs answer them, with values the test changes
/// between requests. `no-store`, so each request sees the current values.
#[derive(Clone, Default)]
struct Bff {
    events: Arc<Mutex<serde_json::Map<String, serde_json::Value>>>,
}

impl Bff {
    fn set(&self, id: &str, event: serde_json::Value) {
        self.events
            .lock()
            .expect("lock")
            .insert(id.to_string(), event);
    }

    async fn serve(&self) -> String {
        let app = Router::new()
            .route(
                "/v1/events/{id}",
                get(
                    |State(bff): State<Bff>, Path(id): Path<String>| async move {
                        let event = bff.events.lock().expect("lock").get(&id).cloned();
                        match event {
                            Some(e) => {
                                ([("cache-control", "no-store")], axum::Json(e)).into_response()
                            }
                            None => axum::http::StatusCode::NOT_FOUND.into_response(),
                        }
                    },
                ),
            )
            .route(
                "/v1/orders",
                get(|| async {
                    (
                        [("cache-control", "private, max-age=60")],
                        axum::Json(serde_json::json!({ "orders": [] })),
                    )
                }),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

fn demo_event(id: &str, name: &str) -> serde_json::Value {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../demo/fixtures/event-42.json"
    ))
    .expect("demo fixture");
    let mut event: serde_json::Value = serde_json::from_str(&fixture).expect("fixture is JSON");
    event["id"] = id.into();
    event["name"] = name.into();
    event
}

/// The demo site (its pages and layouts) with its Rust components, over `bff`; the
/// render cache at `max_mib`. The slots of its Python and JavaScript components are left
/// out: their toolchains are the CLI's (`cli/tests/all/demo_components.rs` and the
/// end-to-end tests build and serve them), and no Rust component needs what they publish.
fn demo_site(bff: &str, max_mib: u64) -> TestSite {
    let site = TestSite::new(&[("events", bff.to_string()), ("checkout", bff.to_string())]);
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
    for entry in std::fs::read_dir(demo.join("layouts")).expect("demo layouts") {
        let path = entry.expect("entry").path();
        let dest = site
            .path()
            .join("layouts")
            .join(path.file_name().expect("name"));
        std::fs::copy(&path, dest).expect("copy");
    }
    for entry in std::fs::read_dir(demo.join("pages")).expect("demo pages") {
        let path = entry.expect("entry").path();
        let mut page: toml::Table = std::fs::read_to_string(&path)
            .expect("page")
            .parse()
            .expect("a demo page is TOML");
        if let Some(toml::Value::Array(slots)) = page.get_mut("slots") {
            slots.retain(|slot| {
                slot.get("component")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|c| DEMO_COMPONENTS.contains(&c))
            });
        }
        let dest = site
            .path()
            .join("pages")
            .join(path.file_name().expect("name"));
        std::fs::write(dest, toml::to_string(&page).expect("TOML")).expect("write page");
    }
    site.install(&DEMO_COMPONENTS);
    set_render_cache(&site, max_mib);
    site
}

fn set_render_cache(site: &TestSite, max_mib: u64) {
    let path = site.path().join("site.toml");
    let mut toml = std::fs::read_to_string(&path).expect("site.toml");
    toml.push_str(&format!("[render_cache]\nmax_mib = {max_mib}\n"));
    std::fs::write(path, toml).expect("site.toml");
}

/// Every header a cache or a browser acts on, and the body.
fn observable(page: &Got) -> (u16, Vec<(&'static str, String)>, &str) {
    let headers = [
        "content-type",
        "cache-control",
        "cdn-cache-control",
        "surrogate-control",
        "surrogate-key",
        "cache-tag",
        "vary",
        "etag",
        "oberon-channel",
    ]
    .into_iter()
    .map(|h| (h, page.header(h).to_string()))
    .collect();
    (page.status, headers, &page.body)
}

/// What changes first (event 42 at the BFF), the request, its headers, and how many
/// slots the cache must reuse for it.
type Step<'a> = (
    Option<serde_json::Value>,
    &'a str,
    Vec<(&'a str, &'a str)>,
    usize,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pages_are_byte_identical_with_the_cache_on_and_off() {
    let bff = Bff::default();
    bff.set("42", demo_event("42", "The Midnight Orchestra"));
    bff.set("43", demo_event("43", "Dawn Chorus <live>"));
    let url = bff.serve().await;
    let (off_site, on_site) = (demo_site(&url, 0), demo_site(&url, 64));
    let off = off_site.start().await.expect("cache off starts");
    let on = on_site.start().await.expect("cache on starts");

    let mut sold_out = demo_event("42", "The Midnight Orchestra");
    sold_out["ticket_types"][0]["remaining"] = 0.into();
    let steps: Vec<Step> = vec![
        (None, "/events/42", vec![], 0),
        // Everything again: every slot of the page reused, headers and ETag included.
        (None, "/events/42", vec![], 6),
        // A query only the picker (and, through its selection, the cart) depends on;
        // the header, footer, details and recommendations take the query as an input
        // too (the context), so they render afresh as well.
        (None, "/events/42?type=premium&qty=3", vec![], 0),
        (None, "/events/42?type=premium&qty=3", vec![], 6),
        (None, "/events/42?qty=3&type=premium", vec![], 0),
        // A route parameter: another event.
        (None, "/events/43", vec![], 0),
        (None, "/events/43", vec![], 6),
        // The BFF's answer changes: the event's subscribers render afresh, the header
        // and footer (no topics) are reused.
        (Some(sold_out), "/events/42", vec![], 2),
        (None, "/events/42", vec![], 6),
        (
            Some(demo_event("42", "The Midnight Orchestra")),
            "/events/42",
            vec![],
            6,
        ),
        // Credentials make the page personal: nothing reused.
        (None, "/events/42", vec![("cookie", "session=abc")], 0),
        (None, "/events/42", vec![("authorization", "Bearer x")], 0),
        // A personal page: nothing reused, even anonymously.
        (None, "/account", vec![], 0),
        (None, "/account", vec![], 0),
        // An unknown event: the details fail (critical) on both.
        (None, "/events/999", vec![], 0),
        (None, "/events/43?qty=2", vec![], 0),
        (None, "/events/43?qty=2", vec![], 6),
    ];
    let mut total_reused = 0;
    for (i, (change, path, headers, expect_reused)) in steps.into_iter().enumerate() {
        if let Some(event) = change {
            bff.set("42", event);
        }
        let without = off.get_with(path, &headers).await;
        let with = on.get_with(path, &headers).await;
        assert_eq!(
            observable(&with),
            observable(&without),
            "step {i}: {path} {headers:?} differs with the render cache on"
        );
        assert_eq!(with.status, 200, "step {i}: {path}: {}", with.body);
        assert_eq!(reused(&without), 0, "step {i}: the cache is off");
        {
            assert_eq!(
                reused(&with),
                expect_reused,
                "step {i}: {path} {headers:?}: slots reused"
            );
            total_reused += expect_reused;
        }
    }
    let on_stats = status(&on).await;
    assert_eq!(on_stats["enabled"], true, "{on_stats}");
    assert_eq!(on_stats["reused"], total_reused, "{on_stats}");
    assert!(on_stats["weighted_bytes"].as_u64() > Some(0), "{on_stats}");
    let off_stats = status(&off).await;
    assert_eq!(off_stats["enabled"], false, "{off_stats}");
    assert_eq!(off_stats["reused"], 0, "{off_stats}");
    assert_eq!(off_stats["entries"], 0, "{off_stats}");
}

const CHAIN_PAGE: &str = r#"
route = "/chain"
layout = "test.html"
team = "t"
cache = { class = "public", ttl_s = 60 }
[[slots]]
name = "source"
component = "chain-source"
props = { n = 21 }
[[slots]]
name = "double"
component = "chain-double"
[[slots]]
name = "sink"
component = "chain-sink"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_publisher_still_feeds_its_subscribers() {
    let site = TestSite::new(&[]);
    site.install(&["chain-source", "chain-double", "chain-sink"]);
    site.page("chain.toml", CHAIN_PAGE);
    let running = site.start().await.expect("site starts");

    let first = running.get("/chain").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(reused(&first), 0);
    assert_eq!(first.slot("sink"), "<p>sink n=21 n2=42</p>");

    // chain-source and chain-double are reused; chain-sink (built against 0.1.0) is
    // never, so it renders afresh from what the reused publishers published.
    let second = running.get("/chain").await;
    assert_eq!(reused(&second), 2);
    assert_eq!(second.slot("source"), "<p>source n=21</p>");
    assert_eq!(second.slot("double"), "<p>double n2=42</p>");
    assert_eq!(second.slot("sink"), "<p>sink n=21 n2=42</p>");
    assert_eq!(second.bus_state()["n"], 21);
    assert_eq!(second.bus_state()["n2"], 42);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), first.header("etag"));

    let stats = status(&running).await;
    assert_eq!(stats["reused"], 2, "{stats}");
    // 3 fresh renders the first time, the 0.1.0 sink the second.
    assert_eq!(stats["rendered"], 4, "{stats}");
    assert_eq!(stats["entries"], 2, "{stats}");

    // chain-double declared 1 s: past it, it renders again; chain-source (600 s) not.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = running.get("/chain").await;
    assert_eq!(reused(&later), 1);
    assert_eq!(later.body, first.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_renders_are_never_reused() {
    let site = TestSite::new(&[]);
    site.install(&["chain-source", "chain-sink"]);
    site.page(
        "fail.toml",
        "route = \"/fail\"\nlayout = \"test.html\"\nteam = \"t\"\ncache = { class = \"public\" }\n[[slots]]\nname = \"source\"\ncomponent = \"chain-source\"\nprops = { fail_after_publish = true }\nfallback = \"<p>fallback</p>\"\n[[slots]]\nname = \"sink\"\ncomponent = \"chain-sink\"\n",
    );
    let running = site.start().await.expect("site starts");
    for _ in 0..3 {
        let page = running.get("/fail").await;
        assert_eq!(reused(&page), 0);
        assert_eq!(page.slot("source"), "<p>fallback</p>");
        // What the failed publisher published is discarded, reused or not.
        assert_eq!(page.slot("sink"), "<p>sink n=absent n2=absent</p>");
    }
    let stats = status(&running).await;
    assert_eq!(stats["entries"], 0, "{stats}");
    assert_eq!(stats["rendered"], 6, "{stats}");
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
async fn a_signed_in_request_never_reuses() {
    let bff = Bff::default();
    bff.set("42", demo_event("42", "The Midnight Orchestra"));
    let url = bff.serve().await;
    let site = demo_site(&url, 64);
    let gateway = Signer::generate();
    let running = site
        .start_with_identity(Some(Arc::new(Verifier::fixed(&gateway.jwks(), "renderer"))))
        .await
        .expect("site starts");

    let signed_in = |n: usize| {
        let id = format!("req-{n}");
        let assertion = gateway.sign(&alice(), &id, &["renderer"]).expect("sign");
        (id, assertion)
    };
    // Signed in, twice: rendered both times, nothing kept.
    for n in 0..2 {
        let (id, assertion) = signed_in(n);
        let page = running
            .get_with(
                "/events/42",
                &[(HEADER, assertion.as_str()), ("x-request-id", id.as_str())],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.header("cache-control").contains("private"));
        assert_eq!(reused(&page), 0, "signed-in request {n}");
    }
    assert_eq!(status(&running).await["entries"], 0);

    // Anonymous: kept, then reused...
    assert_eq!(reused(&running.get("/events/42").await), 0);
    assert_eq!(reused(&running.get("/events/42").await), 6);
    // ...but never for a signed-in request, though the same inputs are in the cache.
    let (id, assertion) = signed_in(9);
    let page = running
        .get_with(
            "/events/42",
            &[(HEADER, assertion.as_str()), ("x-request-id", id.as_str())],
        )
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(reused(&page), 0);
    assert_eq!(status(&running).await["reused"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_within_its_bound_with_many_distinct_inputs() {
    let site = TestSite::new(&[]);
    site.install(&["bench-part"]);
    site.page(
        "part.toml",
        "route = \"/part\"\nlayout = \"test.html\"\nteam = \"t\"\ncache = { class = \"public\" }\n[[slots]]\nname = \"part\"\ncomponent = \"bench-part\"\nprops = { topic = \"part-1\" }\n",
    );
    set_render_cache(&site, 1);
    let running = site.start().await.expect("site starts");

    // Each distinct input keeps ~2 × 20 KB (its fragment, and the topic it was
    // rendered from): 400 of them are ~16 MB, sixteen times the bound.
    let part = |i: usize| {
        let items: Vec<serde_json::Value> = (0..100)
            .map(|j| {
                serde_json::json!({
                    "name": format!("offer {i}-{j}"),
                    "href": format!("/o/{i}/{j}"),
                    "price": "EUR 10.00",
                    "note": "x".repeat(120),
                })
            })
            .collect();
        serde_json::json!({ "title": format!("part {i}"), "items": items }).to_string()
    };
    let headers = http::HeaderMap::new();
    let mut max_seen = 0;
    for i in 0..400 {
        let data = part(i);
        let page = running
            .renderer
            .render_with_data("/part", None, &headers, &[("part-1", &data)])
            .await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains(&format!("offer {i}-99")));
        if i % 50 == 49 {
            let stats = running.renderer.render_cache().stats();
            assert!(
                stats.weighted_bytes <= stats.max_bytes,
                "after {i}: {stats:?}"
            );
            max_seen = max_seen.max(stats.weighted_bytes);
        }
    }
    let stats = status(&running).await;
    println!("render cache after 400 distinct inputs: {stats}");
    assert_eq!(stats["max_bytes"], 1 << 20, "{stats}");
    assert!(stats["weighted_bytes"].as_u64() <= Some(1 << 20), "{stats}");
    let entries = stats["entries"].as_u64().expect("entries");
    assert!(
        (5..100).contains(&entries),
        "some kept, most evicted: {stats}"
    );
    assert!(max_seen > 512 << 10, "the cache was used: {max_seen}");
}

/// When a request started, and which hello version answered it.
type Answered = (Instant, Option<&'static str>);

/// Requests `/` on `workers` loops until stopped; records when each request started
/// and which hello version answered.
struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<Mutex<Vec<Answered>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, workers: usize) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::new();
        let tasks = (0..workers)
            .map(|_| {
                let (stop, seen, client, url) =
                    (stop.clone(), seen.clone(), client.clone(), url.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let version = match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => r
                                .text()
                                .await
                                .ok()
                                .as_deref()
                                .and_then(registry_channels::slot_version),
                            _ => None,
                        };
                        seen.lock().expect("seen").push((started, version));
                    }
                })
            })
            .collect();
        Load { stop, seen, tasks }
    }

    /// Versions answered to requests that started after `since`.
    fn answered_since(&self, since: Instant) -> Vec<Option<&'static str>> {
        let seen = self.seen.lock().expect("seen");
        seen.iter()
            .filter(|(t, _)| *t > since)
            .map(|(_, v)| *v)
            .collect()
    }

    async fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        self.seen.lock().expect("seen").len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_or_rollback_under_load_never_serves_the_old_fragment() {
    let site = TestSite::new(&[]);
    // A public page: a page without a class is personal, and never reused.
    site.page(
        "hello.toml",
        "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\ncache = { class = \"public\" }\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n",
    );
    let store = tempfile::tempdir().expect("registry dir");
    let location = store.path().to_str().expect("utf-8").to_string();
    let registry = Registry::open(&location).expect("registry");
    registry
        .deploy(
            &registry_channels::hello("hello-v1", "1.0.0"),
            Target::Stable,
            "test",
        )
        .await
        .expect("deploy v1");
    let running = registry_channels::start(&site, Registry::open(&location).expect("registry"))
        .await
        .expect("renderer starts from the registry");
    // No watcher: the test swaps, so it knows when the swap is done.
    let load = Load::start(running.url("/"), 6);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reused_v1 = status(&running).await["reused"].as_u64().expect("count");
    assert!(reused_v1 > 10, "v1 was reused under load: {reused_v1}");

    let mut swaps = Vec::new();
    // (step, what is deployed (`None`: a rollback), the version then served)
    let steps = [
        ("deploy", Some(("hello-v2", "2.0.0")), "v2"),
        ("rollback", None, "v1"),
        // v1's bytes again, as a new version: the same hash, another load.
        ("redeploy", Some(("hello-v1", "3.0.0")), "v1"),
        ("deploy", Some(("hello-v2", "4.0.0")), "v2"),
    ];
    for (step, deploy, expect) in steps {
        match deploy {
            Some((crate_name, version)) => registry
                .deploy(
                    &registry_channels::hello(crate_name, version),
                    Target::Stable,
                    "test",
                )
                .await
                .map(|_| ()),
            None => registry
                .rollback("hello", Channel::Stable, None, "test")
                .await
                .map(|_| ()),
        }
        .expect(step);
        let before = status(&running).await["reused"].as_u64().expect("count");
        assert!(
            running.renderer.reload_if_changed().await.expect(step),
            "{step} swapped"
        );
        let swapped = Instant::now();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let answered = load.answered_since(swapped);
        assert!(
            answered.len() > 20,
            "{step}: load went on ({})",
            answered.len()
        );
        let wrong: Vec<_> = answered.iter().filter(|v| **v != Some(expect)).collect();
        assert!(
            wrong.is_empty(),
            "{step}: {} of {} requests started after the swap got another version than {expect} (first: {:?})",
            wrong.len(),
            answered.len(),
            &wrong[..wrong.len().min(5)]
        );
        let after = status(&running).await["reused"].as_u64().expect("count");
        assert!(after > before + 10, "{step}: {expect} is reused too");
        swaps.push((step, answered.len()));
    }
    let requests = load.stop().await;
    println!("render cache across deploy/rollback under load: {requests} requests, {swaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_page_never_reuses() {
    let site = TestSite::new(&[]);
    site.page(
        "hello.toml",
        "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\ncache = { class = \"public\" }\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n",
    );
    let store = tempfile::tempdir().expect("registry dir");
    let location = store.path().to_str().expect("utf-8").to_string();
    let registry = Registry::open(&location).expect("registry");
    registry
        .deploy(
            &registry_channels::hello("hello-v1", "1.0.0"),
            Target::Stable,
            "test",
        )
        .await
        .expect("deploy v1");
    registry
        .deploy(
            &registry_channels::hello("hello-v2", "1.1.0"),
            Target::Canary { percent: 50 },
            "test",
        )
        .await
        .expect("deploy canary");
    let running = registry_channels::start(&site, Registry::open(&location).expect("registry"))
        .await
        .expect("renderer starts");
    let (mut canary, mut stable_reused) = (0, 0);
    for _ in 0..200 {
        let page = running.get("/").await;
        assert_eq!(page.status, 200);
        match page.header("oberon-channel") {
            "canary" => {
                assert_eq!(page.slot("hello"), "<p>hello v2</p>");
                assert_eq!(reused(&page), 0, "a canary page renders every slot");
                canary += 1;
            }
            _ => {
                assert_eq!(page.slot("hello"), "<p>hello v1</p>");
                stable_reused += reused(&page);
            }
        }
    }
    assert!(canary > 20, "the canary answered ({canary})");
    assert!(
        stable_reused > 20,
        "stable pages were reused ({stable_reused})"
    );
    assert_eq!(
        status(&running).await["reused"],
        stable_reused,
        "only stable pages reused"
    );
}
