//! The renderer's metrics (`docs/observability.md` is the catalogue).
//!
//! What happens per request is recorded where it happens, through handles a page, a
//! slot and a data source hold from the site's build: on a page's path a record is an
//! atomic add, never a lookup by name and labels. What is state — the cache mode,
//! breakers, the instance pool, the registry, the counters `/_oberon/status` already
//! keeps — is read when Prometheus scrapes ([`observe`]), so it costs nothing between
//! scrapes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ::metrics::{Counter, Histogram, SharedString};
use oberon_service::metrics::{HTTP_SERVER_REQUEST_DURATION, method_label, status_label};

use crate::component::Cacheability;
use crate::data::DataError;
use crate::data_client::{Fetched, Served};
use crate::engine::ComponentError;
use crate::lifecycle::Renderer;

const PAGES: &str = "oberon_renderer_pages_total";
const SLOT_RENDERS: &str = "oberon_renderer_slot_renders_total";
const SLOT_RENDER_DURATION: &str = "oberon_renderer_slot_render_duration_seconds";
const DATA_FETCHES: &str = "oberon_renderer_data_fetches_total";
const DATA_FETCH_DURATION: &str = "oberon_renderer_data_fetch_duration_seconds";

/// The statuses a page answers with that get a handle of their own; any other is
/// recorded by name (rare by construction).
const STATUSES: [http::StatusCode; 4] = [
    http::StatusCode::OK,
    http::StatusCode::NOT_MODIFIED,
    http::StatusCode::NOT_FOUND,
    http::StatusCode::SERVICE_UNAVAILABLE,
];
const METHODS: [http::Method; 2] = [http::Method::GET, http::Method::HEAD];
/// A page's cache class label; `None` for an answer that is no page (404, 503).
const CLASSES: usize = 4;

/// The `cache_class` label values, in the order of [`class_index`].
const CLASS_LABELS: [&str; 4] = ["public", "volatile", "personal", "none"];

/// A page's class (none: it never got one, a 503 or 404) as an index into
/// [`CLASS_LABELS`] and the handles kept per class.
fn class_index(class: Option<Cacheability>) -> usize {
    match class {
        Some(Cacheability::Public) => 0,
        Some(Cacheability::Volatile) => 1,
        Some(Cacheability::Personal) => 2,
        None => 3,
    }
}

/// One route's page answers: `oberon_renderer_pages_total` and
/// `oberon_http_server_request_duration_seconds`, by status, class and method.
#[derive(Debug)]
pub struct PageMetrics {
    route: SharedString,
    pages: [[OnceLock<Counter>; CLASSES]; STATUSES.len()],
    durations: [[OnceLock<Histogram>; METHODS.len()]; STATUSES.len()],
}

impl PageMetrics {
    /// `route` is the page's route pattern; `""` for requests no page matched (the
    /// label is then absent, as OpenTelemetry has it when no route matched).
    pub fn new(route: &str) -> Self {
        PageMetrics {
            route: SharedString::from_owned(route.to_string()),
            pages: Default::default(),
            durations: Default::default(),
        }
    }

    /// One answer: its status, its class (`None` when it is no page), and the time
    /// from the request's head to the response's head.
    pub fn answered(
        &self,
        method: &http::Method,
        status: http::StatusCode,
        class: Option<Cacheability>,
        took: Duration,
    ) {
        let s = STATUSES.iter().position(|s| *s == status);
        let m = METHODS.iter().position(|m| m == method);
        let seconds = took.as_secs_f64();
        match s {
            Some(s) => self.pages[s][class_index(class)]
                .get_or_init(|| self.pages_counter(status, class))
                .increment(1),
            None => self.pages_counter(status, class).increment(1),
        }
        match (s, m) {
            (Some(s), Some(m)) => self.durations[s][m]
                .get_or_init(|| self.duration_histogram(method, status))
                .record(seconds),
            _ => self.duration_histogram(method, status).record(seconds),
        }
    }

    fn pages_counter(&self, status: http::StatusCode, class: Option<Cacheability>) -> Counter {
        ::metrics::counter!(
            PAGES,
            "http_route" => self.route.clone(),
            "http_response_status_code" => status_label(status),
            "cache_class" => CLASS_LABELS[class_index(class)],
        )
    }

    fn duration_histogram(&self, method: &http::Method, status: http::StatusCode) -> Histogram {
        ::metrics::histogram!(
            HTTP_SERVER_REQUEST_DURATION,
            "http_route" => self.route.clone(),
            "http_request_method" => method_label(method),
            "http_response_status_code" => status_label(status),
        )
    }
}

/// What a page answer is counted as, carried with it to where its method and the time
/// its head leaves are known (the server).
#[derive(Debug, Clone)]
pub struct PageMeter {
    page: Arc<PageMetrics>,
    class: Option<Cacheability>,
    /// When the page's render began.
    started: Instant,
}

impl PageMeter {
    /// A page's answer, of `class`; `None` when it is no page (a critical slot failed).
    pub fn page(page: &Arc<PageMetrics>, class: Option<Cacheability>, started: Instant) -> Self {
        PageMeter {
            page: page.clone(),
            class,
            started,
        }
    }

    /// Its head leaves now.
    pub fn answered(&self, method: &http::Method, status: http::StatusCode) {
        self.page
            .answered(method, status, self.class, self.started.elapsed());
    }
}

/// How a slot's render ended, as `oberon_renderer_slot_render_duration_seconds`
/// labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOutcome {
    Ok,
    /// Answered from the render cache.
    Reused,
    /// The component returned an error, or could not be instantiated.
    Fallback,
    Timeout,
    Trap,
    /// It trapped for want of memory: past its cap.
    Oom,
}

impl SlotOutcome {
    const ALL: [SlotOutcome; 6] = [
        SlotOutcome::Ok,
        SlotOutcome::Reused,
        SlotOutcome::Fallback,
        SlotOutcome::Timeout,
        SlotOutcome::Trap,
        SlotOutcome::Oom,
    ];

    pub fn of(result: Result<(), &ComponentError>, reused: bool) -> Self {
        match result {
            Ok(()) if reused => SlotOutcome::Reused,
            Ok(()) => SlotOutcome::Ok,
            Err(ComponentError::Timeout { .. }) => SlotOutcome::Timeout,
            Err(ComponentError::Trap { out_of_memory, .. }) if *out_of_memory => SlotOutcome::Oom,
            Err(ComponentError::Trap { .. }) => SlotOutcome::Trap,
            Err(ComponentError::Guest { .. } | ComponentError::Instantiate { .. }) => {
                SlotOutcome::Fallback
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SlotOutcome::Ok => "ok",
            SlotOutcome::Reused => "reused",
            SlotOutcome::Fallback => "fallback",
            SlotOutcome::Timeout => "timeout",
            SlotOutcome::Trap => "trap",
            SlotOutcome::Oom => "oom",
        }
    }
}

/// One slot's renders, labelled with its component's name: each counted by outcome,
/// and timed when it ran (a reused render is a cache lookup: its time would only crowd
/// the distribution of real renders with zeros).
#[derive(Debug)]
pub struct SlotMetrics {
    component: SharedString,
    renders: [OnceLock<Counter>; SlotOutcome::ALL.len()],
    durations: [OnceLock<Histogram>; SlotOutcome::ALL.len()],
}

impl SlotMetrics {
    pub fn new(component: &str) -> Self {
        SlotMetrics {
            component: SharedString::from_owned(component.to_string()),
            renders: Default::default(),
            durations: Default::default(),
        }
    }

    pub fn rendered(&self, outcome: SlotOutcome, took: Duration) {
        let i = SlotOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_default();
        let labels = || {
            [
                ("component", self.component.clone()),
                ("outcome", SharedString::const_str(outcome.as_str())),
            ]
        };
        self.renders[i]
            .get_or_init(|| ::metrics::counter!(SLOT_RENDERS, &labels()))
            .increment(1);
        if outcome != SlotOutcome::Reused {
            self.durations[i]
                .get_or_init(|| ::metrics::histogram!(SLOT_RENDER_DURATION, &labels()))
                .record(took.as_secs_f64());
        }
    }
}

/// How a data source's fetch ended: `outcome` and `cache` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Fresh from the renderer's cache: no request made.
    Hit,
    /// From the BFF (or from a fetch another page started).
    Miss,
    /// From the cache after the BFF confirmed it (304).
    Revalidated,
    /// From the cache past its freshness: the BFF failed or was not asked.
    Stale,
    Timeout,
    /// The BFF's breaker was open (or too many requests were in flight to it).
    BreakerOpen,
    Error,
}

impl FetchOutcome {
    const ALL: [FetchOutcome; 7] = [
        FetchOutcome::Hit,
        FetchOutcome::Miss,
        FetchOutcome::Revalidated,
        FetchOutcome::Stale,
        FetchOutcome::Timeout,
        FetchOutcome::BreakerOpen,
        FetchOutcome::Error,
    ];

    pub fn of(result: &Result<Fetched, DataError>) -> Self {
        match result {
            Ok(fetched) => match fetched.served {
                Served::Fresh => FetchOutcome::Hit,
                Served::Fetched => FetchOutcome::Miss,
                Served::Revalidated => FetchOutcome::Revalidated,
                Served::Stale => FetchOutcome::Stale,
            },
            Err(DataError::Timeout(_)) => FetchOutcome::Timeout,
            Err(DataError::BreakerOpen | DataError::Overloaded) => FetchOutcome::BreakerOpen,
            Err(_) => FetchOutcome::Error,
        }
    }

    /// `(outcome, cache)`.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            FetchOutcome::Hit => ("ok", "hit"),
            FetchOutcome::Miss => ("ok", "miss"),
            FetchOutcome::Revalidated => ("ok", "revalidated"),
            FetchOutcome::Stale => ("ok", "stale"),
            FetchOutcome::Timeout => ("timeout", "none"),
            FetchOutcome::BreakerOpen => ("breaker_open", "none"),
            FetchOutcome::Error => ("error", "none"),
        }
    }
}

/// One data source's fetches, labelled with its topic: each counted by outcome, and
/// timed unless it was a fresh hit (no request was made).
#[derive(Debug)]
pub struct SourceMetrics {
    source: SharedString,
    by_outcome: [OnceLock<Counter>; FetchOutcome::ALL.len()],
    duration: OnceLock<Histogram>,
}

impl SourceMetrics {
    pub fn new(topic: &str) -> Self {
        SourceMetrics {
            source: SharedString::from_owned(topic.to_string()),
            by_outcome: Default::default(),
            duration: OnceLock::new(),
        }
    }

    pub fn fetched(&self, outcome: FetchOutcome, took: Duration) {
        let i = FetchOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_default();
        self.by_outcome[i]
            .get_or_init(|| {
                let (result, cache) = outcome.labels();
                ::metrics::counter!(
                    DATA_FETCHES,
                    "source" => self.source.clone(),
                    "outcome" => result,
                    "cache" => cache,
                )
            })
            .increment(1);
        if outcome == FetchOutcome::Hit {
            return;
        }
        self.duration
            .get_or_init(
                || ::metrics::histogram!(DATA_FETCH_DURATION, "source" => self.source.clone()),
            )
            .record(took.as_secs_f64());
    }
}

/// Sets what is state from the renderer as it is now: called by `GET /metrics` before
/// it renders.
pub fn observe(renderer: &Renderer) {
    use ::metrics::{counter, gauge};

    let mode = renderer.mode().status();
    gauge!("oberon_renderer_cache_mode").set(mode.mode as u8 as f64);
    gauge!("oberon_renderer_renders_in_flight").set(renderer.mode().admission().in_flight() as f64);

    let pool = renderer.engine().pool();
    gauge!("oberon_renderer_instances_in_use").set(pool.instances_in_use as f64);

    for breaker in renderer.data().breakers() {
        let state = match breaker.state {
            crate::data_client::BreakerState::Closed => 0.0,
            crate::data_client::BreakerState::HalfOpen => 1.0,
            crate::data_client::BreakerState::Open => 2.0,
        };
        gauge!("oberon_renderer_bff_breaker_state", "upstream" => breaker.origin).set(state);
    }
    let data = renderer.data().stats();
    counter!("oberon_renderer_data_coalesced_total").absolute(data.coalesced);
    counter!("oberon_renderer_data_retries_total").absolute(data.retries);

    if let Some(registry) = renderer.registry_status() {
        gauge!("oberon_renderer_registry_generation").set(registry.generation as f64);
        gauge!("oberon_renderer_registry_reachable").set(f64::from(u8::from(registry.reachable)));
    }
    if let Some(cache) = renderer
        .engine()
        .code_cache()
        .map(crate::code_cache::CodeCache::stats)
    {
        counter!("oberon_renderer_code_cache_total", "result" => "hit").absolute(cache.hits);
        counter!("oberon_renderer_code_cache_total", "result" => "miss").absolute(cache.misses);
    }
    let render_cache = renderer.render_cache().stats();
    gauge!("oberon_renderer_render_cache_bytes").set(render_cache.weighted_bytes as f64);
}
