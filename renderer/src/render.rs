//! The life of a page request, in phases:
//!
//! 1. **match** the path to a page of the site, and draw its variant (canary or stable);
//! 2. **identify** the user from the gateway's assertion;
//! 3. **run** its inputs ([`run::PageRun`]): every data source fetched concurrently,
//!    every component rendered as soon as the topics it subscribes to are settled
//!    (publishers before subscribers, each in a fresh instance with its deadline);
//! 4. **decide** when the headers leave: once the critical slots have rendered (a failed
//!    one makes the page a 503), the page is sent whole if all its data has answered,
//!    else **streamed**: head and layout now, the rest in order as it renders;
//! 5. **compose** the slots into the page's layout skeleton ([`crate::layout`]);
//! 6. **cache headers** from one set of facts ([`cache::decide`]).
//!
//! Nothing a data source or a non-critical component does can fail the page or hold it
//! past its deadline.

mod run;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tracing::Instrument;

use crate::bus::BusSnapshot;
use crate::cache::{self, PageFacts};
use crate::component::{Cacheability, RequestContext, User};
use crate::error_page::SiteError;
use crate::layout::{Composition, Piece};
use crate::lifecycle::Renderer;
use crate::metrics::PageMeter;
use crate::site::{DataSource, Page, PageVariant, REQUEST_TOPIC, Site};
use oberon_identity::assertion::HEADER as IDENTITY_HEADER;
use oberon_service::trace::{Onward, Sampling};
use run::PageRun;

/// A rendered response, whole, before it becomes HTTP (tests, benchmarks, previews).
#[derive(Debug)]
pub struct PageResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// A page response as it leaves: its head decided, its body whole or still streaming.
pub struct PageReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ReplyBody,
    /// What it counts as in the metrics, once its method and time are known.
    pub meter: PageMeter,
}

pub enum ReplyBody {
    Whole(String),
    /// Sent before all its data had answered: the rest follows as it renders.
    Stream(Box<PageStream>),
}

impl PageReply {
    /// The whole response, waiting for a streamed body's end.
    pub async fn collect(self) -> PageResponse {
        let body = match self.body {
            ReplyBody::Whole(body) => body,
            ReplyBody::Stream(mut stream) => {
                let mut body = String::new();
                while let Some(chunk) = stream.next_chunk().await {
                    body.push_str(&chunk);
                }
                body
            }
        };
        PageResponse {
            status: self.status,
            headers: self.headers,
            body,
        }
    }
}

/// The page matched by a request: the site it belongs to (held for the request's whole
/// life, so a hot swap never changes versions under it), the page and its variant.
struct Target {
    site: Arc<Site>,
    page: usize,
    variant: usize,
    params: Vec<(String, String)>,
}

impl Target {
    fn page(&self) -> &Page {
        &self.site.pages[self.page]
    }

    fn variant(&self) -> &PageVariant {
        &self.page().variants[self.variant]
    }
}

impl Renderer {
    /// Render the page for `path` (already normalised) and `query`, whole.
    pub async fn render(
        self: &Arc<Self>,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
    ) -> PageResponse {
        self.reply_inner(path, query, request, None)
            .await
            .collect()
            .await
    }

    /// Render with the data sources' values given instead of fetched (topic, JSON):
    /// for previews of a page against fixture data, and to measure the render alone.
    pub async fn render_with_data(
        self: &Arc<Self>,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
        data: &[(&str, &str)],
    ) -> PageResponse {
        let given = data
            .iter()
            .map(|(t, v)| (Arc::from(*t), Arc::from(*v)))
            .collect();
        self.reply_inner(path, query, request, Some(given))
            .await
            .collect()
            .await
    }

    /// The page for `path` and `query` as it leaves: whole, or streamed when data is
    /// still outstanding once its critical slots have rendered.
    pub async fn reply(
        self: &Arc<Self>,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
    ) -> PageReply {
        self.reply_inner(path, query, request, None).await
    }

    /// The request's span: every line logged about the request, while it renders and
    /// while its body streams, carries its id from here.
    async fn reply_inner(
        self: &Arc<Self>,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
        given: Option<Vec<(Arc<str>, Arc<str>)>>,
    ) -> PageReply {
        let started = Instant::now();
        let request_id = request_id(request);
        let target = self.match_page(path);
        let sampling = Sampling::decide(request);
        let traced = sampling.as_ref().is_some_and(Sampling::is_sampled);
        let span = page_span(&request_id, target.as_ref(), traced);
        let onward = sampling.and_then(|s| s.begin(&span)).unwrap_or_default();
        let begun = Begun {
            started,
            traced,
            onward,
        };
        self.reply_in(request_id, target, (path, query, request), given, begun)
            .instrument(span)
            .await
    }

    /// In the page's span: the page in a sampled trace gets its status recorded and
    /// its parts' spans.
    async fn reply_in(
        self: &Arc<Self>,
        request_id: Arc<str>,
        target: Option<Target>,
        asked: (&str, Option<&str>, &HeaderMap),
        given: Option<Vec<(Arc<str>, Arc<str>)>>,
        begun: Begun,
    ) -> PageReply {
        let Some(target) = target else {
            let site = self.site();
            let meter = PageMeter::page(&site.unmatched, None, begun.started);
            return site_error(&site, SiteError::NotFound, meter);
        };
        let traced = begun.traced;
        let reply = self
            .reply_phases(request_id, target, asked, given, begun)
            .await;
        if traced {
            let status = reply.status.as_u16();
            tracing::Span::current().record("http.response.status_code", status);
        }
        reply
    }

    async fn reply_phases(
        self: &Arc<Self>,
        request_id: Arc<str>,
        target: Target,
        (path, query, request): (&str, Option<&str>, &HeaderMap),
        given: Option<Vec<(Arc<str>, Arc<str>)>>,
        begun: Begun,
    ) -> PageReply {
        let started = begun.started;
        let (ctx, assertion) = self
            .identify(&target, request_id, path, query, request)
            .await;
        let credentials = request.contains_key(header::AUTHORIZATION)
            || request.contains_key(header::COOKIE)
            || ctx.user.is_some();
        let mut run = PageRun::start(
            self.clone(),
            target,
            ctx,
            assertion,
            credentials,
            given,
            begun,
        );
        let critical = run.phase("critical");
        run.until_critical().await;
        drop(critical);
        if let Some((slot, reason)) = run.critical_failure() {
            let page = run.target.page();
            tracing::error!(route = %page.route, team = %page.team, side = %reason.side(), "critical component failed: slot {slot}: {reason}");
            self.mode.record(started.elapsed());
            let meter = PageMeter::page(&page.metrics, None, started);
            return site_error(&run.target.site, SiteError::Unavailable, meter);
        }
        if run.data_settled() {
            let settle = run.phase("settle");
            run.until_end().await;
            drop(settle);
            let _composing = run.phase("compose");
            return self.whole(run, credentials, request);
        }
        // The body goes on after this returns: it takes the request's span along.
        self.streamed(run, credentials, request, tracing::Span::current())
    }

    /// Phase 1: the page and its variant. One draw per request, not per slot: the
    /// whole page is one combination of versions (see `Page::variant`).
    fn match_page(&self, path: &str) -> Option<Target> {
        let site = self.site();
        let matched = site.router.at(path).ok()?;
        let page = *matched.value;
        // Matched on the raw path, so an encoded `/` never crosses a segment; the
        // values components see are decoded.
        let params = matched
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), decode_path_segment(v)))
            .collect();
        let variant = site.pages[page].variant_index(rand::random::<f64>() * 100.0);
        Some(Target {
            site,
            page,
            variant,
            params,
        })
    }

    /// Phase 2: the request's context, with the user only from the gateway's verified
    /// assertion (a bare header from a client that skipped the gateway is never
    /// trusted), and that assertion to pass on to BFFs.
    async fn identify(
        &self,
        target: &Target,
        request_id: Arc<str>,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
    ) -> (RequestContext, Option<Arc<Delegable>>) {
        let (user, assertion) = self.user_of(request, &request_id).await;
        let ctx = RequestContext {
            path: path.to_string(),
            params: target.params.clone(),
            query: query.map(form_urlencoded_pairs).unwrap_or_default(),
            locale: target.site.locale.clone(),
            user,
            request_id,
        };
        (ctx, assertion.map(Arc::new))
    }

    /// The whole page: every slot settled, composed, with its ETag.
    fn whole(&self, run: PageRun, credentials: bool, request: &HeaderMap) -> PageReply {
        let compose_started = Instant::now();
        let settled = run.into_settled();
        let target = &settled.target;
        let page = target.page();
        let variant = target.variant();
        let mut class = page.class.max(settled.data_class);
        let mut partial = false;
        let mut composition =
            Composition::new(&settled.bus, &page.private_topics, variant.slots.len());
        composition.defaults = &page.head;
        for (slot, outcome) in variant.slots.iter().zip(settled.outcomes) {
            let meta = slot.component.component.metadata();
            class = class.max(meta.cacheability);
            match outcome {
                Some(Ok(fragment)) => composition.rendered(
                    &slot.name,
                    fragment,
                    meta.assets.iter().map(|a| slot.component.asset_url(a)),
                ),
                _ => {
                    partial = true;
                    composition.fell_back(&slot.name, &slot.fallback);
                }
            }
        }
        let body = page.skeleton.fill(&composition);
        let compose = compose_started.elapsed();
        let facts = self.facts(
            target,
            class,
            credentials,
            partial,
            Some(body.as_bytes()),
            request,
        );
        let decided = cache::decide(&facts);
        let mut headers = page_headers(variant, decided.headers);
        let timing = server_timing(variant, &settled.timings, compose);
        if let Ok(v) = HeaderValue::from_str(&timing) {
            headers.insert("server-timing", v);
        }
        self.finished(target, settled.started, partial, false, facts.mode);
        let meter = PageMeter::page(&page.metrics, Some(class), settled.started);
        if decided.not_modified {
            return PageReply {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: ReplyBody::Whole(String::new()),
                meter,
            };
        }
        PageReply {
            status: StatusCode::OK,
            headers,
            body: ReplyBody::Whole(body),
            meter,
        }
    }

    /// A page whose data is still outstanding: headers from what is known now (the
    /// page's and its components' declared classes, the credentials, the data answered
    /// so far; partial, since a pending slot may yet fall back), no ETag; the body
    /// follows as the slots render. A later answer less cacheable than promised is
    /// dropped from this render.
    fn streamed(
        &self,
        mut run: PageRun,
        credentials: bool,
        request: &HeaderMap,
        span: tracing::Span,
    ) -> PageReply {
        let variant = run.target.variant();
        let class = variant
            .slots
            .iter()
            .map(|s| s.component.component.metadata().cacheability)
            .fold(
                run.target.page().class.max(run.data_class()),
                Cacheability::max,
            );
        let facts = self.facts(&run.target, class, credentials, true, None, request);
        let mode = facts.mode;
        let decided = cache::decide(&facts);
        let mut headers = page_headers(variant, decided.headers);
        let mut timing = String::from("head;dur=");
        push_ms(&mut timing, run.started.elapsed());
        if let Ok(v) = HeaderValue::from_str(&timing) {
            headers.insert("server-timing", v);
        }
        run.promise(decided.promise);
        self.counts.streamed.fetch_add(1, Ordering::Relaxed);
        let meter = PageMeter::page(&run.target.page().metrics, Some(class), run.started);
        PageReply {
            status: StatusCode::OK,
            meter,
            headers,
            body: ReplyBody::Stream(Box::new(PageStream {
                run,
                next: 0,
                mode,
                span,
            })),
        }
    }

    /// Phase 6's input: everything the CDN decision depends on.
    fn facts<'a>(
        &self,
        target: &'a Target,
        class: Cacheability,
        credentials: bool,
        partial: bool,
        body: Option<&'a [u8]>,
        request: &'a HeaderMap,
    ) -> PageFacts<'a> {
        let page = target.page();
        let variant = target.variant();
        PageFacts {
            class,
            credentials,
            canary: variant.is_canary(),
            partial,
            base_ttl_s: page.ttl_s,
            mode: self.mode.current(),
            jitter: match self.source.config.cache.jitter {
                0.0 => 0.0,
                j => j * rand::random::<f64>(),
            },
            keys: &variant.keys,
            body,
            request,
        }
    }

    /// Count and log a page whose every slot has settled.
    fn finished(
        &self,
        target: &Target,
        started: Instant,
        partial: bool,
        streamed: bool,
        mode: cache::Mode,
    ) {
        let page = target.page();
        let canary = target.variant().is_canary();
        let counter = if canary {
            &self.counts.canary
        } else {
            &self.counts.stable
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let elapsed = started.elapsed();
        self.mode.record(elapsed);
        // One line per page would cost more than composing a page from reused parts:
        // ordinary pages are logged at debug, the ones worth a look (a fallback, a
        // stream) at info. Every fallback and late source has its own warning anyway.
        if partial || streamed {
            tracing::info!(
                route = %page.route, team = %page.team, partial, streamed,
                canary, %mode, elapsed_us = elapsed.as_micros() as u64, "page rendered"
            );
        } else {
            tracing::debug!(
                route = %page.route, team = %page.team,
                canary, %mode, elapsed_us = elapsed.as_micros() as u64, "page rendered"
            );
        }
    }

    /// The signed-in user, if the request carries an assertion the gateway signed for
    /// it, and that assertion (to pass on to BFFs). Anything else is anonymous.
    async fn user_of(
        &self,
        request: &HeaderMap,
        request_id: &str,
    ) -> (Option<User>, Option<Delegable>) {
        let Some(token) = request.get(IDENTITY_HEADER).and_then(|v| v.to_str().ok()) else {
            return (None, None);
        };
        let Some(verifier) = &self.identity else {
            tracing::warn!(
                "identity assertion ignored: the renderer has no gateway keys (--identity-jwks)"
            );
            return (None, None);
        };
        match verifier.verify(token, request_id).await {
            Ok(asserted) => (
                Some(User {
                    issuer: asserted.identity.issuer,
                    subject: asserted.identity.subject,
                    roles: asserted.identity.roles,
                }),
                Some(Delegable {
                    token: Arc::from(token),
                    audiences: asserted.audiences,
                }),
            ),
            Err(e) => {
                tracing::warn!("identity assertion refused, rendering anonymously: {e}");
                (None, None)
            }
        }
    }
}

/// The user's assertion as the renderer may pass it on: the token, and the services
/// the gateway made it good at (this renderer and its delegates).
#[derive(Debug)]
pub(crate) struct Delegable {
    token: Arc<str>,
    audiences: Vec<String>,
}

impl Delegable {
    /// The assertion to send to `source`: only to a source that receives the user
    /// (`identity = true`), and only when the assertion names that source's BFF. Every
    /// other source is asked anonymously.
    pub(crate) fn for_source(&self, source: &DataSource) -> Option<Arc<str>> {
        let audience = source.identity.as_deref()?;
        self.audiences
            .iter()
            .any(|a| a == audience)
            .then(|| self.token.clone())
    }
}

/// The headers every page has besides its caching headers.
fn page_headers(variant: &PageVariant, mut headers: HeaderMap) -> HeaderMap {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        "oberon-channel",
        HeaderValue::from_static(if variant.is_canary() {
            "canary"
        } else {
            "stable"
        }),
    );
    headers
}

/// The body of a streamed page: the layout's pieces in order, each sent as soon as it
/// is ready. Text and the head go at once; a slot when it has rendered or fallen back;
/// the scripts (with the final bus state) when every slot has.
pub struct PageStream {
    run: PageRun,
    /// The next piece of the skeleton to send.
    next: usize,
    /// The mode the headers were decided in.
    mode: cache::Mode,
    /// The request's span, entered again for each chunk.
    span: tracing::Span,
}

impl PageStream {
    /// The next chunk of the body: everything ready now, or, when nothing is, what
    /// becomes ready next. `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<String> {
        let span = self.span.clone();
        self.next_chunk_in_span().instrument(span).await
    }

    async fn next_chunk_in_span(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let target = &self.run.target;
            let Some(piece) = target.page().skeleton.pieces().get(self.next) else {
                if self.next != usize::MAX {
                    self.next = usize::MAX;
                    self.finish();
                }
                return (!out.is_empty()).then_some(out);
            };
            let ready = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    true
                }
                Piece::Head => {
                    self.run.write_head(&mut out);
                    true
                }
                Piece::Slot(i) => self.run.write_slot(*i, &mut out),
                Piece::Scripts => self.run.write_scripts(&mut out),
            };
            if ready {
                self.next += 1;
                continue;
            }
            if !out.is_empty() {
                return Some(out);
            }
            match piece {
                Piece::Slot(i) => self.run.until_slot(*i).await,
                _ => self.run.until_end().await,
            }
        }
    }

    fn finish(&self) {
        let run = &self.run;
        run.renderer.finished(
            &run.target,
            run.started,
            run.any_fell_back(),
            true,
            self.mode,
        );
    }

    /// The body as a stream of bytes, for an HTTP response.
    pub fn into_body_stream(
        self,
    ) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        futures::stream::unfold(self, |mut stream| async move {
            let chunk = stream.next_chunk().await?;
            Some((Ok(Bytes::from(chunk)), stream))
        })
    }
}

/// The site's own answer for `error` ([`crate::error_page`]).
fn site_error(site: &Site, error: SiteError, meter: PageMeter) -> PageReply {
    let (status, headers, body) = site.errors.answer(error);
    PageReply {
        status,
        headers,
        body: ReplyBody::Whole(body),
        meter,
    }
}

/// A whole page's `Server-Timing`: when its data and its components had settled, how
/// long composing took, how many slots were reused, then each slot's render as
/// `slot-<name>` with its outcome (`ok`, `reused`, `fallback`, `timeout`, `trap`,
/// `oom`), in the layout's order.
///
/// Written on every whole page, so by hand: each slot's entry up to its time was
/// written when the site was built (`Slot::timing_entry`), the times are integers.
fn server_timing(variant: &PageVariant, timings: &run::Timings, compose: Duration) -> String {
    let mut timing = String::with_capacity(96 + 48 * timings.slots.len());
    timing.push_str("data;dur=");
    push_ms(&mut timing, timings.data);
    timing.push_str(", components;dur=");
    push_ms(&mut timing, timings.components);
    timing.push_str(", compose;dur=");
    push_ms(&mut timing, compose);
    timing.push_str(", reused;desc=");
    push_integer(&mut timing, timings.reused as u128);
    for (slot, settled) in variant.slots.iter().zip(&timings.slots) {
        let Some((took, outcome)) = settled else {
            continue;
        };
        timing.push_str(&slot.timing_entry);
        push_ms(&mut timing, *took);
        timing.push_str(";desc=");
        timing.push_str(outcome.as_str());
    }
    timing
}

/// `d` in milliseconds with two decimals (rounded), as `Server-Timing` writes it.
fn push_ms(out: &mut String, d: Duration) {
    let hundredths = (d.as_micros() + 5) / 10;
    push_integer(out, hundredths / 100);
    out.push('.');
    let rest = hundredths % 100;
    out.push(char::from(b'0' + (rest / 10) as u8));
    out.push(char::from(b'0' + (rest % 10) as u8));
}

/// `n` in decimal.
fn push_integer(out: &mut String, n: u128) {
    let mut digits = [0u8; 39];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// When a page's request began, and its trace: when sampled, its fetches, slots and
/// phases get spans and each fetch sends its own span's context; else every fetch
/// sends `onward` (nothing with traces off).
#[derive(Debug, Clone)]
pub(crate) struct Begun {
    pub started: Instant,
    pub traced: bool,
    pub onward: Onward,
}

/// A page's span. In a sampled trace, it is the trace's server span, named for the
/// page's route; else it holds the request id alone (a span's fields are in every log
/// line, and cost every page).
fn page_span(request_id: &str, target: Option<&Target>, traced: bool) -> tracing::Span {
    use tracing::field::Empty;
    if !traced {
        return tracing::info_span!("page", request_id);
    }
    match target {
        Some(target) => {
            let route = &*target.page().route;
            tracing::info_span!(
                "page",
                request_id,
                otel.kind = "server",
                otel.name = %format_args!("GET {route}"),
                http.route = route,
                http.response.status_code = Empty,
            )
        }
        None => tracing::info_span!(
            "page",
            request_id,
            otel.kind = "server",
            otel.name = "GET",
            http.response.status_code = Empty,
        ),
    }
}

/// The request id from the trusted hop, or a fresh one.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    Arc::from(oberon_service::request_id::of_or_generate(headers))
}

/// The bus before any data source or component: the request topic.
fn seeded_bus(ctx: &RequestContext) -> BusSnapshot {
    let mut bus = BusSnapshot::default();
    bus.insert(Arc::from(REQUEST_TOPIC), Arc::from(request_topic(ctx)));
    bus
}

/// `{"locale":…,"params":{…},"path":…,"query":{…}}`, written directly: it is built
/// for every request.
fn request_topic(ctx: &RequestContext) -> String {
    let mut json = String::with_capacity(64 + ctx.path.len());
    // Keys in order, as serde_json's (sorted) map writes them.
    json.push_str("{\"locale\":");
    push_json_string(&mut json, &ctx.locale);
    push_json_object(&mut json, ",\"params\":", &ctx.params);
    json.push_str(",\"path\":");
    push_json_string(&mut json, &ctx.path);
    push_json_object(&mut json, ",\"query\":", &ctx.query);
    json.push('}');
    json
}

/// `key` then the pairs as a JSON object: keys sorted, the last of a repeated key kept.
fn push_json_object(json: &mut String, key: &str, pairs: &[(String, String)]) {
    json.push_str(key);
    json.push('{');
    let mut kept: Vec<&(String, String)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match kept.iter_mut().find(|k| k.0 == pair.0) {
            Some(slot) => *slot = pair,
            None => kept.push(pair),
        }
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (k, v)) in kept.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(json, k);
        json.push(':');
        push_json_string(json, v);
    }
    json.push('}');
}

/// `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut copied = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[copied..i]);
        if escaped.is_empty() {
            use std::fmt::Write;
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        copied = i + 1;
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

/// `a=1&b=x%20y` → `[("a","1"), ("b","x y")]`.
pub fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode_path_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs() {
        assert_eq!(
            form_urlencoded_pairs("qty=3&type=vip+seat&x=%3C&flag"),
            vec![
                ("qty".into(), "3".into()),
                ("type".into(), "vip seat".into()),
                ("x".into(), "<".into()),
                ("flag".into(), "".into())
            ]
        );
    }

    #[test]
    fn the_request_topic_is_the_json_serde_would_write() {
        let ctx = RequestContext {
            path: "/e/\"42\"\\x".into(),
            params: vec![("id".into(), "4\u{1}2\n".into())],
            query: vec![
                ("z".into(), "last".into()),
                ("a".into(), "é<&>".into()),
                ("z".into(), "again".into()),
            ],
            locale: "en-GB".into(),
            user: None,
            request_id: Arc::from("r"),
        };
        let pairs = |v: &[(String, String)]| -> serde_json::Map<String, serde_json::Value> {
            v.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        };
        let expected = serde_json::json!({
            "path": ctx.path,
            "params": pairs(&ctx.params),
            "query": pairs(&ctx.query),
            "locale": ctx.locale,
        })
        .to_string();
        assert_eq!(request_topic(&ctx), expected);
    }

    #[test]
    fn server_timing_durations_are_milliseconds_rounded_to_hundredths() {
        let ms = |us| {
            let mut out = String::new();
            push_ms(&mut out, Duration::from_micros(us));
            out
        };
        assert_eq!(ms(0), "0.00");
        assert_eq!(ms(4), "0.00");
        assert_eq!(ms(5), "0.01");
        assert_eq!(ms(1_234), "1.23");
        assert_eq!(ms(1_235), "1.24");
        assert_eq!(ms(999_996), "1000.00");
        assert_eq!(ms(12_345_678), "12345.68");
    }
}
