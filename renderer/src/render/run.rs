//! Phase 3, one page's inputs as a dataflow: every data source is fetched at once, and
//! every component renders as soon as the topics it subscribes to are *settled* — its
//! data source has answered, failed or passed its deadline; its publisher has rendered
//! or failed. A component reads only the topics it subscribes to, so it sees exactly
//! what it would see had the page waited for all its data and run stage by stage; the
//! difference is that a slot waiting on nothing slow is ready early, which is what a
//! streamed page sends first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use oberon_service::error_chain;
use oberon_service::trace::{KeyValue, Part, SpanKind, TraceContext};
use tracing::Span;

use super::{Begun, Delegable, Target, seeded_bus};
use crate::bus::BusSnapshot;
use crate::cache::Promise;
use crate::component::{Cacheability, Fragment, RequestContext};
use crate::data::DataError;
use crate::data_client::{Caller, Fetched, Served};
use crate::engine::{Budget, ComponentError, RenderResult};
use crate::error::Side;
use crate::layout::Composition;
use crate::lifecycle::Renderer;
use crate::metrics::{FetchOutcome, SlotOutcome};
use crate::render_cache::Reuse;

/// How one slot ended: its fragment, or why it fell back.
pub(crate) type Outcome = Result<Fragment, SlotFailure>;

/// Why a slot fell back (or, if critical, made the page a 503).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlotFailure {
    /// The component failed: a trap, its deadline, an error it returned, no instance.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// Nothing was left to run it. A planned page cannot get here (the plan orders
    /// every wait), but a page must not hang if it did.
    #[error("not run")]
    NotRun,
}

impl SlotFailure {
    /// A component's failure is upstream; a slot never run is the renderer's own.
    pub(crate) fn side(&self) -> Side {
        match self {
            SlotFailure::Component(_) => Side::Upstream,
            SlotFailure::NotRun => Side::Internal,
        }
    }
}

/// What one page's run is waiting for, and what has come.
pub(crate) struct PageRun {
    pub(crate) renderer: Arc<Renderer>,
    pub(crate) target: Target,
    pub(crate) ctx: Arc<RequestContext>,
    pub(crate) started: Instant,
    deadline: Instant,
    /// The request carries a cookie, credentials or a verified user: nothing reused.
    credentials: bool,
    /// Slots the render cache answered.
    reused: usize,
    bus: Arc<BusSnapshot>,
    /// Per data source: whether it has settled.
    sources_settled: Vec<bool>,
    /// The least cacheable answer so far.
    data_class: Cacheability,
    launched: Vec<bool>,
    outcomes: Vec<Option<Outcome>>,
    running: FuturesUnordered<BoxFuture<'static, Event>>,
    /// Once the headers have left: what they promised. A later answer that would have
    /// changed them is dropped.
    promised: Option<Promise>,
    data_done: Option<Duration>,
    components_done: Option<Duration>,
    /// Per slot: how long its render took and how it ended, once settled.
    slot_timings: Vec<Option<(Duration, SlotOutcome)>>,
    /// Only for a page in a sampled trace: its parts' spans.
    traced: Option<Traced>,
}

/// A sampled page's parts ([`Part`]s, under the page's span): one per data source and
/// per slot, made as each starts and ended when it settles.
struct Traced {
    page: TraceContext,
    sources: Vec<Option<Part>>,
    slots: Vec<Option<Part>>,
}

impl Traced {
    /// Room for the parts of a page of `sources` and `slots`, under the current span
    /// (the page's).
    fn of_current_page(sources: usize, slots: usize) -> Self {
        Traced {
            page: Part::parent(&Span::current()),
            sources: (0..sources).map(|_| None).collect(),
            slots: (0..slots).map(|_| None).collect(),
        }
    }
}

enum Event {
    Data {
        source: usize,
        url: String,
        result: Result<Fetched, DataError>,
        elapsed: Duration,
    },
    Slot {
        slot: usize,
        result: RenderResult,
        reused: bool,
    },
}

/// When a whole page's inputs settled, from the start of the request.
pub(crate) struct Timings {
    pub data: Duration,
    pub components: Duration,
    /// Per slot, in the variant's order: its render's time and outcome.
    pub slots: Vec<Option<(Duration, SlotOutcome)>>,
    /// Slots the render cache answered.
    pub reused: usize,
}

/// A page whose every input has settled.
pub(crate) struct Settled {
    pub target: Target,
    pub started: Instant,
    pub bus: Arc<BusSnapshot>,
    pub outcomes: Vec<Option<Outcome>>,
    pub timings: Timings,
    /// The least cacheable data source answer.
    pub data_class: Cacheability,
}

impl PageRun {
    /// Start every data source's fetch (or take `given` values instead) and every
    /// component that waits for nothing. A traced page's fetches, slots and phases get
    /// spans under the current one (the page's).
    pub(crate) fn start(
        renderer: Arc<Renderer>,
        target: Target,
        ctx: RequestContext,
        identity: Option<Arc<Delegable>>,
        credentials: bool,
        given: Option<Vec<(Arc<str>, Arc<str>)>>,
        Begun {
            started,
            traced,
            onward,
        }: Begun,
    ) -> Self {
        let page = target.page();
        let variant = target.variant();
        let deadline = started + page.deadline;
        let ctx = Arc::new(ctx);
        let mut bus = seeded_bus(&ctx);
        let sources = page.data.len();
        let mut traced = traced.then(|| Traced::of_current_page(sources, variant.slots.len()));
        let running = FuturesUnordered::new();
        let sources_settled = match given {
            Some(values) => {
                for (topic, json) in values {
                    bus.insert(topic, json);
                }
                vec![true; sources]
            }
            None => {
                for (i, source) in page.data.iter().enumerate() {
                    let expanded = source.url.expand(&ctx);
                    let budget = source
                        .deadline
                        .min(deadline.saturating_duration_since(Instant::now()));
                    let renderer = renderer.clone();
                    let part = traced.as_mut().and_then(|t| {
                        let url = expanded.as_deref().ok();
                        t.sources[i] = fetch_part(&t.page, &source.topic, url);
                        t.sources[i].as_ref()
                    });
                    let caller = Caller {
                        request_id: ctx.request_id.clone(),
                        identity: identity.as_ref().and_then(|d| d.for_source(source)),
                        trace: part.map_or_else(|| onward.clone(), Part::onward),
                    };
                    let fetch: BoxFuture<'static, Event> = Box::pin(async move {
                        let fetch_started = Instant::now();
                        let (url, result) = match expanded {
                            Ok(url) => {
                                let data = &renderer.data;
                                let fetched = data.fetch_as(&url, budget, &caller).await;
                                (url, fetched)
                            }
                            Err(refused) => (String::new(), Err(refused)),
                        };
                        Event::Data {
                            source: i,
                            url,
                            result,
                            elapsed: fetch_started.elapsed(),
                        }
                    });
                    // A traced fetch's log lines are its part's events.
                    running.push(match part {
                        Some(part) => Box::pin(part.wrap(fetch)),
                        None => fetch,
                    });
                }
                vec![false; sources]
            }
        };
        let slots = variant.slots.len();
        let mut run = Self {
            renderer,
            target,
            ctx,
            started,
            deadline,
            credentials,
            reused: 0,
            bus: Arc::new(bus),
            sources_settled,
            data_class: Cacheability::Public,
            launched: vec![false; slots],
            outcomes: (0..slots).map(|_| None).collect(),
            running,
            promised: None,
            data_done: None,
            components_done: None,
            slot_timings: vec![None; slots],
            traced,
        };
        run.launch_ready();
        run
    }

    /// Render every slot whose topics have settled and that has not started yet.
    fn launch_ready(&mut self) {
        for i in 0..self.launched.len() {
            if self.launched[i] {
                continue;
            }
            let waits = &self.target.variant().waits[i];
            let ready = waits.sources.iter().all(|&d| self.sources_settled[d])
                && waits.publishers.iter().all(|&p| self.outcomes[p].is_some());
            if !ready {
                continue;
            }
            self.launched[i] = true;
            let slot = &self.target.variant().slots[i];
            let budget = Budget {
                deadline: (Instant::now() + slot.deadline).min(self.deadline),
                memory_bytes: slot.memory_bytes,
            };
            // Decided at launch: the data this slot waited for has answered, so a
            // personal answer among it is known.
            let reuse = Reuse::for_request(
                &self.renderer.render_cache,
                &self.ctx,
                self.credentials,
                self.target.page().class.max(self.data_class),
                self.target.variant().is_canary(),
            );
            let renderer = self.renderer.clone();
            let site = self.target.site.clone();
            let (page, variant) = (self.target.page, self.target.variant);
            let ctx = self.ctx.clone();
            let bus = match &slot.reads {
                None => self.bus.clone(),
                // Only what the slot reads: the rest is absent to it, as it would be
                // to a fresh render (and to the render cache's key).
                Some(reads) => {
                    let mut only = BusSnapshot::default();
                    for topic in reads {
                        if let Some(value) = self.bus.get(topic) {
                            only.insert(topic.clone(), value.clone());
                        }
                    }
                    Arc::new(only)
                }
            };
            let part = self.traced.as_mut().and_then(|t| {
                t.slots[i] = slot_part(&t.page, &slot.name, slot.component.name());
                t.slots[i].as_ref()
            });
            let render = async move {
                let slot = &site.pages[page].variants[variant].slots[i];
                let rendered = renderer
                    .render_cache
                    .render_or_reuse(
                        &renderer.engine,
                        reuse,
                        &slot.component,
                        &ctx,
                        &slot.props,
                        &bus,
                        budget,
                    )
                    .await;
                Event::Slot {
                    slot: i,
                    result: rendered.result,
                    reused: rendered.reused,
                }
            };
            // A traced render's log lines are its part's events.
            self.running.push(match part {
                Some(part) => Box::pin(part.wrap(render)),
                None => Box::pin(render),
            });
        }
    }

    /// Wait for the next input to settle and take it in. `false` when nothing is left
    /// to wait for.
    async fn step(&mut self) -> bool {
        let Some(event) = self.running.next().await else {
            // Nothing runs and nothing can start: whatever has not run never will (it
            // cannot happen with a planned page, but must not hang if it did).
            for outcome in self.outcomes.iter_mut().filter(|o| o.is_none()) {
                *outcome = Some(Err(SlotFailure::NotRun));
            }
            return false;
        };
        self.settle(event);
        true
    }

    fn settle(&mut self, event: Event) {
        match event {
            Event::Data {
                source,
                url,
                result,
                elapsed,
            } => {
                let outcome = FetchOutcome::of(&result);
                if let Some(part) = self.traced.as_mut().and_then(|t| t.sources[source].take()) {
                    let (ended, cache) = outcome.labels();
                    part.set("oberon.outcome", ended);
                    part.set("oberon.cache", cache);
                    if ended != "ok" {
                        part.fail();
                    }
                }
                self.settle_data(source, &url, result, outcome, elapsed);
            }
            Event::Slot {
                slot,
                result,
                reused,
            } => {
                self.reused += usize::from(reused);
                let outcome = SlotOutcome::of(result.outcome.as_ref().map(|_| ()), reused);
                if let Some(part) = self.traced.as_mut().and_then(|t| t.slots[slot].take()) {
                    part.set("oberon.outcome", outcome.as_str());
                    if result.outcome.is_err() {
                        part.fail();
                    }
                }
                self.target.variant().slots[slot]
                    .metrics
                    .rendered(outcome, result.elapsed);
                self.slot_timings[slot] = Some((result.elapsed, outcome));
                self.settle_slot(slot, result);
            }
        }
        self.launch_ready();
    }

    fn settle_data(
        &mut self,
        i: usize,
        url: &str,
        result: Result<Fetched, DataError>,
        outcome: FetchOutcome,
        elapsed: Duration,
    ) {
        self.sources_settled[i] = true;
        if self.sources_settled.iter().all(|s| *s) {
            self.data_done = Some(self.started.elapsed());
        }
        let page = self.target.page();
        let source = &page.data[i];
        source.metrics.fetched(outcome, elapsed);
        let fetched = match result {
            Err(e) => {
                tracing::warn!(
                    route = %page.route, topic = %source.topic, url,
                    side = %e.side(), elapsed_ms = elapsed.as_millis() as u64,
                    "data source left its topic absent: {}", error_chain(&e)
                );
                return;
            }
            Ok(fetched) => fetched,
        };
        if fetched.served == Served::Stale {
            tracing::warn!(
                route = %page.route, topic = %source.topic, url,
                "data source answered from its stale-if-error copy"
            );
        }
        if self.promised.is_some_and(|p| !p.admits(fetched.class)) {
            // The headers have left: a personal answer can never land in a page they
            // said a CDN may share.
            tracing::warn!(
                route = %page.route, topic = %source.topic, url,
                class = ?fetched.class,
                "late data source answer dropped: less cacheable than the streamed page's headers promised"
            );
            self.renderer
                .counts
                .late_data_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.data_class = self.data_class.max(fetched.class);
        Arc::make_mut(&mut self.bus).insert(source.topic.clone(), fetched.value);
    }

    fn settle_slot(&mut self, i: usize, result: RenderResult) {
        let outcome = match result.outcome {
            Ok(fragment) => {
                let bus = Arc::make_mut(&mut self.bus);
                for (topic, value) in result.published {
                    bus.insert(topic, value);
                }
                Ok(fragment)
            }
            Err(e) => {
                let page = self.target.page();
                let slot = &self.target.variant().slots[i];
                tracing::warn!(
                    route = %page.route, slot = %slot.name, critical = slot.critical,
                    elapsed_us = result.elapsed.as_micros() as u64,
                    "component fell back: {e}"
                );
                Err(SlotFailure::Component(e))
            }
        };
        self.outcomes[i] = Some(outcome);
        if self.outcomes.iter().all(Option::is_some) {
            self.components_done = Some(self.started.elapsed());
        }
    }

    /// Wait until every critical slot has settled, then take in whatever else is ready
    /// without waiting (a fresh data cache hit, a component that needs one poll).
    pub(crate) async fn until_critical(&mut self) {
        let critical: Vec<usize> = (self.target.variant().slots.iter().enumerate())
            .filter(|(_, s)| s.critical)
            .map(|(i, _)| i)
            .collect();
        while critical.iter().any(|&i| self.outcomes[i].is_none()) && self.step().await {}
        while let Some(Some(event)) = self.running.next().now_or_never() {
            self.settle(event);
        }
    }

    /// Wait until slot `i` has settled.
    pub(crate) async fn until_slot(&mut self, i: usize) {
        while self.outcomes[i].is_none() && self.step().await {}
    }

    /// Wait until everything has settled.
    pub(crate) async fn until_end(&mut self) {
        while self.step().await {}
    }

    /// The first critical slot that failed, by name, and why, if one did.
    pub(crate) fn critical_failure(&self) -> Option<(&str, &SlotFailure)> {
        let slots = &self.target.variant().slots;
        slots
            .iter()
            .zip(&self.outcomes)
            .find_map(|(slot, outcome)| match outcome {
                Some(Err(reason)) if slot.critical => Some((&*slot.name, reason)),
                _ => None,
            })
    }

    /// A part for one phase of the page, if the page is traced: it ends when dropped.
    pub(crate) fn phase(&self, name: &'static str) -> Option<Part> {
        let t = self.traced.as_ref()?;
        Part::start(&t.page, name, SpanKind::Internal, Vec::new())
    }

    /// Whether every data source has settled.
    pub(crate) fn data_settled(&self) -> bool {
        self.sources_settled.iter().all(|s| *s)
    }

    pub(crate) fn data_class(&self) -> Cacheability {
        self.data_class
    }

    pub(crate) fn any_fell_back(&self) -> bool {
        self.outcomes.iter().any(|o| !matches!(o, Some(Ok(_))))
    }

    /// The headers have left, promising `promise`.
    pub(crate) fn promise(&mut self, promise: Promise) {
        self.promised = Some(promise);
    }

    /// A settled page, taken apart for composing.
    pub(crate) fn into_settled(self) -> Settled {
        Settled {
            timings: Timings {
                data: self.data_done.unwrap_or_default(),
                components: self.components_done.unwrap_or_default(),
                reused: self.reused,
                slots: self.slot_timings,
            },
            target: self.target,
            started: self.started,
            bus: self.bus,
            outcomes: self.outcomes,
            data_class: self.data_class,
        }
    }

    fn composition(&self) -> Composition<'_> {
        let page = self.target.page();
        let mut composition = Composition::new(&self.bus, &page.private_topics, 0);
        composition.defaults = &page.head;
        composition
    }

    /// A streamed page's head: the head entries of the slots rendered by now, every
    /// component's stylesheets, and a preload of every component's scripts.
    pub(crate) fn write_head(&self, out: &mut String) {
        let mut composition = self.composition();
        let variant = self.target.variant();
        for (slot, outcome) in variant.slots.iter().zip(&self.outcomes) {
            if let Some(Ok(fragment)) = outcome {
                composition.head.extend(fragment.head.iter().cloned());
            }
            let assets = &slot.component.component.metadata().assets;
            composition
                .preload
                .extend(assets.iter().map(|a| slot.component.asset_url(a)));
        }
        out.push_str(&composition.head());
    }

    /// Slot `i`'s HTML, if it has settled (its fragment, or its fallback).
    pub(crate) fn write_slot(&self, i: usize, out: &mut String) -> bool {
        let slot = &self.target.variant().slots[i];
        match &self.outcomes[i] {
            None => false,
            Some(Ok(fragment)) => {
                out.push_str(&fragment.html);
                true
            }
            Some(Err(_)) => {
                out.push_str(&slot.fallback);
                true
            }
        }
    }

    /// The scripts (with the final bus state), once every slot and every data source
    /// has settled.
    pub(crate) fn write_scripts(&self, out: &mut String) -> bool {
        if self.outcomes.iter().any(Option::is_none) || !self.data_settled() {
            return false;
        }
        let mut composition = self.composition();
        let variant = self.target.variant();
        for (slot, outcome) in variant.slots.iter().zip(&self.outcomes) {
            if let Some(Ok(_)) = outcome {
                let assets = &slot.component.component.metadata().assets;
                composition
                    .assets
                    .extend(assets.iter().map(|a| slot.component.asset_url(a)));
            }
        }
        out.push_str(&composition.scripts());
        true
    }
}

/// A data source's fetch, a client span under the page's: its outcome and cache
/// status are set when it settles. The fetch sends its context on to the BFF.
fn fetch_part(page: &TraceContext, topic: &str, url: Option<&str>) -> Option<Part> {
    let mut attributes = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("oberon.source", topic.to_string()),
    ];
    if let Some(url) = url {
        attributes.push(KeyValue::new("url.full", url.to_string()));
    }
    Part::start(page, format!("fetch {topic}"), SpanKind::Client, attributes)
}

/// A slot's render under the page's span: the component's log lines become its
/// events, its outcome is set when it settles.
fn slot_part(page: &TraceContext, slot: &str, component: &str) -> Option<Part> {
    let attributes = vec![
        KeyValue::new("oberon.slot", slot.to_string()),
        KeyValue::new("oberon.component", component.to_string()),
    ];
    Part::start(
        page,
        format!("render {slot}"),
        SpanKind::Internal,
        attributes,
    )
}
