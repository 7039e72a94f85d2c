//! The load: open loop at a fixed rate (a request starts on schedule whether or not
//! the last one answered, as visitors do), through Varnish, a mix of URL classes, each
//! answer checked against the policy as it arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use oberon_service::error_chain;

use crate::policy::{Observed, Policy};
use crate::report::Recorder;

/// What a request is, which decides what its answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// `/events/{id}` anonymous (ids past the fixtures included).
    Event,
    /// `/events/{id}` with a token.
    EventSignedIn,
    /// `/chaos/{id}`: misbehaving components (only during that fault).
    Chaos,
    /// `/account` with a token.
    Account,
    /// `/account` without one.
    AccountAnonymous,
    /// `/api/events/v1/events/{id}`.
    ApiEvents,
    /// `/api/checkout/v1/orders` with a token.
    ApiCheckout,
    /// `/api/checkout/v1/orders` without one.
    ApiCheckoutAnonymous,
    /// Paths no route matches.
    Unknown,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Event,
        Class::EventSignedIn,
        Class::Chaos,
        Class::Account,
        Class::AccountAnonymous,
        Class::ApiEvents,
        Class::ApiCheckout,
        Class::ApiCheckoutAnonymous,
        Class::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Event => "event page",
            Class::EventSignedIn => "event page, signed in",
            Class::Chaos => "chaos page",
            Class::Account => "account, signed in",
            Class::AccountAnonymous => "account, anonymous",
            Class::ApiEvents => "events API",
            Class::ApiCheckout => "checkout API, signed in",
            Class::ApiCheckoutAnonymous => "checkout API, anonymous",
            Class::Unknown => "unknown path",
        }
    }

    pub fn signed_in(self) -> bool {
        matches!(
            self,
            Class::EventSignedIn | Class::Account | Class::ApiCheckout
        )
    }

    /// Share of the load in per mille (chaos: only while its fault is on).
    fn weight(self, chaos: bool) -> u32 {
        match self {
            Class::Event => 450,
            Class::EventSignedIn => 100,
            Class::Chaos => {
                if chaos {
                    100
                } else {
                    0
                }
            }
            Class::Account => 100,
            Class::AccountAnonymous => 30,
            Class::ApiEvents => 150,
            Class::ApiCheckout => 70,
            Class::ApiCheckoutAnonymous => 30,
            Class::Unknown => 70,
        }
    }
}

/// The queries event pages get: the same page under several keys, and values that
/// once climbed a path segment (finding 5).
const QUERIES: &[&str] = &[
    "",
    "?utm_source=soak",
    "?sort=date&page=2",
    "?q=..%2F..",
    "?q=..",
];
const UNKNOWN: &[&str] = &[
    "/nope",
    "/events",
    "/events/1/extra",
    "/_oberon/status",
    "/api/events/metrics",
    "/%2e%2e/etc/passwd",
    "/assets/nope/0/x.js",
];

/// One request to make.
#[derive(Debug, Clone)]
pub struct Planned {
    pub class: Class,
    pub path: String,
    pub user: Option<u32>,
}

/// The URL space: `events` fixture ids (and a few past them), `users` users.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub events: u32,
    pub users: u32,
}

impl Mix {
    pub fn pick(&self, rng: &mut impl Rng, chaos: bool) -> Planned {
        let total: u32 = Class::ALL.iter().map(|c| c.weight(chaos)).sum();
        let mut draw = rng.gen_range(0..total);
        let class = Class::ALL
            .into_iter()
            .find(|c| {
                let w = c.weight(chaos);
                if draw < w {
                    true
                } else {
                    draw -= w;
                    false
                }
            })
            .unwrap_or(Class::Event);
        self.planned(class, rng)
    }

    fn planned(&self, class: Class, rng: &mut impl Rng) -> Planned {
        // A few ids past the fixtures: the backend says 404, the page still renders.
        let id = rng.gen_range(1..=self.events + self.events / 10 + 1);
        let query = QUERIES.choose(rng).copied().unwrap_or("");
        let user = class.signed_in().then(|| rng.gen_range(0..self.users));
        let path = match class {
            Class::Event | Class::EventSignedIn => format!("/events/{id}{query}"),
            Class::Chaos => format!("/chaos/{}", id % 8),
            Class::Account | Class::AccountAnonymous => "/account".into(),
            Class::ApiEvents => format!("/api/events/v1/events/{id}"),
            Class::ApiCheckout | Class::ApiCheckoutAnonymous => "/api/checkout/v1/orders".into(),
            Class::Unknown => UNKNOWN.choose(rng).copied().unwrap_or("/nope").to_string(),
        };
        Planned { class, path, user }
    }

    /// Every URL the load uses (chaos aside), once: the warm-up.
    pub fn every(&self) -> Vec<Planned> {
        let mut out = Vec::new();
        for id in 1..=self.events + self.events / 10 + 1 {
            for query in QUERIES {
                out.push(Planned {
                    class: Class::Event,
                    path: format!("/events/{id}{query}"),
                    user: None,
                });
            }
            out.push(Planned {
                class: Class::ApiEvents,
                path: format!("/api/events/v1/events/{id}"),
                user: None,
            });
        }
        for user in 0..self.users {
            for (class, path) in [
                (Class::Account, "/account"),
                (Class::ApiCheckout, "/api/checkout/v1/orders"),
                (Class::EventSignedIn, "/events/1"),
            ] {
                out.push(Planned {
                    class,
                    path: path.into(),
                    user: Some(user),
                });
            }
        }
        out
    }
}

/// Sends requests and checks what comes back.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    tokens: Arc<crate::tokens::Tokens>,
    policy: Arc<Policy>,
    recorder: Arc<Recorder>,
}

impl Client {
    pub fn new(
        base: String,
        tokens: Arc<crate::tokens::Tokens>,
        policy: Arc<Policy>,
        recorder: Arc<Recorder>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("a reqwest client with no TLS configuration builds");
        Self {
            http,
            base,
            tokens,
            policy,
            recorder,
        }
    }

    /// Make one request, check its answer, record both.
    pub async fn send(&self, planned: Planned) {
        let started = Instant::now();
        let mut request = self
            .http
            .get(format!("{}{}", self.base, planned.path))
            // Varnish shows its TTL and the origin's CDN headers to loopback.
            .header("x-oberon-debug", "1");
        if let Some(user) = planned.user {
            request = request.bearer_auth(self.tokens.get(user));
        }
        let observed = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response.text().await;
                let latency = started.elapsed();
                match body {
                    Ok(body) => Observed::answered(&planned, status, headers, body, latency),
                    Err(e) => Observed::failed(&planned, format!("reading the body: {e}"), latency),
                }
            }
            Err(e) => Observed::failed(&planned, error_chain(&e), started.elapsed()),
        };
        let violations = self.policy.check(&observed);
        self.recorder.record(&observed, violations);
    }
}

/// Longer than anything the platform may take (the gateway's upstream timeout is 5 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Requests at `rate` per second until `stop`; at most `max_in_flight` at once (past
/// that a request is counted as not sent rather than queued, which would close the
/// loop). Returns when every request sent has been answered.
pub async fn open_loop(
    client: Client,
    mix: Mix,
    rate: f64,
    chaos: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    const MAX_IN_FLIGHT: usize = 256;
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = rand::rngs::StdRng::from_entropy();
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let planned = mix.pick(&mut rng, chaos.load(Ordering::Relaxed));
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            client.recorder.not_sent();
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            client.send(planned).await;
            drop(permit);
        });
    }
    // Every permit back: every request answered (or timed out).
    let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
}
