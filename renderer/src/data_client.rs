//! The data client: how the renderer gets a data source's JSON from a BFF without
//! letting a slow or failing BFF hurt the page.
//!
//! - **Cache** (moka): a shared HTTP cache that honours the BFF's own `Cache-Control`
//!   (http-cache-semantics, shared mode). Responses that are `private`, `no-store` or set
//!   a cookie are never stored. The browser's own cache directives never reach it: the
//!   renderer builds BFF requests itself. Entries are kept past their freshness for a
//!   stale-if-error window (the BFF's `stale-if-error`, else [`DataClientOptions`]).
//! - **Coalescing**: one upstream fetch per URL however many requests wait. The fetch
//!   runs in its own task, bounded by the upstream timeout, so a waiter that gives up
//!   at its source's deadline cancels nothing; the result still fills the cache.
//! - **Per-BFF protection** (keyed by origin): a circuit breaker, a concurrency limit
//!   and a retry budget (one retry of a GET, only after a connection error or a 503).
//! - **Fallback**: when the breaker is open, the BFF fails or the waiter's deadline
//!   passes, the last good value is served if it is within its stale-if-error window;
//!   otherwise the topic stays absent.
//! - **Hostile headers**: a BFF's numbers are believed up to a year ([`MAX_DELTA`]):
//!   every `Cache-Control` delta-seconds and `Age` above it is cut to it before the
//!   policy sees them, and every sum of times saturates. A fetch that panics anyway is
//!   a failed fetch (it counts against the breaker), its in-flight entry is removed by
//!   a drop guard, and a breaker probe that never reports gives the probe back. A data
//!   source never fails a page, whatever its headers say.
//! - **Hot path**: an entry carries the `Instant`s until which it is fresh and usable
//!   stale, computed once when stored, so a hit is a comparison and not a policy
//!   evaluation; the policy is kept for revalidation.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use oberon_service::error_chain;
use oberon_service::trace::Onward;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::component::Cacheability;
use crate::data::DataError;

/// The most a BFF's caching numbers (`max-age`, `s-maxage`, `stale-if-error`, `Age`, …)
/// are believed: a year. Larger values are cut to it (RFC 9111 §1.2.2 allows a cache to
/// cap delta-seconds), which keeps every later sum of times far from overflowing.
pub const MAX_DELTA: Duration = Duration::from_secs(365 * 24 * 3600);

/// Whom a fetch is for: what follows a page to its BFF.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Sent as `x-request-id`.
    pub request_id: Arc<str>,
    /// The gateway's assertion of the signed-in user, for a source that takes it.
    pub identity: Option<Arc<str>>,
    /// The trace the BFF's spans join: the fetch's own span's context in a sampled
    /// trace, else the page's unsampled trace (nothing with traces off).
    pub trace: Onward,
}

impl Caller {
    /// A request known by its id alone: anonymous, outside any trace.
    pub fn new(request_id: &str) -> Self {
        Caller {
            request_id: Arc::from(request_id),
            ..Caller::default()
        }
    }

    /// The same request, signed in: `identity` is the gateway's assertion.
    pub fn signed_in(self, identity: &str) -> Self {
        Caller {
            identity: Some(Arc::from(identity)),
            ..self
        }
    }
}

/// Tuning of the data client. The defaults suit a renderer in front of a handful of BFFs.
#[derive(Debug, Clone)]
pub struct DataClientOptions {
    /// Largest body accepted from a BFF.
    pub max_bytes: usize,
    /// Upper bound of one upstream fetch, whoever is waiting for it. A source's own
    /// (shorter) deadline bounds how long a page waits, not the fetch.
    pub upstream_timeout: Duration,
    /// Total size of cached bodies.
    pub cache_bytes: u64,
    /// How long past its freshness an entry may be served when the BFF fails, unless
    /// the BFF's `stale-if-error` says otherwise.
    pub stale_if_error: Duration,
    /// Consecutive failures that open a BFF's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker stays open before one probe is let through.
    pub breaker_open_for: Duration,
    /// Requests in flight to one BFF at once.
    pub max_concurrency: usize,
    /// Retries allowed per original request, as a fraction (0.2: one retry per five
    /// requests), on top of `retry_reserve`.
    pub retry_ratio: f64,
    /// Retries available before any request has deposited into the budget.
    pub retry_reserve: f64,
}

impl Default for DataClientOptions {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 20,
            upstream_timeout: Duration::from_secs(10),
            cache_bytes: 256 << 20,
            stale_if_error: Duration::from_secs(300),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(5),
            max_concurrency: 64,
            retry_ratio: 0.2,
            retry_reserve: 10.0,
        }
    }
}

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache, fresh: no request was made.
    Fresh,
    /// From the BFF (or from a fetch another request started).
    Fetched,
    /// From the cache after the BFF confirmed it (304).
    Revalidated,
    /// From the cache past its freshness, because the BFF failed or was not asked.
    Stale,
}

/// A data source's value.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub value: Arc<str>,
    pub served: Served,
    /// What the BFF's answer allows a page built from it to be: `personal` for a
    /// `private` answer, one that sets a cookie, or one made for a signed-in user and
    /// not marked `public`; `volatile` for one no shared cache may keep fresh
    /// (`no-store`, `no-cache`, `max-age=0`); else `public`.
    pub class: Cacheability,
}

/// A BFF's circuit breaker, as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerStatus {
    pub origin: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// Counters since start, for tests, benchmarks and health output.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DataStats {
    pub fresh_hits: u64,
    pub upstream_requests: u64,
    pub coalesced: u64,
    pub stale_served: u64,
    pub retries: u64,
    pub rejected_by_breaker: u64,
}

/// Fetches data sources. Shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct DataClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    opts: DataClientOptions,
    cache: moka::future::Cache<String, Arc<Entry>>,
    inflight: Mutex<HashMap<String, Inflight>>,
    origins: Mutex<HashMap<String, Arc<Origin>>>,
    stats: Mutex<DataStats>,
}

type Inflight = Shared<BoxFuture<'static, Result<Outcome, DataError>>>;

/// What one upstream fetch produced.
#[derive(Clone)]
struct Outcome {
    entry: Arc<Entry>,
    served: Served,
    /// False for a response that must not reach any request but the one that asked
    /// (`private`, `no-store`, `Set-Cookie`): coalesced waiters fetch for themselves.
    shareable: bool,
}

impl Outcome {
    fn fetched(&self) -> Fetched {
        Fetched {
            value: self.entry.value.clone(),
            served: self.served,
            class: self.entry.class,
        }
    }
}

struct Entry {
    value: Arc<str>,
    class: Cacheability,
    /// For revalidation (its validators), not for hits: those use `fresh_until`.
    policy: CachePolicy,
    /// Until when it is served without asking the BFF (the policy's freshness at the
    /// time it was stored, at most [`MAX_DELTA`]).
    fresh_until: Instant,
    /// Until when it may be served as stale.
    stale_until: Instant,
    /// How long moka keeps it: freshness plus the stale-if-error window.
    keep_for: Duration,
    /// Whom it may be reused for, from its `Vary`.
    vary: Vary,
}

impl Entry {
    /// Fresh, and its `Vary` allows it for a request made with `identity`.
    fn fresh_for(&self, identity: Option<&str>, now: Instant) -> bool {
        now < self.fresh_until && self.vary.matches(identity)
    }

    fn usable_stale(&self, now: Instant) -> bool {
        now <= self.stale_until
    }
}

/// What a stored answer's `Vary` makes of a later request, worked out once when it is
/// stored. The renderer's requests for a URL differ only in the identity (`Accept` is
/// always the same, nothing else is sent), so this is exactly http-cache-semantics'
/// matching: `*` matches nothing; `Authorization` (which the policy request carries,
/// with a fixed value, for a signed-in request) matches when both requests are signed
/// in or both anonymous; `Oberon-Identity` when both carry the same assertion (or
/// none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Vary {
    never: bool,
    on_signed_in: bool,
    on_identity: bool,
    /// The assertion of the request it answered, if `on_signed_in` or `on_identity`.
    stored_identity: Option<Arc<str>>,
}

impl Vary {
    fn of(headers: &http::HeaderMap, identity: Option<&str>) -> Self {
        let mut vary = Vary::default();
        for name in headers
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
        {
            if name == "*" {
                vary.never = true;
            } else if name.eq_ignore_ascii_case(http::header::AUTHORIZATION.as_str()) {
                vary.on_signed_in = true;
            } else if name.eq_ignore_ascii_case(oberon_identity::assertion::HEADER) {
                vary.on_identity = true;
            }
        }
        if vary.on_signed_in || vary.on_identity {
            vary.stored_identity = identity.map(Arc::from);
        }
        vary
    }

    /// Both sets of conditions: a revalidated entry keeps its old `Vary` as well.
    fn union(self, other: Vary) -> Vary {
        Vary {
            never: self.never || other.never,
            on_signed_in: self.on_signed_in || other.on_signed_in,
            on_identity: self.on_identity || other.on_identity,
            stored_identity: self.stored_identity.or(other.stored_identity),
        }
    }

    fn matches(&self, identity: Option<&str>) -> bool {
        !self.never
            && (!self.on_signed_in || self.stored_identity.is_some() == identity.is_some())
            && (!self.on_identity || self.stored_identity.as_deref() == identity)
    }
}

struct KeepFor;

impl moka::Expiry<String, Arc<Entry>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }
}

impl DataClient {
    pub fn new(opts: DataClientOptions) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(oberon_config::listen::CLIENT_POOL_IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let cache = moka::future::Cache::builder()
            .max_capacity(opts.cache_bytes)
            .weigher(|url: &String, entry: &Arc<Entry>| {
                u32::try_from(url.len() + entry.value.len() + 512).unwrap_or(u32::MAX)
            })
            .expire_after(KeepFor)
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                opts,
                cache,
                inflight: Mutex::new(HashMap::new()),
                origins: Mutex::new(HashMap::new()),
                stats: Mutex::new(DataStats::default()),
            }),
        })
    }

    /// The JSON at `url`, within `deadline`: from the cache when fresh, else from the
    /// BFF (one fetch per URL however many wait), else the stale value when the BFF
    /// fails and the entry is within its stale-if-error window.
    pub async fn fetch(
        &self,
        url: &str,
        deadline: Duration,
        request_id: &str,
    ) -> Result<Fetched, DataError> {
        self.fetch_as(url, deadline, &Caller::new(request_id)).await
    }

    /// [`DataClient::fetch`] for `caller`. For a signed-in user, its `identity` is the gateway's
    /// assertion, sent to the BFF in its header. The cache treats it as RFC 9111 treats
    /// `Authorization`: an answer is stored for others only when the BFF marks it
    /// `public`, and a cached answer is used only if it does not `Vary` on the identity.
    /// Such a request never joins, or is joined by, another request's fetch.
    pub async fn fetch_as(
        &self,
        url: &str,
        deadline: Duration,
        caller: &Caller,
    ) -> Result<Fetched, DataError> {
        let identity = caller.identity.as_deref();
        let started = Instant::now();
        let cached = self.inner.cache.get(url).await;
        if let Some(entry) = &cached
            && entry.fresh_for(identity, started)
        {
            self.inner.count(|s| s.fresh_hits += 1);
            return Ok(Fetched {
                value: entry.value.clone(),
                served: Served::Fresh,
                class: entry.class,
            });
        }
        if identity.is_some() {
            let own = self.inner.clone().run(url, cached.clone(), caller);
            let result = match tokio::time::timeout(deadline, own).await {
                Ok(Ok(outcome)) => Ok(outcome.fetched()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(DataError::Timeout(deadline.as_millis())),
            };
            return self.or_stale(url, result, cached);
        }
        let (shared, started_here) = self.inner.clone().inflight(url, cached.clone(), caller);
        let result = match tokio::time::timeout(deadline, shared).await {
            Ok(Ok(outcome)) if outcome.shareable || started_here => Ok(outcome.fetched()),
            // Someone else's private answer: ask for our own, in what time is left.
            Ok(Ok(_)) => {
                let left = deadline.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, self.inner.clone().run(url, None, caller)).await {
                    Ok(Ok(outcome)) => Ok(outcome.fetched()),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(DataError::Timeout(deadline.as_millis())),
                }
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DataError::Timeout(deadline.as_millis())),
        };
        self.or_stale(url, result, cached)
    }

    /// `result`, or the stale copy within its stale-if-error window when it failed.
    fn or_stale(
        &self,
        url: &str,
        result: Result<Fetched, DataError>,
        cached: Option<Arc<Entry>>,
    ) -> Result<Fetched, DataError> {
        match (result, cached) {
            (Ok(fetched), _) => Ok(fetched),
            (Err(e), Some(entry)) if entry.usable_stale(Instant::now()) => {
                tracing::debug!(url, "serving stale data: {}", error_chain(&e));
                self.inner.count(|s| s.stale_served += 1);
                Ok(Fetched {
                    value: entry.value.clone(),
                    served: Served::Stale,
                    class: entry.class,
                })
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Every BFF's breaker, sorted by origin.
    pub fn breakers(&self) -> Vec<BreakerStatus> {
        let origins = lock(&self.inner.origins);
        let mut all: Vec<BreakerStatus> = origins
            .iter()
            .map(|(origin, o)| o.breaker_status(origin))
            .collect();
        all.sort_by(|a, b| a.origin.cmp(&b.origin));
        all
    }

    pub fn stats(&self) -> DataStats {
        lock(&self.inner.stats).clone()
    }
}

impl Inner {
    fn count(&self, f: impl FnOnce(&mut DataStats)) {
        f(&mut lock(&self.stats));
    }

    /// The in-flight fetch of `url`, started if there is none. True when started here.
    fn inflight(
        self: Arc<Self>,
        url: &str,
        cached: Option<Arc<Entry>>,
        caller: &Caller,
    ) -> (Inflight, bool) {
        let mut inflight = lock(&self.inflight);
        if let Some(shared) = inflight.get(url) {
            self.count(|s| s.coalesced += 1);
            return (shared.clone(), false);
        }
        let this = self.clone();
        let key = url.to_string();
        let caller = caller.clone();
        // Spawned, so that no waiter's deadline cancels it. The guard removes the entry
        // however the task ends (an answer, a panic, the runtime shutting down), so no
        // later request ever joins a fetch that will never answer.
        let fetch = async move {
            let _inflight = InflightEntry {
                inner: this.clone(),
                url: key.clone(),
            };
            this.clone().run(&key, cached, &caller).await
        };
        // In a sampled trace, its log lines are events of the fetch that started it.
        let task = if oberon_service::trace::enabled() {
            let fetch = fetch.instrument(tracing::Span::current());
            tokio::spawn(oberon_service::trace::Part::carry(fetch))
        } else {
            tokio::spawn(fetch)
        };
        let shared = async move {
            task.await
                .unwrap_or_else(|e| Err(DataError::Task(Arc::new(e))))
        }
        .boxed()
        .shared();
        inflight.insert(url.to_string(), shared.clone());
        (shared, true)
    }

    /// One fetch through the BFF's breaker, concurrency limit and retry budget; stores
    /// what may be stored.
    async fn run(
        self: Arc<Self>,
        url: &str,
        cached: Option<Arc<Entry>>,
        caller: &Caller,
    ) -> Result<Outcome, DataError> {
        let origin = self.origin(url);
        let Some(admission) = origin.allow() else {
            self.count(|s| s.rejected_by_breaker += 1);
            return Err(DataError::BreakerOpen);
        };
        // Until the fetch reports, a probe that goes away (cancelled with a signed-in
        // request's deadline, or stopped by a panic) gives the probe back.
        let mut probe = Probe {
            origin: &origin,
            probing: admission == Admission::Probe,
        };
        let Ok(Ok(_permit)) =
            tokio::time::timeout(self.opts.upstream_timeout, origin.limit.acquire()).await
        else {
            return Err(DataError::Overloaded);
        };
        let mut retried = false;
        let result = loop {
            self.count(|s| s.upstream_requests += 1);
            // A panic in the fetch (whatever the BFF sent) is a failed fetch.
            let attempt = tokio::time::timeout(
                self.opts.upstream_timeout,
                AssertUnwindSafe(self.get(url, cached.as_deref(), caller)).catch_unwind(),
            )
            .await
            .unwrap_or(Ok(Err(DataError::Timeout(
                self.opts.upstream_timeout.as_millis(),
            ))))
            .unwrap_or_else(|panic| Err(DataError::Panicked(panic_message(&*panic))));
            let retryable = matches!(attempt, Err(DataError::Connect(_) | DataError::Status(503)));
            if retryable && !retried && origin.spend_retry() {
                retried = true;
                self.count(|s| s.retries += 1);
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            break attempt;
        };
        origin.deposit_retry(self.opts.retry_ratio, self.opts.retry_reserve);
        probe.probing = false;
        match &result {
            Ok(_) => origin.success(),
            Err(e) if e.is_bff_failure() => {
                origin.failure(self.opts.breaker_failures, self.opts.breaker_open_for);
            }
            // An answer such as 404 is the BFF working.
            Err(_) => origin.success(),
        }
        let outcome = result?;
        if outcome.shareable {
            self.cache
                .insert(url.to_string(), outcome.entry.clone())
                .await;
        } else {
            self.cache.invalidate(url).await;
        }
        Ok(outcome)
    }

    /// One GET; revalidates `cached` when it has validators.
    async fn get(
        &self,
        url: &str,
        cached: Option<&Entry>,
        caller: &Caller,
    ) -> Result<Outcome, DataError> {
        let identity = caller.identity.as_deref();
        let policy_req = policy_request(url, identity);
        let mut request = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .header("x-request-id", &*caller.request_id);
        if let Some(identity) = identity {
            request = request.header(oberon_identity::assertion::HEADER, identity);
        }
        for (name, value) in caller.trace.headers() {
            request = request.header(name, value);
        }
        if let Some(entry) = cached
            && let BeforeRequest::Stale { request: reval, .. } =
                entry.policy.before_request(&policy_req, SystemTime::now())
        {
            for name in [http::header::IF_NONE_MATCH, http::header::IF_MODIFIED_SINCE] {
                if let Some(v) = reval.headers.get(&name) {
                    request = request.header(name, v.clone());
                }
            }
        }
        let mut response = request.send().await.map_err(|e| {
            if e.is_connect() {
                DataError::Connect(Arc::new(e))
            } else {
                DataError::Request(Arc::new(e))
            }
        })?;
        let now = SystemTime::now();
        let parts = bounded(response_parts(&response));

        if response.status() == http::StatusCode::NOT_MODIFIED
            && let Some(entry) = cached
            && let AfterResponse::NotModified(policy, _) =
                entry.policy.after_response(&policy_req, &parts, now)
        {
            return Ok(self.outcome(
                entry.value.clone(),
                policy,
                &parts,
                now,
                Served::Revalidated,
                identity,
                entry.vary.clone(),
            ));
        }
        if !response.status().is_success() {
            return Err(DataError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.opts.max_bytes as u64)
        {
            return Err(DataError::TooLarge(self.opts.max_bytes));
        }
        // Read in chunks so an unannounced huge body is cut off at the limit rather
        // than buffered whole.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| DataError::Request(Arc::new(e)))?
        {
            if body.len() + chunk.len() > self.opts.max_bytes {
                return Err(DataError::TooLarge(self.opts.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        // Parsed once here (and re-serialised compactly) so that components and the
        // embedded client state only ever see valid, minimal JSON.
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| DataError::NotJson(Arc::new(e)))?;
        let policy = CachePolicy::new_options(&policy_req, &parts, now, CacheOptions::default());
        Ok(self.outcome(
            Arc::from(value.to_string()),
            policy,
            &parts,
            now,
            Served::Fetched,
            identity,
            Vary::default(),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        value: Arc<str>,
        policy: CachePolicy,
        parts: &http::response::Parts,
        now: SystemTime,
        served: Served,
        identity: Option<&str>,
        vary: Vary,
    ) -> Outcome {
        let for_user = identity.is_some();
        let personal = parts.headers.contains_key(http::header::SET_COOKIE)
            || has_directive(&parts.headers, "private");
        // For a signed-in request only `public` shares the answer: RFC 9111 §3.5 also
        // lets `s-maxage` and `must-revalidate` do so (and the policy follows it), but
        // a BFF cannot see what the renderer shares, so Oberon asks for the one
        // explicit word.
        let shareable = policy.is_storable()
            && !personal
            && (!for_user || has_directive(&parts.headers, "public"));
        // Bounded here too: `Expires` (up to the year 9999) is not a delta-seconds.
        let fresh_for = policy.time_to_live(now).min(MAX_DELTA);
        let class = if personal || (for_user && !shareable) {
            Cacheability::Personal
        } else if !shareable || fresh_for.is_zero() {
            Cacheability::Volatile
        } else {
            Cacheability::Public
        };
        let stale_for = directive_seconds(&parts.headers, "stale-if-error")
            .map_or(self.opts.stale_if_error, Duration::from_secs)
            .min(MAX_DELTA);
        let keep_for = fresh_for
            .saturating_add(stale_for)
            .max(Duration::from_millis(1));
        let stored = Instant::now();
        let at = |after: Duration| stored.checked_add(after).unwrap_or(stored);
        Outcome {
            entry: Arc::new(Entry {
                value,
                class,
                policy,
                fresh_until: at(fresh_for),
                stale_until: at(keep_for),
                keep_for,
                vary: vary.union(Vary::of(&parts.headers, identity)),
            }),
            served,
            shareable,
        }
    }

    fn origin(&self, url: &str) -> Arc<Origin> {
        let key = origin_of(url);
        lock(&self.origins)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Origin {
                    breaker: Mutex::new(Breaker::Closed { failures: 0 }),
                    limit: Semaphore::new(self.opts.max_concurrency),
                    retry_tokens: Mutex::new(self.opts.retry_reserve),
                })
            })
            .clone()
    }
}

/// One BFF (scheme, host and port): its breaker, concurrency limit and retry budget.
struct Origin {
    breaker: Mutex<Breaker>,
    limit: Semaphore,
    retry_tokens: Mutex<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        failures: u32,
    },
    /// One probe is in flight; everyone else is refused until it answers.
    HalfOpen {
        failures: u32,
    },
}

/// Why a request may go to the BFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// The breaker is closed.
    Closed,
    /// This request is the half-open breaker's one probe.
    Probe,
}

/// A half-open breaker's probe until its fetch reports. Dropped before that (its fetch
/// was cancelled, or panicked), it gives the probe back, so the breaker never stays
/// half-open with nobody probing.
struct Probe<'a> {
    origin: &'a Origin,
    probing: bool,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if self.probing {
            self.origin.abandon_probe();
        }
    }
}

/// Removes an in-flight fetch's entry when its task ends, however it ends.
struct InflightEntry {
    inner: Arc<Inner>,
    url: String,
}

impl Drop for InflightEntry {
    fn drop(&mut self) {
        lock(&self.inner.inflight).remove(&self.url);
    }
}

impl Origin {
    /// Whether a request may go to the BFF now, and as what.
    fn allow(&self) -> Option<Admission> {
        let mut b = lock(&self.breaker);
        match *b {
            Breaker::Closed { .. } => Some(Admission::Closed),
            Breaker::Open { until, failures } if Instant::now() >= until => {
                *b = Breaker::HalfOpen { failures };
                Some(Admission::Probe)
            }
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => None,
        }
    }

    /// The probe never reached the BFF: let the next request probe instead.
    fn abandon_probe(&self) {
        let mut b = lock(&self.breaker);
        if let Breaker::HalfOpen { failures } = *b {
            *b = Breaker::Open {
                until: Instant::now(),
                failures,
            };
        }
    }

    fn success(&self) {
        *lock(&self.breaker) = Breaker::Closed { failures: 0 };
    }

    fn failure(&self, threshold: u32, open_for: Duration) {
        let mut b = lock(&self.breaker);
        let failures = match *b {
            Breaker::Closed { failures }
            | Breaker::Open { failures, .. }
            | Breaker::HalfOpen { failures } => failures.saturating_add(1),
        };
        let probe_failed = matches!(*b, Breaker::HalfOpen { .. });
        *b = if probe_failed || failures >= threshold {
            if !probe_failed {
                tracing::warn!(failures, "circuit breaker opened for a BFF");
            }
            Breaker::Open {
                until: Instant::now()
                    .checked_add(open_for)
                    .unwrap_or_else(Instant::now),
                failures,
            }
        } else {
            Breaker::Closed { failures }
        };
    }

    fn breaker_status(&self, origin: &str) -> BreakerStatus {
        let (state, consecutive_failures) = match *lock(&self.breaker) {
            Breaker::Closed { failures } => (BreakerState::Closed, failures),
            Breaker::Open { failures, .. } => (BreakerState::Open, failures),
            Breaker::HalfOpen { failures } => (BreakerState::HalfOpen, failures),
        };
        BreakerStatus {
            origin: origin.to_string(),
            state,
            consecutive_failures,
        }
    }

    fn spend_retry(&self) -> bool {
        let mut tokens = lock(&self.retry_tokens);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn deposit_retry(&self, ratio: f64, cap: f64) {
        let mut tokens = lock(&self.retry_tokens);
        *tokens = (*tokens + ratio).min(cap.max(1.0));
    }
}

impl DataError {
    /// Whether this says the BFF is unwell (and counts against its breaker).
    fn is_bff_failure(&self) -> bool {
        match self {
            DataError::Timeout(_)
            | DataError::Connect(_)
            | DataError::Request(_)
            | DataError::NotJson(_)
            | DataError::TooLarge(_)
            | DataError::Panicked(_) => true,
            DataError::Status(s) => *s >= 500,
            DataError::BreakerOpen
            | DataError::Overloaded
            | DataError::Task(_)
            | DataError::DotSegment(_) => false,
        }
    }
}

/// The request as the cache policy sees it: what the renderer sends, never what the
/// browser sent. A user's identity counts as `Authorization` does (RFC 9111 §3.5).
fn policy_request(url: &str, identity: Option<&str>) -> http::request::Parts {
    let mut request = http::Request::get(url).header(http::header::ACCEPT, "application/json");
    if let Some(identity) = identity {
        request = request
            .header(http::header::AUTHORIZATION, "oberon-identity")
            .header(oberon_identity::assertion::HEADER, identity);
    }
    let (parts, ()) = request.body(()).unwrap_or_default().into_parts();
    parts
}

fn response_parts(response: &reqwest::Response) -> http::response::Parts {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = response.status();
    parts.headers = response.headers().clone();
    parts
}

/// `parts` with every delta-seconds of `Cache-Control` and the `Age` cut to
/// [`MAX_DELTA`], so that no sum the cache policy makes of them can overflow. Other
/// values are left as they are; an `Age` that is not a number is dropped (the policy
/// would read it as 0).
fn bounded(mut parts: http::response::Parts) -> http::response::Parts {
    let max = MAX_DELTA.as_secs();
    let cut = |v: &str| -> Option<u64> {
        let digits = v.trim().trim_matches('"');
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().unwrap_or(u64::MAX))
    };
    if let Some(age) = parts.headers.get(http::header::AGE) {
        match age.to_str().ok().and_then(cut) {
            Some(secs) if secs > max => {
                parts
                    .headers
                    .insert(http::header::AGE, http::HeaderValue::from(max));
            }
            Some(_) => {}
            None => {
                parts.headers.remove(http::header::AGE);
            }
        }
    }
    let mut changed = false;
    let values: Vec<http::HeaderValue> = parts
        .headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .map(|value| {
            let Ok(text) = value.to_str() else {
                return value.clone();
            };
            let directives: Vec<String> = text
                .split(',')
                .map(|d| match d.split_once('=') {
                    Some((k, v)) if cut(v).is_some_and(|secs| secs > max) => {
                        changed = true;
                        format!("{}={max}", k.trim())
                    }
                    _ => d.trim().to_string(),
                })
                .collect();
            http::HeaderValue::from_str(&directives.join(", ")).unwrap_or_else(|_| value.clone())
        })
        .collect();
    if changed {
        parts.headers.remove(http::header::CACHE_CONTROL);
        for value in values {
            parts.headers.append(http::header::CACHE_CONTROL, value);
        }
    }
    parts
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

fn has_directive(headers: &http::HeaderMap, name: &str) -> bool {
    cache_directives(headers).any(|(k, _)| k.eq_ignore_ascii_case(name))
}

fn directive_seconds(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    cache_directives(headers)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v?.trim_matches('"').parse().ok())
}

fn cache_directives(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, Option<&str>)> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            let d = d.trim();
            match d.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (d, None),
            }
        })
}

/// `http://host:port` of a URL: the unit of breakers, limits and retry budgets.
fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cc: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, cc.parse().unwrap());
        h
    }

    #[test]
    fn reads_directives() {
        let h = headers("public, max-age=60, stale-if-error=\"30\"");
        assert_eq!(directive_seconds(&h, "stale-if-error"), Some(30));
        assert_eq!(directive_seconds(&h, "max-age"), Some(60));
        assert!(has_directive(&headers("max-age=1, PRIVATE"), "private"));
        assert!(!has_directive(&h, "private"));
    }

    #[test]
    fn caching_numbers_are_cut_to_a_year() {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.headers =
            headers("public, max-age=18446744073709551615, stale-if-error=99999999999999999999999");
        parts.headers.append(
            http::header::CACHE_CONTROL,
            "s-maxage=\"18446744073709551615\", must-revalidate"
                .parse()
                .unwrap(),
        );
        parts
            .headers
            .insert(http::header::AGE, "18446744073709551615".parse().unwrap());
        let h = bounded(parts).headers;
        let year = MAX_DELTA.as_secs();
        assert_eq!(directive_seconds(&h, "max-age"), Some(year));
        assert_eq!(directive_seconds(&h, "stale-if-error"), Some(year));
        assert_eq!(directive_seconds(&h, "s-maxage"), Some(year));
        assert!(has_directive(&h, "public") && has_directive(&h, "must-revalidate"));
        assert_eq!(h[http::header::AGE], year.to_string().as_str());

        // Sane values are left alone; an Age that is not a number is dropped.
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.headers = headers("public, max-age=60");
        parts
            .headers
            .insert(http::header::AGE, "soon".parse().unwrap());
        let h = bounded(parts).headers;
        assert_eq!(h[http::header::CACHE_CONTROL], "public, max-age=60");
        assert!(!h.contains_key(http::header::AGE));
    }

    #[test]
    fn vary_is_matched_as_the_policy_would() {
        let vary = |v: &str, stored: Option<&str>| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::VARY, v.parse().unwrap());
            Vary::of(&h, stored)
        };
        assert!(vary("Accept", Some("a")).matches(Some("b")));
        assert!(!vary("*", None).matches(None));
        let by_identity = vary("Accept, Oberon-Identity", Some("a"));
        assert!(by_identity.matches(Some("a")));
        assert!(!by_identity.matches(Some("b")) && !by_identity.matches(None));
        let by_authorization = vary("authorization", None);
        assert!(by_authorization.matches(None) && !by_authorization.matches(Some("a")));
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let o = Origin {
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            limit: Semaphore::new(1),
            retry_tokens: Mutex::new(0.0),
        };
        for _ in 0..3 {
            assert_eq!(o.allow(), Some(Admission::Closed));
            o.failure(3, Duration::from_millis(20));
        }
        assert_eq!(o.allow(), None, "open after 3 failures");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(
            o.allow(),
            Some(Admission::Probe),
            "one probe after open_for"
        );
        assert_eq!(o.allow(), None, "only one probe");
        o.failure(3, Duration::from_millis(20));
        assert_eq!(o.allow(), None, "a failed probe reopens it");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(o.allow(), Some(Admission::Probe));
        o.success();
        assert_eq!(
            o.allow(),
            Some(Admission::Closed),
            "closed after a good probe"
        );
        assert_eq!(o.allow(), Some(Admission::Closed));
    }

    #[test]
    fn retry_budget_is_spent_and_refilled() {
        let o = Origin {
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            limit: Semaphore::new(1),
            retry_tokens: Mutex::new(1.0),
        };
        assert!(o.spend_retry());
        assert!(!o.spend_retry());
        for _ in 0..5 {
            o.deposit_retry(0.2, 10.0);
        }
        assert!(o.spend_retry());
        assert!(!o.spend_retry());
    }

    #[test]
    fn origins_group_by_scheme_host_and_port() {
        assert_eq!(origin_of("http://a:81/x?y"), "http://a:81");
        assert_eq!(origin_of("https://a/x"), "https://a:443");
    }
}
