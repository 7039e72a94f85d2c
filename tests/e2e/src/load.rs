//! A bounded load: `workers` clients each sending requests back to back, over a set of
//! URLs, until a request count or a duration is reached. Counts answers by status and by
//! `X-Cache`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a load stops.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    /// After this many requests in all.
    Requests(u64),
    /// After this long.
    Duration(Duration),
}

/// What a load saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub sent: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub by_cache: BTreeMap<String, u64>,
    /// Requests that got no HTTP answer at all.
    pub failed: u64,
    pub elapsed: Duration,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.by_status.get(&200).copied().unwrap_or(0)
    }
}

/// Send `urls` round robin (each worker starting at its own offset) from `workers`
/// concurrent clients until `bound`.
pub async fn run(urls: &[String], workers: usize, bound: Bound) -> Tally {
    let urls: Arc<[String]> = urls.into();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks = (0..workers).map(|_| {
        let urls = urls.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let done = match bound {
                    Bound::Requests(max) => n >= max,
                    Bound::Duration(d) => start.elapsed() >= d,
                };
                if done {
                    break;
                }
                let url = &urls[(n % urls.len() as u64) as usize];
                tally.sent += 1;
                match client.get(url).send().await {
                    Ok(response) => {
                        *tally
                            .by_status
                            .entry(response.status().as_u16())
                            .or_default() += 1;
                        let cache = response
                            .headers()
                            .get("x-cache")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string();
                        *tally.by_cache.entry(cache).or_default() += 1;
                        let _ = response.bytes().await;
                    }
                    Err(_) => tally.failed += 1,
                }
            }
            tally
        })
    });
    let mut total = Tally::default();
    for tally in futures::future::join_all(tasks).await {
        let tally = tally.expect("load worker");
        total.sent += tally.sent;
        total.failed += tally.failed;
        for (k, v) in tally.by_status {
            *total.by_status.entry(k).or_default() += v;
        }
        for (k, v) in tally.by_cache {
            *total.by_cache.entry(k).or_default() += v;
        }
    }
    total.elapsed = start.elapsed();
    total
}
