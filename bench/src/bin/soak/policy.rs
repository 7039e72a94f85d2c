//! The policy every answer is held to, from the platform's promises (ARCHITECTURE.md's
//! invariants, `renderer/src/cache.rs`, the gateway's life of a request):
//!
//! 1. **Everything answers**, within the client's 15 s, and says how it may be cached
//!    (`Cache-Control` on every response).
//! 2. **A page never fails because a component, BFF or backend did**: an anonymous or
//!    signed-in page is `200`, whatever is broken behind it. The one other answer is
//!    the renderer shedding load (`503` with `Retry-After` and `no-store`), counted
//!    apart. The chaos page's misbehaving slots all fall back, and it is still `200`.
//! 3. **Personal pages are never shared**: a request with credentials gets
//!    `Cache-Control: private, no-store`, no CDN directives, and Varnish passes it
//!    (`X-Cache: PASS`); the account page and the checkout API show the requesting
//!    user and only that user's orders.
//! 4. **A shared page's CDN decision is the policy table's**: browsers get `max-age=0,
//!    must-revalidate`; the CDN gets `CDN-Cache-Control` (the same as
//!    `Surrogate-Control`) with `stale-if-error` and no `s-maxage`, and a TTL of at most
//!    30 s if anything fell back (a fallback's marker in the body, or a streamed page:
//!    no `ETag`), else at most the mode's ceiling (`normal` and `elevated` 60 s for the
//!    event page's base 60 s, `incident` 300 s; the mode is the page's `mode:` key).
//!    Varnish never holds it longer than that (`X-Oberon-TTL`).
//! 5. **Errors are not cached**: every 5xx is `no-store` and never a cache hit; a 4xx
//!    is `no-store` or cacheable for at most 60 s.
//! 6. **Statuses per URL class**: an anonymous account page is a redirect to sign-in;
//!    the events API is `200` with the event asked for (`404` past the fixtures), and
//!    `502`/`504` only while its backend hangs; the checkout API is `200` signed in and
//!    `401` with `WWW-Authenticate` without; an unknown path is `404` (`400` when its
//!    path is ambiguous).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::load::{Class, Planned};
use crate::schedule::{FaultKind, FaultLog};
use crate::site::{CHAOS_SLOTS, FALLBACK_MARK, user};

/// A partial page's most at the CDN (`cache::PARTIAL_TTL_S`).
const PARTIAL_TTL_S: u64 = 30;
/// The event page's base TTL (`demo/pages/event.toml`), also its `elevated` TTL.
const EVENT_TTL_S: u64 = 60;
/// A public page's TTL in `incident` (`cache::INCIDENT_PUBLIC_TTL_S`).
const INCIDENT_TTL_S: u64 = 300;
/// The longest a 4xx may be cached.
const ERROR_TTL_S: u64 = 60;
/// How long after a fault ends its effects are still allowed (a request started
/// during it, a breaker closing again).
const FAULT_GRACE: Duration = Duration::from_secs(5);

/// One answer (or its absence), as the load saw it.
#[derive(Debug)]
pub struct Observed {
    pub class: Class,
    pub path: String,
    pub user: Option<u32>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
    pub latency: Duration,
    pub finished: Instant,
}

impl Observed {
    pub fn answered(
        planned: &Planned,
        status: u16,
        headers: HeaderMap,
        body: String,
        latency: Duration,
    ) -> Self {
        Self {
            class: planned.class,
            path: planned.path.clone(),
            user: planned.user,
            status: Some(status),
            error: None,
            headers,
            body,
            latency,
            finished: Instant::now(),
        }
    }

    pub fn failed(planned: &Planned, error: String, latency: Duration) -> Self {
        Self {
            class: planned.class,
            path: planned.path.clone(),
            user: planned.user,
            status: None,
            error: Some(error),
            headers: HeaderMap::new(),
            body: String::new(),
            latency,
            finished: Instant::now(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Shed by the renderer's admission limit: allowed, counted apart.
    pub fn shed(&self) -> bool {
        self.status == Some(503)
            && self.header("retry-after").is_some()
            && self.header("cache-control") == Some("no-store")
    }
}

pub struct Policy {
    /// Fixture events are `1..=events`.
    pub events: u32,
    pub faults: Arc<FaultLog>,
}

impl Policy {
    /// Every way `o` breaks the policy; empty when it keeps it.
    pub fn check(&self, o: &Observed) -> Vec<String> {
        let mut v = Vec::new();
        let Some(status) = o.status else {
            v.push(format!(
                "no answer: {}",
                o.error.as_deref().unwrap_or("unknown")
            ));
            return v;
        };
        let Some(cache_control) = o.header("cache-control") else {
            v.push("no Cache-Control".into());
            return v;
        };
        if status >= 500 {
            if !directive(cache_control, "no-store") {
                v.push(format!("a {status} without no-store"));
            }
            if matches!(
                o.header("x-cache"),
                Some("HIT" | "STALE" | "STALE-IF-ERROR")
            ) {
                v.push(format!("a {status} served from the cache"));
            }
        } else if status >= 400 && !directive(cache_control, "no-store") {
            match max_age(cache_control) {
                Some(ttl) if ttl <= ERROR_TTL_S => {}
                _ => v.push(format!(
                    "a {status} cacheable for longer than {ERROR_TTL_S} s"
                )),
            }
        }
        if o.class.signed_in() {
            personal(o, cache_control, &mut v);
        }
        match o.class {
            Class::Event | Class::Chaos => self.shared_page(o, status, cache_control, &mut v),
            Class::EventSignedIn => page_status(o, status, &mut v),
            Class::Account => {
                page_status(o, status, &mut v);
                if status == 200 {
                    account(o, &mut v);
                }
            }
            Class::AccountAnonymous => {
                if !matches!(status, 302 | 303 | 307)
                    || !o
                        .header("location")
                        .is_some_and(|l| l.contains("/_gateway/sign-in"))
                {
                    v.push(format!("{status}, not a redirect to sign-in"));
                }
            }
            Class::ApiEvents => self.events_api(o, status, &mut v),
            Class::ApiCheckout => {
                if status != 200 {
                    v.push(format!("{status}, not 200"));
                } else {
                    only_own_orders(o, &mut v);
                }
            }
            Class::ApiCheckoutAnonymous => {
                if status != 401 || o.header("www-authenticate").is_none() {
                    v.push(format!("{status}, not 401 with WWW-Authenticate"));
                }
            }
            Class::Unknown => {
                if !matches!(status, 400 | 404) {
                    v.push(format!("{status} for a path no route serves"));
                }
            }
        }
        v
    }

    fn shared_page(&self, o: &Observed, status: u16, cache_control: &str, v: &mut Vec<String>) {
        page_status(o, status, v);
        if status != 200 {
            return;
        }
        if !o.body.trim_end().ends_with("</html>") {
            v.push("the page is not whole (no closing </html>)".into());
        }
        if cache_control != "max-age=0, must-revalidate" {
            v.push(format!(
                "a shared page with Cache-Control {cache_control:?}, not \"max-age=0, must-revalidate\""
            ));
        }
        let Some(cdn) = o.header("cdn-cache-control") else {
            v.push("a shared page without CDN-Cache-Control".into());
            return;
        };
        if o.header("surrogate-control") != Some(cdn) {
            v.push("Surrogate-Control differs from CDN-Cache-Control".into());
        }
        if directive(cdn, "s-maxage") || directive(cdn, "private") || directive(cdn, "no-store") {
            v.push(format!(
                "CDN-Cache-Control {cdn:?} has a forbidden directive"
            ));
        }
        if !directive(cdn, "stale-if-error") {
            v.push(format!("CDN-Cache-Control {cdn:?} without stale-if-error"));
        }
        let partial = o.body.contains(FALLBACK_MARK) || o.header("etag").is_none();
        let mode = o.header("surrogate-key").and_then(|keys| {
            keys.split_whitespace()
                .find_map(|k| k.strip_prefix("mode:"))
        });
        let ceiling = match (partial, mode) {
            (true, _) => PARTIAL_TTL_S,
            (false, Some("normal" | "elevated")) => EVENT_TTL_S,
            (false, Some("incident")) => INCIDENT_TTL_S,
            (false, other) => {
                v.push(format!("no known mode key in Surrogate-Key ({other:?})"));
                return;
            }
        };
        match max_age(cdn) {
            Some(ttl) if ttl <= ceiling => {}
            ttl => v.push(format!(
                "CDN TTL {ttl:?} over {ceiling} s (partial: {partial}, mode: {mode:?})"
            )),
        }
        if let Some(held) = o
            .header("x-oberon-ttl")
            .and_then(|t| t.trim().parse::<f64>().ok())
            && held > ceiling as f64 + 1.0
        {
            v.push(format!("Varnish holds it {held} s, over {ceiling} s"));
        }
        if o.class == Class::Chaos {
            for (slot, mode) in CHAOS_SLOTS {
                if !o.body.contains(&format!("{FALLBACK_MARK}<p>{mode}</p>")) {
                    v.push(format!("chaos slot {slot} ({mode}) did not fall back"));
                }
            }
        }
    }

    fn events_api(&self, o: &Observed, status: u16, v: &mut Vec<String>) {
        let id: u32 = o
            .path
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        let hanging = self.faults.overlaps(
            FaultKind::BackendHang,
            o.finished - o.latency,
            o.finished,
            FAULT_GRACE,
        );
        match status {
            200 if id <= self.events => {
                let answered = serde_json::from_str::<serde_json::Value>(&o.body)
                    .ok()
                    .and_then(|event| event["id"].as_str().map(str::to_string));
                if answered.as_deref() != Some(&id.to_string()) {
                    v.push(format!("200 without event {id} (id {answered:?})"));
                }
            }
            404 if id > self.events => {}
            502 | 504 if hanging => {}
            other => v.push(format!(
                "{other} for event {id} (fixtures 1..={}, backend hanging: {hanging})",
                self.events
            )),
        }
    }
}

/// A page's status: 200, or shed.
fn page_status(o: &Observed, status: u16, v: &mut Vec<String>) {
    if status != 200 && !o.shed() {
        v.push(format!("a page answered {status}"));
    }
}

/// Credentials: never shared.
fn personal(o: &Observed, cache_control: &str, v: &mut Vec<String>) {
    let page = matches!(o.class, Class::EventSignedIn | Class::Account);
    if page && o.status == Some(200) && cache_control != "private, no-store" {
        v.push(format!(
            "a signed-in page with Cache-Control {cache_control:?}, not \"private, no-store\""
        ));
    }
    if !page && !directive(cache_control, "private") && !directive(cache_control, "no-store") {
        v.push(format!(
            "a signed-in answer with Cache-Control {cache_control:?}: neither private nor no-store"
        ));
    }
    for name in ["cdn-cache-control", "surrogate-control"] {
        if page && o.header(name).is_some() {
            v.push(format!("a signed-in page with {name}"));
        }
    }
    if o.header("x-cache") != Some("PASS") {
        v.push(format!(
            "a signed-in request not passed by the CDN (X-Cache {:?})",
            o.header("x-cache")
        ));
    }
}

/// The account page names the requesting user and shows only their orders.
fn account(o: &Observed, v: &mut Vec<String>) {
    let Some(i) = o.user else { return };
    let own = format!("<span data-oberon-user>{}</span>", user(i));
    if !o.body.contains(&own) {
        v.push(format!("the account page does not name {}", user(i)));
    }
    only_own_orders(o, v);
}

/// Every `order-of-USER` in the body is the requesting user's.
fn only_own_orders(o: &Observed, v: &mut Vec<String>) {
    let Some(i) = o.user else { return };
    let own = user(i);
    for (at, _) in o.body.match_indices("order-of-") {
        let rest = &o.body[at + "order-of-".len()..];
        let owner: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if owner != own {
            v.push(format!("{own} was shown an order of {owner}"));
            return;
        }
    }
}

/// Whether a `Cache-Control`-like value has `name` (alone or `name=…`).
fn directive(value: &str, name: &str) -> bool {
    value.split(',').any(|d| {
        let d = d.trim();
        d.eq_ignore_ascii_case(name)
            || d.split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
    })
}

fn max_age(value: &str) -> Option<u64> {
    value.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_read_whole() {
        assert!(directive("private, no-store", "no-store"));
        assert!(directive("max-age=5, s-maxage=9", "s-maxage"));
        assert!(!directive("max-age=5", "s-maxage"));
        assert_eq!(max_age("public, max-age=30, stale-if-error=1"), Some(30));
        assert_eq!(max_age("s-maxage=30"), None);
    }
}
