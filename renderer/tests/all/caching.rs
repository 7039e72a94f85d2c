//! The caching contract over HTTP: the headers a page carries, validators and 304s,
//! what makes a page personal, the operator's mode, and load shedding.

use std::time::Duration;

use axum::Router;
use axum::routing::get;

use oberon_renderer::{Renderer, RendererOptions};

use crate::support::{ADMIN_TOKEN, TestSite, backend};

const CHAIN_PAGE: &str = r#"
route = "/chain"
layout = "test.html"
team = "numbers"
cache = { class = "public", ttl_s = 120 }
[[slots]]
name = "source"
component = "chain-source"
props = { n = 2 }
"#;

fn hash_of(running: &crate::support::Running, name: &str) -> String {
    running
        .renderer
        .site()
        .components
        .get(name)
        .expect("component")
        .hash
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_page_says_how_the_cdn_may_keep_it_and_revalidates_with_its_etag() {
    let site = TestSite::new(&[]);
    site.install(&["chain-source"]);
    site.page("chain.toml", CHAIN_PAGE);
    let running = site.start().await.expect("site starts");
    let hash = hash_of(&running, "chain-source");

    let page = running.get("/chain").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), "max-age=0, must-revalidate");
    let cdn = "max-age=120, stale-while-revalidate=120, stale-if-error=86400";
    assert_eq!(page.header("cdn-cache-control"), cdn);
    assert_eq!(page.header("surrogate-control"), cdn);
    assert_eq!(
        page.header("vary"),
        "Cookie, Authorization, Accept-Encoding"
    );
    let keys = format!(
        "oberon route:/chain team:numbers component:chain-source component:chain-source@{hash} mode:normal"
    );
    assert_eq!(page.header("surrogate-key"), keys);
    assert_eq!(page.header("cache-tag"), keys.replace(' ', ","));
    let etag = page.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

    // The same page again: same validator; a matching If-None-Match gets a bodiless 304
    // with the same caching headers.
    let again = running
        .get_with("/chain", &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.body, "");
    assert_eq!(again.header("etag"), etag);
    assert_eq!(again.header("cdn-cache-control"), cdn);
    let weak = format!("\"other\", W/{etag}");
    assert_eq!(
        running
            .get_with("/chain", &[("if-none-match", &weak)])
            .await
            .status,
        304
    );
    assert_eq!(
        running
            .get_with("/chain", &[("if-none-match", "\"other\"")])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_and_private_data_make_a_page_personal() {
    // A BFF whose answer is for this request alone.
    let app = Router::new().route(
        "/me",
        get(|| async { ([("cache-control", "private, max-age=60")], axum::Json(5)) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let me = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let site = TestSite::new(&[("me", me), ("api", backend().await)]);
    site.install(&["chain-source", "chain-sink"]);
    site.page("chain.toml", CHAIN_PAGE);
    site.page(
        "mine.toml",
        r#"
route = "/mine"
layout = "test.html"
team = "t"
cache = { class = "public", ttl_s = 120 }
[[data]]
topic = "n2"
url = "{bff.me}/me"
[[slots]]
name = "sink"
component = "chain-sink"
# Critical, so the headers wait for the private answer: a page streamed before it
# would have promised a shared page, and the answer would be dropped instead.
critical = true
"#,
    );
    let running = site.start().await.expect("site starts");

    let with_cookie = running.get_with("/chain", &[("cookie", "s=1")]).await;
    let private_data = running.get("/mine").await;
    for page in [&with_cookie, &private_data] {
        assert_eq!(page.status, 200);
        assert_eq!(page.header("cache-control"), "private, no-store");
        for absent in [
            "cdn-cache-control",
            "surrogate-control",
            "surrogate-key",
            "vary",
        ] {
            assert_eq!(page.header(absent), "", "{absent}");
        }
        assert!(!page.header("etag").is_empty());
    }
    assert_eq!(private_data.slot("sink"), "<p>sink n=absent n2=5</p>");
}

/// The admin token sets how every page is cached: one short enough to guess stops the
/// renderer at start, with the fix (issue 18); an empty one leaves the endpoint shut.
#[tokio::test]
async fn a_short_admin_token_stops_the_renderer_at_start() {
    let site = TestSite::new(&[]);
    let start = |token: &str| {
        Renderer::start(RendererOptions {
            site_dir: site.path().to_path_buf(),
            components_dir: None,
            bffs: Default::default(),
            data_client: None,
            identity: None,
            admin_token: Some(token.to_string()),
            code_cache: None,
        })
    };
    let Err(e) = start("hunter2").await else {
        panic!("a 7-character admin token was accepted");
    };
    assert_eq!(
        e.to_string(),
        "the admin token (OBERON_ADMIN_TOKEN) is 7 characters, fewer than 32\n  help: generate one with `openssl rand -hex 32`"
    );
    let shut = start("").await.expect("an empty token: no admin endpoint");
    assert!(!shut.is_admin(""));
    let open = start(ADMIN_TOKEN).await.expect("a long token");
    assert!(open.is_admin(ADMIN_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_raises_the_mode_with_the_admin_token_and_pages_follow() {
    let site = TestSite::new(&[]);
    site.install(&["chain-source"]);
    site.page("chain.toml", CHAIN_PAGE);
    let running = site.start().await.expect("site starts");
    let set = |token: Option<&'static str>, body: &'static str| {
        let mut request = running
            .client
            .post(running.url("/_oberon/mode"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("post");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    };

    assert_eq!(set(None, r#"{"mode":"incident"}"#).await.0, 401);
    assert_eq!(set(Some("wrong"), r#"{"mode":"incident"}"#).await.0, 401);
    assert_eq!(set(Some(ADMIN_TOKEN), r#"{"mode":"panic"}"#).await.0, 400);
    assert_eq!(
        set(Some(ADMIN_TOKEN), r#"{"mood":"incident"}"#).await.0,
        400
    );
    let (status, body) = set(Some(ADMIN_TOKEN), r#"{"mode":"incident"}"#).await;
    assert_eq!(status, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (status["mode"].as_str(), status["operator"].as_str()),
        (Some("incident"), Some("incident"))
    );

    // In incident, the public page is cached 300 s at the CDN, and tagged so.
    let page = running.get("/chain").await;
    assert_eq!(
        page.header("cdn-cache-control"),
        "max-age=300, stale-while-revalidate=300, stale-if-error=86400"
    );
    assert!(page.header("surrogate-key").ends_with(" mode:incident"));

    let (status, _) = set(Some(ADMIN_TOKEN), r#"{"mode":"auto"}"#).await;
    assert_eq!(status, 200);
    let page = running.get("/chain").await;
    assert!(page.header("cdn-cache-control").starts_with("max-age=120,"));
    let shown = running.get("/_oberon/mode").await;
    assert_eq!(shown.header("cache-control"), "no-store");
    assert!(shown.body.contains("\"mode\":\"normal\""), "{}", shown.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_render_limit_requests_are_shed_at_once_and_the_mode_rises() {
    let site = TestSite::new(&[("api", backend().await)]);
    let config = site.path().join("site.toml");
    let toml = std::fs::read_to_string(&config).expect("site.toml");
    std::fs::write(
        &config,
        toml.replace(
            "max_instances = 32\n",
            "max_instances = 32\nmax_concurrent_renders = 1\n",
        ),
    )
    .expect("site.toml");
    site.install(&["chain-sink"]);
    // Each render waits 300 ms on a slow data source, holding the one place.
    site.page(
        "slow.toml",
        r#"
route = "/slow"
layout = "test.html"
team = "t"
cache = { class = "public" }
[[data]]
topic = "n"
url = "{bff.api}/slow"
deadline_ms = 300
[[slots]]
name = "sink"
component = "chain-sink"
"#,
    );
    let running = site.start().await.expect("site starts");
    let (first, second) = tokio::join!(running.get("/slow"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.get("/slow").await
    });
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), "1");
    assert_eq!(second.header("cache-control"), "no-store");
    assert!(
        second.elapsed < Duration::from_millis(100),
        "shed at once, not queued: {:?}",
        second.elapsed
    );

    // Shedding raises the mode to incident at the next look (every 250 ms).
    let mut mode = String::new();
    for _ in 0..20 {
        mode = running.get("/_oberon/mode").await.body;
        if mode.contains("\"mode\":\"incident\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(mode.contains("\"mode\":\"incident\""), "{mode}");
    assert!(mode.contains("\"automatic\":\"incident\""), "{mode}");
}
