//! The caching contract of a rendered page: how the CDN and the browser may keep it.
//!
//! [`PagePolicy::decide`] is the design's policy table: the page's effective class (the
//! least cacheable of the page, its components, its data sources and the request),
//! whether the render was partial, and the fleet's [`Mode`]. [`PagePolicy::headers`]
//! turns the decision into exact header values: a conservative browser
//! `Cache-Control`; the CDN's policy in `CDN-Cache-Control` (RFC 9213) and
//! `Surrogate-Control`, always with `stale-while-revalidate` and `stale-if-error`;
//! never `s-maxage` (it implies `proxy-revalidate`, which forbids serving stale).
//! [`surrogate_keys`] names what a purge can target, and [`etag`] and
//! [`if_none_match`] give every page a validator.

use std::fmt::Write;

use http::{HeaderMap, HeaderValue, header};

use crate::component::Cacheability;

/// The most a partial render (one that used a fallback) may be cached at the CDN.
pub const PARTIAL_TTL_S: u32 = 30;
/// A public page's CDN TTL in `incident` mode: long enough to take the load off the
/// fleet, short enough that the site is not stuck on old pages for long.
pub const INCIDENT_PUBLIC_TTL_S: u32 = 300;
/// No mode lengthens a TTL beyond this (the design's "never more than 5 min"); a
/// team's own longer base TTL is kept, except for public pages in incident.
pub const MAX_LENGTHENED_TTL_S: u32 = 300;
/// How long the CDN may serve a page past its TTL while the origin fails. An old page
/// beats an error page; anything that must be exact (a ticket count at checkout) is
/// checked again when it is used.
pub const STALE_IF_ERROR_S: u32 = 86_400;
/// The most jitter may take off a TTL.
pub const MAX_JITTER: f64 = 0.5;

/// The fleet's cache mode. Ordered: a higher mode caches cacheable pages longer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Normal,
    Elevated,
    Incident,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Normal, Mode::Elevated, Mode::Incident];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Elevated => "elevated",
            Mode::Incident => "incident",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is none of [`Mode::ALL`] (the operator's mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: use normal, elevated or incident")]
pub struct UnknownMode(pub String);

impl std::str::FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

/// What a response may be cached as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagePolicy {
    /// A renderer error (5xx), or anything that must never be stored.
    NoStore,
    /// A personal page: the browser may not store it either.
    Private,
    /// Shared caches may keep it for `ttl_s`, then serve it stale while revalidating
    /// for `swr_s`, and on origin errors for `sie_s`.
    Shared { ttl_s: u32, swr_s: u32, sie_s: u32 },
}

impl PagePolicy {
    /// The policy table. `class` is the effective class, `base_ttl_s` the team's TTL
    /// for the page in normal mode, `partial` whether any slot fell back.
    pub fn decide(class: Cacheability, base_ttl_s: u32, partial: bool, mode: Mode) -> Self {
        let ttl = match (class, mode) {
            (Cacheability::Personal, _) => return PagePolicy::Private,
            (_, Mode::Normal) => base_ttl_s,
            (Cacheability::Public, Mode::Elevated) => base_ttl_s.max(60),
            (Cacheability::Public, Mode::Incident) => INCIDENT_PUBLIC_TTL_S,
            (Cacheability::Volatile, Mode::Elevated) => base_ttl_s.max(30),
            (Cacheability::Volatile, Mode::Incident) => base_ttl_s.max(60),
        };
        let ttl = if partial { ttl.min(PARTIAL_TTL_S) } else { ttl };
        if ttl == 0 {
            // Nothing to share: say so plainly rather than `max-age=0` at the CDN.
            return PagePolicy::NoStore;
        }
        PagePolicy::Shared {
            ttl_s: ttl,
            swr_s: ttl,
            sie_s: STALE_IF_ERROR_S,
        }
    }

    /// The header values. `jitter` is the fraction of the CDN TTL to take off (0 for
    /// none, at most [`MAX_JITTER`]; callers pass a random share of the site's jitter),
    /// so pages rendered together do not all expire together. Jitter only ever
    /// shortens, so no ceiling is exceeded.
    pub fn headers(self, jitter: f64) -> PageCacheHeaders {
        match self {
            PagePolicy::NoStore => PageCacheHeaders {
                cache_control: HeaderValue::from_static("no-store"),
                cdn: None,
            },
            PagePolicy::Private => PageCacheHeaders {
                cache_control: HeaderValue::from_static("private, no-store"),
                cdn: None,
            },
            PagePolicy::Shared {
                ttl_s,
                swr_s,
                sie_s,
            } => {
                let cut = (f64::from(ttl_s) * jitter.clamp(0.0, MAX_JITTER)) as u32;
                let ttl = ttl_s.saturating_sub(cut).max(1);
                let cdn = format!(
                    "max-age={ttl}, stale-while-revalidate={swr_s}, stale-if-error={sie_s}"
                );
                PageCacheHeaders {
                    // Browsers revalidate every use (with the ETag, so usually a 304);
                    // only the CDN keeps pages, and the CDN can be purged.
                    cache_control: HeaderValue::from_static("max-age=0, must-revalidate"),
                    cdn: HeaderValue::from_str(&cdn).ok(),
                }
            }
        }
    }
}

/// Caching headers for one page response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCacheHeaders {
    pub cache_control: HeaderValue,
    /// `CDN-Cache-Control` and `Surrogate-Control`; absent when nothing may be shared.
    pub cdn: Option<HeaderValue>,
}

/// Everything the CDN decision for one page depends on: the one input of [`decide`].
/// Known before the first byte, so a streamed page is decided from it like a whole one.
#[derive(Debug, Clone, Copy)]
pub struct PageFacts<'a> {
    /// The least cacheable of the page's declared class, its components' declared
    /// classes and its data sources' answers (those known when the headers leave).
    pub class: Cacheability,
    /// The request carries a cookie, credentials or a verified user.
    pub credentials: bool,
    /// Rendered with a canary version (see ARCHITECTURE.md, "Canaries and the CDN").
    pub canary: bool,
    /// A slot fell back, or may still (a streamed page's slots still pending).
    pub partial: bool,
    /// The team's TTL for the page in normal mode.
    pub base_ttl_s: u32,
    pub mode: Mode,
    /// The share of the CDN TTL to take off (see [`PagePolicy::headers`]).
    pub jitter: f64,
    pub keys: &'a PageKeys,
    /// The whole body, when it is known before the headers leave: it gets an `ETag`
    /// and `If-None-Match` is answered. `None` for a streamed page.
    pub body: Option<&'a [u8]>,
    /// The request's headers (`If-None-Match`).
    pub request: &'a HeaderMap,
}

/// What [`decide`] makes of a page's facts.
#[derive(Debug)]
pub struct PageCache {
    /// `Cache-Control`, `CDN-Cache-Control`, `Surrogate-Control`, `Vary`,
    /// `Surrogate-Key`, `Cache-Tag`, `ETag`: exactly those that apply.
    pub headers: HeaderMap,
    /// The effective class: personal for a request with credentials.
    pub class: Cacheability,
    pub policy: PagePolicy,
    /// `If-None-Match` matched the body's `ETag`: answer 304.
    pub not_modified: bool,
    /// What these headers promise, for a page whose inputs are still coming.
    pub promise: Promise,
}

/// What a streamed page's headers promised. A later input may join the page only if
/// the decision with it would have been the same: a personal answer can never land in
/// a page the CDN was told it may share. (A volatile answer joins a public page: a
/// streamed page is decided as partial, where public and volatile get the same TTL.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promise {
    class: Cacheability,
    canary: bool,
    base_ttl_s: u32,
    mode: Mode,
    partial: bool,
    policy: PagePolicy,
}

impl Promise {
    /// Whether an input of class `late` keeps the promise.
    pub fn admits(&self, late: Cacheability) -> bool {
        let class = policy_class(self.class.max(late), self.canary);
        PagePolicy::decide(class, self.base_ttl_s, self.partial, self.mode) == self.policy
    }
}

/// The class the policy table is given: a canary page is never stored by a shared
/// cache, since a CDN keys on the URL and a stored canary copy would be served to
/// everybody, far beyond its share.
fn policy_class(class: Cacheability, canary: bool) -> Cacheability {
    if canary {
        Cacheability::Personal
    } else {
        class
    }
}

/// The CDN decision for one page: the policy table applied to its facts, and every
/// caching header of the response.
pub fn decide(facts: &PageFacts<'_>) -> PageCache {
    let class = if facts.credentials {
        Cacheability::Personal
    } else {
        facts.class
    };
    let policy = PagePolicy::decide(
        policy_class(class, facts.canary),
        facts.base_ttl_s,
        facts.partial,
        facts.mode,
    );
    let cache = policy.headers(facts.jitter);
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::CACHE_CONTROL, cache.cache_control);
    let keys = facts.keys.get(facts.mode);
    match cache.cdn {
        Some(cdn) => {
            headers.insert("cdn-cache-control", cdn.clone());
            headers.insert("surrogate-control", cdn);
            // What a shared cache must key on besides the URL: a request with a
            // session cookie or credentials gets a personal page, never this one; and
            // the page comes compressed for a client that accepts it
            // ([`crate::compress`]).
            headers.insert(
                header::VARY,
                HeaderValue::from_static("Cookie, Authorization, Accept-Encoding"),
            );
            if let Some((space, comma)) = keys {
                headers.insert("surrogate-key", space.clone());
                headers.insert("cache-tag", comma.clone());
            }
        }
        // Not stored anyway, but the keys say which versions made a canary page.
        None if facts.canary => {
            if let Some((space, _)) = keys {
                headers.insert("surrogate-key", space.clone());
            }
        }
        None => {}
    }
    let mut not_modified = false;
    if let Some(body) = facts.body {
        let tag = etag(body);
        not_modified = if_none_match(facts.request.get_all(header::IF_NONE_MATCH), &tag);
        headers.insert(header::ETAG, tag);
    }
    PageCache {
        headers,
        class,
        policy,
        not_modified,
        promise: Promise {
            class,
            canary: facts.canary,
            base_ttl_s: facts.base_ttl_s,
            mode: facts.mode,
            partial: facts.partial,
            policy,
        },
    }
}

/// The keys a page response is tagged with, for purging: the route, the team, each
/// component by name and by version, and the mode it was rendered in. `Surrogate-Key`
/// separates them with spaces, `Cache-Tag` with commas.
pub fn surrogate_keys<'a>(
    route: &str,
    team: &str,
    components: impl IntoIterator<Item = (&'a str, &'a str)>,
    mode: Mode,
) -> Vec<String> {
    let prefixed = |prefix: &str, text: &str| {
        let mut key = String::with_capacity(prefix.len() + text.len());
        key.push_str(prefix);
        key.push_str(text);
        key
    };
    let mut keys = vec![
        "oberon".to_string(),
        prefixed("route:", &key_text(route)),
        prefixed("team:", &key_text(team)),
    ];
    for (name, version) in components {
        let by_name = prefixed("component:", name);
        let mut by_version = String::with_capacity(by_name.len() + 1 + version.len());
        by_version.push_str(&by_name);
        by_version.push('@');
        by_version.push_str(version);
        for key in [by_name, by_version] {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.push(mode_key(mode));
    keys
}

/// A page variant's `Surrogate-Key` (space-separated) and `Cache-Tag` (comma-separated)
/// values, one pair per mode: built with the site, so a request only picks its pair.
#[derive(Debug, Clone)]
pub struct PageKeys {
    by_mode: [Option<(HeaderValue, HeaderValue)>; 3],
}

impl PageKeys {
    pub fn new<'a>(
        route: &str,
        team: &str,
        components: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Self {
        let by_mode = Mode::ALL.map(|mode| {
            let keys = surrogate_keys(route, team, components.clone(), mode);
            HeaderValue::from_str(&keys.join(" "))
                .ok()
                .zip(HeaderValue::from_str(&keys.join(",")).ok())
        });
        Self { by_mode }
    }

    /// `(Surrogate-Key, Cache-Tag)` for a page rendered in `mode`; `None` if the keys
    /// are not a valid header value (they always are: every key is sanitised).
    pub fn get(&self, mode: Mode) -> Option<&(HeaderValue, HeaderValue)> {
        self.by_mode[Mode::ALL.iter().position(|m| *m == mode).unwrap_or(0)].as_ref()
    }
}

/// The key of one component version, as [`surrogate_keys`] writes it.
pub fn component_version_key(name: &str, version: &str) -> String {
    format!("component:{name}@{version}")
}

/// The key of a mode, as [`surrogate_keys`] writes it.
pub fn mode_key(mode: Mode) -> String {
    format!("mode:{mode}")
}

/// Keys are header tokens: anything but a conservative set of characters becomes `_`.
fn key_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:/@{}+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A strong validator for a page body: 128 bits of XXH3, quoted.
pub fn etag(body: &[u8]) -> HeaderValue {
    let mut tag = String::with_capacity(34);
    let _ = write!(tag, "\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// The validator of the page whose identity tag is `etag`, compressed with `coding`:
/// `"<tag>-<coding>"`, a representation of its own ([`crate::compress`]).
pub fn coded_etag(etag: &HeaderValue, coding: &str) -> HeaderValue {
    let tag = etag.to_str().unwrap_or("\"\"");
    let tag = tag.strip_suffix('"').unwrap_or(tag);
    HeaderValue::from_str(&format!("{tag}-{coding}\"")).unwrap_or_else(|_| etag.clone())
}

/// Whether `If-None-Match` (any number of header lines, each a list) matches `etag`,
/// by the weak comparison RFC 9110 prescribes for it; `*` matches any current page.
/// A tag of the page compressed ([`coded_etag`]) matches too: the page has not changed,
/// whichever coding the client last got it in.
pub fn if_none_match<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
    etag: &HeaderValue,
) -> bool {
    let ours = opaque(etag.to_str().unwrap_or(""));
    values.into_iter().any(|v| {
        v.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|candidate| candidate == "*" || opaque(candidate) == ours)
        })
    })
}

/// The tag compared: without `W/`, its quotes, and a coding's suffix.
fn opaque(tag: &str) -> &str {
    let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
    ["-br", "-gzip"]
        .iter()
        .find_map(|suffix| tag.strip_suffix(suffix))
        .unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    use Cacheability::{Personal, Public, Volatile};
    use Mode::{Elevated, Incident, Normal};

    /// The CDN header of a decision without jitter (`None` when nothing is shared),
    /// and the browser header.
    fn cell(class: Cacheability, base: u32, partial: bool, mode: Mode) -> (String, Option<String>) {
        let h = PagePolicy::decide(class, base, partial, mode).headers(0.0);
        (
            h.cache_control.to_str().unwrap().to_string(),
            h.cdn.map(|v| v.to_str().unwrap().to_string()),
        )
    }

    fn shared(ttl: u32) -> (String, Option<String>) {
        (
            "max-age=0, must-revalidate".into(),
            Some(format!(
                "max-age={ttl}, stale-while-revalidate={ttl}, stale-if-error=86400"
            )),
        )
    }

    // One test per cell of the design's table (rows: class; columns: mode).

    #[test]
    fn public_normal_is_the_teams_base_ttl() {
        assert_eq!(cell(Public, 120, false, Normal), shared(120));
        assert_eq!(cell(Public, 10, false, Normal), shared(10));
    }

    #[test]
    fn public_elevated_is_at_least_60s() {
        assert_eq!(cell(Public, 10, false, Elevated), shared(60));
        assert_eq!(cell(Public, 120, false, Elevated), shared(120));
    }

    #[test]
    fn public_incident_is_300s_and_never_longer() {
        assert_eq!(cell(Public, 10, false, Incident), shared(300));
        assert_eq!(cell(Public, 3600, false, Incident), shared(300));
    }

    #[test]
    fn volatile_normal_is_the_teams_base_ttl() {
        assert_eq!(cell(Volatile, 5, false, Normal), shared(5));
    }

    #[test]
    fn volatile_elevated_is_30s() {
        assert_eq!(cell(Volatile, 5, false, Elevated), shared(30));
    }

    #[test]
    fn volatile_incident_is_60s() {
        assert_eq!(cell(Volatile, 5, false, Incident), shared(60));
    }

    #[test]
    fn partial_renders_are_cached_30s_at_most_in_every_mode() {
        for mode in Mode::ALL {
            assert_eq!(cell(Public, 120, true, mode), shared(30), "{mode}");
            assert_eq!(cell(Volatile, 120, true, mode), shared(30), "{mode}");
        }
        assert_eq!(cell(Volatile, 5, true, Normal), shared(5));
    }

    #[test]
    fn personal_pages_are_never_stored_in_any_mode() {
        for mode in Mode::ALL {
            for partial in [false, true] {
                assert_eq!(
                    cell(Personal, 120, partial, mode),
                    ("private, no-store".into(), None),
                    "{mode}"
                );
            }
        }
    }

    #[test]
    fn errors_are_never_stored() {
        let h = PagePolicy::NoStore.headers(0.5);
        assert_eq!(
            (h.cache_control.to_str().unwrap(), h.cdn),
            ("no-store", None)
        );
    }

    #[test]
    fn a_zero_base_ttl_shares_nothing_in_normal_mode() {
        assert_eq!(cell(Public, 0, false, Normal), ("no-store".into(), None));
        assert_eq!(cell(Public, 0, false, Elevated), shared(60));
    }

    #[test]
    fn no_policy_ever_says_s_maxage_or_exceeds_its_ceiling() {
        for class in [Public, Volatile, Personal] {
            for mode in Mode::ALL {
                for base in [0, 1, 5, 30, 60, 120, 300, 3600] {
                    for partial in [false, true] {
                        let policy = PagePolicy::decide(class, base, partial, mode);
                        for jitter in [0.0, 0.05, 0.1] {
                            let h = policy.headers(jitter);
                            assert!(!h.cache_control.to_str().unwrap().contains("s-maxage"));
                            if let PagePolicy::Shared { ttl_s, .. } = policy {
                                if mode != Normal {
                                    assert!(ttl_s <= base.max(MAX_LENGTHENED_TTL_S));
                                }
                                if mode == Incident && class == Public && !partial {
                                    assert_eq!(ttl_s, 300);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn jitter_only_shortens_and_at_most_by_half() {
        let policy = PagePolicy::decide(Public, 300, false, Incident);
        let max_age = |j: f64| -> u32 {
            let cdn = policy.headers(j).cdn.unwrap();
            let s = cdn.to_str().unwrap();
            s["max-age=".len()..s.find(',').unwrap()].parse().unwrap()
        };
        assert_eq!(max_age(0.0), 300);
        assert_eq!(max_age(0.05), 285);
        assert_eq!(max_age(0.0999), 271);
        assert_eq!(max_age(7.0), 150, "out-of-range jitter is clamped");
        assert_eq!(max_age(-1.0), 300);
        let one = PagePolicy::decide(Public, 1, false, Normal);
        assert!(
            one.headers(0.5)
                .cdn
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("max-age=1,")
        );
    }

    #[test]
    fn keys_name_route_team_components_and_mode() {
        let keys = surrogate_keys(
            "/events/{id}",
            "events",
            [
                ("ticket-picker", "ab12"),
                ("cart-summary", "cd34"),
                ("ticket-picker", "ab12"),
            ],
            Elevated,
        );
        assert_eq!(
            keys.join(" "),
            "oberon route:/events/{id} team:events component:ticket-picker \
             component:ticket-picker@ab12 component:cart-summary component:cart-summary@cd34 \
             mode:elevated"
        );
        assert_eq!(
            surrogate_keys("/a b", "t,x", [], Normal)[1..3],
            ["route:/a_b", "team:t_x"]
        );
    }

    #[test]
    fn page_keys_are_the_surrogate_keys_of_each_mode() {
        let components = [("ticket-picker", "ab12"), ("cart-summary", "cd34")];
        let keys = PageKeys::new("/events/{id}", "events", components);
        for mode in Mode::ALL {
            let expected = surrogate_keys("/events/{id}", "events", components, mode);
            let (space, comma) = keys.get(mode).expect("valid");
            assert_eq!(space.to_str().unwrap(), expected.join(" "));
            assert_eq!(comma.to_str().unwrap(), expected.join(","));
        }
    }

    #[test]
    fn etags_are_strong_and_matched_weakly() {
        let tag = etag(b"<html>1</html>");
        assert_eq!(tag.len(), 34);
        assert_ne!(tag, etag(b"<html>2</html>"));
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        let weak = hv(&format!("W/{}", tag.to_str().unwrap()));
        assert!(if_none_match([&tag], &tag));
        assert!(if_none_match([&weak], &tag));
        assert!(if_none_match(
            [&hv(&format!("\"x\", {}", tag.to_str().unwrap()))],
            &tag
        ));
        assert!(if_none_match([&hv("\"x\""), &tag], &tag));
        assert!(if_none_match([&hv("*")], &tag));
        assert!(!if_none_match([&hv("\"x\"")], &tag));
        assert!(!if_none_match([], &tag));
        let gzip = coded_etag(&tag, "gzip");
        assert_eq!(
            gzip.to_str().unwrap(),
            format!("{}-gzip\"", tag.to_str().unwrap().trim_end_matches('"'))
        );
        assert!(
            if_none_match([&gzip], &tag),
            "a compressed copy is as fresh"
        );
        assert!(if_none_match([&coded_etag(&tag, "br")], &tag));
        assert!(!if_none_match([&coded_etag(&hv("\"x\""), "br")], &tag));
    }

    #[test]
    fn a_streamed_promise_admits_what_would_not_change_the_headers() {
        let keys = PageKeys::new("/", "t", []);
        let request = HeaderMap::new();
        let facts = |class, credentials, canary| PageFacts {
            class,
            credentials,
            canary,
            partial: true,
            base_ttl_s: 120,
            mode: Normal,
            jitter: 0.0,
            keys: &keys,
            body: None,
            request: &request,
        };
        let shared = decide(&facts(Public, false, false)).promise;
        assert!(shared.admits(Public));
        assert!(shared.admits(Volatile), "partial: the same TTL either way");
        assert!(
            !shared.admits(Personal),
            "a personal answer in a shared page"
        );
        for personal in [
            decide(&facts(Public, true, false)).promise,
            decide(&facts(Public, false, true)).promise,
            decide(&facts(Personal, false, false)).promise,
        ] {
            assert!(personal.admits(Personal), "nothing is shared anyway");
        }
    }
}
