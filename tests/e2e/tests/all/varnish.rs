//! The caching contract end to end: Debian's Varnish running `infra/cdn/varnish/oberon.vcl`
//! in front of the gateway and the renderer, all real, on loopback.
//!
//! Figures (hit ratio, origin request rates, availability) are printed; run with
//! `cargo test -p oberon-e2e-tests --test all varnish:: -- --nocapture` to see them.

use std::time::{Duration, Instant};

use oberon_e2e_tests::exclusive;
use oberon_e2e_tests::load::{self, Bound};
use oberon_e2e_tests::origin::{Origin, SiteSettings, client, get, install};
use oberon_e2e_tests::varnish::{Varnish, reserve_port};
use oberon_renderer::cache::Mode;

/// Varnish in front of a fresh origin whose renderer purges that Varnish.
async fn stack(mut settings: SiteSettings) -> (Varnish, Origin) {
    let port = reserve_port();
    settings.purge = vec![format!("http://127.0.0.1:{port}/")];
    let origin = Origin::start(settings).await;
    let varnish = Varnish::start(port, origin.gateway_addr, &origin.origin_secret);
    (varnish, origin)
}

fn event_urls(varnish: &Varnish, ids: std::ops::Range<u32>) -> Vec<String> {
    ids.map(|id| varnish.url(&format!("/events/{id}")))
        .collect()
}

/// Poll `check` every 50 ms until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_are_served_by_the_cdn_over_a_burst() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();

    // What browsers get: the page, a conservative Cache-Control, none of the CDN's
    // own fields, and whether it came from the cache.
    let first = get(&client, &varnish.url("/events/1"), &[]).await;
    assert_eq!(first.status, 200, "{}", varnish.log());
    assert!(first.body.contains("<h1>Event 1</h1>"), "{}", first.body);
    assert_eq!(first.cache(), "MISS");
    assert_eq!(first.header("cache-control"), "max-age=0, must-revalidate");
    for stripped in [
        "cdn-cache-control",
        "surrogate-control",
        "surrogate-key",
        "cache-tag",
    ] {
        assert_eq!(first.header(stripped), "", "{stripped} reached the browser");
    }
    let again = get(&client, &varnish.url("/events/1"), &[]).await;
    assert_eq!(again.cache(), "HIT");
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), first.header("etag"));

    // The burst: 2,000 requests from 16 clients over 20 event pages, none cached yet
    // but /events/1.
    let urls = event_urls(&varnish, 1..21);
    let before = origin.counter.get();
    let tally = load::run(&urls, 16, Bound::Requests(2000)).await;
    let reached = origin.counter.get() - before;
    let hit_ratio = 1.0 - reached as f64 / tally.sent as f64;
    println!(
        "offload: {} requests in {:.2?} ({:.0}/s) from 16 clients over 20 public pages; \
         {reached} reached the origin; CDN hit ratio {:.2}%; X-Cache {:?}",
        tally.sent,
        tally.elapsed,
        tally.sent as f64 / tally.elapsed.as_secs_f64(),
        hit_ratio * 100.0,
        tally.by_cache,
    );
    assert_eq!(tally.sent, 2000);
    assert_eq!(tally.ok(), 2000, "every request answered 200: {tally:?}");
    // Each page was rendered once (the CDN coalesces concurrent misses); nothing
    // expired within its 60 s TTL.
    assert!(
        reached <= 19 + 2,
        "{reached} origin requests for 19 new pages"
    );
    assert!(hit_ratio >= 0.98, "hit ratio {hit_ratio}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_only_through_the_cdn() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();
    let direct = format!("http://{}", origin.gateway_addr);

    let around = get(&client, &format!("{direct}/events/1"), &[]).await;
    assert_eq!(around.status, 403, "the gateway answered around the CDN");
    let forged = get(
        &client,
        &format!("{direct}/events/1"),
        &[("x-origin-verify", "guessed-guessed-guessed-guessed-guessed")],
    )
    .await;
    assert_eq!(forged.status, 403);
    // Probes need no secret: the CDN's own, and the orchestrator's.
    let ready = get(&client, &format!("{direct}/_gateway/readyz"), &[]).await;
    assert_eq!(ready.status, 200);

    // Through the CDN, whatever the client claims, the CDN's secret is what arrives.
    let through = get(
        &client,
        &varnish.url("/events/1"),
        &[("x-origin-verify", "guessed-guessed-guessed-guessed-guessed")],
    )
    .await;
    assert_eq!(through.status, 200, "{}", through.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_pages_are_never_served_from_the_cdn() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();
    let alice = format!("Bearer {}", origin.token("alice"));
    let bob = format!("Bearer {}", origin.token("bob"));

    let before = origin.counter.get();
    let as_alice = get(
        &client,
        &varnish.url("/account"),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(as_alice.status, 200, "{}", as_alice.body);
    assert!(
        as_alice
            .body
            .contains("Signed in as <span data-oberon-user>alice</span>"),
        "{}",
        as_alice.body
    );
    assert_eq!(as_alice.cache(), "PASS");
    assert_eq!(as_alice.header("cache-control"), "private, no-store");

    let as_bob = get(
        &client,
        &varnish.url("/account"),
        &[("authorization", &bob)],
    )
    .await;
    assert_eq!(as_bob.status, 200);
    assert!(
        as_bob.body.contains("data-oberon-user>bob<"),
        "{}",
        as_bob.body
    );
    assert!(
        !as_bob.body.contains("alice"),
        "bob was served alice's page"
    );
    assert_eq!(as_bob.cache(), "PASS");

    let anonymous = get(&client, &varnish.url("/account"), &[]).await;
    assert_ne!(
        anonymous.status, 200,
        "an anonymous request got an account page"
    );
    assert!(!anonymous.body.contains("alice") && !anonymous.body.contains("bob"));

    // Alice again: still rendered for her, not served from a copy.
    let alice_again = get(
        &client,
        &varnish.url("/account"),
        &[("authorization", &alice)],
    )
    .await;
    assert!(alice_again.body.contains("data-oberon-user>alice<"));
    assert_eq!(alice_again.cache(), "PASS");
    assert_eq!(
        origin.counter.get() - before,
        4,
        "every personal request reached the origin"
    );

    // A public page asked for with credentials or a cookie is passed, not stored: the
    // next anonymous request is a miss, not the signed-in user's copy.
    for credentials in [("authorization", alice.as_str()), ("cookie", "theme=dark")] {
        let signed_in = get(&client, &varnish.url("/events/7"), &[credentials]).await;
        assert_eq!(signed_in.status, 200);
        assert_eq!(signed_in.cache(), "PASS", "{credentials:?}");
    }
    let anonymous = get(&client, &varnish.url("/events/7"), &[]).await;
    assert_eq!(anonymous.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_public_pages_are_answered_while_the_origin_is_down() {
    let _one = exclusive().await;
    // A 1 s TTL and 1 s of stale-while-revalidate, so that the outage outlives both
    // and only stale-if-error keeps the pages up.
    let (varnish, mut origin) = stack(SiteSettings {
        event_ttl_s: 1,
        ..SiteSettings::default()
    })
    .await;
    let client = client();
    let urls = event_urls(&varnish, 1..6);
    for url in &urls {
        let page = get(&client, url, &[]).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }

    origin.kill().await;
    let down_at = Instant::now();
    let outage = Duration::from_secs(6);
    let mut answered = 0u64;
    let mut ok = 0u64;
    let mut by_cache = std::collections::BTreeMap::<String, u64>::new();
    while down_at.elapsed() < outage {
        for (i, url) in urls.iter().enumerate() {
            let page = get(&client, url, &[]).await;
            answered += 1;
            if page.status == 200 && page.body.contains(&format!("<h1>Event {}</h1>", i + 1)) {
                ok += 1;
            } else {
                panic!(
                    "{url} answered {} ({}) {:.1?} into the outage:\n{}",
                    page.status,
                    page.cache(),
                    down_at.elapsed(),
                    page.body
                );
            }
            *by_cache.entry(page.cache().to_string()).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "origin outage of {outage:?}: {ok}/{answered} requests for cached pages answered 200 \
         ({:.1}% available); X-Cache {by_cache:?}",
        ok as f64 * 100.0 / answered as f64
    );
    assert!(
        by_cache.get("STALE-IF-ERROR").copied().unwrap_or(0) > 0,
        "the outage outlived TTL and stale-while-revalidate, so stale-if-error served: {by_cache:?}"
    );
    // A page nobody asked for before the outage has no copy to serve.
    let uncached = get(&client, &varnish.url("/events/99"), &[]).await;
    assert_eq!(uncached.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_by_key_makes_the_next_request_a_miss() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();
    for path in ["/events/1", "/about"] {
        assert_eq!(get(&client, &varnish.url(path), &[]).await.cache(), "MISS");
        assert_eq!(get(&client, &varnish.url(path), &[]).await.cache(), "HIT");
    }

    let purge = |keys: &'static str| {
        client
            .request(
                reqwest::Method::from_bytes(b"PURGE").expect("method"),
                varnish.url("/"),
            )
            .header("surrogate-key", keys)
            .send()
    };
    let purged = purge("team:events").await.expect("PURGE");
    assert_eq!(purged.status(), 200);
    let invalid = purge("team:events\"; obj.status ~ .").await.expect("PURGE");
    assert_eq!(invalid.status(), 400, "keys are validated");

    let before = origin.counter.get();
    let events = get(&client, &varnish.url("/events/1"), &[]).await;
    assert_eq!(events.cache(), "MISS", "the purged page is fetched again");
    assert_eq!(origin.counter.get() - before, 1);
    let about = get(&client, &varnish.url("/about"), &[]).await;
    assert_eq!(about.cache(), "HIT", "a page without the key stays cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_a_component_purges_the_pages_made_with_the_old_version() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();
    let url = varnish.url("/hello");
    assert!(get(&client, &url, &[]).await.body.contains("hello v1"));
    let cached = get(&client, &url, &[]).await;
    assert_eq!(cached.cache(), "HIT");
    assert!(cached.body.contains("hello v1"));

    // The page's TTL is 60 s; the new version shows as soon as the renderer has
    // swapped it in and purged the old version's key.
    install(&origin.site_dir().join("components"), "hello", "hello-v2");
    let deployed = Instant::now();
    let shown = eventually(Duration::from_secs(5), || async {
        get(&client, &url, &[]).await.body.contains("hello v2")
    })
    .await;
    assert!(
        shown,
        "hello v2 not served by the CDN within 5 s of its deploy"
    );
    println!(
        "deploy: the CDN served the new version {:.2?} after the deploy",
        deployed.elapsed()
    );
    assert_eq!(get(&client, &url, &[]).await.cache(), "HIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_incident_mode_purges_what_it_cached_for_longer() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();
    let debug = [("x-oberon-debug", "1")];
    origin.set_mode(Some(Mode::Incident)).await;
    let incident = get(&client, &varnish.url("/about"), &debug).await;
    assert_eq!(incident.cache(), "MISS");
    assert!(
        incident
            .header("cdn-cache-control")
            .starts_with("max-age=300,"),
        "{:?}",
        incident.headers
    );
    assert!(incident.header("surrogate-key").contains("mode:incident"));
    assert_eq!(
        get(&client, &varnish.url("/about"), &debug).await.cache(),
        "HIT"
    );

    origin.set_mode(None).await;
    assert_eq!(origin.renderer.mode().current(), Mode::Normal);
    let refreshed = eventually(Duration::from_secs(3), || async {
        get(&client, &varnish.url("/about"), &debug)
            .await
            .header("cdn-cache-control")
            .starts_with("max-age=60,")
    })
    .await;
    assert!(
        refreshed,
        "the page cached for 300 s in incident was not purged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_raises_incident_which_lengthens_the_cdn_ttl_and_cuts_origin_requests() {
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings {
        event_ttl_s: 1,
        // Above the 10 pages' refreshes, which come due together.
        max_concurrent_renders: 16,
        ..SiteSettings::default()
    })
    .await;
    let client = client();
    let debug = [("x-oberon-debug", "1")];
    let urls = event_urls(&varnish, 1..11);
    let workers = 8;
    let measure = Duration::from_secs(4);

    // Normal: the same load as later, measured at the origin.
    for url in &urls {
        assert_eq!(get(&client, url, &[]).await.status, 200);
    }
    let before = origin.counter.get();
    let normal = load::run(&urls, workers, Bound::Duration(measure)).await;
    let normal_rate = (origin.counter.get() - before) as f64 / normal.elapsed.as_secs_f64();
    assert_eq!(origin.renderer.mode().current(), Mode::Normal);
    let ttl_normal = get(&client, &urls[0], &debug).await;
    assert!(
        ttl_normal
            .header("cdn-cache-control")
            .starts_with("max-age=1,"),
        "{:?}",
        ttl_normal.headers
    );

    // Injected overload: the backend slows to 300 ms and 64 new pages are asked for
    // at once; past 16 renders in flight the renderer sheds.
    origin
        .backend
        .delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let burst = event_urls(&varnish, 1000..1064);
    let overload = load::run(&burst, 64, Bound::Requests(64)).await;
    origin
        .backend
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let shed = overload.by_status.get(&503).copied().unwrap_or(0);
    assert!(shed > 0, "nothing was shed: {overload:?}");
    let raised = eventually(Duration::from_secs(2), || async {
        origin.renderer.mode().current() == Mode::Incident
    })
    .await;
    assert!(raised, "shedding did not raise incident");

    // Incident: the pages cached for 1 s are refreshed, now for 300 s; then the same
    // load as before.
    load::run(&urls, workers, Bound::Duration(Duration::from_secs(3))).await;
    let before = origin.counter.get();
    let incident = load::run(&urls, workers, Bound::Duration(measure)).await;
    let incident_rate = (origin.counter.get() - before) as f64 / incident.elapsed.as_secs_f64();
    assert_eq!(origin.renderer.mode().current(), Mode::Incident);
    // The event page is volatile (its ticket picker says so: seats sell), so incident
    // lengthens its 1 s TTL to the volatile ceiling of 60 s; a public page gets 300 s.
    let ttl_incident = get(&client, &urls[0], &debug).await;
    assert!(
        ttl_incident
            .header("cdn-cache-control")
            .starts_with("max-age=60,"),
        "{:?}",
        ttl_incident.headers
    );
    let public = get(&client, &varnish.url("/about"), &debug).await;
    assert!(
        public
            .header("cdn-cache-control")
            .starts_with("max-age=300,"),
        "{:?}",
        public.headers
    );

    println!(
        "mode: same load ({workers} clients, 10 event pages with a 1 s TTL, {:?}): \
         normal {} requests at {:.0}/s, origin {normal_rate:.1} requests/s; \
         overload burst of 64 new pages: {shed} shed (503); \
         incident {} requests at {:.0}/s, origin {incident_rate:.1} requests/s; \
         CDN policy {:?} -> {:?}",
        measure,
        normal.sent,
        normal.sent as f64 / normal.elapsed.as_secs_f64(),
        incident.sent,
        incident.sent as f64 / incident.elapsed.as_secs_f64(),
        ttl_normal.header("cdn-cache-control"),
        ttl_incident.header("cdn-cache-control"),
    );
    assert_eq!(normal.ok(), normal.sent, "{normal:?}");
    assert_eq!(incident.ok(), incident.sent, "{incident:?}");
    assert!(
        normal_rate >= 3.0,
        "10 pages with a 1 s TTL should reach the origin several times a second: {normal_rate}"
    );
    assert!(
        incident_rate * 5.0 <= normal_rate,
        "incident cut origin requests from {normal_rate:.1}/s only to {incident_rate:.1}/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_page_passes_through_the_cdn_before_its_slow_part() {
    let _lock = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    origin
        .backend
        .delay_ms
        .store(800, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let mut response = client()
        .get(varnish.url("/tonight/7"))
        .send()
        .await
        .expect("request");
    let head_after = started.elapsed();
    assert_eq!(response.status(), 200);
    let first = response
        .chunk()
        .await
        .expect("body")
        .expect("a first chunk");
    let first_after = started.elapsed();
    let first = String::from_utf8_lossy(&first).into_owned();
    let mut body = first.clone();
    while let Some(chunk) = response.chunk().await.expect("body") {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let done_after = started.elapsed();
    println!(
        "through Varnish, a page with an 800 ms data source: head after {head_after:?}, first chunk after {first_after:?}, complete after {done_after:?}"
    );
    assert!(
        first_after < Duration::from_millis(400),
        "the first byte waited {first_after:?} for the slow source"
    );
    assert!(
        first.contains("<footer"),
        "the ready slot came first: {first}"
    );
    assert!(!first.contains("You might also like"), "{first}");
    assert!(
        done_after >= Duration::from_millis(790),
        "complete after {done_after:?}"
    );
    assert!(
        body.contains("You might also like"),
        "the slow part, in its place: {body}"
    );
    assert!(body.ends_with("</body></html>"));
}

/// Through the CDN, a page comes gzip-compressed to a client that accepts it (Varnish
/// asks the origin for gzip and keeps that) and as it is to one that does not, both
/// from what Varnish stored, with `Vary: Accept-Encoding` kept for the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_compressed_through_the_cdn_to_clients_that_accept_it() {
    use std::io::Read as _;
    let _one = exclusive().await;
    let (varnish, origin) = stack(SiteSettings::default()).await;
    let client = client();
    let url = varnish.url("/events/5");

    let plain = get(&client, &url, &[]).await;
    assert_eq!(plain.status, 200, "{}", varnish.log());
    assert_eq!(plain.header("content-encoding"), "");
    assert!(plain.body.contains("<h1>Event 5</h1>"), "{}", plain.body);
    assert!(
        plain.header("vary").contains("Accept-Encoding"),
        "{:?}",
        plain.headers
    );

    let zipped = client
        .get(&url)
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(zipped.status(), 200);
    let headers = zipped.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip", "{headers:?}");
    let body = zipped.bytes().await.expect("body");
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut decoded)
        .expect("gzip");
    assert_eq!(decoded, plain.body);
    assert!(
        body.len() * 4 < decoded.len() * 3,
        "{} of {}",
        body.len(),
        decoded.len()
    );
    let again = get(&client, &url, &[]).await;
    assert_eq!(again.cache(), "HIT");
    assert_eq!(again.body, plain.body);
    println!(
        "through Varnish: {} bytes gzip for {} plain; {} request(s) reached the origin for three answers",
        body.len(),
        decoded.len(),
        origin.counter.get()
    );
}
