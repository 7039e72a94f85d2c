//! The renderer's responses, and the CDN's, pass the HTTP linter httplint (the engine of
//! REDbot) without a caching problem: every kind of response the renderer gives — a
//! public page, a revalidation, a personal page, an error, a shed request, an asset,
//! the admin endpoints — exactly as it came off the wire.

use oberon_e2e_tests::exclusive;
use oberon_e2e_tests::lint::{Note, lint, raw_get};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oberon_e2e_tests::origin::{Origin, SiteSettings};
use oberon_e2e_tests::varnish::{Varnish, reserve_port};

/// httplint's verdicts that fail a response: anything `BAD`, and a `WARN` about
/// caching, except those we disagree with on purpose.
fn problems(notes: &[Note]) -> Vec<&Note> {
    notes
        .iter()
        .filter(|n| n.level == "BAD" || (n.level == "WARN" && n.category == "Caching"))
        .filter(|n| !ACCEPTED.iter().any(|(text, _why)| n.text == *text))
        .collect()
}

/// Notes httplint makes that the caching contract keeps on purpose, and why.
const ACCEPTED: &[(&str, &str)] = &[(
    "The no-store cache directive overrides other directives.",
    "personal pages say `private, no-store` (the design's table): no-store alone \
     suffices for RFC 9111 caches, and `private` keeps the page out of shared caches \
     that treat no-store loosely and says to readers why it is not stored",
)];

fn head(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn status(raw: &[u8]) -> u16 {
    head(raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A request to lint the answer of: name, expected status, address, path, headers.
type Case<'a> = (&'a str, u16, SocketAddr, &'a str, &'a [(&'a str, &'a str)]);

/// Lint one response as soon as it came (httplint judges the `Date` against its own
/// clock). The problems found, if any.
fn check(name: &str, expected: u16, raw: &[u8]) -> Option<String> {
    assert_eq!(
        status(raw),
        expected,
        "{name}: unexpected status\n{}",
        head(raw)
    );
    let notes = lint(raw);
    assert!(!notes.is_empty(), "{name}: httplint said nothing");
    let bad = problems(&notes);
    println!(
        "httplint, {name} ({expected}): {} notes, {} problems",
        notes.len(),
        bad.len()
    );
    (!bad.is_empty()).then(|| format!("{name}:\n{}\n{bad:#?}", head(raw)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_renderers_responses_pass_httplint() {
    let _one = exclusive().await;
    let port = reserve_port();
    let origin = Origin::start(SiteSettings {
        max_concurrent_renders: 1,
        purge: vec![format!("http://127.0.0.1:{port}/")],
        ..SiteSettings::default()
    })
    .await;
    let varnish = Varnish::start(port, origin.gateway_addr, &origin.origin_secret);
    let renderer = origin.renderer_addr;
    let mut failures = Vec::new();

    let page = raw_get(renderer, "/events/1", &[]).await;
    failures.extend(check("public page", 200, &page));
    let page = String::from_utf8_lossy(&page).to_string();
    let etag = page
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_string();
    // A client asset the page links, by its content-hashed URL.
    let asset = page
        .split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|s| s.starts_with("/assets/"))
        .unwrap_or_else(|| panic!("no asset script in the page:\n{page}"))
        .to_string();

    let requests: [Case; 9] = [
        (
            "revalidation",
            304,
            renderer,
            "/events/1",
            &[("if-none-match", &etag)],
        ),
        (
            "page for a request with a cookie",
            200,
            renderer,
            "/events/1",
            &[("cookie", "a=1")],
        ),
        ("critical component failed", 503, renderer, "/broken", &[]),
        ("no such page", 404, renderer, "/nowhere", &[]),
        ("asset", 200, renderer, &asset, &[]),
        ("mode, read", 200, renderer, "/_oberon/mode", &[]),
        ("readiness", 200, renderer, "/_oberon/readyz", &[]),
        (
            "public page through the gateway and the CDN",
            200,
            varnish.addr,
            "/events/1",
            &[],
        ),
        (
            "the same, from the CDN's cache",
            200,
            varnish.addr,
            "/events/1",
            &[],
        ),
    ];
    for (name, expected, addr, path, headers) in requests {
        failures.extend(check(name, expected, &raw_get(addr, path, headers).await));
    }

    // Shed: the one render allowed is busy waiting on a slow backend.
    origin.backend.delay_ms.store(1000, Ordering::SeqCst);
    let busy = tokio::spawn(raw_get(renderer, "/events/2", &[]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    failures.extend(check(
        "shed",
        503,
        &raw_get(renderer, "/events/3", &[]).await,
    ));
    assert_eq!(status(&busy.await.expect("slow render")), 200);

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
