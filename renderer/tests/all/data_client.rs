//! The data client against real local BFFs: caching by the BFF's own headers,
//! coalescing, stale-if-error, breakers and retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oberon_renderer::component::Cacheability;
use oberon_renderer::data::DataError;
use oberon_renderer::data_client::{BreakerState, Caller, DataClient, DataClientOptions, Served};

/// What the fake BFF answers next.
#[derive(Clone)]
enum Answer {
    /// `{"n": <request number>}` with this Cache-Control (and extra headers).
    Json(&'static str, Vec<(&'static str, &'static str)>),
    Status(u16),
    /// This JSON text, as it is.
    Text(&'static str),
    Garbage,
    /// 50 MB of JSON, streamed without a length.
    Huge,
}

struct Bff {
    hits: AtomicUsize,
    answer: std::sync::Mutex<Answer>,
    delay: std::sync::Mutex<Duration>,
    /// Answer 503 to this many requests first.
    fail_first: AtomicUsize,
    /// Requests being answered now, and the most seen at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Body bytes handed to the connection so far (for the huge answer).
    sent: Arc<AtomicUsize>,
}

struct Running {
    url: String,
    bff: Arc<Bff>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    fn hits(&self) -> usize {
        self.bff.hits.load(Ordering::SeqCst)
    }
    fn answer(&self, answer: Answer) {
        *self.bff.answer.lock().expect("lock") = answer;
    }
    fn delay(&self, d: Duration) {
        *self.bff.delay.lock().expect("lock") = d;
    }
    /// Stop listening: later requests are refused.
    fn stop(&self) {
        self.server.abort();
    }
}

async fn bff(answer: Answer) -> Running {
    let bff = Arc::new(Bff {
        hits: AtomicUsize::new(0),
        answer: std::sync::Mutex::new(answer),
        delay: std::sync::Mutex::new(Duration::ZERO),
        fail_first: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        sent: Arc::new(AtomicUsize::new(0)),
    });
    async fn handle(State(bff): State<Arc<Bff>>, request: HeaderMap) -> Response {
        let n = bff.hits.fetch_add(1, Ordering::SeqCst) + 1;
        let now = bff.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        bff.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = *bff.delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        bff.in_flight.fetch_sub(1, Ordering::SeqCst);
        if bff
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
        {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let answer = bff.answer.lock().expect("lock").clone();
        match answer {
            Answer::Json(cc, extra) => {
                if request
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v == "\"v1\"")
                    && extra.iter().any(|(k, _)| *k == "etag")
                {
                    return (
                        StatusCode::NOT_MODIFIED,
                        [(header::CACHE_CONTROL, cc), (header::ETAG, "\"v1\"")],
                    )
                        .into_response();
                }
                let mut response = axum::Json(serde_json::json!({ "n": n })).into_response();
                let headers = response.headers_mut();
                headers.insert(header::CACHE_CONTROL, cc.parse().expect("header value"));
                for (k, v) in extra {
                    headers.insert(k, v.parse().expect("header value"));
                }
                response
            }
            Answer::Status(s) => StatusCode::from_u16(s).expect("status").into_response(),
            Answer::Text(body) => {
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Answer::Garbage => {
                ([(header::CONTENT_TYPE, "application/json")], "{\"n\": nope").into_response()
            }
            Answer::Huge => {
                let sent = bff.sent.clone();
                let chunks = std::iter::once(bytes::Bytes::from_static(b"\""))
                    .chain((0..800).map(|_| bytes::Bytes::from(vec![b'x'; 64 << 10])))
                    .chain(std::iter::once(bytes::Bytes::from_static(b"\"")))
                    .inspect(move |chunk| {
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                    })
                    .map(Ok::<_, std::io::Error>);
                axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response()
            }
        }
    }
    let app = Router::new()
        .route("/{*path}", get(handle))
        .with_state(bff.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Running { url, bff, server }
}

fn client() -> DataClient {
    DataClient::new(DataClientOptions {
        breaker_failures: 3,
        breaker_open_for: Duration::from_millis(300),
        ..DataClientOptions::default()
    })
    .expect("client")
}

const DEADLINE: Duration = Duration::from_millis(500);

async fn n(client: &DataClient, url: &str) -> Result<(i64, Served), DataError> {
    let got = client.fetch(url, DEADLINE, "test").await?;
    let v: serde_json::Value = serde_json::from_str(&got.value).expect("json");
    Ok((v["n"].as_i64().expect("n"), got.served))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_entry_is_served_without_a_request() {
    let b = bff(Answer::Json("public, max-age=60", vec![])).await;
    let c = client();
    let url = format!("{}/v1/events/42", b.url);
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Fetched));
    for _ in 0..5 {
        assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Fresh));
    }
    assert_eq!(b.hits(), 1);
    assert_eq!(c.stats().fresh_hits, 5);
    // Another URL is another entry.
    assert_eq!(
        n(&c, &format!("{}/v1/events/43", b.url)).await.unwrap().0,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_and_expired_entries_are_fetched_again_and_etags_revalidate() {
    let b = bff(Answer::Json("no-store", vec![])).await;
    let c = client();
    let url = format!("{}/x", b.url);
    assert_eq!(n(&c, &url).await.unwrap().0, 1);
    assert_eq!(n(&c, &url).await.unwrap().0, 2);

    // max-age=0 with an ETag: every use asks, and a 304 keeps the cached value.
    b.answer(Answer::Json("max-age=0", vec![("etag", "\"v1\"")]));
    let url = format!("{}/etag", b.url);
    assert_eq!(n(&c, &url).await.unwrap(), (3, Served::Fetched));
    assert_eq!(n(&c, &url).await.unwrap(), (3, Served::Revalidated));
    assert_eq!(b.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_for_a_cold_key_make_one_upstream_request() {
    let b = bff(Answer::Json("public, max-age=60", vec![])).await;
    b.delay(Duration::from_millis(150));
    let c = client();
    let url = format!("{}/cold", b.url);
    let all = futures::future::join_all((0..100).map(|_| n(&c, &url))).await;
    assert!(all.iter().all(|r| matches!(r, Ok((1, _)))), "{all:?}");
    assert_eq!(b.hits(), 1);
    assert_eq!(c.stats().coalesced, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_giving_up_does_not_cancel_the_fetch() {
    let b = bff(Answer::Json("public, max-age=60", vec![])).await;
    b.delay(Duration::from_millis(200));
    let c = client();
    let url = format!("{}/slow", b.url);
    // Two waiters share one fetch; the impatient one gives up, the other still gets
    // the value from the same (single) upstream request.
    let (early, patient) = tokio::join!(
        c.fetch(&url, Duration::from_millis(20), "t"),
        c.fetch(&url, Duration::from_millis(1000), "t"),
    );
    assert!(matches!(early, Err(DataError::Timeout(20))), "{early:?}");
    assert_eq!(patient.expect("patient waiter").served, Served::Fetched);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The fetch went on without its waiter and filled the cache.
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Fresh));
    assert_eq!(b.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bff_is_answered_from_the_stale_entry_within_its_window_only() {
    // Fresh for 1 s, then usable for 1 s more if the BFF fails.
    let b = bff(Answer::Json("public, max-age=1, stale-if-error=1", vec![])).await;
    let c = client();
    let url = format!("{}/e", b.url);
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Fetched));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.answer(Answer::Status(503));
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Stale));

    // Connection refused is the same.
    b.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Stale));

    // Past the window the topic is absent.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let late = n(&c, &url).await;
    assert!(late.is_err(), "{late:?}");
    assert!(c.stats().stale_served >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_cookie_setting_responses_are_never_served_to_another_request() {
    let b = bff(Answer::Json("private, max-age=60", vec![])).await;
    let c = client();
    let url = format!("{}/me", b.url);
    assert_eq!(n(&c, &url).await.unwrap().0, 1);
    assert_eq!(n(&c, &url).await.unwrap().0, 2);

    b.answer(Answer::Json(
        "public, max-age=60",
        vec![("set-cookie", "s=1")],
    ));
    let url = format!("{}/cookie", b.url);
    assert_eq!(n(&c, &url).await.unwrap().0, 3);
    assert_eq!(n(&c, &url).await.unwrap().0, 4);

    // Concurrent requests do not share one either: each gets its own answer.
    b.answer(Answer::Json("private, max-age=60", vec![]));
    b.delay(Duration::from_millis(100));
    let url = format!("{}/together", b.url);
    let all = futures::future::join_all((0..10).map(|_| n(&c, &url))).await;
    let mut seen: Vec<i64> = all.into_iter().map(|r| r.unwrap().0).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 10, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_stops_calling_and_closes_after_a_good_probe() {
    let b = bff(Answer::Status(500)).await;
    let c = client();
    for i in 0..3 {
        let r = n(&c, &format!("{}/k{i}", b.url)).await;
        assert!(matches!(r, Err(DataError::Status(500))), "{r:?}");
    }
    assert_eq!(c.breakers()[0].state, BreakerState::Open);
    for i in 0..5 {
        let r = n(&c, &format!("{}/k{i}", b.url)).await;
        assert!(matches!(r, Err(DataError::BreakerOpen)), "{r:?}");
    }
    assert_eq!(b.hits(), 3, "an open breaker does not call the BFF");

    b.answer(Answer::Json("no-store", vec![]));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(n(&c, &format!("{}/probe", b.url)).await.unwrap().0, 4);
    let breaker = &c.breakers()[0];
    assert_eq!(breaker.state, BreakerState::Closed);
    assert_eq!(breaker.consecutive_failures, 0);
    assert_eq!(breaker.origin, b.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_once_within_the_budget() {
    let b = bff(Answer::Json("no-store", vec![])).await;
    b.bff.fail_first.store(1, Ordering::SeqCst);
    let c = client();
    let url = format!("{}/flaky", b.url);
    assert_eq!(n(&c, &url).await.unwrap().0, 2);
    assert_eq!(c.stats().retries, 1);

    // A 500 is not retried.
    b.answer(Answer::Status(500));
    assert!(n(&c, &url).await.is_err());
    assert_eq!(b.hits(), 3);

    // Nor is anything once the budget is spent.
    let stingy = DataClient::new(DataClientOptions {
        retry_reserve: 0.0,
        retry_ratio: 0.0,
        ..DataClientOptions::default()
    })
    .unwrap();
    b.bff.fail_first.store(1, Ordering::SeqCst);
    let r = stingy.fetch(&url, DEADLINE, "t").await;
    assert!(matches!(r, Err(DataError::Status(503))), "{r:?}");
    assert_eq!(stingy.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_huge_bodies_leave_the_topic_absent() {
    let b = bff(Answer::Garbage).await;
    let c = client();
    let r = n(&c, &format!("{}/g", b.url)).await;
    assert!(matches!(r, Err(DataError::NotJson(_))), "{r:?}");
    b.answer(Answer::Huge);
    let r = c
        .fetch(&format!("{}/h", b.url), Duration::from_secs(5), "t")
        .await;
    assert!(matches!(r, Err(DataError::TooLarge(_))), "{r:?}");
    // The client stopped reading at its 4 MiB limit and dropped the connection: the
    // BFF got to hand over only that much plus what the socket buffers hold, not the
    // 50 MB, so nothing near the whole body was ever held in memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = b.bff.sent.load(Ordering::SeqCst);
    assert!(sent < 16 << 20, "the BFF sent {sent} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bffs_numbers_reach_the_page_as_it_wrote_them() {
    // The shortest form of each double, as any serialiser writes it: parsed and
    // written again, each must come out the same (found by fuzz/data_response, where
    // the last digits of such numbers changed).
    let body = r#"{"a":2.3763644578689503e-212,"b":0.30000000000000004,"c":1.7976931348623157e+308,"d":5e-324}"#;
    let b = bff(Answer::Text(body)).await;
    let got = client()
        .fetch(&format!("{}/n", b.url), DEADLINE, "t")
        .await
        .expect("a value");
    assert_eq!(&*got.value, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_concurrency_requests_reach_one_bff_at_once() {
    let b = bff(Answer::Json("no-store", vec![])).await;
    b.delay(Duration::from_millis(100));
    let c = DataClient::new(DataClientOptions {
        max_concurrency: 2,
        ..DataClientOptions::default()
    })
    .expect("client");
    // Distinct URLs, so nothing is coalesced: every one needs its own request.
    let urls: Vec<String> = (0..8).map(|i| format!("{}/c{i}", b.url)).collect();
    let caller = Caller::new("t");
    let all = futures::future::join_all(
        urls.iter()
            .map(|url| c.fetch_as(url, Duration::from_secs(2), &caller)),
    )
    .await;
    assert!(all.iter().all(Result::is_ok), "{all:?}");
    assert_eq!(b.hits(), 8);
    assert_eq!(b.bff.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_once() {
    let c = client();
    let url = format!("{}/x", crate::support::dead_url());
    let r = c.fetch(&url, DEADLINE, "t").await;
    assert!(matches!(r, Err(DataError::Connect(_))), "{r:?}");
    let stats = c.stats();
    assert_eq!((stats.upstream_requests, stats.retries), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_serves_the_stale_entry_without_calling_the_bff() {
    let b = bff(Answer::Json("public, max-age=1, stale-if-error=30", vec![])).await;
    let c = client();
    let url = format!("{}/e", b.url);
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Fetched));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Other keys of the same BFF fail until its breaker opens.
    b.answer(Answer::Status(500));
    for i in 0..3 {
        assert!(n(&c, &format!("{}/k{i}", b.url)).await.is_err());
    }
    assert_eq!(c.breakers()[0].state, BreakerState::Open);
    let hits = b.hits();
    assert_eq!(n(&c, &url).await.unwrap(), (1, Served::Stale));
    assert_eq!(b.hits(), hits, "an open breaker does not call the BFF");
    assert_eq!(c.stats().rejected_by_breaker, 1);
}

#[tokio::test]
async fn a_users_answer_is_shared_only_when_the_bff_says_public() {
    // Cacheable, but not marked public: as with `Authorization`, an answer to a
    // signed-in request is then for that request alone.
    let b = bff(Answer::Json("max-age=60", vec![])).await;
    let c = client();
    let url = format!("{}/me", b.url);
    let as_user = |who: &'static str| {
        let c = &c;
        let url = &url;
        async move {
            let got = c
                .fetch_as(url, DEADLINE, &Caller::new("t").signed_in(who))
                .await
                .expect("fetch");
            serde_json::from_str::<serde_json::Value>(&got.value).expect("json")["n"]
                .as_i64()
                .expect("n")
        }
    };
    assert_eq!(as_user("alice-assertion").await, 1);
    assert_eq!(
        as_user("bob-assertion").await,
        2,
        "bob never gets alice's answer"
    );
    assert_eq!(
        n(&c, &url).await.expect("anonymous").0,
        3,
        "nor does anybody else"
    );
    // The anonymous answer is cached as usual.
    assert_eq!(n(&c, &url).await.expect("cached"), (3, Served::Fresh));
    assert_eq!(b.hits(), 3);

    // Marked public by the BFF: shared, like any public answer.
    let b = bff(Answer::Json("public, max-age=60", vec![])).await;
    let url = format!("{}/catalogue", b.url);
    let got = c
        .fetch_as(
            &url,
            DEADLINE,
            &Caller::new("t").signed_in("alice-assertion"),
        )
        .await
        .expect("fetch");
    assert_eq!(got.served, Served::Fetched);
    assert_eq!(n(&c, &url).await.expect("shared"), (1, Served::Fresh));
    assert_eq!(b.hits(), 1);
}

/// Issue 18, finding 10: RFC 9111 §3.5 lets a shared cache store an answer to an
/// authorised request that says `must-revalidate` or `s-maxage` as well as `public`,
/// and the cache library does. Oberon's rule is stricter, because a BFF answering a
/// signed-in request has no way to see what else the renderer shares: only `public`
/// shares it. Neither directive alone may hand alice's answer to anybody else, or make
/// a page built from it CDN-cacheable.
#[tokio::test]
async fn a_users_answer_with_s_maxage_or_must_revalidate_is_still_personal() {
    for cache_control in ["s-maxage=60", "max-age=60, must-revalidate"] {
        let b = bff(Answer::Json(cache_control, vec![])).await;
        let c = client();
        let url = format!("{}/me", b.url);
        let got = c
            .fetch_as(
                &url,
                DEADLINE,
                &Caller::new("t").signed_in("alice-assertion"),
            )
            .await
            .expect("fetch");
        assert_eq!(got.class, Cacheability::Personal, "{cache_control}");
        assert_eq!(
            n(&c, &url).await.expect("anonymous"),
            (2, Served::Fetched),
            "{cache_control}: anybody else gets their own answer, not alice's"
        );
        assert_eq!(b.hits(), 2, "{cache_control}");
    }
}

/// Caching numbers at u64::MAX, as a hostile or broken BFF might send them: no fetch
/// fails or panics (anonymous or signed in), later fetches of the same URL still work,
/// and the breaker stays closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_caching_headers_never_fail_a_fetch() {
    const MAX: &str = "18446744073709551615";
    let b = bff(Answer::Json("public, max-age=18446744073709551615", vec![])).await;
    let c = client();
    let url = format!("{}/max-age", b.url);
    assert_eq!(n(&c, &url).await.expect("first"), (1, Served::Fetched));
    assert_eq!(n(&c, &url).await.expect("later"), (1, Served::Fresh));
    let got = c
        .fetch_as(
            &format!("{}/signed-in", b.url),
            DEADLINE,
            &Caller::new("t").signed_in("alice"),
        )
        .await
        .expect("a signed-in fetch");
    assert_eq!(got.served, Served::Fetched);

    // An Age far past max-age: stale on arrival, so every use asks again.
    b.answer(Answer::Json("public, max-age=60", vec![("age", MAX)]));
    let url = format!("{}/age", b.url);
    for _ in 0..3 {
        assert_eq!(n(&c, &url).await.expect("age").1, Served::Fetched);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    for cc in [
        "public, max-age=60, stale-if-error=18446744073709551615",
        "public, s-maxage=18446744073709551615",
        "public, max-age=99999999999999999999999999",
    ] {
        b.answer(Answer::Json(cc, vec![]));
        let url = format!("{}/{}", b.url, cc.len());
        let first = n(&c, &url).await.unwrap_or_else(|e| panic!("{cc}: {e}"));
        assert_eq!(first.1, Served::Fetched, "{cc}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(n(&c, &url).await.is_ok(), "{cc}");
    }
    assert_eq!(c.breakers()[0].state, BreakerState::Closed);
}

/// A signed-in fetch is not spawned: the page's deadline drops it. When it was the
/// half-open breaker's probe, the probe is given back rather than leaving the breaker
/// half-open, refusing everyone, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_cancelled_by_its_deadline_does_not_leave_the_breaker_half_open() {
    let b = bff(Answer::Status(500)).await;
    let c = client();
    for i in 0..3 {
        assert!(n(&c, &format!("{}/k{i}", b.url)).await.is_err());
    }
    assert_eq!(c.breakers()[0].state, BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(350)).await;

    // The probe: a signed-in fetch whose deadline passes while the BFF thinks.
    b.answer(Answer::Json("private", vec![]));
    b.delay(Duration::from_secs(2));
    let probe = c
        .fetch_as(
            &format!("{}/me", b.url),
            Duration::from_millis(100),
            &Caller::new("t").signed_in("alice"),
        )
        .await;
    assert!(matches!(probe, Err(DataError::Timeout(_))), "{probe:?}");

    // The BFF is well again: the next request probes, and closes the breaker.
    b.delay(Duration::ZERO);
    let next = n(&c, &format!("{}/after", b.url)).await;
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(c.breakers()[0].state, BreakerState::Closed);
}
