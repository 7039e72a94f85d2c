//! Streaming: a page whose data is still outstanding once its critical slots have
//! rendered leaves at once — status and headers, the head, the layout up to the first
//! slot that is not ready — and the rest follows in order as it renders. The status is
//! decided by the critical slots; a late answer less cacheable than the headers promised
//! is dropped; without JavaScript the page is whole and in order.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;

use crate::support::{Running, TestSite};

/// A BFF whose answers come after a delay: `/late/{ms}/{n}` (public) and
/// `/private/{ms}/{n}` (`private`), both the JSON number `n`.
async fn slow_bff() -> String {
    async fn wait(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let app = Router::new()
        .route(
            "/late/{ms}/{n}",
            get(
                |axum::extract::Path((ms, n)): axum::extract::Path<(u64, i64)>| async move {
                    wait(ms).await;
                    ([("cache-control", "public, max-age=60")], axum::Json(n))
                },
            ),
        )
        .route(
            "/private/{ms}/{n}",
            get(
                |axum::extract::Path((ms, n)): axum::extract::Path<(u64, i64)>| async move {
                    wait(ms).await;
                    ([("cache-control", "private, max-age=60")], axum::Json(n))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A page: `hello` (v1) first (needs no data), then `chain-sink` showing `n` (from `url`)
/// and `n2` (4, at once); `critical` marks the sink critical.
fn page(name: &str, url: &str, critical: bool) -> String {
    format!(
        r#"
route = "/{name}"
layout = "test.html"
team = "t"
[cache]
class = "public"
ttl_s = 120
[[data]]
topic = "n"
url = "{url}"
deadline_ms = 1000
[[data]]
topic = "n2"
url = "{{bff.api}}/late/0/4"
[[slots]]
name = "hello"
component = "hello"
[[slots]]
name = "sink"
component = "chain-sink"
critical = {critical}
"#
    )
}

async fn site() -> (TestSite, Running) {
    let api = slow_bff().await;
    let site = TestSite::new(&[("api", api)]);
    site.install(&["chain-sink", "misbehave"]);
    site.install_as("hello", "hello-v1");
    site.page("slow.toml", &page("slow", "{bff.api}/late/600/7", false));
    site.page(
        "critical.toml",
        &page("critical", "{bff.api}/late/400/7", true),
    );
    site.page(
        "private.toml",
        &page("private", "{bff.api}/private/300/9", false),
    );
    site.page("fast.toml", &page("fast", "{bff.api}/late/0/7", false));
    // The sink placed twice: once reading only the fast `n2`, once as it is.
    site.page(
        "narrow.toml",
        &page("narrow", "{bff.api}/late/600/7", true).replace(
            "critical = true",
            "critical = true\nreads = [\"n2\"]\n[[slots]]\nname = \"whole\"\ncomponent = \"chain-sink\"",
        ),
    );
    site.page(
        "broken.toml",
        r#"
route = "/broken"
layout = "test.html"
team = "t"
[[data]]
topic = "n"
url = "{bff.api}/late/600/7"
[[slots]]
name = "bad"
component = "misbehave"
critical = true
props = { mode = "trap" }
[[slots]]
name = "sink"
component = "chain-sink"
"#,
    );
    let running = site.start().await.expect("site starts");
    (site, running)
}

/// A response read chunk by chunk: when the head came, and each chunk with its time.
struct Timed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    head_after: Duration,
    chunks: Vec<(Duration, String)>,
}

impl Timed {
    fn body(&self) -> String {
        self.chunks.iter().map(|(_, c)| c.as_str()).collect()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn get_timed(running: &Running, path: &str) -> Timed {
    let started = Instant::now();
    let mut response = running
        .client
        .get(running.url(path))
        .send()
        .await
        .expect("request");
    let head_after = started.elapsed();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("body") {
        chunks.push((
            started.elapsed(),
            String::from_utf8(chunk.to_vec()).expect("utf-8"),
        ));
    }
    Timed {
        status,
        headers,
        head_after,
        chunks,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_byte_does_not_wait_for_a_slow_part() {
    let (_site, running) = site().await;
    // Warm the fast source (that first render streams), so only the slow one is
    // outstanding.
    get_timed(&running, "/fast").await;
    let (before, _) = running.renderer.stream_counts();
    let got = get_timed(&running, "/slow").await;
    assert_eq!(got.status, 200);
    assert!(
        got.head_after < Duration::from_millis(300),
        "the head waited {:?} for a 600 ms source",
        got.head_after
    );
    let (first_at, first) = &got.chunks[0];
    assert!(
        *first_at < Duration::from_millis(300),
        "first chunk at {first_at:?}"
    );
    assert!(first.starts_with("<!doctype html><html><head>"), "{first}");
    assert!(
        first.contains("<div data-slot=\"hello\"><p>hello v1</p></div>"),
        "the ready slot leaves with the head: {first}"
    );
    assert!(
        first.ends_with("<div data-slot=\"sink\">"),
        "the layout up to the waiting slot, not beyond: {first}"
    );
    let (last_at, _) = got.chunks.last().expect("chunks");
    assert!(
        *last_at >= Duration::from_millis(550),
        "the page ended at {last_at:?}"
    );
    // Complete, in order, valid without JavaScript: the late value in its slot.
    let body = got.body();
    assert!(
        body.contains("<div data-slot=\"sink\"><p>sink n=7 n2=4</p></div>"),
        "{body}"
    );
    assert!(body.find("hello v1") < body.find("sink n=7"));
    assert!(body.ends_with("</body></html>"), "{body}");
    assert_eq!(body.matches("<html>").count(), 1);
    assert_eq!(body.matches("<script id=\"oberon-bus-state\"").count(), 1);
    assert!(
        body.contains(r#""n":7"#),
        "the final bus state has the late topic"
    );
    // Decided before the slots: partial at most (a pending slot could still fall back),
    // and no ETag (the body was not known).
    assert_eq!(got.header("cache-control"), "max-age=0, must-revalidate");
    let cdn = got.header("cdn-cache-control");
    let ttl: u32 = cdn
        .strip_prefix("max-age=")
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cdn-cache-control: {cdn}"));
    assert!(ttl <= 30, "{cdn}");
    assert!(got.header("etag").is_empty());
    assert!(got.header("surrogate-key").contains("component:chain-sink"));
    assert_eq!(running.renderer.stream_counts().0, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_data_is_ready_is_sent_whole_with_its_etag() {
    let (_site, running) = site().await;
    get_timed(&running, "/fast").await;
    let (before, _) = running.renderer.stream_counts();
    let got = get_timed(&running, "/fast").await;
    assert_eq!(got.status, 200);
    assert!(!got.header("etag").is_empty());
    assert!(
        got.header("cdn-cache-control").starts_with("max-age=1"),
        "{}",
        got.header("cdn-cache-control")
    );
    assert!(got.body().contains("<p>sink n=7 n2=4</p>"));
    assert_eq!(running.renderer.stream_counts().0, before, "sent whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_slots_decide_the_status_before_any_byte() {
    let (_site, running) = site().await;
    // The critical slot waits for its 400 ms source: so does the head.
    let got = get_timed(&running, "/critical").await;
    assert_eq!(got.status, 200);
    assert!(
        got.head_after >= Duration::from_millis(390),
        "the head left after {:?}, before its critical slot",
        got.head_after
    );
    assert!(got.body().contains("<p>sink n=7 n2=4</p>"));
    // A critical slot that fails makes the page a 503, though a source is still slow.
    let got = get_timed(&running, "/broken").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.header("cache-control"), "no-store");
    assert!(
        got.head_after < Duration::from_millis(500),
        "{:?}",
        got.head_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_private_answer_never_lands_in_a_shared_page() {
    let (_site, running) = site().await;
    get_timed(&running, "/fast").await;
    let (before, _) = running.renderer.stream_counts();
    let got = get_timed(&running, "/private").await;
    assert_eq!(got.status, 200);
    // The headers promised a shared page...
    assert!(!got.header("cdn-cache-control").is_empty());
    // ...so the private answer, coming later, is dropped: its topic absent, its
    // subscriber showing so, and the drop counted.
    let body = got.body();
    assert!(body.contains("<p>sink n=absent n2=4</p>"), "{body}");
    assert!(!body.contains(r#""n":9"#), "{body}");
    assert_eq!(running.renderer.stream_counts(), (before + 1, 1));
    let status = running.get("/_oberon/status").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("json");
    assert_eq!(status["streaming"]["late_data_dropped"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_that_reads_less_waits_for_less() {
    let (_site, running) = site().await;
    get_timed(&running, "/fast").await;
    let got = get_timed(&running, "/narrow").await;
    assert_eq!(got.status, 200);
    // The critical sink reads only `n2`: the head does not wait for `n`'s 600 ms...
    assert!(
        got.head_after < Duration::from_millis(300),
        "{:?}",
        got.head_after
    );
    let (_, first) = &got.chunks[0];
    assert!(
        first.contains("<div data-slot=\"sink\"><p>sink n=absent n2=4</p></div>"),
        "to it `n` is absent, though the page has it: {first}"
    );
    // ...while the sink placed as it is does, and sees it.
    let body = got.body();
    assert!(
        body.contains("<div data-slot=\"whole\"><p>sink n=7 n2=4</p></div>"),
        "{body}"
    );
    assert!(body.contains(r#""n":7"#), "the bus state has every topic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_cannot_read_what_its_component_does_not_subscribe_to() {
    let api = slow_bff().await;
    let site = TestSite::new(&[("api", api)]);
    site.install(&["chain-sink"]);
    site.page(
        "p.toml",
        "route = \"/p\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"sink\"\ncomponent = \"chain-sink\"\nreads = [\"n\", \"other\"]\n",
    );
    let Err(e) = site.start().await else {
        panic!("a slot reading an undeclared topic was accepted");
    };
    let text = e.to_string();
    assert!(
        text.contains("p.toml:7:")
            && text
                .contains(r#"reads ["other"], which component "chain-sink" does not subscribe to"#),
        "{text}"
    );
}
